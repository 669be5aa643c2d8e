#!/usr/bin/python3
"""Banded (streamed) cuts against the best layer split, in the two-namespace
lab (issue 9 benchmark).

For each cell (model x link rate x robot CPU share):
  1. the layer-split oracle: every frontier cut x {f16, i8} plus the JPEG at
     cut 0 and all-local, screened with --requests rounds, then the best
     three confirmed in --confirm interleaved rounds (medians);
  2. banded plans: the --top best band-legal cuts of the screening (cut 0,
     the input in bands, included; i8 and f16) x B in --bands, measured
     interleaved with the confirmed best layer split, the same cut unbanded
     (B = 1, the control) and the best banded plan with the peer's wavefront
     off (?wavefront=0: the peer waits for the whole body; the robot-only
     overlap);
  3. one row per cell: best layer split and best banded plan (p50, p95,
     robot energy as the daemon reports it), the gain, the bound
     min(C, X) x (1 - 1/B) with C and X the local compute and the transfer
     of the same cut unbanded, measured, and the planner's own choice
     (requests without cut=), measured in the same rounds.
The peer runs its wavefront (peer_server.wavefront, default on): it computes
its row-local layers as the bands arrive, so the link overlaps both the
robot's compute and the peer's.

  sudo /usr/bin/python3 bench/band_grid.py --splitd build/daemon/splitd \\
       --models build/models --rate 20 --rate 137 --rate 400 --cpu 0.125 --cpu 1 \\
       --out bench/results/band_grid.md

Needs root (namespaces, tc, cgroups); the lab is removed on exit.
"""
import argparse
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import split_grid as sg  # noqa: E402


def med(xs):
    return statistics.median(xs) if xs else float("nan")


CTYPE = "image/jpeg"


def run_cands(lab, model, jpeg, cands, rounds):
    """cands: (cut, enc, bands) tuples; interleaved rounds; per candidate the
    totals and parts, and one timeline."""
    rows = {c: {"total": [], "local": [], "transfer": [], "remote": [], "joules": [], "method": None,
                "fallbacks": 0, "timeline": None, "post": [], "back": []} for c in cands}
    def one(c):
        k, e, b = c[:3]
        if k == "plan":     # the planner's own choice: no cut= in the request
            return lab.infer(model, jpeg, None, None, None, CTYPE)
        return lab.infer(model, jpeg, k, None if e == "local" else e, b, CTYPE,
                         "&wavefront=0" if len(c) > 3 else "")

    for c in cands:     # warm-up
        one(c)
    for _ in range(rounds):
        for c in cands:
            r = one(c)
            t = r["timing_ms"]
            row = rows[c]
            pl = r["placement"]
            row.setdefault("placements", set()).add(
                "all-local" if pl["remote_nodes"] == 0 and not pl.get("fallback") else
                f"cut {pl['cut']} {pl['encoding']}" + (f" x{pl['bands']}" if pl.get("bands", 1) > 1 else ""))
            row["fallbacks"] += bool(r["placement"].get("fallback"))
            row["total"].append(t["total"])
            for f in ("local", "transfer", "remote"):
                row[f].append(t.get(f, 0.0) or 0.0)
            if t.get("postprocess") is not None:     # decode + NMS, where it ran
                row["post"].append(t["postprocess"])
            row["back"].append(pl.get("bytes_back", 0))
            en = r.get("energy")
            if en:
                row["joules"].append(en["joules"])
                row["method"] = en.get("method")
            if r.get("timeline"):
                row["timeline"] = r.get("timeline")
    return rows


def band_legal(lab, model, jpeg, k):
    st, body = lab.http("POST", f"/v1/infer?model={model}&cut={k}&bands=2&encoding=f16", jpeg, CTYPE)
    return st == 200


def name(c):
    k, e, b = c[:3]
    if e == "local":
        return "all-local"
    return f"cut {k} {e}" + (f" x{b}" if b and b > 1 else "") + (" (no peer wavefront)" if len(c) > 3 else "")


