#!/bin/sh
# splitd's CPU engine against ONNX Runtime's CPU provider (onnxruntime-node
# 1.30), same model, same input, 2 threads, interleaved in the same run.
#
# usage: bench/engine_vs_ort.sh [-b BUILD_DIR] [-o OUT_DIR] [-r ROUNDS] [-n RUNS]
#                               [-w WARMUP] [-t "THREADS..."] [-l] [-B BEFORE_DIR]
#                               [MODEL...]
# MODEL defaults to resnet18 mobilenet_v2 resnet50 (issue 3's three); any of
# `tools/export_models.py --list --set bench` may be named. -t takes one
# thread count or several ("1 2": one table each). -l adds the per-layer
# table: the machine's FMA peak measured here (BUILD_DIR/bench/cpu_peak),
# then each Conv/Gemm's GFLOP/s and % of that peak at each thread count
# (tools/bench_layers.py). -B adds a second build's splitd (the one before a
# change) to the same interleaved rounds: "before ms" and "before/ORT".
#
# Needs: a built splitd (BUILD_DIR/daemon/splitd, default ./build), node + npm,
# /usr/bin/python3 with torch/onnx. onnxruntime-node is installed into
# bench/node_modules (gitignored) on first use, unless ORT_NODE_MODULES names
# a node_modules folder that already has it.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
build=$root/build
out=$root/bench/out
rounds=5 runs=20 warmup=5 threads=2 layers=0 before=
while getopts b:o:r:n:w:t:lB:h opt; do
	case $opt in
	b) build=$OPTARG ;;
	o) out=$OPTARG ;;
	r) rounds=$OPTARG ;;
	n) runs=$OPTARG ;;
	w) warmup=$OPTARG ;;
	t) threads=$OPTARG ;;
	l) layers=1 ;;
	B) before=$OPTARG ;;
	*) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
[ $# -gt 0 ] || set -- resnet18 mobilenet_v2 resnet50

splitd=$build/daemon/splitd
[ -x "$splitd" ] || { echo "no $splitd: build splitd first (cmake --build $build --target splitd)" >&2; exit 1; }

# onnxruntime-node, installed by this script on a fresh machine
mods=${ORT_NODE_MODULES:-$here/node_modules}
if [ ! -d "$mods/onnxruntime-node" ]; then
	mods=$here/node_modules
	echo "installing onnxruntime-node 1.30 into $mods" >&2
	(ONNXRUNTIME_NODE_INSTALL=skip ONNXRUNTIME_NODE_INSTALL_CUDA=skip \
		npm install --prefix "$here" --no-save --no-package-lock --no-audit --no-fund \
		onnxruntime-node@1.30 >&2)
fi
export ORT_NODE_MODULES=$mods

mkdir -p "$out"
/usr/bin/python3 "$root/tools/export_models.py" --out "$out/models" "$@" 2>&1 |
	grep -v -i -e warning -e '^ ' >&2 || true
for m in "$@"; do
	[ -f "$out/models/$m/model.json" ] || { echo "export of $m failed" >&2; exit 1; }
done

# the host may set OpenBLAS tuning variables; neither side gets them here
for t in $threads; do
	json=$out/engine_vs_ort.json
	[ "$t" = "$threads" ] || json=$out/engine_vs_ort-t$t.json
	env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE \
		/usr/bin/python3 "$root/tools/bench_engine_vs_ort.py" --splitd "$splitd" \
		--models-dir "$out/models" --ort-script "$here/ort_bench.mjs" \
		--rounds "$rounds" --runs "$runs" --warmup "$warmup" --threads "$t" \
		--json-out "$json" ${before:+--splitd-before "$before/daemon/splitd"} "$@"
done
if [ "$layers" = 1 ]; then
	peak=$build/bench/cpu_peak
	[ -x "$peak" ] || { echo "no $peak: cmake --build $build --target cpu_peak" >&2; exit 1; }
	echo
	env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE \
		/usr/bin/python3 "$root/tools/bench_layers.py" --splitd "$splitd" --cpu-peak "$peak" \
		--models-dir "$out/models" --rounds "$rounds" --runs "$runs" --warmup "$warmup" \
		--threads "$threads" --json-out "$out/layers.json" "$@"
fi
