#!/usr/bin/python3
"""The planner against the oracle, in the two-namespace lab (issue 7).

Usage: planner_oracle.py SPLITD MODELS_DIR [--model M ...] [--rate R ...]
                         [--cpu F ...] [--requests N] [--out FILE.md]

A peer and a robot splitd run in network namespaces joined by a tbf-shaped
veth (tools/netlab.sh); the robot runs in a CPU-quota cgroup. For each
robot CPU share x link rate x model: every candidate of a dense subset of
cuts (the bottlenecks, see bench/split_grid.py: frontier) with f32, f16 and
i8, the JPEG at cut 0, and all-local are forced and measured; then the
planner chooses; then the few best candidates, the planner's choice forced
and the planner unforced are measured again, interleaved (sg.confirm: the
best of ~60 screened medians is biased low). Checks per cell:
  * the planner's choice, measured, is within 10 % of the best measured
    candidate (the oracle), or is that candidate (the two medians then
    differ by noise only);
  * the planner's own prediction (/v1/status predicted_ms) is within 15 %
    of what its choice measured.
Then the link rate changes while requests run: the plan follows within a
few seconds, and without flapping (splitd_plan_changes_total).
Exit 77 (skipped) when not root or namespaces do not work here.
"""
import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench"))
import split_grid as sg  # noqa: E402

PASS = FAIL = 0


def check(name, ok, detail=""):
    global PASS, FAIL
    if ok:
        PASS += 1
        print(f"ok   {name}", flush=True)
    else:
        FAIL += 1
        print(f"FAIL {name} {detail}", flush=True)


