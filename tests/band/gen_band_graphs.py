#!/usr/bin/python3
"""Small graphs that pin the edge cases of banded execution (issue 9).

usage: gen_band_graphs.py OUT_DIR

Writes OUT_DIR/<name>.onnx and OUT_DIR/graphs.txt (one name a line). Each
graph takes one float32 NCHW input with an odd or awkward height so bands
split unevenly: strided, dilated and asymmetrically padded convolutions, a
row its consumer never reads (1x1 stride 2), depthwise convolutions,
residual adds and broadcasts, pooling with ceil_mode and count_include_pad,
channel Concat/Split and W-only Pad/Slice, and a barrier (global pooling,
Resize; LayerNormalization across rows) that no banded range may cross;
comparisons, Where, reductions and LayerNormalization that keep rows apart. test_band runs every legal cut of
every graph banded and compares with the unbanded run.
"""
import os
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
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

rng = np.random.default_rng(9)


class G:
    def __init__(self, name, shape):
        self.name = name
        self.nodes, self.inits = [], []
        self.n = 0
        self.inp = helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)

    def t(self, prefix="t"):
        self.n += 1
        return "%s%d" % (prefix, self.n)

    def const(self, arr):
        name = self.t("c")
        self.inits.append(numpy_helper.from_array(np.asarray(arr, dtype=np.float32), name))
        return name

    def iconst(self, arr):
        name = self.t("i")
        self.inits.append(numpy_helper.from_array(np.asarray(arr, dtype=np.int64), name))
        return name

    def op(self, kind, ins, n_out=1, **attrs):
        outs = [self.t() for _ in range(n_out)]
        self.nodes.append(helper.make_node(kind, ins, outs, name=self.t(kind.lower()), **attrs))
        return outs[0] if n_out == 1 else outs

    def conv(self, x, cin, cout, k, group=1, bias=True, **attrs):
        kh, kw = k
        w = self.const(rng.standard_normal((cout, cin // group, kh, kw)) * 0.3)
        ins = [x, w]
        if bias:
            ins.append(self.const(rng.standard_normal(cout) * 0.1))
        return self.op("Conv", ins, kernel_shape=[kh, kw], group=group, **attrs)

    def save(self, out_dir, y, opset=13):
        outv = helper.make_tensor_value_info(y, TensorProto.FLOAT, [])
        graph = helper.make_graph(self.nodes, self.name, [self.inp], [outv], self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
        model.ir_version = 7
        # the output's shape from ONNX's own shape inference
        model.graph.output[0].type.tensor_type.ClearField("shape")
        inferred = onnx.shape_inference.infer_shapes(model)
        model.graph.output[0].CopyFrom(inferred.graph.output[0])
        onnx.checker.check_model(model)
        onnx.save(model, os.path.join(out_dir, self.name + ".onnx"))


def strided(d):
    g = G("strided", [1, 3, 23, 17])
    y = g.op("Relu", [g.conv("x", 3, 8, (3, 3), strides=[2, 2], pads=[1, 1, 1, 1])])
    y = g.conv(y, 8, 8, (3, 3), strides=[2, 1], pads=[1, 1, 1, 1])
    y = g.op("Relu", [g.conv(y, 8, 6, (5, 3), strides=[3, 2], pads=[2, 1, 2, 1])])
    g.save(d, y)


def dilated(d):
    g = G("dilated", [1, 4, 29, 13])
    y = g.op("Relu", [g.conv("x", 4, 6, (3, 3), dilations=[2, 2], pads=[2, 2, 2, 2])])
    y = g.conv(y, 6, 6, (5, 3), dilations=[3, 1], strides=[2, 1], pads=[4, 1, 1, 1])
    y = g.op("Sigmoid", [y])
    g.save(d, y)


def asym(d):
    g = G("asym", [1, 3, 21, 15])
    y = g.conv("x", 3, 5, (4, 3), strides=[2, 1], pads=[2, 1, 0, 1])
    y = g.op("LeakyRelu", [y], alpha=0.1)
    y = g.conv(y, 5, 5, (3, 3), pads=[0, 0, 3, 0])
    y = g.conv(y, 5, 4, (2, 2), auto_pad="SAME_UPPER")
    y = g.conv(y, 4, 4, (3, 2), auto_pad="SAME_LOWER", strides=[2, 2])
    g.save(d, y)


def skiprow(d):
    # the 1x1 stride-2 conv never reads the last row of its input: the
    # banded run must still compute it, as the unbanded run does
    g = G("skiprow", [1, 3, 18, 10])
    a = g.op("Relu", [g.conv("x", 3, 8, (3, 3), pads=[1, 1, 1, 1])])
    y = g.conv(a, 8, 8, (1, 1), strides=[2, 2])
    y = g.conv(y, 8, 4, (1, 1), strides=[3, 1])
    g.save(d, y)


def depthwise(d):
    g = G("depthwise", [1, 8, 27, 19])
    y = g.op("Clip", [g.conv("x", 8, 8, (3, 3), group=8, pads=[1, 1, 1, 1])],)
    y = g.conv(y, 8, 8, (3, 3), group=8, strides=[2, 2], pads=[1, 1, 1, 1])
    y = g.conv(y, 8, 8, (5, 5), group=8, pads=[2, 2, 2, 2])
    y = g.conv(y, 8, 16, (3, 3), group=8, pads=[0, 1, 1, 1])
    y = g.conv(y, 16, 12, (1, 1))
    g.save(d, y)


def residual(d):
    g = G("residual", [1, 8, 25, 11])
    a = g.op("Relu", [g.conv("x", 8, 8, (3, 3), pads=[1, 1, 1, 1])])
    b = g.conv(a, 8, 8, (3, 3), pads=[1, 1, 1, 1])
    y = g.op("Relu", [g.op("Add", [b, "x"])])
    down = g.conv(y, 8, 16, (1, 1), strides=[2, 2], bias=False)
    m = g.op("Relu", [g.conv(y, 8, 16, (3, 3), strides=[2, 2], pads=[1, 1, 1, 1])])
    y = g.op("Add", [g.conv(m, 16, 16, (3, 3), pads=[1, 1, 1, 1]), down])
    y = g.op("Mul", [y, g.const(rng.standard_normal((16, 1, 1)))])
    y = g.op("Add", [y, g.const(rng.standard_normal((1, 16, 1, 6)))])
    y = g.op("Sub", [y, g.const(rng.standard_normal(6))])
    bn = [g.const(rng.random(16) + 0.5), g.const(rng.standard_normal(16)),
          g.const(rng.standard_normal(16)), g.const(rng.random(16) + 0.5)]
    y = g.op("BatchNormalization", [y] + bn)
    g.save(d, y)


def pools(d):
    g = G("pools", [1, 4, 25, 21])
    a = g.op("MaxPool", ["x"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 0, 0, 0],
             ceil_mode=1)
    b = g.op("AveragePool", ["x"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 0, 1, 0],
             ceil_mode=1, count_include_pad=1)
    c = g.op("AveragePool", ["x"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1],
             ceil_mode=1, count_include_pad=0)
    c = g.op("Slice", [c, g.iconst([0]), g.iconst([10]), g.iconst([3])])
    y = g.op("Concat", [a, b, c], axis=1)
    y = g.op("Pad", [y, g.iconst([0, 0, 0, 1, 0, 0, 0, 1])], mode="edge")
    y = g.op("MaxPool", [y], kernel_shape=[2, 2], strides=[1, 1], pads=[1, 0, 0, 1],
             dilations=[2, 1])
    y = g.op("AveragePool", [y], kernel_shape=[5, 1], strides=[3, 1], pads=[2, 0, 2, 0],
             ceil_mode=1, count_include_pad=1)
    g.save(d, y)


def layout(d):
    g = G("layout", [1, 6, 19, 16])
    a, b = g.op("Split", ["x", g.iconst([2, 4])], n_out=2, axis=1)
    a = g.op("Relu", [g.conv(a, 2, 4, (3, 3), pads=[1, 1, 1, 1])])
    b = g.op("Slice", [b, g.iconst([1]), g.iconst([15]), g.iconst([3])])
    b = g.op("Pad", [b, g.iconst([0, 0, 0, 1, 0, 0, 0, 1])])
    b = g.op("HardSigmoid", [b], alpha=0.3)
    y = g.op("Concat", [a, b], axis=1)
    y = g.op("Concat", [y, g.op("Tanh", [y])], axis=3)
    y = g.conv(y, 8, 8, (3, 3), strides=[2, 2], pads=[1, 1, 1, 1])
    g.save(d, y)


def barrier(d):
    g = G("barrier", [1, 4, 17, 12])
    a = g.op("Relu", [g.conv("x", 4, 8, (3, 3), strides=[2, 2], pads=[1, 1, 1, 1])])
    up = g.op("Resize", [a, "", g.const([1, 1, 2, 2])], mode="nearest")
    b = g.conv(up, 8, 8, (3, 3), pads=[1, 1, 1, 1])
    s = g.op("GlobalAveragePool", [b])
    y = g.op("Mul", [b, g.op("Sigmoid", [s])])
    y = g.op("Flatten", [g.op("GlobalMaxPool", [y])], axis=1)
    y = g.op("Gemm", [y, g.const(rng.standard_normal((5, 8))), g.const(rng.standard_normal(5))],
             transB=1)
    g.save(d, y)


def rowwise(d):
    """Transformer-era ops that keep rows apart: comparisons, Not, Where,
    reductions over C or W with keepdims, ArgMax over C, LayerNormalization
    over W (opset 17)."""
    g = G("rowwise", [1, 6, 15, 10])
    a = g.conv("x", 6, 6, (3, 3), pads=[1, 1, 1, 1])
    s = g.op("ReduceSum", [a, g.iconst([1])], keepdims=1)
    m = g.op("ReduceMax", [a], axes=[3], keepdims=1)
    w = g.op("Where", [g.op("Greater", [a, s]), a, m])
    ln = g.op("LayerNormalization", [w, g.const(rng.random(10) + 0.5), g.const(rng.standard_normal(10) * 0.2)],
              axis=-1)
    r = g.op("Where", [g.op("Not", [g.op("Less", [ln, g.const(0.0)])]), ln, g.const(0.0)])
    am = g.op("Cast", [g.op("ArgMax", [a], axis=1, keepdims=1)], to=TensorProto.FLOAT)
    y = g.conv(g.op("Add", [r, am]), 6, 4, (3, 3), strides=[2, 2], pads=[1, 1, 1, 1])
    g.save(d, y, opset=17)


def barrier_norm(d):
    """LayerNormalization over C, H, W and a reduction along H: barriers."""
    g = G("barrier_norm", [1, 4, 13, 8])
    a = g.conv("x", 4, 4, (3, 3), pads=[1, 1, 1, 1])
    ln = g.op("LayerNormalization", [a, g.const(rng.random((4, 13, 8)) + 0.5)], axis=1)
    y = g.op("Mul", [ln, g.op("ReduceL2", [ln], axes=[2], keepdims=1)])
    g.save(d, g.conv(y, 4, 4, (1, 1)), opset=17)


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: gen_band_graphs.py OUT_DIR")
    d = sys.argv[1]
    os.makedirs(d, exist_ok=True)
    fns = [strided, dilated, asym, skiprow, depthwise, residual, pools, layout, barrier, rowwise,
           barrier_norm]
    for fn in fns:
        fn(d)
    with open(os.path.join(d, "graphs.txt"), "w") as f:
        for fn in fns:
            f.write(fn.__name__ + "\n")


if __name__ == "__main__":
    main()
