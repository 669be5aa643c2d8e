#!/bin/sh
# One Conv layer alone, timed by splitd's own profile (the node's median,
# not the request around it), with the engine's AVX-512 parts on and off
# in alternating rounds: the depthwise and im2col figures of
# kernels/README.md (issue 17).
#
# usage: bench/conv_layer.sh [-b BUILD_DIR] [-t THREADS] [-r ROUNDS] [-n RUNS] LAYER...
# LAYER: C:H:M:K:S[:G]  input channels, square input size, output channels,
#        square kernel, stride, groups (default 1; C for depthwise); padding
#        K/2 and a ReLU after, as the models have them. Examples:
#   bench/conv_layer.sh 576:14:576:3:1:576 144:56:144:3:1:144 96:112:96:3:2:96 3:640:32:7:2
# The "scalar" column sets SPLITD_CONV_DW_SCALAR=1, SPLITD_CONV_DIRECT=0 and
# SPLITD_CONV_IM2COL_SCALAR=1 (the paths every other ISA runs).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
build=$root/build threads=1 rounds=3 runs=200
while getopts b:t:r:n:h opt; do
	case $opt in
	b) build=$OPTARG ;;
	t) threads=$OPTARG ;;
	r) rounds=$OPTARG ;;
	n) runs=$OPTARG ;;
	*) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
[ $# -gt 0 ] || { sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
splitd=$build/daemon/splitd
[ -x "$splitd" ] || { echo "no $splitd: cmake --build $build --target splitd" >&2; exit 1; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

node_ms() { # node_ms MODEL [ENV...]: the conv node's median ms
	m=$1; shift
	env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$@" "$splitd" bench -m "$m" --runs "$runs" \
		--warmup 5 --threads "$threads" --profile | awk '$1 == "0" { print $4 }'
}

printf '%-22s %-10s %s\n' layer path "node ms per round (threads $threads)"
for spec in "$@"; do
	m=$out/$(echo "$spec" | tr : _).onnx
	/usr/bin/python3 - "$spec" "$m" <<'EOF'
import sys
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

f = [int(v) for v in sys.argv[1].split(":")]
C, H, M, K, S = f[:5]
G = f[5] if len(f) > 5 else 1
P = K // 2
OH = (H + 2 * P - K) // S + 1
rng = np.random.default_rng(0)
w = numpy_helper.from_array((rng.standard_normal((M, C // G, K, K)) * 0.1).astype(np.float32), "w")
b = numpy_helper.from_array(np.zeros(M, np.float32), "b")
nodes = [helper.make_node("Conv", ["x", "w", "b"], ["y"], kernel_shape=[K, K], strides=[S, S],
                          pads=[P] * 4, group=G),
         helper.make_node("Relu", ["y"], ["z"])]
g = helper.make_graph(nodes, "conv_layer",
                      [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, C, H, H])],
                      [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, M, OH, OH])], [w, b])
model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
model.ir_version = 7
onnx.save(model, sys.argv[2])
EOF
	vec= sca=
	for _ in $(seq "$rounds"); do
		vec="$vec $(node_ms "$m")"
		sca="$sca $(node_ms "$m" SPLITD_CONV_DW_SCALAR=1 SPLITD_CONV_IM2COL_SCALAR=1 SPLITD_CONV_DIRECT=0)"
	done
	printf '%-22s %-10s%s\n%-22s %-10s%s\n' "$spec" avx512 "$vec" "" scalar "$sca"
done
