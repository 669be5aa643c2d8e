#!/bin/bash
# The whole test suite, as CI runs it (.ci/run calls exactly this):
#   1. packages (scripts/setup.sh --cross)
#   2. configure + build with warnings as errors, every test label
#      (unit, integration, gpu (skips without a GPU), slow, nspawn)
#   3. AddressSanitizer + UndefinedBehaviorSanitizer build, unit tests
#   4. CUDA build (-DSPLITD_CUDA=ON): compile and link, when /usr/local/cuda exists
#   5. aarch64 cross-build, unit tests under qemu-aarch64-static
# usage: scripts/test.sh [--quick] [--netlab]   (--quick: stage 2 without the slow label, no 4 and 5;
#        --netlab: also the planner oracle in network namespaces, a timing test)
# Build trees: build-ci, build-asan, build-cuda, build-arm64 (SPLITD_TEST_BUILD_ROOT to move them).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
OUT=${SPLITD_TEST_BUILD_ROOT:-$ROOT}
JOBS=$(nproc)
quick=0
netlab=0
for a in "$@"; do
	case "$a" in
	--quick) quick=1 ;;
	--netlab) netlab=1 ;;
	-h|--help) sed -n '2,12p' "$0"; exit 0 ;;
	*) echo "test.sh: unknown option '$a'" >&2; exit 2 ;;
	esac
done

declare -a names results times
failed=0
stage() { # stage NAME FUNCTION
	local name=$1 t0=$SECONDS rc
	printf '\n==== %s\n' "$name"
	"$2"
	rc=$?
	names+=("$name"); times+=($((SECONDS - t0)))
	if [ $rc -eq 0 ]; then results+=(ok); else results+=("FAILED ($rc)"); failed=1; fi
}

configure() { # configure DIR ARGS...
	local dir=$1; shift
	mkdir -p "$dir"
	cmake -S "$ROOT" -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSPLITD_WERROR=ON "$@" >"$dir/configure.log" 2>&1 ||
		{ tail -30 "$dir/configure.log"; return 1; }
}

s_setup() { scripts/setup.sh --cross; }

s_main() {
	configure "$OUT/build-ci" -DSPLITD_CUDA=OFF || return 1
	local t0=$SECONDS
	cmake --build "$OUT/build-ci" -j"$JOBS" || return 1
	echo "build time: $((SECONDS - t0)) s"
	local args=(--output-on-failure --timeout 1800)
	# The planner oracle in network namespaces (label netlab) measures the
	# planner against issue 7's targets: minutes of latency medians, which a
	# shared 2-core machine can tip either way, so it runs with --netlab and
	# not in CI (README, "Tests"); the split test in the same lab does run.
	if [ $quick = 1 ]; then args+=(-LE 'slow|netlab'); elif [ $netlab = 0 ]; then args+=(-LE netlab); fi
	(cd "$OUT/build-ci" && ctest "${args[@]}")
}

s_asan() {
	configure "$OUT/build-asan" -DSPLITD_CUDA=OFF -DSPLITD_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug || return 1
	cmake --build "$OUT/build-asan" -j"$JOBS" || return 1
	(cd "$OUT/build-asan" &&
		ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		ctest --output-on-failure -L unit)
}

s_cuda() {
	if [ ! -d /usr/local/cuda ]; then echo "no /usr/local/cuda: skipped"; return 0; fi
	configure "$OUT/build-cuda" -DSPLITD_CUDA=ON || return 1
	cmake --build "$OUT/build-cuda" -j"$JOBS"
}

s_arm64() {
	configure "$OUT/build-arm64" -DSPLITD_CUDA=OFF -DCMAKE_TOOLCHAIN_FILE="$ROOT/cmake/aarch64-linux-gnu.cmake" || return 1
	cmake --build "$OUT/build-arm64" -j"$JOBS" || return 1
	file "$OUT/build-arm64/daemon/splitd"
	(cd "$OUT/build-arm64" && ctest --output-on-failure -L unit -LE slow)
}

T0=$SECONDS
stage "packages" s_setup
stage "build (-Werror) + all tests" s_main
stage "ASan+UBSan, unit tests" s_asan
if [ $quick = 0 ]; then
	stage "CUDA compile + link" s_cuda
	stage "aarch64 cross-build, unit tests under qemu" s_arm64
fi

printf '\n==== summary (%d s)\n' $((SECONDS - T0))
for i in "${!names[@]}"; do printf '  %-45s %-12s %5d s\n' "${names[$i]}" "${results[$i]}" "${times[$i]}"; done
exit $failed
