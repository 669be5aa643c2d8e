#!/usr/bin/python3
"""Generate ONNX's official backend node tests and convert them for the C runner.

Usage: /usr/bin/python3 gen_node_tests.py --out DIR --supported supported_ops.txt

1. Runs onnx.backend.test.cmd_tools generate-data (Debian's python3-onnx 1.12)
   into DIR/raw, after restoring the numpy aliases (np.float, ...) that numpy
   1.24 removed and onnx 1.12 still uses.
2. For every node case whose op is in supported_ops.txt (an *_expanded case
   belongs to the op of its base case), writes DIR/cases/<case>/:
     model.onnx   the case's model (see "baking" below)
     case.json    {"case", "op", "opset", "ops", "baked", "rtol", "atol",
                   "error", "sets": [{"inputs": [T...], "outputs": [T...]}]}
                  T = {"name", "dtype" (TensorProto.DataType), "shape", "file"}
     *.bin        raw little-endian tensor data (bool as one byte)
   and DIR/index.json listing the cases.

Baking: the engine has static shapes and packs weights at load (issue 3), as
the models it targets are exported. So inputs that exporters always emit as
initializers (weights, and the shape/axes/pads/scales/starts parameters that
decide output shapes) are moved from graph inputs into initializers with the
test's own values; case.json lists them under "baked". Every other input stays
a runtime input.

Tolerances are the backend test runner's: rtol 1e-3, atol 1e-7 per case.
"""
import argparse
import hashlib
import json
import os
import shutil
import sys
import warnings

import numpy as np

# onnx 1.12 still uses aliases numpy 1.24 removed; put them back before import.
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    for _alias, _type in (("float", float), ("int", int), ("bool", bool),
                          ("object", object), ("str", str), ("complex", complex)):
        setattr(np, _alias, _type)

import onnx  # noqa: E402
from onnx import numpy_helper  # noqa: E402

# op -> input indices moved into initializers (see "Baking" above)
BAKE = {
    "Conv": (1, 2),
    "ConvTranspose": (1, 2),
    "BatchNormalization": (1, 2, 3, 4),
    "Gemm": (1, 2),
    "Reshape": (1,),
    "Slice": (1, 2, 3, 4),
    "Squeeze": (1,),
    "Unsqueeze": (1,),
    "Split": (1,),
    "Pad": (1, 2, 3),
    "Resize": (1, 2, 3),
    "Upsample": (1,),
    "Clip": (1, 2),
    "Range": (0, 1, 2),
    "ReduceSum": (1,),
    "Tile": (1,),
    "CumSum": (1,),
    "TopK": (1,),
}

# TensorProto data types tensor.h knows (and the runner can read)
READABLE = {1: "<f4", 2: "u1", 3: "i1", 6: "<i4", 7: "<i8", 9: "u1", 10: "<f2", 11: "<f8"}

SCHEMA_VERSION = "3"


def read_ops(path):
    ops = []
    with open(path) as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if line:
                ops.append(line)
    return ops


def generate_raw(raw_dir):
    import argparse as ap
    from onnx.backend.test import cmd_tools
    if os.path.exists(raw_dir):
        shutil.rmtree(raw_dir)
    cmd_tools.generate_data(ap.Namespace(output=raw_dir, op_type=None))


def load_tensor(path):
    t = onnx.TensorProto()
    with open(path, "rb") as f:
        t.ParseFromString(f.read())
    return t


def case_op(model):
    nodes = model.graph.node
    return nodes[0].op_type if len(nodes) == 1 else None


def opset_of(model):
    for o in model.opset_import:
        if o.domain in ("", "ai.onnx"):
            return o.version
    return 0


def write_tensor(dst_dir, fname, name, t):
    """Write one TensorProto as raw LE bytes; return (entry, error or None)."""
    entry = {"name": name, "dtype": int(t.data_type), "shape": [int(d) for d in t.dims],
             "file": None}
    if t.data_type not in READABLE:
        return entry, "dtype %s is not one tensor.h carries" % (
            onnx.TensorProto.DataType.Name(t.data_type))
    arr = numpy_helper.to_array(t)
    arr = np.ascontiguousarray(arr).astype(READABLE[t.data_type], copy=False)
    with open(os.path.join(dst_dir, fname), "wb") as f:
        f.write(arr.tobytes())
    entry["file"] = fname
    return entry, None


