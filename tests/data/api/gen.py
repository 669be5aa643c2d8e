#!/usr/bin/python3
"""Regenerates tests/data/api/: images and npy files with references made by
PIL, numpy and torch (independent of splitd's decoders). Run with Debian's
/usr/bin/python3 from this folder."""
import io, json, os
import numpy as np
from PIL import Image
import torch
import torch.nn.functional as F

here = os.path.dirname(os.path.abspath(__file__))
os.chdir(here)
rng = np.random.default_rng(5)

# a smooth image with some texture: JPEG-friendly, not constant
h, w = 48, 64
yy, xx = np.mgrid[0:h, 0:w]
img = np.stack([(xx * 4) % 256, (yy * 5) % 256, ((xx + yy) * 3) % 256], -1).astype(np.uint8)
img = np.clip(img.astype(int) + rng.integers(-8, 8, img.shape), 0, 255).astype(np.uint8)
Image.fromarray(img).save("img_64x48.png")
np.save("img_64x48_rgb.npy", img)
Image.fromarray(img).save("img_64x48.jpg", quality=95)
# PIL's own decode of the JPEG: the reference for TurboJPEG's output
np.save("img_64x48_jpg_rgb.npy", np.asarray(Image.open("img_64x48.jpg").convert("RGB")))
# other PNG colour types, decoded to RGB by PIL
Image.fromarray(img[:, :, 0]).save("gray_64x48.png")
Image.fromarray(np.dstack([img, np.full((h, w), 200, np.uint8)])).save("rgba_64x48.png")
np.save("gray_64x48_rgb.npy", np.asarray(Image.open("gray_64x48.png").convert("RGB")))
Image.fromarray(img).convert("P", palette=Image.ADAPTIVE, colors=64).save("pal_64x48.png")
np.save("pal_64x48_rgb.npy", np.asarray(Image.open("pal_64x48.png").convert("RGB")))

# preprocessing references: torch bilinear, align_corners=False, no antialias
mean = np.array([0.485, 0.456, 0.406], np.float32)
std = np.array([0.229, 0.224, 0.225], np.float32)
src = torch.from_numpy(img.astype(np.float32)).permute(2, 0, 1)[None]
st = F.interpolate(src, size=(32, 32), mode="bilinear", align_corners=False)
st = (st / 255.0 - torch.from_numpy(mean)[None, :, None, None]) / torch.from_numpy(std)[None, :, None, None]
np.save("pre_stretch_32x32_nchw.npy", st.numpy().astype(np.float32))
# letterbox 64x48 into 40x40: scale 40/64 -> 40x30, pad 5 rows on top; fill 114,
# scale 1/255, no mean/std, BGR, NHWC
lb = F.interpolate(src, size=(30, 40), mode="bilinear", align_corners=False)[0]
canvas = torch.full((3, 40, 40), 114.0)
canvas[:, 5:35, :] = lb
canvas = canvas / 255.0
canvas = canvas[[2, 1, 0]].permute(1, 2, 0)[None]
np.save("pre_letterbox_40x40_bgr_nhwc.npy", canvas.numpy().astype(np.float32))

# npy files of every supported kind, values known to the test
a = np.arange(24, dtype=np.float32).reshape(2, 3, 4) / 8
np.save("f32_v1.npy", a)
np.save("f32_be.npy", a.astype(">f4"))
with open("f32_v2.npy", "wb") as f:
    np.lib.format.write_array(f, a, version=(2, 0))
with open("f32_v3.npy", "wb") as f:
    np.lib.format.write_array(f, a, version=(3, 0))
np.save("i64.npy", np.arange(-3, 3, dtype=np.int64))
np.save("f16.npy", (np.arange(6, dtype=np.float16) - 2.5))
np.save("u8_scalar.npy", np.array(7, np.uint8))
np.save("fortran.npy", np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3)))
np.save("f32_input.npy", (np.arange(3 * 32 * 32, dtype=np.float32).reshape(1, 3, 32, 32) / 1000))

# 224x224 camera-like frame for the benchmark
b = np.stack([(np.mgrid[0:224, 0:224][1] * 3) % 256, (np.mgrid[0:224, 0:224][0] * 2) % 256,
              np.full((224, 224), 90)], -1).astype(np.uint8)
b = np.clip(b.astype(int) + rng.integers(-20, 20, b.shape), 0, 255).astype(np.uint8)
Image.fromarray(b).save("bench_224.jpg", quality=90)

# fuzz seeds
os.makedirs("seeds/v2", exist_ok=True)
os.makedirs("seeds/npy", exist_ok=True)
os.makedirs("seeds/image", exist_ok=True)
req = {"id": "1", "parameters": {"cut": 3},
       "inputs": [{"name": "x", "shape": [2, 2], "datatype": "FP32", "data": [[1, 2], [3, 4.5]]}],
       "outputs": [{"name": "y", "parameters": {"binary_data": True}}]}
open("seeds/v2/json.bin", "wb").write(json.dumps(req).encode())
hdr = json.dumps({"inputs": [{"name": "x", "shape": [3], "datatype": "FP16",
                              "parameters": {"binary_data_size": 6, "scale": 0.5}}]}).encode()
open("seeds/v2/binary.bin", "wb").write(len(hdr).to_bytes(4, "little") + hdr + b"\x00\x3c\x00\x40\x00\x42")
open("seeds/v2/bad.bin", "wb").write(b"\x00\x00\x00\x00{\"inputs\":[{\"name\":\"x\",\"shape\":[1e9],\"datatype\":\"FP32\",\"data\":[]}]}")
for n in ["f32_v1.npy", "f32_be.npy", "f32_v3.npy", "i64.npy", "u8_scalar.npy"]:
    open("seeds/npy/" + n, "wb").write(open(n, "rb").read())
for n in ["img_64x48.png", "img_64x48.jpg", "gray_64x48.png", "pal_64x48.png"]:
    open("seeds/image/" + n, "wb").write(open(n, "rb").read())
print("ok")
