#!/usr/bin/python3
"""`splitd export-tail`: the tail after a cut (and the head before it) as
standalone ONNX models that onnx's checker accepts, and that together give
torch's output for the reference input.

Usage: export_tail.py SPLITD ERRBOUND_TOOL MODEL_DIR   (a tools/export_models.py folder)
       export_tail.py SPLITD ERRBOUND_TOOL --ops OPSET...  (a small model of the ops
           whose ONNX form changes with the opset, cut at every node)
The tolerance of each comparison is tests/errbound.h's rounding model for the
model and its input: two float32 evaluations (splitd's, and torch's or
onnxruntime's, neither of which folds BatchNormalization the engine's way:
the 8 u per term of test_models.c), from ERRBOUND_TOOL.
Prints 'N passed, N failed'; exits non-zero on a failure.

Cuts crossed by one tensor are run with `splitd run` (head, then tail).
Where node and onnxruntime-node are installed (SPLITD_ORT_NODE, default
/opt/ort/node_modules/onnxruntime-node), every cut, those crossed by several
tensors included, is also run head then tail in onnxruntime, an independent
runtime, against torch's output.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import onnx_compat  # noqa: E402,F401  (numpy aliases onnx 1.12 needs)
import onnx  # noqa: E402

PASS = FAIL = 0
ORT_NODE = os.environ.get("SPLITD_ORT_NODE", "/opt/ort/node_modules/onnxruntime-node")

# A chain of models in onnxruntime (head then tail, or one model): each
# takes the tensors it names from the model input and earlier outputs; the
# last model's first output is written as raw float32, its dims printed.
ORT_JS = r"""
const ort = require(process.argv[2]);
const fs = require('fs');
const [models, xbin, dims, out] = process.argv.slice(3);
(async () => {
  const so = { graphOptimizationLevel: 'disabled', intraOpNumThreads: 1 };
  const buf = fs.readFileSync(xbin);
  const x = new Float32Array(buf.buffer, buf.byteOffset, buf.length / 4);
  let pool = null, y = null;
  for (const m of models.split(',')) {
    const s = await ort.InferenceSession.create(m, so);
    if (!pool) pool = { [s.inputNames[0]]: new ort.Tensor('float32', x, JSON.parse(dims)) };
    const feed = {};
    for (const n of s.inputNames) {
      if (!(n in pool)) throw new Error(m + ': input ' + n + ' was not computed before');
      feed[n] = pool[n];
    }
    const r = await s.run(feed);
    Object.assign(pool, r);
    y = r[s.outputNames[0]];
  }
  fs.writeFileSync(out, Buffer.from(y.data.buffer, y.data.byteOffset, y.data.byteLength));
  console.log(JSON.stringify(y.dims));
})().catch(e => { console.error(e.message); process.exit(1); });
"""


def check(name, ok, detail=""):
    global PASS, FAIL
    PASS += bool(ok)
    FAIL += not ok
    print(("ok   " if ok else "FAIL ") + name + ("" if ok else f" {detail}"))


def ort_chain(tmp, models, x, tag):
    """Runs the chain of models in onnxruntime; (output, '') or (None, why)."""
    xbin, outf = os.path.join(tmp, f"x{tag}.bin"), os.path.join(tmp, f"ort{tag}.bin")
    x.astype(np.float32).tofile(xbin)
    js = os.path.join(tmp, "ort_run.js")
    with open(js, "w") as f:
        f.write(ORT_JS)
    r = subprocess.run(["node", js, ORT_NODE, ",".join(models), xbin, json.dumps(list(x.shape)),
                        outf], capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        return None, r.stderr[-300:]
    return np.fromfile(outf, dtype=np.float32).reshape(json.loads(r.stdout)), ""


ERRBOUND = None
WEIGHT_REL = 8 * 2.0 ** -24   # test_models.c: TORCH_WEIGHT_REL


def tolerance(mdir, tmp):
    raw = os.path.join(tmp, "x-errbound.f32")
    np.load(os.path.join(mdir, "input_0.npy")).astype("<f4").tofile(raw)
    r = subprocess.run([ERRBOUND, os.path.join(mdir, "model.onnx"), raw, "--weight-rel", repr(WEIGHT_REL),
                        "--f32-only"], capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        raise RuntimeError(f"errbound_tool: {r.stderr[-300:]}")
    return json.loads(r.stdout)["f32"]


def close(name, y, ref, bound):
    err = float(np.abs(y - ref).max()) if y.shape == ref.shape else float("inf")
    check(f"{name} (max err {err:.2e} <= {bound:.2e})", err <= bound, (y.shape, ref.shape))
    print(f"MARGIN export_tail/{name.split(':')[0].replace(' ', '')} "
          f"{err / bound if bound > 0 else (0.0 if err == 0 else float('inf')):.3g}")


def use_ort():
    return os.path.isdir(ORT_NODE) and shutil.which("node") is not None


def export_cuts(splitd, mdir, tmp, every=False, what="torch"):
    """Exports head and tail at some cuts (every cut if `every`) and checks
    them against mdir's output_0.npy."""
    model = os.path.join(mdir, "model.onnx")
    x = os.path.join(mdir, "input_0.npy")
    ref = np.load(os.path.join(mdir, "output_0.npy"))
    tol = tolerance(mdir, tmp)
    plan = subprocess.run([splitd, "plan", "-m", model, "--json", "--runs", "1"],
                          capture_output=True, text=True)
    if plan.returncode != 0:
        check("splitd plan lists the cuts", False, plan.stderr[-300:])
        return
    cuts = json.loads(plan.stdout)["cuts"]
    n = len(cuts) - 1
    picks = sorted(set([1, n // 4, n // 2, (3 * n) // 4, n - 1]) - {0})
    if every:
        picks = range(1, n)
    for k in picks:
        tail, head = os.path.join(tmp, f"tail{k}.onnx"), os.path.join(tmp, f"head{k}.onnx")
        r = subprocess.run([splitd, "export-tail", "-m", model, "--cut", str(k), "-o", tail,
                            "--head", head], capture_output=True, text=True)
        if r.returncode != 0:
            check(f"cut {k}: export", False, r.stderr[-300:])
            continue
        info = json.loads(r.stdout)
        try:
            for f in (head, tail):  # full_check: strict shape inference too
                onnx.checker.check_model(onnx.load(f), full_check=True)
            check(f"cut {k}: head and tail pass onnx.checker", True)
        except Exception as e:  # the checker's own exceptions
            check(f"cut {k}: head and tail pass onnx.checker", False, e)
            continue
        want = [t["name"] for t in info["tail_inputs"]]
        hm, tm = onnx.load(head), onnx.load(tail)
        got = ([i.name for i in tm.graph.input], [o.name for o in hm.graph.output])
        check(f"cut {k}: tail inputs and head outputs are the {len(want)} tensors of the cut",
              got == (want, want), (got, want))
        if use_ort():
            y, why = ort_chain(tmp, [head, tail], np.load(x), k)
            if y is None:
                check(f"cut {k}: head then tail run in onnxruntime", False, why)
            else:
                close(f"cut {k}: onnxruntime head then tail equals {what}", y, ref, tol)
        if len(info["tail_inputs"]) != 1:
            continue  # splitd run takes one input file
        cutf, outf = os.path.join(tmp, f"cut{k}.npy"), os.path.join(tmp, f"out{k}.npy")
        r1 = subprocess.run([splitd, "run", "-m", head, "-i", x, "-o", cutf], capture_output=True, text=True)
        r2 = subprocess.run([splitd, "run", "-m", tail, "-i", cutf, "-o", outf], capture_output=True, text=True)
        if r1.returncode or r2.returncode:
            check(f"cut {k}: head then tail run", False, (r1.stderr[-200:], r2.stderr[-200:]))
            continue
        close(f"cut {k}: head then tail equals {what}", np.load(outf), ref, tol)


def ops_model(opset):
    """A small chain of the ops whose ONNX form depends on the opset
    (attributes that became inputs), and of the fusions the engine makes:
    Conv+BatchNormalization+Clip, Conv+Add+LeakyRelu, Sigmoid*Mul = SiLU."""
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(7)
    inits, nodes = [], []

    def const(name, a):
        inits.append(numpy_helper.from_array(np.asarray(a), name))
        return name

    def f32(*shape):
        return rng.standard_normal(shape).astype(np.float32) * 0.5

    def node(op, ins, out, **attrs):
        nodes.append(helper.make_node(op, ins, [out] if isinstance(out, str) else out, **attrs))
        return out

    i64 = lambda v: np.array(v, dtype=np.int64)
    y = node("Conv", ["x", const("w1", f32(4, 3, 3, 3)), const("b1", f32(4))], "c1", pads=[1, 1, 1, 1])
    y = node("BatchNormalization", [y, const("bn_s", f32(4) + 1), const("bn_b", f32(4)),
                                    const("bn_m", f32(4)), const("bn_v", np.abs(f32(4)) + 0.5)], "bn")
    if opset < 11:
        y = node("Clip", [y], "clip", min=0.0, max=6.0)
    else:
        y = node("Clip", [y, const("lo", np.float32(0)), const("hi", np.float32(6))], "clip")
    if opset < 11:
        y = node("Pad", [y], "pad", pads=[0, 0, 1, 1, 0, 0, 1, 1], value=0.5)
    else:
        y = node("Pad", [y, const("pads", i64([0, 0, 1, 1, 0, 0, 1, 1])),
                         const("pad_v", np.float32(0.5))], "pad")
    y = node("MaxPool", [y], "pool", kernel_shape=[2, 2], strides=[2, 2])          # 5x5
    if opset < 10:
        y = node("Slice", [y], "slice", starts=[1], ends=[5], axes=[3])             # 5x4
    else:
        y = node("Slice", [y, const("st", i64([1])), const("en", i64([5])), const("ax", i64([3]))],
                 "slice")
    sc = np.array([1, 1, 2, 2], dtype=np.float32)
    if opset < 9:
        y = node("Upsample", [y], "up", mode="nearest", scales=list(sc))             # 10x8
    elif opset < 10:
        y = node("Upsample", [y, const("sc", sc)], "up", mode="nearest")
    elif opset < 11:
        y = node("Resize", [y, const("sc", sc)], "up", mode="nearest")
    else:
        roi = const("roi", np.zeros(0, dtype=np.float32)) if opset < 13 else ""
        y = node("Resize", [y, roi, const("sc", sc)], "up", mode="nearest",
                 coordinate_transformation_mode="asymmetric", nearest_mode="floor")
    up = y
    y = node("Conv", [up, const("w2", f32(4, 4, 1, 1))], "c2")
    y = node("Add", [y, up], "res")
    y = node("LeakyRelu", [y], "lrelu", alpha=0.1)
    y = node("Transpose", [y], "tr", perm=[0, 2, 3, 1])                               # 1,10,8,4
    y = node("ReduceMean", [y], "mean", axes=[3], keepdims=0)                          # 1,10,8
    y = node("Softmax", [y], "soft", axis=2)
    if opset < 13:
        y = node("Unsqueeze", [y], "unsq", axes=[1])                                   # 1,1,10,8
    else:
        y = node("Unsqueeze", [y, const("unsq_ax", i64([1]))], "unsq")
    y = node("Flatten", [y], "flat", axis=1)                                           # 1,80
    if opset < 13:
        node("Split", [y], ["sa", "sb"], axis=1, split=[30, 50])
    else:
        node("Split", [y, const("split", i64([30, 50]))], ["sa", "sb"], axis=1)
    node("Sigmoid", ["sa"], "sig")
    a = node("Mul", ["sa", "sig"], "silu")
    b = node("HardSigmoid", ["sb"], "hsig", alpha=0.2, beta=0.5)
    if opset >= 14:
        b = node("HardSwish", [b], "hswish")
    y = node("Concat", [a, b], "cat", axis=1)
    y = node("Reshape", [y, const("shape", i64([0, 1, 80]))], "rs")
    if opset < 13:
        y = node("Squeeze", [y], "sq", axes=[1])
    else:
        y = node("Squeeze", [y, const("sq_ax", i64([1]))], "sq")
    node("Gemm", [y, const("wg", f32(10, 80)), const("bg", f32(10))], "y", transB=1)
    g = helper.make_graph(nodes, "ops", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], producer_name="test")
    m.ir_version = 7
    return m


def main():
    global ERRBOUND
    splitd, ERRBOUND = sys.argv[1], sys.argv[2]
    del sys.argv[2]
    tmp = tempfile.mkdtemp(prefix="splitd-export-")
    if not use_ort():
        print(f"note: no node or {ORT_NODE}: onnxruntime runs skipped")
    if sys.argv[2] != "--ops":
        export_cuts(splitd, sys.argv[2], tmp)
        return
    for opset in [int(a) for a in sys.argv[3:]]:
        mdir = os.path.join(tmp, f"ops{opset}")
        os.makedirs(mdir)
        model = os.path.join(mdir, "model.onnx")
        onnx.save(ops_model(opset), model)
        onnx.checker.check_model(onnx.load(model), full_check=True)
        x = np.random.default_rng(opset).standard_normal((1, 3, 8, 8)).astype(np.float32)
        np.save(os.path.join(mdir, "input_0.npy"), x)
        what = "onnxruntime on the whole model"
        if use_ort():
            ref, why = ort_chain(tmp, [model], x, f"ops{opset}")
            if ref is None:
                check(f"opset {opset}: the op model runs in onnxruntime", False, why)
                continue
        else:  # the exporter is still checked: splitd on the parts vs the whole
            what = "splitd on the whole model"
            r = subprocess.run([splitd, "run", "-m", model, "-i", os.path.join(mdir, "input_0.npy"),
                                "-o", os.path.join(mdir, "whole.npy")], capture_output=True, text=True)
            if r.returncode:
                check(f"opset {opset}: splitd runs the op model", False, r.stderr[-300:])
                continue
            ref = np.load(os.path.join(mdir, "whole.npy"))
        np.save(os.path.join(mdir, "output_0.npy"), ref)
        print(f"-- opset {opset}")
        export_cuts(splitd, mdir, tmp, every=True, what=what)


if __name__ == "__main__":
    try:
        main()
    except Exception:
        import traceback
        traceback.print_exc()
        FAIL += 1
    print(f"{PASS} passed, {FAIL} failed")
    sys.exit(1 if FAIL or not PASS else 0)
