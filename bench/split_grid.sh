#!/bin/sh
# Split-inference grid in the two-namespace lab (issue 6 benchmark, issue 7
# oracle): builds splitd, exports the reference models if needed, and runs
# bench/split_grid.py as root. The lab (namespaces, qdiscs, cgroup) is
# removed on exit, also on failure or Ctrl-C.
#
#   bench/split_grid.sh [BUILD_DIR] [split_grid.py options...]
# e.g.
#   sudo bench/split_grid.sh /tmp/build-net --rate 137 --rate 400 --cpu 1 \
#        --requests 5 --out bench/results/split_grid.md
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
build=${1:-$root/build}
[ $# -gt 0 ] && shift
# one lab name for this run, shared with split_grid.py (tools/netlab.sh)
SPLITD_NETLAB=${SPLITD_NETLAB:-splitd$$}
export SPLITD_NETLAB
trap 'sh "$root/tools/netlab.sh" down >/dev/null 2>&1 || true' EXIT INT TERM
[ "$(id -u)" = 0 ] || { echo "split_grid.sh: needs root (namespaces, tc, cgroups)" >&2; exit 77; }
if [ ! -x "$build/daemon/splitd" ]; then
	cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
	cmake --build "$build" --target splitd -j2
fi
models=$build/models
for m in mobilenet_v2 resnet18; do
	[ -f "$models/$m/model.onnx" ] || /usr/bin/python3 "$root/tools/export_models.py" --out "$models" "$m"
done
/usr/bin/python3 "$here/split_grid.py" --splitd "$build/daemon/splitd" --models "$models" "$@"
