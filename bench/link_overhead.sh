#!/bin/sh
# Offload-link protocol overhead per request beyond the raw transfer, on
# loopback, for 0.1 / 1 / 6 MB payloads (plain HTTP and TLS 1.3), plus the
# codec's costs per encoding. Target: overhead <= 1 ms + 5% of the transfer.
# Usage: bench/link_overhead.sh [BUILD_DIR] [ITER_SCALE]
set -eu
src=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-/tmp/build-link-bench}
scale=${2:-1}
if [ ! -f "$build/CMakeCache.txt" ]; then
	cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
cmake --build "$build" --target bench_link_overhead -j2 >/dev/null
certs=$(mktemp -d /tmp/splitd-bench-certs.XXXXXX)
trap 'rm -rf "$certs"' EXIT
sh "$src/tools/mkcerts.sh" "$certs" >/dev/null
echo "# $(uname -m), $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ), commit $(git -C "$src" rev-parse --short HEAD 2>/dev/null || echo none)"
"$build/tests/bench_link_overhead" "$certs" "$scale"
