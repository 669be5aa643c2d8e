#!/bin/bash
# The one prepared GPU check (issue 8): on an NVIDIA machine, in a few
# minutes, build splitd with the CUDA backend, run the gpu-labelled tests
# and the benchmark against PyTorch, and print a summary. Everything it
# writes goes under $OUT (default /tmp/splitd-gpu-check).
#
#   scripts/gpu-check.sh [--no-bench] [--quick]
#
# --quick runs only the pack / sticky / model tests (the ONNX node-case
# fixture generates ~1000 cases first, a minute or two). Missing Debian
# packages are apt-installed when apt can reach a mirror; without network
# the script goes on with what is there.
set -u
SRC=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-/tmp/splitd-gpu-check}
BUILD=${BUILD:-$SRC/build-gpu}
BENCH=1 QUICK=0
for a in "$@"; do
	case $a in
	--no-bench) BENCH=0 ;;
	--quick) QUICK=1 ;;
	*) echo "usage: $0 [--no-bench] [--quick]" >&2; exit 2 ;;
	esac
done
mkdir -p "$OUT"
exec > >(tee "$OUT/gpu-check.log") 2>&1
t_start=$(date +%s)
step() { echo; echo "== $* ($(($(date +%s) - t_start)) s)"; }

step "device"
nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv 2>&1 | tee "$OUT/nvidia-smi.txt"
cap=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d ' .')
ARCH=${SPLITD_CUDA_ARCHS:-${cap:-90}}
echo "building for sm_$ARCH"
ls /usr/local/cuda/bin/nvcc >/dev/null 2>&1 && /usr/local/cuda/bin/nvcc --version | tail -1
export PATH=/usr/local/cuda/bin:$PATH

step "packages"
PKGS="cmake pkg-config gcc libmicrohttpd-dev libjansson-dev libsystemd-dev libprotobuf-c-dev
protobuf-c-compiler libturbojpeg0-dev libspng-dev libcurl4-openssl-dev libzstd-dev liblz4-dev
libssl-dev libnl-genl-3-dev libcmocka-dev libopenblas-dev libonnx-dev python3-onnx python3-numpy"
missing=
for p in $PKGS; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
	echo "missing:$missing"
	if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
		timeout 120 apt-get update -qq || echo "apt-get update failed (no network?), going on"
		DEBIAN_FRONTEND=noninteractive timeout 300 apt-get install -y -qq $missing ||
			echo "apt-get install failed, going on with what is installed"
	fi
else
	echo "all build packages present"
fi
/usr/bin/python3 -c "import torch, torchvision; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" ||
	echo "python3 torch/torchvision missing: model references and the torch bench will fail"

step "configure + build (SPLITD_CUDA=ON, sm_$ARCH)"
cmake -S "$SRC" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DSPLITD_CUDA=ON \
	-DSPLITD_CUDA_ARCHS="$ARCH" -DCMAKE_CUDA_ARCHITECTURES="$ARCH" > "$OUT/configure.log" 2>&1 ||
	{ tail -30 "$OUT/configure.log"; echo "configure FAILED"; exit 1; }
grep -E "CUDA backend" "$OUT/configure.log"
cmake --build "$BUILD" -j"$(nproc)" --target splitd test_cuda splitd_gpu_bench > "$OUT/build.log" 2>&1 ||
	{ grep -E "error|Error" "$OUT/build.log" | head -30; echo "build FAILED"; exit 1; }
echo "build ok"

step "ctest -L gpu"
if [ $QUICK = 1 ]; then sel=(-R "cuda_pack|cuda_model"); else sel=(); fi
(cd "$BUILD" && timeout 900 ctest -L gpu -E cuda_sticky "${sel[@]}" --output-on-failure -j2) > "$OUT/ctest-gpu.log" 2>&1
ctest_rc=$?
grep -E "tests passed|Test +#|cuda ops:|cuda run|max \|cuda" "$OUT/ctest-gpu.log" | head -60
# the sticky test poisons its own CUDA context on purpose: run it alone, last
(cd "$BUILD" && timeout 120 ctest -R cuda_sticky --output-on-failure) > "$OUT/ctest-sticky.log" 2>&1
sticky_rc=$?
grep -E "tests passed|recorded:" "$OUT/ctest-sticky.log"

bench_rc=skipped
if [ $BENCH = 1 ]; then
	step "benchmark vs PyTorch eager"
	OUT="$OUT" timeout 900 "$SRC/bench/gpu_vs_torch.sh" "$BUILD" resnet18 mobilenet_v2 resnet50
	bench_rc=$?
fi

step "summary"
echo "gpu tests: rc $ctest_rc; sticky test: rc $sticky_rc; bench: $bench_rc"
echo "logs in $OUT: configure.log build.log ctest-gpu.log ctest-sticky.log gpu_vs_torch.txt"
[ "$ctest_rc" = 0 ] && [ "$sticky_rc" = 0 ]
