#!/bin/sh
# Banded vs unbanded time of [0, k) for a few cuts of resnet18 (issue 9):
# what the row gathering around the unchanged kernels and the smaller kernel
# calls cost, before any streaming gains. Medians of RUNS runs.
# Usage: bench/band_overhead.sh [BUILD_DIR] [THREADS] [RUNS] [MODEL] [CUTS...]
# (MODEL from tools/export_models.py, generated into BUILD_DIR/models when
# missing; CUTS default to four spread over resnet18's legal range.)
set -eu
src=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-/tmp/build-band-bench}
threads=${2:-2}
runs=${3:-15}
model=${4:-resnet18}
[ $# -gt 4 ] && shift 4 || set --
cuts=${*:-3 8 13 21}
if [ ! -f "$build/CMakeCache.txt" ]; then
	cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
cmake --build "$build" --target bench_band_overhead -j2 >/dev/null
if [ ! -f "$build/models/$model/model.onnx" ]; then
	/usr/bin/python3 "$src/tools/export_models.py" --out "$build/models" "$model" >/dev/null
fi
echo "# $(uname -m), $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ), commit $(git -C "$src" rev-parse --short HEAD 2>/dev/null || echo none)"
# shellcheck disable=SC2086
"$build/tests/bench_band_overhead" "$build/models/$model/model.onnx" \
	"$build/models/$model/input_0.bin" "$threads" "$runs" $cuts
