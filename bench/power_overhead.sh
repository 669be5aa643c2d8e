#!/bin/sh
# Sampler overhead at 100 Hz and 1 kHz, as % of one core (CPU time of the
# sampler thread over wall time), on a fake Jetson Xavier NX tree (three
# ina3221x rails: three power files per sample, volts and amps at 10 Hz):
# the default (pread() on kept descriptors), then open/read/close per file,
# then every file every sample with open/read/close (the naive reader);
# and the floor: a thread that only sleeps at that rate (the kernel's cost
# of a timer wake-up, charged to the thread; large in VMs).
# Target: <= 1% at 100 Hz.
#
#   bench/power_overhead.sh [BUILD_DIR] [SECONDS]
set -eu
build=${1:-build}
secs=${2:-5}
bin=$build/tests/power_overhead
[ -x "$bin" ] || bin=$(find "$build" -name power_overhead -type f -perm -u+x | head -n 1)
if [ -z "$bin" ] || [ ! -x "$bin" ]; then
	echo "power_overhead.sh: build the power_overhead target in $build first" >&2
	exit 1
fi
echo "# $(uname -m) $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
for hz in 100 1000; do
	"$bin" --hz "$hz" --seconds "$secs"
	"$bin" --hz "$hz" --seconds "$secs" --reopen
	"$bin" --hz "$hz" --seconds "$secs" --reopen --aux-hz 0
	"$bin" --hz "$hz" --seconds "$secs" --floor
done