def follow_rate(lab, model, jpeg, cpu, plans, seconds=10.0, settle_s=5.0):
    """Change the rate between two whose static plans differ while requests
    stream; the plan must reach the new static plan within settle_s and not
    change more than twice per phase."""
    rates = sorted(r for (m, c, r) in plans if m == model and c == cpu)
    pair = None
    for lo in rates:
        for hi in reversed(rates):
            if hi > lo and plans[(model, cpu, lo)] != plans[(model, cpu, hi)]:
                pair = (hi, lo)
                break
        if pair:
            break
    if not pair:
        print(f"note: {model} at cpu {cpu:g}: the planner chose the same plan at every rate "
              f"({plans.get((model, cpu, rates[0]))}); rate following not exercised there")
        return None
    hi, lo = pair
    lines = [f"rate following, {model}, robot {cpu:g} core: {hi:g} -> {lo:g} -> {hi:g} Mbit/s",
             "", "| phase | rate | expected cut | reached after s | plan changes in phase | cuts seen |",
             "|---|---:|---:|---:|---:|---|"]
    lab.set_rate(hi)
    for _ in range(5):
        lab.infer(model, jpeg)
    for phase, rate in enumerate((lo, hi)):
        want = plans[(model, cpu, rate)][0]
        c0 = lab.metric("splitd_plan_changes_total", model) or 0
        lab.set_rate(rate)
        t0 = time.monotonic()
        reached, seen = None, []
        while time.monotonic() - t0 < seconds:
            r = lab.infer(model, jpeg)
            cut = r["placement"]["cut"]
            seen.append(cut)
            if cut == want and reached is None:
                reached = time.monotonic() - t0
            elif cut != want:
                reached = None
        changes = (lab.metric("splitd_plan_changes_total", model) or 0) - c0
        st, link = lab.model_status(model)
        lines.append(f"| {phase + 1} | {rate:g} | {want} | "
                     f"{'never' if reached is None else f'{reached:.1f}'} | {changes:.0f} | "
                     f"{sorted(set(seen))} (link est. {link['bandwidth_bits_per_second'] / 1e6:.0f} Mbit/s) |")
        check(f"{model} cpu {cpu:g}: plan follows {rate:g} Mbit/s to cut {want} within {settle_s:g} s "
              f"({'never' if reached is None else f'{reached:.1f} s'}; now {st['planner']['plan']}, "
              f"link estimate {link['bandwidth_bits_per_second'] / 1e6:.0f} Mbit/s)",
              reached is not None and reached <= settle_s)
        check(f"{model} cpu {cpu:g}: no flapping at {rate:g} Mbit/s ({changes:.0f} plan changes)", changes <= 2)
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("splitd")
    ap.add_argument("models")
    ap.add_argument("--model", action="append")
    ap.add_argument("--rate", action="append", type=float)
    ap.add_argument("--cpu", action="append", type=float)
    ap.add_argument("--requests", type=int, default=3)
    ap.add_argument("--confirm", type=int, default=10, help="rounds of the confirmation stage")
    ap.add_argument("--out")
    a = ap.parse_args()
    why = sg.can_run()
    if why:
        print(f"SKIP planner_oracle: {why}")
        return 77
    models = {m: os.path.join(a.models, m, "model.onnx") for m in (a.model or ["mobilenet_v2"])}
    for m, p in models.items():
        if not os.path.exists(p):
            print(f"SKIP planner_oracle: {p} is missing")
            return 77
    rates = a.rate or [20.0, 137.0, 400.0]
    cpus = a.cpu or [0.125, 0.5, 1.0]
    lab = sg.Lab(a.splitd, models)
    jpeg = sg.make_jpeg(os.path.join(lab.tmp, "frame.jpg"))
    md = ["# planner vs oracle", "",
          "| model | rate Mbit/s | robot core | best measured | ms | planner choice | measured ms | chosen/best | "
          "predicted ms | pred err |", "|---|---:|---:|---|---:|---|---:|---:|---:|---:|"]
    tables, plans, follow = [], {}, []
    t_start = time.time()
    try:
        for cpu in cpus:
            lab.up(rates[0], cpu)
            sg.enter_netns(sg.NS_ROBOT)
            lab.start()
            for rate in rates:
                lab.set_rate(rate)
                for model in models:
                    n, f32 = sg.model_cuts(lab, model)
                    cands = sg.candidates(n, sg.frontier(n, f32), ["f32", "f16", "i8"])
                    cell = sg.measure_cell(lab, model, jpeg, cands, n, a.requests, log_every=False)
                    rows = sg.summarize(cell, n, rate)
                    orc = sg.oracle(cell, rows)
                    cf = sg.confirm(lab, model, jpeg, cell, rows, rounds=a.confirm)
                    tables.append(sg.fmt_table(model, rate, cpu, rows, orc, cell["link"], n))
                    tables.append("confirmation (interleaved, %d rounds): " % a.confirm + ", ".join(
                        f"cut {k} {e} {v:.1f} ms" for (k, e), v in sorted(cf["medians"].items(), key=lambda x: x[1]))
                        + f"; planner unforced {cf['chosen_ms']:.1f} ms at {cf['choices']}\n\n" + cf["diag"])
                    plans[(model, cpu, rate)] = cf["chosen"]
                    b, ch, orc = cf["best"], cf["chosen"], cf
                    pe = orc["pred_err"]
                    md.append(f"| {model} | {rate:g} | {cpu:g} | cut {b[0]} {b[1]} | {cf['best_ms']:.1f} | "
                              f"cut {ch[0]} {ch[1]} | {orc['chosen_ms']:.1f} | {orc['ratio']:.2f} | "
                              f"{orc['predicted_ms'] or float('nan'):.1f} | "
                              f"{'n/a' if pe is None else f'{pe * 100:+.0f}%'} |")
                    tag = f"{model} {rate:g} Mbit/s cpu {cpu:g}"
                    check(f"{tag}: choice cut {ch[0]} {ch[1]} {orc['chosen_ms']:.1f} ms within 10% of best "
                          f"cut {b[0]} {b[1]} {cf['best_ms']:.1f} ms ({orc['ratio']:.2f}"
                          f"{', the same candidate' if tuple(ch[:2]) == tuple(b[:2]) else ''})",
                          orc["ratio"] <= 1.10 or tuple(ch[:2]) == tuple(b[:2]))
                    check(f"{tag}: predicted {orc['predicted_ms'] or float('nan'):.1f} ms within 15% of measured "
                          f"{orc['chosen_ms']:.1f} ms", pe is not None and abs(pe) <= 0.15)
            for model in models:
                f = follow_rate(lab, model, jpeg, cpu, plans)
                if f:
                    follow.append(f)
            lab.stop()
    except Exception as e:  # a crash of the test is a failure
        import traceback
        traceback.print_exc()
        check("lab runs", False, str(e))
        print("--- robot.log (tail)\n" + lab.tail("robot") + "--- peer.log (tail)\n" + lab.tail("peer"))
    finally:
        lab.down()
    text = "\n".join(md) + "\n\n" + "\n".join(follow) + "\n" + "\n".join(tables)
    print(text)
    print(f"({time.time() - t_start:.0f} s)")
    if a.out:
        with open(a.out, "w") as f:
            f.write(text)
    print(f"{PASS} passed, {FAIL} failed")
    return 1 if FAIL else 0


if __name__ == "__main__":
    sys.exit(main())
