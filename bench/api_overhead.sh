#!/bin/sh
# The API's own overhead per request (issue 5): a 224x224 JPEG through
# POST /v1/infer with a handler that does no work, answered from a worker
# thread as the daemon does. p50/p99 round trip on one keep-alive
# connection (client included: an upper bound on the daemon's share),
# requests/s with 1, 4, 16 connections (wrk when installed, else the C
# client), and /metrics render time. Target: <= 1 ms p50 with the decode.
# Usage: bench/api_overhead.sh [BUILD_DIR] [SECONDS]
set -eu
src=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-/tmp/build-api-bench}
sec=${2:-5}
if [ ! -f "$build/CMakeCache.txt" ]; then
	cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
cmake --build "$build" --target bench_api_overhead -j2 >/dev/null
bin="$build/tests/bench_api_overhead"
jpg="$src/tests/data/api/bench_224.jpg"
echo "# $(uname -m), $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ), commit $(git -C "$src" rev-parse --short HEAD 2>/dev/null || echo none)"
"$bin" latency "$jpg" 2000
if command -v wrk >/dev/null 2>&1; then
	lua=$(mktemp /tmp/splitd-api-wrk.XXXXXX.lua)
	out=$(mktemp /tmp/splitd-api-serve.XXXXXX)
	trap 'rm -f "$lua" "$out"' EXIT
	cat > "$lua" <<LUA
local f = io.open("$jpg", "rb")
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "image/jpeg"
LUA
	for c in 1 4 16; do
		"$bin" serve "$jpg" $((sec + 3)) > "$out" &
		pid=$!
		sleep 0.5
		port=$(head -1 "$out")
		t=$c; [ "$t" -gt 2 ] && t=2
		printf '%s connections (wrk -t%s): ' "$c" "$t"
		wrk -t"$t" -c"$c" -d"${sec}s" -s "$lua" --latency "http://127.0.0.1:$port/v1/infer" |
			awk '/Requests\/sec/ {r=$2} /Non-2xx/ {e=$NF} / 50%/ {p50=$2} / 99%/ {p99=$2}
			     END {printf "%s requests/s, latency p50 %s p99 %s, non-2xx %s\n", r, p50, p99, e ? e : 0}'
		wait "$pid"
	done
else
	for c in 1 4 16; do "$bin" rps "$jpg" "$c" "$sec"; done
fi
"$bin" metrics 2000
