#!/bin/bash
# splitd's CUDA backend against PyTorch eager on the same GPU, batch 1
# (issue 8): resnet18, mobilenet_v2, resnet50, in one run.
#
#   bench/gpu_vs_torch.sh BUILD_DIR [MODEL...]
#
# Models come from tools/export_models.py (cached in BUILD_DIR/models, the
# conformance tests' folder). splitd is timed with BUILD_DIR/tests/
# splitd_gpu_bench (engine_run: kernels + final synchronize, input already
# on the device) because `splitd bench` has no backend option yet; torch
# with the same architecture from torchvision, model(x) + synchronize, x on
# the device, cudnn.benchmark on. Two precisions, each side alike:
#   fp32  splitd default (CUDNN_FMA_MATH)  vs torch with TF32 disallowed
#   tf32  SPLITD_CUDA_TF32=1               vs torch's defaults (cuDNN TF32 on)
# Writes the table to $OUT/gpu_vs_torch.txt and rows to $OUT/gpu_vs_torch.json.
set -u
BUILD=${1:?usage: bench/gpu_vs_torch.sh BUILD_DIR [MODEL...]}
shift
MODELS=("$@")
[ ${#MODELS[@]} -eq 0 ] && MODELS=(resnet18 mobilenet_v2 resnet50)
SRC=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-$BUILD/gpu_bench_out}
PY=${SPLITD_REF_PYTHON:-/usr/bin/python3}
RUNS=${RUNS:-50}
mkdir -p "$OUT" "$BUILD/models"
BENCH=$BUILD/tests/splitd_gpu_bench
if "$BUILD/daemon/splitd" help bench 2>&1 | grep -q -- '--backend'; then
	echo "note: splitd bench has --backend; this script still uses splitd_gpu_bench for the e2e column" >&2
fi
[ -x "$BENCH" ] || { echo "missing $BENCH (build target splitd_gpu_bench)" >&2; exit 1; }

: > "$OUT/gpu_vs_torch.json"
for m in "${MODELS[@]}"; do
	if ! timeout 600 "$PY" "$SRC/tools/export_models.py" --out "$BUILD/models" "$m" \
		> "$OUT/export_$m.log" 2>&1; then
		echo "export of $m failed (see $OUT/export_$m.log)" >&2
		continue
	fi
	onnx=$BUILD/models/$m/$("$PY" -c "import json,sys;print(json.load(open(sys.argv[1]))['onnx'])" "$BUILD/models/$m/model.json")
	for prec in fp32 tf32; do
		tf=0; [ $prec = tf32 ] && tf=1
		s=$(SPLITD_CUDA_TF32=$tf timeout 300 "$BENCH" -m "$onnx" -b cuda -r "$RUNS" -w 10 2> "$OUT/splitd_${m}_$prec.err")
		[ -n "$s" ] || s='{"error":"splitd failed, see '"$OUT/splitd_${m}_$prec.err"'"}'
		t=$(timeout 300 "$PY" - "$m" "$BUILD/models/$m/model.json" "$tf" "$RUNS" <<'PYEOF' 2> "$OUT/torch_${m}_$prec.err"
import json, sys, time
import torch, torchvision
name, meta, tf, runs = sys.argv[1], json.load(open(sys.argv[2])), sys.argv[3] == "1", int(sys.argv[4])
torch.backends.cudnn.benchmark = True
torch.backends.cudnn.allow_tf32 = tf
torch.backends.cuda.matmul.allow_tf32 = tf
model = getattr(torchvision.models, name)().eval().cuda()
x = torch.randn(*meta["inputs"][0]["shape"], device="cuda")
with torch.no_grad():
    for _ in range(10):
        model(x)
    torch.cuda.synchronize()
    ts = []
    for _ in range(runs):
        t0 = time.perf_counter()
        model(x)
        torch.cuda.synchronize()
        ts.append((time.perf_counter() - t0) * 1e3)
ts.sort()
print(json.dumps({"torch": torch.__version__, "device": torch.cuda.get_device_name(0),
                  "ms": ts[len(ts) // 2], "p10_ms": ts[len(ts) // 10]}))
PYEOF
		)
		[ -n "$t" ] || t='{"error":"torch failed, see '"$OUT/torch_${m}_$prec.err"'"}'
		echo "{\"model\":\"$m\",\"precision\":\"$prec\",\"splitd\":$s,\"torch\":$t}" >> "$OUT/gpu_vs_torch.json"
	done
done

"$PY" - "$OUT/gpu_vs_torch.json" <<'PYEOF' | tee "$OUT/gpu_vs_torch.txt"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
dev = next((r["torch"].get("device") for r in rows if "device" in r["torch"]), "?")
print(f"GPU: {dev}; batch 1; median ms (splitd: engine_run incl. synchronize; torch: eager model(x) + synchronize)")
print(f"{'model':<14}{'prec':<6}{'splitd ms':>11}{'torch ms':>10}{'ratio':>8}{'splitd e2e':>12}")
for r in rows:
    s, t = r["splitd"], r["torch"]
    sm, tm = s.get("compute_ms"), t.get("ms")
    ratio = f"{sm / tm:.2f}x" if sm and tm else "n/a"
    f = lambda v: f"{v:.3f}" if isinstance(v, (int, float)) else "fail"
    print(f"{r['model']:<14}{r['precision']:<6}{f(sm):>11}{f(tm):>10}{ratio:>8}{f(s.get('e2e_ms')):>12}")
print("ratio = splitd / torch (target <= 1.00x); e2e adds the input upload through pinned staging")
PYEOF
