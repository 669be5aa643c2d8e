#!/usr/bin/python3
"""Detectors end to end (issue 18): a peer and a robot splitd on loopback.

Usage: detect_e2e.py SPLITD MODELS_DIR [--quick]

MODELS_DIR holds tools/export_models.py's yolo_320 (YOLOv5 head, 80
classes) and yolov8_pose_160 (YOLOv8 pose head, 1 class, 17 keypoints).
The robot's [model] says postprocess = yolov5 / yolov8; the peer's says
nothing of it (it is told with each request). A non-square PNG goes to the
robot (letterboxed); against the robot's all-local answer:

  * every legal cut (a spread of them with --quick), f32 and f32+zstd: the
    same detections bit for bit (both daemons threads = 1: the same
    arithmetic in the same order); f16: the same objects among those that
    score clear of the threshold (class, and boxes within 2 % of the input
    side: what a rounded cut tensor moves); i8 moves these random nets'
    scores past their spread, so its counts are reported, not compared;
  * banded cuts (bands = 4) likewise, at the cuts that stream;
  * the image forwarded at cut 0 (the peer decodes it, reports its size, the
    robot maps the boxes): identical; a JPEG likewise, forwarded and split;
  * the bytes back from the peer are the detections' size: the binary part
    exactly N x (16 + 4 + 4 + 12K) bytes under a JSON header of < 1 KiB,
    not the raw output's megabytes; the planner's candidates count that
    size as their way back (/v1/status?explain=1, return_bytes);
  * ?outputs=raw: the tensors too, the same detections;
  * a second model, postprocess none with output_encoding = f16: its raw
    output comes back as f16 (half the bytes) within f16's rounding;
  * KServe v2 on the robot answers boxes/scores/classes(/keypoints) equal to
    v1's detections for the same tensor input (model-input pixels);
  * /metrics has the detections-per-request histogram;
  * a postprocess that does not fit the model's output is refused at load
    with both shapes in the message;
  * bad post-processing parameters sent to the peer get a 400, and the peer
    keeps serving.
Prints 'N passed, N failed' and exits non-zero on any failure.
"""
import io
import json
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from split_e2e import Daemon, check, free_port, http, wait_ready  # noqa: E402
import split_e2e  # noqa: E402

MODELS = {
    # name: (head, keypoints, classes, input side)
    "yolo_320": ("yolov5", 0, 80, 320),
    "yolov8_pose_160": ("yolov8", 17, 1, 160),
}


MAX_DET = 50


def score_threshold(head):
    # the random nets' scores crowd at the top (yolov5's obj x class near
    # 0.95): thresholds that leave tens of objects, not max_detections
    return 0.96 if head == "yolov5" else 0.5


def pp_keys():
    return "resize = letterbox\nscale = 0.00392156862745098\nmean = 0,0,0\nstd = 1,1,1\n"


def peer_conf(model, port):
    return split_e2e.peer_conf(model, port, pp_keys())


def robot_base(model, port, peer_port, model_keys):
    """A robot linked to the peer; model_keys after the preprocessing."""
    return f"""[daemon]
role = robot
threads = 1
[api]
listen = 127.0.0.1:{port}
[peer]
url = http://127.0.0.1:{peer_port}
plain = true
request_timeout_ms = 60000
[model.m]
path = {model}
{pp_keys()}{model_keys}"""


def robot_conf(model, port, peer_port, head, K, labels, extra=""):
    return robot_base(model, port, peer_port, f"""postprocess = {head}
score_threshold = {score_threshold(head)}
iou_threshold = 0.5
max_detections = {MAX_DET}
keypoints = {K}
labels = {labels}
{extra}""")