def cell(lab, model, jpeg, requests, confirm, top, bands_list):
    n, f32 = sg.model_cuts(lab, model)
    cuts = [k for k in sg.frontier(n, f32) if 0 < k < n]
    first = [(0, "input", 1)] if CTYPE == "image/jpeg" else [(0, "f16", 1), (0, "i8", 1)]
    layer = first + [(n, "local", 1)] + [(k, e, 1) for k in cuts for e in ("f16", "i8")]
    scr = run_cands(lab, model, jpeg, layer, requests)
    ranked = sorted(layer, key=lambda c: med(scr[c]["total"]))
    conf = run_cands(lab, model, jpeg, ranked[:3], confirm)
    best_layer = min(ranked[:3], key=lambda c: med(conf[c]["total"]))
    # band-legal cuts, best first by their screened layer time
    seen, bcuts = set(), []
    for c in ranked:
        k = c[0]
        if 0 <= k < n and k not in seen:
            seen.add(k)
            if band_legal(lab, model, jpeg, k):
                bcuts.append(k)
        if len(bcuts) >= top:
            break
    bc = []
    for k in bcuts:
        for e in ("i8", "f16"):
            bc.append((k, e, 1))
            bc += [(k, e, b) for b in bands_list]
    plan = ("plan", None, None)
    cands = [best_layer] + [c for c in bc if c != best_layer] + [plan]
    rows = run_cands(lab, model, jpeg, cands, confirm)
    layer_ms = med(rows[best_layer]["total"])
    banded = [c for c in cands if c[0] != "plan" and c[2] > 1]
    best_b = min(banded, key=lambda c: med(rows[c]["total"])) if banded else None
    if best_b:
        # the winner again with its control, the best layer split and the
        # peer's wavefront off, interleaved: the final figures of the cell
        ctrl = (best_b[0], best_b[1], 1)
        nowf = best_b + ("nowave",)
        fin = list(dict.fromkeys([best_layer, best_b, ctrl, nowf, plan]))
        rows.update(run_cands(lab, model, jpeg, fin, confirm))
        layer_ms = med(rows[best_layer]["total"])
    out = {"model": model, "n": n, "best_layer": name(best_layer), "layer_p50": layer_ms,
           "layer_mj": med(rows[best_layer]["joules"]) * 1e3, "method": rows[best_layer]["method"],
           "plan_p50": med(rows[plan]["total"]), "plan_mj": med(rows[plan]["joules"]) * 1e3,
           "plan_chose": ", ".join(sorted(rows[plan].get("placements", []))),
           "layer_p95": sg.pct(rows[best_layer]["total"], 0.95), "layer_parts": {
               f: med(rows[best_layer][f]) for f in ("local", "transfer", "remote")}}
    if best_b:
        ctrl = (best_b[0], best_b[1], 1)
        C, X = med(rows[ctrl]["local"]), med(rows[ctrl]["transfer"])
        out.update({"best_banded": name(best_b), "banded_p50": med(rows[best_b]["total"]),
                    "banded_mj": med(rows[best_b]["joules"]) * 1e3,
                    "banded_p95": sg.pct(rows[best_b]["total"], 0.95),
                    "control": name(ctrl), "control_p50": med(rows[ctrl]["total"]),
                    "C": C, "X": X, "bound": min(C, X) * (1 - 1 / best_b[2]),
                    "gain_vs_control": med(rows[ctrl]["total"]) - med(rows[best_b]["total"]),
                    "nowave_p50": med(rows[nowf]["total"]), "nowave_mj": med(rows[nowf]["joules"]) * 1e3,
                    "R": med(rows[ctrl]["remote"]),
                    # with the peer's wavefront three stages overlap
                    "bound3": (C + X + med(rows[ctrl]["remote"]) - max(C, X, med(rows[ctrl]["remote"])))
                    * (1 - 1 / best_b[2]),
                    "timeline": rows[best_b]["timeline"],
                    "fallbacks": sum(r["fallbacks"] for r in rows.values())})
    out["all"] = {(name(c) if c[0] != "plan" else "planner"): {
        "p50": med(r["total"]), "local": med(r["local"]), "transfer": med(r["transfer"]),
        "remote": med(r["remote"]), "post_ms": med(r["post"]), "bytes_back": med(r["back"])}
        for c, r in rows.items()}
    # what came back and the decode + NMS per request, over every request of
    # the cell that went to the peer (and, all-local, that ran here)
    out["post_ms"] = med([x for r in rows.values() for x in r["post"]])
    out["post_ms_local"] = med(rows[(n, "local", 1)]["post"]) if (n, "local", 1) in rows else med(
        scr[(n, "local", 1)]["post"])
    out["bytes_back"] = med([x for r in rows.values() for x in r["back"] if x])
    # the target cells: the best layer split's local compute and
    # transfer each at least a quarter of its time
    lp = out["layer_parts"]
    out["target_cell"] = lp["local"] >= layer_ms / 4 and lp["transfer"] >= layer_ms / 4
    return out


