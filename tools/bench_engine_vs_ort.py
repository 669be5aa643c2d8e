#!/usr/bin/python3
"""splitd's engine against ONNX Runtime, interleaved; called by bench/engine_vs_ort.sh.

usage: bench_engine_vs_ort.py --splitd BIN --models-dir DIR --ort-script MJS
                              [--rounds R] [--runs N] [--warmup W] [--threads T]
                              [--json-out FILE] MODEL...

Per model, R rounds; each round runs `splitd bench -m M --runs N --warmup W
--threads T --json` and `node ort_bench.mjs DIR --runs N --warmup W --threads T`
one after the other, alternating which goes first. The reported latency is the
median over rounds of each round's median (p10/p90 likewise); load time is
the median of the rounds' load_ms; peak RSS is each process's ru_maxrss (max
over rounds). The memory bound is issue 3's: weights + the two largest
tensors + 25%. Accuracy: `splitd run` on the saved input vs torch's output,
and ORT's output vs torch's, as max|err| / max|torch|.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

import numpy as np


def run_rss(cmd):
    """Run cmd with wait4 so its own peak RSS is known."""
    with tempfile.TemporaryFile() as fo, tempfile.TemporaryFile() as fe:
        pid = os.fork()
        if pid == 0:
            os.dup2(fo.fileno(), 1)
            os.dup2(fe.fileno(), 2)
            try:
                os.execvp(cmd[0], cmd)
            finally:
                os._exit(127)
        _, status, ru = os.wait4(pid, 0)
        fo.seek(0)
        fe.seek(0)
        rc = os.waitstatus_to_exitcode(status)
        return rc, fo.read().decode(errors="replace"), fe.read().decode(errors="replace"), \
            ru.ru_maxrss * 1024


def last_json(text):
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                continue
    return None


def rel_err(got, want):
    if got.shape != want.shape:
        return float("inf")
    ref = float(np.abs(want).max())
    return float(np.abs(got.astype(np.float64) - want).max()) / (ref if ref > 0 else 1.0)


def splitd_accuracy(splitd, d, meta, threads):
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "out.npy")
        cmd = [splitd, "run", "-m", os.path.join(d, meta["onnx"]), "-i",
               os.path.join(d, "input_0.npy"), "-o", out, "--threads", str(threads)]
        rc, so, se, _ = run_rss(cmd)
        if rc != 0:
            return None, "splitd run failed (rc %d): %s" % (rc, (se or so).strip()[-300:])
        errs = []
        n = len(meta["outputs"])
        for i in range(n):
            p = out if n == 1 else os.path.join(tmp, "out_%d.npy" % i)
            if not os.path.exists(p):
                return None, "splitd run wrote no %s" % os.path.basename(p)
            want = np.load(os.path.join(d, "output_%d.npy" % i))
            errs.append(rel_err(np.load(p), want))
        return max(errs), None


def fmt(x, f="%.2f"):
    return "n/a" if x is None else f % x


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--splitd", required=True)
    ap.add_argument("--splitd-before", help="a second splitd (the build before a change), "
                    "interleaved in the same rounds")
    ap.add_argument("--models-dir", required=True)
    ap.add_argument("--ort-script", required=True)
    ap.add_argument("--node", default="node")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json-out")
    ap.add_argument("models", nargs="+")
    a = ap.parse_args()

    results = []
    for name in a.models:
        d = os.path.join(a.models_dir, name)
        with open(os.path.join(d, "model.json")) as f:
            meta = json.load(f)
        model = os.path.join(d, meta["onnx"])
        common = ["--runs", str(a.runs), "--warmup", str(a.warmup), "--threads", str(a.threads)]
        s_cmd = [a.splitd, "bench", "-m", model] + common + ["--json"]
        o_cmd = [a.node, a.ort_script, d] + common
        r = {"model": name, "splitd": [], "ort": [], "before": [], "errors": []}
        for rnd in range(a.rounds):
            order = [("splitd", s_cmd), ("ort", o_cmd)]
            if a.splitd_before:
                order.append(("before", [a.splitd_before] + s_cmd[1:]))
            k = rnd % len(order)
            order = order[k:] + order[:k] if a.splitd_before else (order[::-1] if rnd % 2 else order)
            for who, cmd in order:
                if who == "ort" and rnd == 0:
                    cmd = cmd + ["--check"]
                rc, so, se, rss = run_rss(cmd)
                j = last_json(so) if rc == 0 else None
                if j is None:
                    r["errors"].append("%s round %d: rc %d: %s" % (
                        who, rnd, rc, (se or so).strip()[-300:]))
                    continue
                j["peak_rss_bytes"] = rss
                r[who].append(j)
            print("  %s round %d/%d: splitd %s ms, ORT %s ms" % (
                name, rnd + 1, a.rounds,
                fmt(r["splitd"][-1]["median_ms"] if r["splitd"] else None),
                fmt(r["ort"][-1]["median_ms"] if r["ort"] else None)), file=sys.stderr, flush=True)
        acc, why = splitd_accuracy(a.splitd, d, meta, a.threads)
        if why:
            r["errors"].append(why)
        ort_acc = None
        for j in r["ort"]:
            if "outputs" in j:
                ort_acc = max(o["rel"] for o in j["outputs"])
        s_med = med(j.get("median_ms") for j in r["splitd"])
        o_med = med(j.get("median_ms") for j in r["ort"])
        b_med = med(j.get("median_ms") for j in r["before"])
        r["before_median_ms"] = b_med
        r["before_ratio"] = b_med / o_med if b_med and o_med else None
        bound = (meta["weight_bytes"] + sum(meta["largest_tensors_bytes"])) * 1.25
        s_rss = max((j["peak_rss_bytes"] for j in r["splitd"]), default=None)
        r.update({
            "splitd_median_ms": s_med,
            "splitd_p10_ms": med(j.get("p10_ms") for j in r["splitd"]),
            "splitd_p90_ms": med(j.get("p90_ms") for j in r["splitd"]),
            "ort_median_ms": o_med,
            "ort_p10_ms": med(j.get("p10_ms") for j in r["ort"]),
            "ort_p90_ms": med(j.get("p90_ms") for j in r["ort"]),
            "ratio": s_med / o_med if s_med and o_med else None,
            "splitd_load_ms": med(j.get("load_ms") for j in r["splitd"]),
            "ort_load_ms": med(j.get("load_ms") for j in r["ort"]),
            "splitd_peak_rss_bytes": s_rss,
            "ort_peak_rss_bytes": max((j["peak_rss_bytes"] for j in r["ort"]), default=None),
            "rss_bound_bytes": bound,
            "splitd_rel_err": acc, "ort_rel_err": ort_acc,
        })
        results.append(r)

    mb = 1 << 20
    hdr = ("model", "splitd ms", "ORT ms", "ratio", "load splitd", "load ORT",
           "RSS splitd MB", "bound MB", "RSS ORT MB", "err splitd", "err ORT")
    rows = []
    for r in results:
        rows.append((
            r["model"],
            "%s [%s-%s]" % (fmt(r["splitd_median_ms"]), fmt(r["splitd_p10_ms"], "%.1f"),
                            fmt(r["splitd_p90_ms"], "%.1f")),
            "%s [%s-%s]" % (fmt(r["ort_median_ms"]), fmt(r["ort_p10_ms"], "%.1f"),
                            fmt(r["ort_p90_ms"], "%.1f")),
            fmt(r["ratio"], "%.2fx"),
            fmt(r["splitd_load_ms"], "%.0f ms"), fmt(r["ort_load_ms"], "%.0f ms"),
            fmt(r["splitd_peak_rss_bytes"] and r["splitd_peak_rss_bytes"] / mb, "%.0f"),
            fmt(r["rss_bound_bytes"] / mb, "%.0f"),
            fmt(r["ort_peak_rss_bytes"] and r["ort_peak_rss_bytes"] / mb, "%.0f"),
            fmt(r["splitd_rel_err"], "%.1e"), fmt(r["ort_rel_err"], "%.1e")))
    if a.splitd_before:
        hdr = hdr[:4] + ("before ms", "before/ORT") + hdr[4:]
        rows = [row[:4] + (fmt(r["before_median_ms"]), fmt(r["before_ratio"], "%.2fx")) + row[4:]
                for row, r in zip(rows, results)]
    widths = [max(len(str(x)) for x in col) for col in zip(hdr, *rows)]
    line = "  ".join("%%-%ds" % w for w in widths)
    print(line % hdr)
    for row in rows:
        print(line % row)
    print("latency: median over %d interleaved rounds of each round's median of %d runs "
          "(%d warm-up) [p10-p90], %d threads; RSS bound = (weights + two largest tensors) "
          "x 1.25; err = max|x - torch| / max|torch|" % (a.rounds, a.runs, a.warmup, a.threads))
    for r in results:
        for e in r["errors"]:
            print("%s: %s" % (r["model"], e))
    if a.json_out:
        with open(a.json_out, "w") as f:
            json.dump(results, f, indent=1)
    return 0 if all(not r["errors"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