def image_png(fmt="PNG"):
    """A 300x200 picture: gradients and a few rectangles."""
    y, x = np.mgrid[0:200, 0:300]
    img = np.stack([(x * 255 // 299), (y * 255 // 199), ((x + y) * 255 // 498)], 2).astype(np.uint8)
    img[40:120, 50:170] = (250, 250, 250)
    img[130:190, 200:280] = (10, 200, 30)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format=fmt)
    return buf.getvalue()


def check_jpeg(port, name, n_nodes):
    """A JPEG: the same detections all-local, forwarded as received, split."""
    jpg = image_png("JPEG")
    st, ref = infer(port, jpg, f"cut={n_nodes}", ctype="image/jpeg")
    res = [infer(port, jpg, q, ctype="image/jpeg") for q in ("cut=0&encoding=input", f"cut={n_nodes // 2}&encoding=f32")]
    ok = st == 200 and all(s == 200 and not r["placement"]["fallback"] and r["detections"] == ref["detections"]
                           for s, r in res)
    check(f"{name}: a JPEG's {len(ref.get('detections', []))} detections the same all-local, forwarded and split",
          ok, str([r.get("placement") for _, r in res]))


def infer(port, body, query, ctype="image/png"):
    return split_e2e.infer(port, body, ctype, "?" + query.replace("+", "%2B"), timeout=120)


def same_objects(a, b, side, thr, margin):
    """The objects that score clear of the threshold (by margin: what the
    encoding's rounding may move a score) are in both answers: same class,
    boxes within 2 % of the input side. A lossy cut may flip a candidate
    at the threshold, or an NMS tie-break among near-equal boxes, so those
    are not compared."""
    # a capped answer (max_detections) has its own threshold: its last score
    if len(b) == MAX_DET:
        thr = max(thr, min(d["score"] for d in b))

    def clear(ds):
        return [d for d in ds if d["score"] > thr + margin]

    for x, y, what in ((clear(a), b, "lost"), (clear(b), a, "gained")):
        for p in x:
            if not any(q["class_id"] == p["class_id"] and
                       np.abs(np.array(p["box"]) - np.array(q["box"])).max() <= 0.02 * side for q in y):
                return False, f"{what} class {p['class_id']} score {p['score']} box {p['box']}"
    return len(clear(a)) > 0, ""


def det_bytes(n, K):
    return n * (16 + 4 + 4 + 12 * K)


def cuts_of(n_nodes, quick):
    if quick:
        return sorted(set([0, 1, n_nodes // 4, n_nodes // 2, (3 * n_nodes) // 4, n_nodes - 1]))
    return list(range(n_nodes))


def check_cuts(port, png, ref, name, n_nodes, K, side, thr, quick):
    raw_ok = 0
    i8_counts = []
    for k in cuts_of(n_nodes, quick):
        encs = ["f32", "f32+zstd", "f16", "i8"] if (quick or k % 8 == 0) else ["f32"]
        for enc in encs:
            st, r = infer(port, png, f"cut={k}&encoding={enc}")
            if st != 200 or r["placement"]["fallback"]:
                check(f"{name} cut {k} {enc}", False, f"{st} {str(r)[:300]}")
                continue
            if enc.startswith("f32"):
                ok = r["detections"] == ref["detections"]
                detail = "" if ok else f"{r['detections'][:2]} vs {ref['detections'][:2]}"
            elif enc == "f16":
                ok, detail = same_objects(r["detections"], ref["detections"], side, thr, 0.02)
            else:
                # i8 moves these random nets' scores by more than their
                # spread (every object can fall under the threshold at the
                # last cut): the accuracy does not allow a comparison; the
                # count is reported, the bytes checked
                ok, detail = True, ""
                i8_counts.append(len(r["detections"]))
            nb = r["placement"].get("bytes_back", 0)
            bin_bytes = det_bytes(len(r["detections"]), K)
            ok_bytes = bin_bytes <= nb < bin_bytes + 1024
            if not (ok and ok_bytes) or not quick and enc == "f32" and k % 16 == 0:
                check(f"{name} cut {k} {enc}: same detections, {nb} bytes back", ok and ok_bytes, detail)
            else:
                raw_ok += 1
    check(f"{name}: {raw_ok} more cut/encoding runs gave the same detections and only their bytes back",
          raw_ok > 0)
    print(f"     {name}: i8 (not compared) kept {i8_counts} objects against {len(ref['detections'])} all-local")


def check_return_bytes(port, name, K):
    """The planner counts the way back as the detections' size: predicted
    from max_detections (header allowance + max_detections objects) until
    the answers that came are learnt (a few hundred bytes), never the raw
    output. The learning runs on the worker after each answer has gone, so
    a status read right after the last answer may still see the prediction:
    both are accepted (<= the prediction's bound), the raw size is not."""
    st, b, _ = http(f"http://127.0.0.1:{port}/v1/status?explain=1")
    cands = json.loads(b)["models"][0]["planner"]["candidates"]
    back = {c.get("return_bytes") for c in cands if c["encoding"] != "local"}
    ok = st == 200 and back and all(x is not None and 0 < x <= 1024 + MAX_DET * det_bytes(1, K) for x in back)
    check(f"{name}: the planner's candidates count {sorted(back)[:3]} bytes back (the detections)", ok,
          str(cands[:1]))


def check_bands(port, png, ref, name, n_nodes, side, thr):
    done = 0
    for k in sorted(set([0, 1, 2, 4, 8, n_nodes // 8])):
        for enc in ("f32", "f16"):
            st, r = infer(port, png, f"cut={k}&encoding={enc}&bands=4")
            if st == 400:
                continue	# this cut does not stream
            if st != 200 or r["placement"]["fallback"] or r["placement"]["bands"] != 4:
                check(f"{name} banded cut {k} {enc}", False, f"{st} {r.get('placement', r)}")
                continue
            if enc == "f32":	# other summation orders: a tie may break otherwise
                ok, detail = same_objects(r["detections"], ref["detections"], side, thr, 1e-4)
            else:
                ok, detail = same_objects(r["detections"], ref["detections"], side, thr, 0.02)
            check(f"{name} banded cut {k} {enc}: same detections", ok, detail)
            done += 1
    check(f"{name}: some banded cuts ran", done > 0)


def check_peer_refusals(peer_port, png, name, K):
    st, b, _ = http(f"http://127.0.0.1:{peer_port}/v2/models/m")
    sha = json.loads(b)["parameters"]["splitd_model_sha256"]

    def send(params):
        header = {"parameters": dict({"splitd_cut": 0, "splitd_model_sha256": sha, "binary_data_output": True},
                                     **params),
                  "inputs": [{"name": "input", "shape": [1], "datatype": "BYTES",
                              "parameters": {"binary_data_size": 4 + len(png)}}]}
        h = json.dumps(header).encode()
        body = h + struct.pack("<I", len(png)) + png
        req = __import__("urllib.request").request.Request(
            f"http://127.0.0.1:{peer_port}/v2/models/m/infer", data=body)
        req.add_header("Content-Type", "application/octet-stream")
        req.add_header("Inference-Header-Content-Length", str(len(h)))
        try:
            with __import__("urllib.request").request.urlopen(req, timeout=60) as r:
                return r.status, r.read()
        except __import__("urllib.error").error.HTTPError as e:
            return e.code, e.read()

    head = MODELS[name][0]
    good = {"splitd_postprocess": head, "splitd_score_threshold": 0.3, "splitd_iou_threshold": 0.5,
            "splitd_max_detections": 20, "splitd_keypoints": K}
    bad = [("unknown head", dict(good, splitd_postprocess="yolov9")),
           ("classify", dict(good, splitd_postprocess="classify")),
           ("threshold a string", dict(good, splitd_score_threshold="high")),
           ("threshold 1.5", dict(good, splitd_score_threshold=1.5)),
           ("iou -1", dict(good, splitd_iou_threshold=-1)),
           ("max_detections 0", dict(good, splitd_max_detections=0)),
           ("max_detections huge", dict(good, splitd_max_detections=1 << 40)),
           ("keypoints that do not fit", dict(good, splitd_keypoints=K + 40)),
           ("keypoints negative", dict(good, splitd_keypoints=-3)),
           ("missing iou", {k: v for k, v in good.items() if k != "splitd_iou_threshold"}),
           ("name too long", dict(good, splitd_postprocess="y" * 300))]
    for what, params in bad:
        st, b = send(params)
        check(f"{name} peer: {what} -> 400", st == 400, f"{st} {b[:200]}")
        if what == "keypoints that do not fit":
            check(f"{name} peer: the 400 names the output's shape", b"[1," in b, b[:300])
    st, b = send(good)
    check(f"{name} peer: still serves a good request with detections", st == 200 and b"splitd_boxes" in b,
          f"{st} {b[:200]}")


def check_v2(port, model_dir, name, K, n_nodes, raw):
    x = np.load(os.path.join(model_dir, "input_0.npy")).astype(np.float32)
    buf = io.BytesIO()
    np.save(buf, x)
    st, v1 = infer(port, buf.getvalue(), f"cut={n_nodes}", ctype="application/x-npy")
    st1, loc = infer(port, buf.getvalue(), "cut=0&encoding=f32", ctype="application/x-npy")
    body = json.dumps({"inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32",
                                   "data": x.ravel().tolist()}]}).encode()
    st2, b, _ = http(f"http://127.0.0.1:{port}/v2/models/m/infer", data=body, ctype="application/json",
                     timeout=120)
    ok = st == 200 and st1 == 200 and st2 == 200 and v1["detections"] == loc["detections"]
    if not ok:
        check(f"{name} v2 answers", False, f"{st} {st1} {st2} {b[:300]}")
        return
    outs = {o["name"]: o for o in json.loads(b)["outputs"]}
    want = ["boxes", "scores", "classes"] + (["keypoints"] if K else [])
    check(f"{name} v2: outputs {want}", sorted(outs) == sorted(want), str(sorted(outs)))
    dets = loc["detections"]
    n = len(dets)
    boxes = np.array(outs["boxes"]["data"], dtype=np.float32).reshape(-1, 4) if n else np.zeros((0, 4))
    ok = (outs["boxes"]["shape"] == [n, 4] and outs["classes"]["datatype"] == "INT32" and
          outs["classes"]["data"] == [d["class_id"] for d in dets] and
          np.array_equal(boxes, np.array([d["box"] for d in dets], dtype=np.float32).reshape(-1, 4)) and
          (not K or outs["keypoints"]["shape"] == [n, K, 3]))
    check(f"{name} v2: {n} detections, the same as v1 split at cut 0 (model-input pixels)", ok,
          f"{outs['boxes']['shape']} {dets[:1]}")
    # A Triton client reads the metadata first: it lists what an infer
    # answers (N detections: first dimension -1), then the raw output a
    # request may still name, with its shape from the model.
    st, b, _ = http(f"http://127.0.0.1:{port}/v2/models/m")
    meta = json.loads(b)["outputs"] if st == 200 else []
    want_meta = [["boxes", "FP32", [-1, 4]], ["scores", "FP32", [-1]], ["classes", "INT32", [-1]]]
    if K:
        want_meta.append(["keypoints", "FP32", [-1, K, 3]])
    got_meta = [[o["name"], o["datatype"], o["shape"]] for o in meta]
    check(f"{name} v2 metadata: outputs {[w[0] for w in want_meta]} then the raw output",
          got_meta[:len(want_meta)] == want_meta and len(got_meta) == len(want_meta) + 1
          and got_meta[-1] == [raw["name"], raw["datatype"], raw["shape"]], (got_meta, raw.get("name")))


def check_raw_encoded(splitd, tmp, model, name, png):
    """A model without post-processing whose raw output comes back as f16."""
    pport, rport = free_port(), free_port()
    peer = Daemon(splitd, peer_conf(model, pport), pport, "peer_raw_" + name, tmp)
    robot = Daemon(splitd, robot_base(model, rport, pport, "output_encoding = f16\n"), rport, "robot_raw_" + name, tmp)
    try:
        if not (wait_ready(pport, peer.proc) and wait_ready(rport, robot.proc)):
            check(f"{name} raw f16: daemons ready", False)
            return
        st0, ref = infer(rport, png, f"cut={ref_cut(rport)}")
        st1, r = infer(rport, png, "cut=1&encoding=f32")
        ok = st0 == 200 and st1 == 200 and not r["placement"]["fallback"]
        if not ok:
            check(f"{name} raw f16", False, f"{st0} {st1} {str(r)[:300]}")
            return
        a = np.array(ref["outputs"][0]["data"], dtype=np.float32)
        b = np.array(r["outputs"][0]["data"], dtype=np.float32)
        # f16 rounds each value to 11 significant bits: |err| <= 2^-11 |x|
        # (plus the f16 subnormal step 2^-24 near zero)
        err = np.abs(a - b)
        bound = np.abs(a) * 2.0 ** -11 + 2.0 ** -24
        nb = r["placement"].get("bytes_back", 0)
        check(f"{name} raw output back as f16: {nb} bytes for {a.size * 4} raw, max err/bound "
              f"{(err / bound).max():.3f}", (err <= bound).all() and nb < a.size * 2 + 2048,
              f"{nb}")
    finally:
        robot.kill()
        peer.kill()


def ref_cut(port):
    st, b, _ = http(f"http://127.0.0.1:{port}/v1/status")
    s = json.loads(b)
    for m in s.get("models", []):
        return m.get("nodes", m.get("n_nodes"))
    return None


def check_bad_config(splitd, tmp, model, name):
    labels = os.path.join(tmp, "91.labels")
    with open(labels, "w") as f:
        f.write("".join(f"c{i}\n" for i in range(91)))
    cases = [("yolov5 with 27 keypoints", "postprocess = yolov5\nkeypoints = 27\n", ["[1,6300,85]", "K = 27"]),
             ("yolov5 with 91 labels", f"postprocess = yolov5\nlabels = {labels}\n",
              ["[1,6300,85]", "80 classes", "91"])]
    for i, (what, keys, needles) in enumerate(cases):
        port = free_port()
        conf = f"[daemon]\nthreads = 1\n[api]\nlisten = 127.0.0.1:{port}\n[model.m]\npath = {model}\n{keys}"
        d = Daemon(splitd, conf, port, f"bad{i}_{name}", tmp)
        try:
            rc = d.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            d.kill()
            rc = None
        d.log.close()
        log = open(d.log.name).read()
        check(f"{name}: {what} refused at load, shapes in the message",
              rc not in (None, 0) and all(n in log for n in needles), log[-400:])


def run_model(splitd, models_dir, name, tmp, quick, png):
    head, K, C, side = MODELS[name]
    model = os.path.join(models_dir, name, "model.onnx")
    labels = os.path.join(tmp, name + ".labels")
    with open(labels, "w") as f:
        f.write("".join(f"class{i}\n" for i in range(C)))
    pport, rport = free_port(), free_port()
    peer = Daemon(splitd, peer_conf(model, pport), pport, "peer_" + name, tmp)
    robot = Daemon(splitd, robot_conf(model, rport, pport, head, K, labels), rport, "robot_" + name, tmp)
    try:
        if not (wait_ready(pport, peer.proc) and wait_ready(rport, robot.proc)):
            check(f"{name}: daemons ready", False)
            return
        n_nodes = ref_cut(rport)
        st, ref = infer(rport, png, f"cut={n_nodes}")
        check(f"{name}: all-local answer has detections, labels, timing.postprocess",
              st == 200 and "detections" in ref and ref["outputs"] == [] and
              "postprocess" in ref["timing_ms"] and
              all(d["label"] == f"class{d['class_id']}" for d in ref["detections"]), str(ref)[:400])
        if st != 200:
            return
        n = len(ref["detections"])
        print(f"     {name}: {n} detections all-local, decode+NMS {ref['timing_ms']['postprocess']} ms")
        check(f"{name}: some objects to compare", n > 0)
        check(f"{name}: boxes in the original 300x200 image",
              all(0 <= d["box"][0] <= d["box"][2] <= 300 and 0 <= d["box"][1] <= d["box"][3] <= 200
                  for d in ref["detections"]))
        if K:
            check(f"{name}: {K} keypoints each", all(len(d["keypoints"]) == K for d in ref["detections"]))
        st, r = infer(rport, png, "cut=0&encoding=input")
        check(f"{name}: image forwarded at cut 0 (the peer decodes, the robot maps): identical",
              st == 200 and not r["placement"]["fallback"] and r["detections"] == ref["detections"],
              str(r)[:300])
        if st == 200:
            print(f"     {name}: peer decode+NMS {r['timing_ms']['postprocess']} ms, "
                  f"{r['placement'].get('bytes_back')} bytes back for {n} objects")
        thr = score_threshold(head)
        check_return_bytes(rport, name, K)
        check_jpeg(rport, name, n_nodes)
        check_cuts(rport, png, ref, name, n_nodes, K, side, thr, quick)
        check_bands(rport, png, ref, name, n_nodes, side, thr)
        st, r = infer(rport, png, f"cut={n_nodes // 2}&encoding=f32&outputs=raw")
        check(f"{name}: ?outputs=raw at a split: tensors and the same detections",
              st == 200 and len(r["outputs"]) >= 1 and "data" in r["outputs"][0] and
              r["detections"] == ref["detections"] and r["placement"]["bytes_back"] > 100000, str(r)[:300])
        raw = r["outputs"][0] if st == 200 and r["outputs"] else {}
        check_v2(rport, os.path.join(models_dir, name), name, K, n_nodes, raw)
        st, b, _ = http(f"http://127.0.0.1:{rport}/metrics")
        check(f"{name}: /metrics has the detections histogram",
              b'splitd_detections_per_request_bucket{model="m"' in b, b[:200])
        check_peer_refusals(pport, png, name, K)
    finally:
        robot.kill()
        peer.kill()


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    quick = "--quick" in sys.argv
    if len(args) != 2:
        sys.exit(__doc__)
    splitd, models_dir = args
    png = image_png()
    with tempfile.TemporaryDirectory() as tmp:
        for name in MODELS:
            run_model(splitd, models_dir, name, tmp, quick, png)
        check_bad_config(splitd, tmp, os.path.join(models_dir, "yolo_320", "model.onnx"), "yolo_320")
        check_raw_encoded(splitd, tmp, os.path.join(models_dir, "yolov8_pose_160", "model.onnx"),
                          "yolov8_pose_160", png)
    print(f"{split_e2e.PASS} passed, {split_e2e.FAIL} failed")
    sys.exit(1 if split_e2e.FAIL else 0)


if __name__ == "__main__":
    main()
