#!/usr/bin/python3
"""`splitd export-tail`: the tail after a cut (and the head before it) as
standalone ONNX models that onnx's checker accepts, and that together give
torch's output for the reference input.

Usage: export_tail.py SPLITD MODEL_DIR   (a tools/export_models.py folder)
Prints 'N passed, N failed'; exits non-zero on a failure.
"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

for _a, _b in (("float", float), ("int", int), ("bool", bool), ("object", object),
               ("str", str), ("complex", complex)):
    if not hasattr(np, _a):
        setattr(np, _a, _b)
import onnx  # noqa: E402

PASS = FAIL = 0


def check(name, ok, detail=""):
    global PASS, FAIL
    PASS += bool(ok)
    FAIL += not ok
    print(("ok   " if ok else "FAIL ") + name + ("" if ok else f" {detail}"))


def main():
    splitd, mdir = sys.argv[1], sys.argv[2]
    model = os.path.join(mdir, "model.onnx")
    x = os.path.join(mdir, "input_0.npy")
    ref = np.load(os.path.join(mdir, "output_0.npy"))
    tmp = tempfile.mkdtemp(prefix="splitd-export-")
    plan = subprocess.run([splitd, "plan", "-m", model, "--json", "--runs", "1"],
                          capture_output=True, text=True)
    if plan.returncode != 0:
        check("splitd plan lists the cuts", False, plan.stderr[-300:])
        return
    cuts = json.loads(plan.stdout)["cuts"]
    n = len(cuts) - 1
    picks = sorted(set([1, n // 4, n // 2, (3 * n) // 4, n - 1]) - {0})
    for k in picks:
        tail, head = os.path.join(tmp, f"tail{k}.onnx"), os.path.join(tmp, f"head{k}.onnx")
        r = subprocess.run([splitd, "export-tail", "-m", model, "--cut", str(k), "-o", tail,
                            "--head", head], capture_output=True, text=True)
        if r.returncode != 0:
            check(f"cut {k}: export", False, r.stderr[-300:])
            continue
        info = json.loads(r.stdout)
        try:
            onnx.checker.check_model(onnx.load(tail))
            onnx.checker.check_model(onnx.load(head))
            check(f"cut {k}: head and tail pass onnx.checker", True)
        except Exception as e:  # the checker's own exceptions
            check(f"cut {k}: head and tail pass onnx.checker", False, e)
            continue
        if len(info["tail_inputs"]) != 1:
            continue  # splitd run takes one input file
        cutf, outf = os.path.join(tmp, f"cut{k}.npy"), os.path.join(tmp, f"out{k}.npy")
        r1 = subprocess.run([splitd, "run", "-m", head, "-i", x, "-o", cutf], capture_output=True, text=True)
        r2 = subprocess.run([splitd, "run", "-m", tail, "-i", cutf, "-o", outf], capture_output=True, text=True)
        if r1.returncode or r2.returncode:
            check(f"cut {k}: head then tail run", False, (r1.stderr[-200:], r2.stderr[-200:]))
            continue
        y = np.load(outf)
        err = float(np.abs(y - ref).max())
        bound = 1e-4 * float(np.abs(ref).max())
        check(f"cut {k}: head then tail equals torch (max err {err:.2e} <= {bound:.2e})",
              y.shape == ref.shape and err <= bound, (y.shape, ref.shape))


if __name__ == "__main__":
    try:
        main()
    except Exception:
        import traceback
        traceback.print_exc()
        FAIL += 1
    print(f"{PASS} passed, {FAIL} failed")
    sys.exit(1 if FAIL or not PASS else 0)