def convert_case(src, dst, op, expanded):
    model = onnx.load(os.path.join(src, "model.onnx"))
    g = model.graph
    ops = sorted({n.op_type for n in g.node})
    error = None
    in_names = [vi.name for vi in g.input]
    out_names = [vi.name for vi in g.output]

    set_dirs = sorted(d for d in os.listdir(src) if d.startswith("test_data_set_"))
    sets_raw = []
    for sd in set_dirs:
        ins, outs = [], []
        for j in range(len(in_names)):
            p = os.path.join(src, sd, "input_%d.pb" % j)
            ins.append(p if os.path.exists(p) else None)
        for j in range(len(out_names)):
            p = os.path.join(src, sd, "output_%d.pb" % j)
            outs.append(p if os.path.exists(p) else None)
        sets_raw.append((ins, outs))

    non_tensor = [vi.name for vi in list(g.input) + list(g.output)
                  if not vi.type.HasField("tensor_type")]
    if non_tensor:
        error = "non-tensor value (sequence/optional/map): %s" % ", ".join(non_tensor)

    # bake weights and shape parameters into initializers (single-node cases only;
    # an expanded case feeds the same graph inputs to its function body)
    baked = []
    node0 = g.node[0] if len(g.node) else None
    bake_idx = BAKE.get(op, ())
    if not error and node0 is not None and not expanded:
        for i in bake_idx:
            if i >= len(node0.input) or not node0.input[i]:
                continue
            name = node0.input[i]
            if name not in in_names:
                continue
            j = in_names.index(name)
            values = [load_tensor(s[0][j]) for s in sets_raw]
            if any(v.SerializeToString() != values[0].SerializeToString() for v in values):
                continue  # differs between data sets: keep it a runtime input
            init = onnx.TensorProto()
            init.CopyFrom(values[0])
            init.name = name
            g.initializer.append(init)
            baked.append(name)
        if baked:
            keep = [vi for vi in g.input if vi.name not in baked]
            del g.input[:]
            g.input.extend(keep)

    os.makedirs(dst)
    onnx.save(model, os.path.join(dst, "model.onnx"))

    sets = []
    for k, (ins, outs) in enumerate(sets_raw):
        s = {"inputs": [], "outputs": []}
        if not error:
            for j, name in enumerate(in_names):
                if name in baked:
                    continue
                if ins[j] is None:
                    error = "missing input file %d" % j
                    break
                t = load_tensor(ins[j])
                e, err = write_tensor(dst, "set%d_in%d.bin" % (k, j), name, t)
                s["inputs"].append(e)
                error = error or err
        if not error:
            for j, name in enumerate(out_names):
                if outs[j] is None:
                    error = "missing output file %d" % j
                    break
                t = load_tensor(outs[j])
                e, err = write_tensor(dst, "set%d_out%d.bin" % (k, j), name, t)
                s["outputs"].append(e)
                error = error or err
        sets.append(s)

    case = {
        "case": os.path.basename(src), "op": op, "opset": opset_of(model), "ops": ops,
        "baked": baked, "rtol": 1e-3, "atol": 1e-7, "error": error, "sets": sets,
    }
    with open(os.path.join(dst, "case.json"), "w") as f:
        json.dump(case, f, indent=1)
    return case


def stamp_of(supported):
    h = hashlib.sha256()
    with open(os.path.abspath(__file__), "rb") as f:
        h.update(f.read())
    h.update(("\n".join(supported) + SCHEMA_VERSION + onnx.__version__).encode())
    return h.hexdigest()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--supported", required=True)
    ap.add_argument("--force", action="store_true")
    args = ap.parse_args()

    supported = read_ops(args.supported)
    stamp = stamp_of(supported)
    index_path = os.path.join(args.out, "index.json")
    if not args.force and os.path.exists(index_path):
        with open(index_path) as f:
            try:
                if json.load(f).get("stamp") == stamp:
                    print("onnx node tests: up to date in %s" % args.out)
                    return 0
            except ValueError:
                pass

    raw = os.path.join(args.out, "raw")
    cases_dir = os.path.join(args.out, "cases")
    os.makedirs(args.out, exist_ok=True)
    generate_raw(raw)
    if os.path.exists(cases_dir):
        shutil.rmtree(cases_dir)
    os.makedirs(cases_dir)

    node_dir = os.path.join(raw, "node")
    names = sorted(os.listdir(node_dir))
    # the op of every single-node case; an expanded case takes its base case's op
    op_of = {}
    for name in names:
        if not name.endswith("_expanded"):
            op_of[name] = case_op(onnx.load(os.path.join(node_dir, name, "model.onnx")))
    index = []
    for name in names:
        expanded = name.endswith("_expanded")
        op = op_of.get(name[: -len("_expanded")] if expanded else name)
        if op not in supported:
            continue
        c = convert_case(os.path.join(node_dir, name), os.path.join(cases_dir, name), op, expanded)
        index.append({"case": name, "op": op, "dir": os.path.join("cases", name)})

    shutil.rmtree(raw)
    with open(index_path + ".tmp", "w") as f:
        json.dump({"stamp": stamp, "onnx": onnx.__version__, "cases": index}, f, indent=1)
    os.replace(index_path + ".tmp", index_path)
    per_op = {}
    for c in index:
        per_op[c["op"]] = per_op.get(c["op"], 0) + 1
    missing = [o for o in supported if o not in per_op]
    print("onnx node tests: %d cases of %d ops in %s%s" % (
        len(index), len(per_op), args.out,
        ("; no cases for: " + " ".join(missing)) if missing else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
