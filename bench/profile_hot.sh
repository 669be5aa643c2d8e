#!/bin/sh
# What fetching each node's weights and activations costs the CPU engine:
# per node, `splitd bench --profile` (the node where it runs in the model)
# against `--profile-hot` (each node run twice in a row, the second timed:
# its data in the caches), on 1 and 2 threads, in interleaved rounds; the
# minimum of each node over the rounds (the host's noise only adds), then
# their sums.
#
# usage: bench/profile_hot.sh [-b BUILD_DIR] [-r ROUNDS] [-n RUNS] [-t "THREADS..."] [-v]
#                             MODEL.onnx...
# -v adds the per-node lines. Defaults: ./build, 6 rounds, 9 runs, "1 2".
# kernels/README.md (the gaps, "fetching each node's data") has its figures.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
build=$root/build rounds=6 runs=9 threads="1 2" verbose=0
while getopts b:r:n:t:vh opt; do
	case $opt in
	b) build=$OPTARG ;;
	r) rounds=$OPTARG ;;
	n) runs=$OPTARG ;;
	t) threads=$OPTARG ;;
	v) verbose=1 ;;
	*) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
[ $# -gt 0 ] || { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
splitd=$build/daemon/splitd
[ -x "$splitd" ] || { echo "no $splitd: build splitd first" >&2; exit 1; }
raw=$(mktemp)
trap 'rm -f "$raw"' EXIT
for m in "$@"; do
	[ -f "$m" ] || { echo "no model $m" >&2; exit 1; }
	r=0
	while [ $r -lt "$rounds" ]; do
		r=$((r + 1))
		for t in $threads; do
			for mode in profile profile-hot; do
				env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$splitd" bench -m "$m" --runs "$runs" \
					--warmup 2 --threads "$t" --"$mode" --json |
					/usr/bin/python3 -c '
import json, sys
d = json.load(sys.stdin)
for i, n in enumerate(d["nodes"]):
    print(sys.argv[1], sys.argv[2], sys.argv[3], i, n["name"].replace(" ", "_"), n["ms"])
' "$m" "$t" "$mode" >>"$raw"
			done
		done
	done
done
/usr/bin/python3 - "$raw" "$verbose" <<'EOF'
import collections, sys
mn = collections.defaultdict(lambda: float("inf"))
names, threads, models = {}, [], []
for line in open(sys.argv[1]):
    m, t, mode, i, name, ms = line.split()
    k = (m, t, mode, int(i))
    mn[k] = min(mn[k], float(ms))
    names[(m, int(i))] = name
    if t not in threads:
        threads.append(t)
    if m not in models:
        models.append(m)
for m in models:
    nodes = sorted(i for (mm, i) in names if mm == m)
    print(m)
    tot = {}
    for t in threads:
        for mode in ("profile", "profile-hot"):
            tot[(t, mode)] = sum(mn[(m, t, mode, i)] for i in nodes)
        a, h = tot[(t, "profile")], tot[(t, "profile-hot")]
        print(f"  {t} thread(s): {a:.2f} ms, hot {h:.2f} ms (+{100 * (a / h - 1):.0f} %)")
    if len(threads) > 1:
        t0, t1 = threads[0], threads[-1]
        print(f"  {t0} -> {t1} threads: {tot[(t0, 'profile')] / tot[(t1, 'profile')]:.2f}x, "
              f"hot {tot[(t0, 'profile-hot')] / tot[(t1, 'profile-hot')]:.2f}x")
    if sys.argv[2] == "1":
        for i in nodes:
            cols = "  ".join(f"{t}t {mn[(m, t, 'profile', i)]:.3f} hot {mn[(m, t, 'profile-hot', i)]:.3f}"
                             for t in threads)
            print(f"  {i:3d} {names[(m, i)][-36:]:36s} {cols}")
EOF