def fmt_row(rate, cpu, o):
    if "best_banded" not in o:
        return (f"| {o['model']} | {rate:g} | {cpu:g} | {o['best_layer']} | {o['layer_p50']:.1f} | "
                f"{o['layer_p95']:.1f} | {o['layer_mj']:.0f} | (no legal banded cut) | | | | | | | | | | | "
                f"{o['plan_chose']} | {o['plan_p50']:.1f} | {o['plan_p50'] / o['layer_p50']:.2f} |")
    gain = (o["layer_p50"] - o["banded_p50"]) / o["layer_p50"] * 100
    egain = (o["layer_mj"] - o["banded_mj"]) / o["layer_mj"] * 100 if o["layer_mj"] else float("nan")
    return (f"| {o['model']} | {rate:g} | {cpu:g} | {o['best_layer']} | {o['layer_p50']:.1f} | "
            f"{o['layer_p95']:.1f} | {o['layer_mj']:.0f} | {o['best_banded']} | {o['banded_p50']:.1f} | "
            f"{o['banded_p95']:.1f} | {o['banded_mj']:.0f} | "
            f"{gain:+.0f}% | {egain:+.0f}% | {o['nowave_p50']:.1f} | {o['control']} {o['control_p50']:.1f} | "
            f"{o['gain_vs_control']:.1f} | "
            f"{o['bound']:.1f} / {o['bound3']:.1f} (C {o['C']:.1f}, X {o['X']:.1f}, R {o['R']:.1f}) | "
            f"{'yes' if o.get('target_cell') else 'no'} | {o['plan_chose']} | {o['plan_p50']:.1f} | "
            f"{o['plan_p50'] / o['layer_p50']:.2f} |")


