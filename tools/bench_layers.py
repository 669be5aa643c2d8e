#!/usr/bin/python3
"""Per-layer rate of splitd's CPU engine against the machine's measured FMA
peak; called by bench/engine_vs_ort.sh -l (issue 17).

usage: bench_layers.py --splitd BIN --cpu-peak BIN --models-dir DIR
                       [--rounds R] [--runs N] [--warmup W] [--threads "1 2"]
                       [--json-out FILE] MODEL...

Measures the FMA peak with `cpu_peak --threads T --json` at each thread
count, then per model and thread count R rounds of `splitd bench --profile
--json` (rounds of the thread counts interleaved); each node's time is the
median over rounds. Prints every Conv/Gemm/MatMul node: kernel shape,
GFLOP (2 x MACs), ms, GFLOP/s and % of the peak at that thread count, and
per model the sum over the 3x3 convolutions.
"""
import argparse
import json
import statistics
import subprocess
import sys

import onnx


def last_json(text):
    for line in reversed(text.strip().splitlines()):
        if line.strip().startswith("{"):
            return json.loads(line)
    raise RuntimeError("no JSON in output:\n" + text[-2000:])


def kernel_shapes(path):
    m = onnx.load(path, load_external_data=False)
    ks = {}
    for n in m.graph.node:
        if n.op_type == "Conv":
            for a in n.attribute:
                if a.name == "kernel_shape":
                    ks[n.name] = "x".join(str(v) for v in a.ints)
            for a in n.attribute:
                if a.name == "group" and a.i > 1:
                    ks[n.name] = ks.get(n.name, "?") + " g%d" % a.i
    return ks


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--splitd", required=True)
    ap.add_argument("--cpu-peak", required=True)
    ap.add_argument("--models-dir", required=True)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", default="1 2")
    ap.add_argument("--json-out")
    ap.add_argument("models", nargs="+")
    a = ap.parse_args()
    threads = [int(t) for t in a.threads.split()]

    peak = {}
    for t in threads:
        p = last_json(subprocess.run([a.cpu_peak, "--threads", str(t), "--json"], check=True,
                                     capture_output=True, text=True).stdout)
        peak[t] = p["peak_gflops"]
    print("FMA peak (%s), measured: %s" % (p["isa"], ", ".join(
        "%.0f GFLOP/s on %d thread%s" % (peak[t], t, "s" if t > 1 else "") for t in threads)))

    out = {"peak_gflops": peak, "models": {}}
    for m in a.models:
        path = "%s/%s/model.onnx" % (a.models_dir, m)
        ks = kernel_shapes(path)
        times = {t: {} for t in threads}
        total = {t: [] for t in threads}
        nodes = None
        for r in range(a.rounds):
            for t in (threads if r % 2 == 0 else threads[::-1]):
                res = last_json(subprocess.run(
                    [a.splitd, "bench", "-m", path, "--runs", str(a.runs), "--warmup", str(a.warmup),
                     "--threads", str(t), "--profile", "--json"],
                    check=True, capture_output=True, text=True).stdout)
                nodes = res["nodes"]
                total[t].append(res["median_ms"])
                for n in nodes:
                    times[t].setdefault(n["name"], []).append(n["ms"])
        print("\n%s: latency %s" % (m, ", ".join(
            "%.2f ms on %d thread%s" % (statistics.median(total[t]), t, "s" if t > 1 else "")
            for t in threads)))
        hdr = "%-40s %-9s %7s" % ("node", "kernel", "GFLOP")
        for t in threads:
            hdr += "  %8s %8s %5s" % ("ms@%d" % t, "GFLOP/s", "%pk")
        print(hdr)
        rows = []
        sums = {t: [0.0, 0.0] for t in threads}
        for n in nodes:
            if not n["op"].startswith(("Conv", "Gemm", "MatMul")) or not n["macs"]:
                continue
            gf = 2 * n["macs"] * 1e-9
            k = ks.get(n["name"], "-")
            line = "%-40.40s %-9s %7.3f" % (n["name"], k, gf)
            row = {"name": n["name"], "op": n["op"], "kernel": k, "gflop": gf}
            for t in threads:
                ms = statistics.median(times[t][n["name"]])
                rate = gf / ms * 1e3
                line += "  %8.3f %8.1f %4.0f%%" % (ms, rate, 100 * rate / peak[t])
                row["ms_%d" % t] = ms
                if k == "3x3":
                    sums[t][0] += gf
                    sums[t][1] += ms
            print(line)
            rows.append(row)
        for t in threads:
            if sums[t][1] > 0:
                rate = sums[t][0] / sums[t][1] * 1e3
                print("3x3 convs, %d thread%s: %.2f GFLOP in %.2f ms = %.0f GFLOP/s, %.0f%% of peak" % (
                    t, "s" if t > 1 else "", sums[t][0], sums[t][1], rate, 100 * rate / peak[t]))
        out["models"][m] = {"latency_ms": {t: statistics.median(total[t]) for t in threads},
                            "layers": rows}
    if a.json_out:
        with open(a.json_out, "w") as f:
            json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
