#!/usr/bin/python3
"""Small ONNX models for tests/test_kernels.c and the loader fuzz seeds.

usage: gen_unit_models.py OUT_DIR

Good models exercise one kernel each (the test compares the engine with
naive references of its own); bad models must be refused with a clear
message. Needs Debian's python3-onnx.
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 13


def save(out, name, nodes, inputs, outputs, inits=(), opset=OPSET, check=False):
    g = helper.make_graph(nodes, name, inputs, outputs, list(inits))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 7
    if check:
        onnx.checker.check_model(m)
    for t in inits:	# raw float32 weights for the test's naive references
        if t.data_type == TensorProto.FLOAT and not name.startswith("bad"):
            numpy_helper.to_array(t).astype("<f4").tofile(os.path.join(out, f"{name}__{t.name}.bin"))
    path = os.path.join(out, name + ".onnx")
    with open(path, "wb") as f:
        f.write(m.SerializeToString())
    return m


def vi(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def vo(name):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, None)


def w(name, shape, seed):
    r = np.random.default_rng(seed)
    return numpy_helper.from_array(r.standard_normal(shape).astype(np.float32), name)


def gelu_inputs():
    """Gelu's test inputs: a dense sweep of [-16, 16] (the result underflows
    float32 near -14), zeros, tiny and huge magnitudes, +-10, +-30, NaN and
    the infinities."""
    sweep = np.arange(-16 * 64, 16 * 64 + 1) / 64.0
    special = [0.0, -0.0, 1e-30, -1e-30, 1e-40, -1e-40, 10.0, -10.0, 30.0, -30.0,
               1e13, -1e13, 3.4e38, -3.4e38, np.nan, np.inf, -np.inf]
    return np.concatenate([sweep, special]).astype(np.float32)


def gelu_ref(x, approximate):
    """PyTorch's Gelu in float64 (Debian's python3-torch), rounded to
    float32. torch evaluates 0.5 x (1 + erf(x / sqrt 2)) and 0.5 x (1 +
    tanh u) as written: for x < -5, 1 + erf and 1 + tanh cancel and lose up
    to 2^-52 / Phi(x) of relative accuracy in float64 (1e-7 at x = -10),
    so there the reference is the same function in torch's cancellation-free
    float64 forms, 0.5 x erfc(-x / sqrt 2) and x / (1 + e^-2u); both forms
    are checked to agree to 1e-9 relative on [-5, 5]."""
    import torch
    t = torch.from_numpy(x.astype(np.float64))
    plain = torch.nn.functional.gelu(t, approximate=approximate)
    if approximate == "none":
        stable = 0.5 * t * torch.special.erfc(-t * (0.5 ** 0.5))
    else:
        u = (2 / np.pi) ** 0.5 * (t + 0.044715 * t ** 3)
        stable = t / (1 + torch.exp(-2 * u))
    p, s, xd = plain.numpy(), stable.numpy(), x.astype(np.float64)
    mid = np.abs(xd) <= 5
    assert np.all(np.abs(p[mid] - s[mid]) <= 1e-9 * np.abs(p[mid]) + 1e-300), approximate
    ref = np.where(xd < -5, s, p)
    ref[np.isinf(xd) & (xd < 0)] = p[np.isinf(xd) & (xd < 0)]    # -inf * 0: NaN in both
    return ref.astype(np.float32)


def gelu_models(out):
    """Gelu at opset 20 (onnx 1.12's checker does not know it: no check),
    with inputs and float32 references as NAME__x.bin and NAME__ref.bin;
    conv_gelu: a Conv with a fused tanh Gelu."""
    x = gelu_inputs()
    for approx in ("none", "tanh"):
        name = "gelu_" + approx
        save(out, name, [helper.make_node("Gelu", ["x"], ["y"], approximate=approx)],
             [vi("x", [1, len(x)])], [vo("y")], opset=20)
        x.astype("<f4").tofile(os.path.join(out, f"{name}__x.bin"))
        gelu_ref(x, approx).astype("<f4").tofile(os.path.join(out, f"{name}__ref.bin"))
    save(out, "conv_gelu",
         [helper.make_node("Conv", ["x", "w", "b"], ["c"], group=8, strides=[2, 2],
                           pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
          helper.make_node("Gelu", ["c"], ["y"], approximate="tanh")],
         [vi("x", [1, 8, 10, 13])], [vo("y")],
         [w("w", [8, 1, 3, 3], 3), w("b", [8], 4)], opset=20)


def main(out):
    os.makedirs(out, exist_ok=True)
    # conv: groups 2, dilation 2, strides (2, 1), asymmetric pads, bias
    save(out, "conv_group",
         [helper.make_node("Conv", ["x", "w", "b"], ["y"], group=2, dilations=[2, 2],
                           strides=[2, 1], pads=[1, 0, 2, 1], kernel_shape=[3, 3])],
         [vi("x", [1, 4, 9, 11])], [vo("y")],
         [w("w", [6, 2, 3, 3], 1), w("b", [6], 2)])
    # depthwise 3x3 stride 2 pad 1 + Relu (fused)
    save(out, "conv_dw_relu",
         [helper.make_node("Conv", ["x", "w", "b"], ["c"], group=8, strides=[2, 2],
                           pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
          helper.make_node("Relu", ["c"], ["y"])],
         [vi("x", [1, 8, 10, 13])], [vo("y")],
         [w("w", [8, 1, 3, 3], 3), w("b", [8], 4)])
    # 1x1 expand conv + Clip(0, 6), then a depthwise 3x3 + Relu: the expand
    # conv's threads split its output channels (it feeds a depthwise conv);
    # expand_dw_t's 14x14 plane and 64 channels take the transposed tiles
    for name, c, m, h, wd in (("expand_dw", 8, 40, 20, 23), ("expand_dw_t", 16, 64, 14, 14)):
        save(out, name,
             [helper.make_node("Conv", ["x", "we", "be"], ["e"], kernel_shape=[1, 1]),
              helper.make_node("Clip", ["e", "lo", "hi"], ["c"]),
              helper.make_node("Conv", ["c", "wd", "bd"], ["d"], group=m, pads=[1, 1, 1, 1],
                               kernel_shape=[3, 3]),
              helper.make_node("Relu", ["d"], ["y"])],
             [vi("x", [1, c, h, wd])], [vo("y")],
             [w("we", [m, c, 1, 1], 21), w("be", [m], 22), w("wd", [m, 1, 3, 3], 23),
              w("bd", [m], 24), numpy_helper.from_array(np.array(0, np.float32), "lo"),
              numpy_helper.from_array(np.array(6, np.float32), "hi")])
    # 1x1 conv + BatchNormalization + residual Add + Relu (fused into one node)
    r = np.random.default_rng(5)
    save(out, "conv_bn_add_relu",
         [helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[1, 1]),
          helper.make_node("BatchNormalization", ["c", "s", "bb", "m", "v"], ["n"], epsilon=1e-3),
          helper.make_node("Add", ["n", "x"], ["a"]),
          helper.make_node("Relu", ["a"], ["y"])],
         [vi("x", [1, 8, 7, 5])], [vo("y")],
         [w("w", [8, 8, 1, 1], 6), w("s", [8], 7), w("bb", [8], 8), w("m", [8], 9),
          numpy_helper.from_array((r.random(8) + 0.5).astype(np.float32), "v")])
    # ConvTranspose 2x2 stride 2, 2 groups, + BatchNormalization + Relu
    # (the BN folded into its C x M/g kh kw weights, the Relu fused: one node)
    r = np.random.default_rng(10)
    save(out, "convt_bn_relu",
         [helper.make_node("ConvTranspose", ["x", "w"], ["c"], kernel_shape=[2, 2],
                           strides=[2, 2], group=2),
          helper.make_node("BatchNormalization", ["c", "s", "bb", "m", "v"], ["n"], epsilon=1e-3),
          helper.make_node("Relu", ["n"], ["y"])],
         [vi("x", [1, 4, 5, 19])], [vo("y")],
         [w("w", [4, 3, 2, 2], 11), w("s", [6], 12), w("bb", [6], 13), w("m", [6], 14),
          numpy_helper.from_array((r.random(6) + 0.5).astype(np.float32), "v")])
    # pooling
    save(out, "maxpool_ceil",
         [helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[3, 3], strides=[2, 2],
                           pads=[1, 1, 1, 1], ceil_mode=1)],
         [vi("x", [1, 3, 10, 9])], [vo("y")])
    save(out, "avgpool_pad",
         [helper.make_node("AveragePool", ["x"], ["y"], kernel_shape=[3, 2], strides=[2, 2],
                           pads=[1, 0, 1, 1], count_include_pad=1, ceil_mode=1)],
         [vi("x", [1, 3, 10, 9])], [vo("y")])
    save(out, "avgpool_nopad",
         [helper.make_node("AveragePool", ["x"], ["y"], kernel_shape=[3, 3], strides=[1, 2],
                           pads=[1, 1, 1, 1])],
         [vi("x", [1, 3, 10, 9])], [vo("y")])
    # numpy broadcasting
    save(out, "bcast_add",
         [helper.make_node("Add", ["a", "b"], ["y"])],
         [vi("a", [2, 3, 4, 5]), vi("b", [3, 1, 5])], [vo("y")])
    save(out, "bcast_div",
         [helper.make_node("Div", ["a", "b"], ["y"])],
         [vi("a", [2, 1, 4, 1]), vi("b", [3, 1, 6])], [vo("y")])
    # resize
    def resize(name, mode, coord, scales=None, sizes=None, nearest="round_prefer_floor"):
        inits = [numpy_helper.from_array(np.zeros(0, np.float32), "roi")]
        ins = ["x", "roi"]
        if scales is not None:
            inits.append(numpy_helper.from_array(np.array(scales, np.float32), "scales"))
            ins.append("scales")
        else:
            inits.append(numpy_helper.from_array(np.zeros(0, np.float32), "scales"))
            inits.append(numpy_helper.from_array(np.array(sizes, np.int64), "sizes"))
            ins += ["scales", "sizes"]
        save(out, name, [helper.make_node("Resize", ins, ["y"], mode=mode,
                                          coordinate_transformation_mode=coord,
                                          nearest_mode=nearest)],
             [vi("x", [1, 2, 5, 7])], [vo("y")], inits)
    resize("resize_nearest_asym", "nearest", "asymmetric", scales=[1, 1, 2, 2], nearest="floor")
    resize("resize_linear_half", "linear", "half_pixel", scales=[1, 1, 2, 1.5])
    resize("resize_linear_align", "linear", "align_corners", sizes=[1, 2, 9, 4])
    # Shape/Gather/Unsqueeze/Concat -> Reshape chain (constant folding)
    save(out, "reshape_chain",
         [helper.make_node("Shape", ["x"], ["s"]),
          helper.make_node("Gather", ["s", "i0"], ["n"], axis=0),
          helper.make_node("Unsqueeze", ["n", "ax"], ["nu"]),
          helper.make_node("Concat", ["nu", "m1"], ["shape"], axis=0),
          helper.make_node("Reshape", ["x", "shape"], ["y"])],
         [vi("x", [2, 3, 4])], [vo("y")],
         [numpy_helper.from_array(np.array(0, np.int64), "i0"),
          numpy_helper.from_array(np.array([0], np.int64), "ax"),
          numpy_helper.from_array(np.array([-1], np.int64), "m1")])

    # the shape arithmetic transformer exports put before a Reshape (vit_b_16:
    # Shape/Gather/Equal/Where; swin_t: Mod, Range, Not), all of it folded
    save(out, "where_chain",
         [helper.make_node("Shape", ["x"], ["s"]),
          helper.make_node("Gather", ["s", "i0"], ["n"], axis=0),
          helper.make_node("Equal", ["n", "m1s"], ["isneg"]),
          helper.make_node("Not", ["isneg"], ["keep"]),
          helper.make_node("Mod", ["n", "five"], ["nm"]),
          helper.make_node("Range", ["i0", "nm", "one"], ["r"]),
          helper.make_node("ReduceSum", ["r", "ax"], ["rs"], keepdims=0),
          helper.make_node("Greater", ["rs", "i0"], ["pos"]),
          helper.make_node("And", ["keep", "pos"], ["ok"]),
          helper.make_node("Where", ["ok", "n", "m1s"], ["nw"]),
          helper.make_node("Unsqueeze", ["nw", "ax"], ["nu"]),
          helper.make_node("Concat", ["nu", "m1"], ["shape"], axis=0),
          helper.make_node("Reshape", ["x", "shape"], ["y"])],
         [vi("x", [2, 3, 4])], [vo("y")],
         [numpy_helper.from_array(np.array(0, np.int64), "i0"),
          numpy_helper.from_array(np.array(1, np.int64), "one"),
          numpy_helper.from_array(np.array(5, np.int64), "five"),
          numpy_helper.from_array(np.array(-1, np.int64), "m1s"),
          numpy_helper.from_array(np.array([0], np.int64), "ax"),
          numpy_helper.from_array(np.array([-1], np.int64), "m1")])

    # Einsum with a repeated label (a diagonal): the node tests have none
    # without an ellipsis
    save(out, "einsum_diag", [helper.make_node("Einsum", ["x"], ["y"], equation="bii->bi")],
         [vi("x", [2, 3, 3])], [vo("y")], opset=13)
    # two float32 operands, batch/row/column/contraction labels in scrambled
    # orders: the packed-sgemm path
    save(out, "einsum_perm", [helper.make_node("Einsum", ["a", "b"], ["y"],
                                               equation="bkm,nbk->mbn")],
         [vi("a", [2, 3, 4]), vi("b", [5, 2, 3])], [vo("y")], opset=13)

    # the engine's exp polynomial, through Sigmoid and x * Sigmoid(x) (SiLU),
    # swept densely by test_kernels against float64
    save(out, "act_sigmoid", [helper.make_node("Sigmoid", ["x"], ["y"])],
         [vi("x", [1, 1, 1, 65536])], [vo("y")])
    save(out, "act_silu", [helper.make_node("Sigmoid", ["x"], ["s"]),
                           helper.make_node("Mul", ["x", "s"], ["y"])],
         [vi("x", [1, 1, 1, 65536])], [vo("y")])
    # a chain for range execution and cuts: Conv; MaxPool; Conv+Add+Sigmoid
    save(out, "chain",
         [helper.make_node("Conv", ["x", "w1"], ["a"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
          helper.make_node("MaxPool", ["a"], ["b"], kernel_shape=[2, 2], strides=[2, 2]),
          helper.make_node("Conv", ["b", "w2"], ["c"], kernel_shape=[1, 1]),
          helper.make_node("Add", ["c", "b"], ["d"]),
          helper.make_node("Sigmoid", ["d"], ["y"])],
         [vi("x", [1, 3, 16, 12])], [vo("y")],
         [w("w1", [4, 3, 3, 3], 11), w("w2", [4, 4, 1, 1], 12)])

    gelu_models(out)

    # ---- bad models ----
    good = save(out, "bad_base",
                [helper.make_node("Relu", ["x"], ["y"])], [vi("x", [1, 4])], [vo("y")])
    data = good.SerializeToString()
    with open(os.path.join(out, "bad_truncated.onnx"), "wb") as f:
        f.write(data[: len(data) * 2 // 3])
    with open(os.path.join(out, "bad_not_onnx.onnx"), "wb") as f:
        f.write(b"this is not an ONNX model, just text\n" * 4)
    save(out, "bad_missing_init",
         [helper.make_node("Add", ["x", "nowhere"], ["y"])], [vi("x", [1, 4])], [vo("y")],
         check=False)
    save(out, "bad_cycle",
         [helper.make_node("Add", ["x", "b"], ["a"]), helper.make_node("Relu", ["a"], ["b"])],
         [vi("x", [1, 4])], [vo("a")], check=False)
    big = onnx.TensorProto()
    big.name = "w"
    big.data_type = TensorProto.FLOAT
    big.dims.extend([1 << 20, 1 << 20, 1 << 10])
    big.raw_data = b"\0" * 16
    save(out, "bad_absurd_dims",
         [helper.make_node("Add", ["x", "w"], ["y"])], [vi("x", [1, 4])], [vo("y")],
         [big], check=False)
    save(out, "bad_unsupported_op",
         [helper.make_node("Relu", ["x"], ["r"], name="first"),
          helper.make_node("Hardmax", ["r"], ["y"], name="the_hardmax")],
         [vi("x", [1, 4])], [vo("y")])
    # Gelu: approximate is "none" or "tanh"; Gelu is opset 20's
    save(out, "bad_gelu_approximate",
         [helper.make_node("Gelu", ["x"], ["y"], name="the_gelu", approximate="fast")],
         [vi("x", [1, 4])], [vo("y")], opset=20)
    save(out, "bad_gelu_opset",
         [helper.make_node("Gelu", ["x"], ["y"], name="old_gelu")],
         [vi("x", [1, 4])], [vo("y")], opset=18)
    save(out, "bad_shapes",
         [helper.make_node("Add", ["a", "b"], ["y"])], [vi("a", [2, 3]), vi("b", [4, 3])],
         [vo("y")], check=False)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