def fmt_timeline(o):
    tl = o.get("timeline") or []
    lines = [f"timeline of one request, {o['model']} {o['best_banded']} (ms from its arrival at the robot; "
             "the peer's times are placed on the robot's clock at the moment the request left, so they "
             "are late by the headers' one-way delay):", "",
             "| band | rows | bytes | robot compute start | end | ready | all handed to the socket | "
             "all in at the peer | peer step start | end |",
             "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    def f(t, k):
        return f"{t[k]:.2f}" if k in t else "-"
    for t in tl:
        lines.append(f"| {t['band']} | {t['rows'][0]}-{t['rows'][1]} | {t['bytes']} | {t['compute_start_ms']:.2f} | "
                     f"{t['compute_end_ms']:.2f} | {t['ready_ms']:.2f} | {t['sent_ms']:.2f} | "
                     f"{f(t, 'peer_arrived_ms')} | {f(t, 'peer_compute_start_ms')} | {f(t, 'peer_compute_end_ms')} |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--splitd", required=True)
    ap.add_argument("--models", required=True)
    ap.add_argument("--model", action="append")
    ap.add_argument("--rate", action="append", type=float)
    ap.add_argument("--cpu", action="append", type=float)
    ap.add_argument("--requests", type=int, default=3)
    ap.add_argument("--confirm", type=int, default=7)
    ap.add_argument("--top", type=int, default=2)
    ap.add_argument("--bands", default="2,4,8")
    ap.add_argument("--input", default="jpeg", choices=("jpeg", "npy"),
                    help="npy: the request is a float tensor (a sensor frame that does not compress)")
    ap.add_argument("--postprocess", choices=("yolov5", "yolov8"),
                    help="the robot's models decode this detector head where their last node runs "
                    "(the peer answers only the detections); default: the raw outputs come back")
    ap.add_argument("--score-threshold", type=float, default=0.25)
    ap.add_argument("--max-detections", type=int, default=300)
    ap.add_argument("--out")
    ap.add_argument("--json")
    a = ap.parse_args()
    global CTYPE
    why = sg.can_run()
    if why:
        sg.log("band_grid: " + why)
        return 77
    models = {m: os.path.join(a.models, m, "model.onnx") for m in (a.model or ["resnet18", "mobilenet_v2"])}
    rates, cpus = a.rate or [20.0, 137.0, 400.0], a.cpu or [0.125, 1.0]
    bl = [int(x) for x in a.bands.split(",")]
    # banded plans are opt-in (planner.max_bands = 1 by default): on here,
    # so the planner column shows what it does with them
    keys = (f"postprocess = {a.postprocess}\nscore_threshold = {a.score_threshold}\n"
            f"max_detections = {a.max_detections}\n" if a.postprocess else "")
    lab = sg.Lab(a.splitd, models, robot_planner="max_bands = 8", robot_model_keys=keys)
    jpeg = sg.make_jpeg(os.path.join(lab.tmp, "frame.jpg"))
    bodies = {m: jpeg for m in models}
    if a.input == "npy":
        # a float frame of the model's own input shape (a depth sensor's or
        # a voxel grid's: noise, nothing a codec could shrink)
        import io
        import numpy as np
        CTYPE = "application/x-npy"
        for m in models:
            with open(os.path.join(a.models, m, "model.json")) as f:
                shape = json.load(f)["inputs"][0]["shape"]
            buf = io.BytesIO()
            np.save(buf, np.random.default_rng(5).standard_normal(shape).astype(np.float32))
            bodies[m] = buf.getvalue()
    md = [f"# banded vs layer split: {', '.join(models)}; rates {rates} Mbit/s; robot cpu {cpus}; "
          f"input {a.input} " + ", ".join(f"{len(b)} B" for b in bodies.values()), "",
          f"`{' '.join(sys.argv)}`", "",
          "| model | Mbit/s | cpu | best layer split | p50 ms | p95 | robot mJ | best banded | p50 ms | p95 | "
          "robot mJ | latency vs layer | energy vs layer | same, peer wavefront off (ms) | same cut B=1 (ms) | "
          "gain vs it (ms) | bound min(C,X)(1-1/B) / with the peer (C+X+R-max)(1-1/B) | target cell | planner chose | p50 ms | planner / best layer |",
          "|---|---:|---:|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---|---:|---|---|---|---:|---:|"]
    dump, timelines, notes = [], [], []
    try:
        for cpu in cpus:
            lab.up(rates[0], cpu)
            sg.enter_netns(sg.NS_ROBOT)
            lab.start()
            for rate in rates:
                lab.set_rate(rate)
                for model in models:
                    sg.log(f"cell {model} {rate:g} Mbit/s cpu {cpu:g}")
                    o = cell(lab, model, bodies[model], a.requests, a.confirm, a.top, bl)
                    o.update(rate=rate, cpu=cpu)
                    row = fmt_row(rate, cpu, o)
                    print(row, flush=True)
                    md.append(row)
                    dump.append(o)
                    notes.append(f"- {model} {rate:g} Mbit/s cpu {cpu:g}: bytes back from the peer (median) "
                                 f"{o['bytes_back']:.0f}; decode+NMS per request (median) "
                                 f"{o['post_ms']:.3f} ms over the cell, {o['post_ms_local']:.3f} ms all-local")
                    if o.get("timeline") and len(timelines) < 2:
                        timelines.append(fmt_timeline(o) + f"\n\n(cell {rate:g} Mbit/s, cpu {cpu:g})")
            lab.stop()
    finally:
        lab.down()
    methods = sorted({o.get("method") or "none" for o in dump})
    md += ["", f"robot mJ: the energy of the request's window as the robot's daemon reports it "
               f"(method: {', '.join(methods)}; median).", ""]
    if a.postprocess:
        md += [f"post-processing: {a.postprocess}, score_threshold {a.score_threshold}, max_detections "
               f"{a.max_detections}, decoded where the last node runs (nan: not measured)", ""] + notes + [""]
    else:
        md += ["raw outputs back (no post-processing):", ""] + notes + [""]
    md += timelines
    text = "\n".join(md) + "\n"
    if a.out:
        with open(a.out, "w") as f:
            f.write(text)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(dump, f, indent=1, default=str)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
