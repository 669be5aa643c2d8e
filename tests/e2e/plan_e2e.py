#!/usr/bin/python3
"""The planner end to end: a robot and a peer splitd on loopback.

Usage: plan_e2e.py SPLITD

On peer_faults.py's small CNN, a robot configured with policy = latency and
a robot whose compute costs 50 W and whose radio and waiting nearly nothing
(so the latency and the energy optimum differ):
  * ?policy=energy runs at the least-energy candidate of /v1/status?explain=1
    (computed here from the candidates' predictions), ?policy=latency at the
    current plan (the configured policy's), ?policy=slo at the least energy
    within planner.slo_ms; the energy and latency plans differ; an unknown
    policy gets a 400 naming the accepted ones;
  * daemon.state_dir: after a clean stop the state file holds what was
    learnt (the requests, the peer's speed, the link); a restart starts from
    it (log line, /v1/status planner.state.restored and runs_learnt) before
    any request; a corrupt file, one of another peer and one of another
    format version are each ignored with a warning naming the file and the
    reason, and the robot serves; no temporary file is left behind.
Prints 'N passed, N failed' and exits non-zero on any failure.
"""
import json
import os
import re
import signal
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peer_faults as pf  # noqa: E402  (its model, daemon and counters)
from peer_faults import check, poll, ready  # noqa: E402
from split_e2e import free_port, peer_conf  # noqa: E402

SLO_MS = 1000


PLANNER = f"""[planner]
policy = latency
slo_ms = {SLO_MS}
# computing here is dear, sending and waiting nearly free: energy says send
p_compute_w = 50
p_tx_w = 0.001
p_wait_w = 0.001
"""


def robot_conf(model, port, peer_port, state_dir):
    """peer_faults.py's robot (power off, a quick prober) with a state
    directory and the planner above."""
    base = pf.robot_conf(model, port, peer_port)
    head, _, tail = base.partition("[planner]")
    return (head.replace("[daemon]\n", f"[daemon]\nstate_dir = {state_dir}\n", 1) + PLANNER
            + tail[tail.index("[model.m]"):])


def status(port, explain=False):
    st, data = pf.call(f"http://127.0.0.1:{port}/v1/status" + ("?explain=1" if explain else ""), timeout=10)
    return json.loads(data)["models"][0] if st == 200 else None


def key(cut, enc, bands):
    return (int(cut), enc if enc not in (None, "local") else "local", int(bands or 1))


def placement(r):
    p = r["placement"]
    return key(p["cut"], p["encoding"], p["bands"])


def best(cands, objective, slo=None):
    """The candidate the policy picks, computed here from the predictions."""
    pool = cands
    if slo is not None:
        pool = [c for c in cands if c["total_ms"] <= slo] or cands
        if pool is cands:
            objective = "total_ms"
    c = min(pool, key=lambda c: c[objective])
    return key(c["cut"], c["encoding"], c["bands"])


def run_policy(robot, body):
    """One request per policy, each against the status just before and just
    after it (a probe may move the link between them: then again)."""
    got = {}
    for pol, want_of in (("energy", lambda s: best(s["planner"]["candidates"], "energy_j")),
                         ("latency", lambda s: key(s["planner"]["cut"], s["planner"]["encoding"],
                                                   s["planner"]["bands"])),
                         ("slo", lambda s: best(s["planner"]["candidates"], "energy_j", SLO_MS))):
        for attempt in range(5):
            before = want_of(status(robot.port, True))
            st, r = robot.infer(body, "application/x-npy", f"?policy={pol}")
            after = want_of(status(robot.port, True))
            if before == after:
                break
        check(f"?policy={pol}: 200, and the plan it ran is the {pol} choice {before}",
              st == 200 and not r["placement"]["fallback"] and placement(r) == before,
              (st, r.get("placement"), before, after))
        got[pol] = placement(r) if st == 200 else None
    check(f"the energy plan {got['energy']} and the latency plan {got['latency']} differ",
          got["energy"] is not None and got["energy"] != got["latency"])
    st, r = robot.infer(body, "application/x-npy", "?policy=fastest")
    msg = (r.get("error") or {}).get("message", "") if isinstance(r.get("error"), dict) else ""
    check(f"?policy=fastest: 400 naming the policies ({msg})", st == 400 and "latency, energy, slo" in msg, (st, r))


def max_bands_reload(robot, conf):
    """planner.max_bands by SIGHUP, with a peer that is a splitd (with
    peer.allow_unverified the planner never bands): the planner runs with
    the new limit, and its candidates follow it both ways."""
    def bands(s):
        return max((c["bands"] for c in s["planner"]["candidates"]), default=0)

    s = status(robot.port, True)
    check("max_bands: 1 before the reload, no banded candidate",
          s["planner"]["config"]["max_bands"] == 1 and bands(s) == 1, (s["planner"]["config"], bands(s)))
    for limit in (4, 1):
        with open(robot.path, "w") as f:
            f.write(conf.replace("[planner]\n", f"[planner]\nmax_bands = {limit}\n", 1))
        n0 = robot.text().count("reload: done")
        robot.proc.send_signal(signal.SIGHUP)
        check(f"max_bands: reload to {limit}", poll(lambda: robot.text().count("reload: done") > n0, 30))
        s = status(robot.port, True)
        check(f"max_bands: the planner runs with {limit} and weighs up to {limit} bands",
              s["planner"]["config"]["max_bands"] == limit and bands(s) == limit,
              (s["planner"]["config"], bands(s)))
    with open(robot.path, "w") as f:
        f.write(conf)


def start_robot(splitd, conf, tmp, name):
    rport = int(re.search(r"listen = 127\.0\.0\.1:(\d+)", conf).group(1))
    robot = pf.Daemon(splitd, conf, rport, name, tmp)
    robot.infer = pf.Robot(rport).infer
    check(f"{name} starts", poll(lambda: ready(rport) or not robot.alive(), 60) and robot.alive())
    return robot


def stop_robot(robot):
    rc = robot.stop()
    log = robot.text()
    check(f"{robot.name} exits cleanly on SIGTERM (status {rc})", rc == 0, log[-1500:])
    bad = [l for l in log.splitlines() if "Sanitizer" in l or "runtime error" in l]
    check(f"no sanitizer report in {robot.name}'s log", not bad, bad[:5])
    return log


def restart_with(splitd, conf, tmp, name, body, path, reason):
    """A robot started on a bad state file: warned about, ignored, serving."""
    robot = start_robot(splitd, conf, tmp, name)
    s = status(robot.port)
    st, r = robot.infer(body, "application/x-npy")
    log = stop_robot(robot)
    warned = [l for l in log.splitlines() if "planner state" in l and path in l and "ignored" in l]
    check(f"{name}: warned, naming the file and why ({reason})",
          warned and reason in warned[0], warned or log[-1500:])
    check(f"{name}: starts from scratch and serves", s["planner"]["state"]["restored"] is False
          and s["planner"]["state"]["runs_learnt"] == 0 and st == 200, (s["planner"]["state"], st))


def main():
    splitd = sys.argv[1]
    tmp = tempfile.mkdtemp(prefix="splitd-plan-")
    state_dir = os.path.join(tmp, "state")
    os.mkdir(state_dir)
    path = os.path.join(state_dir, "m.plan.json")
    model = os.path.join(tmp, "faults.onnx")
    pf.write_model(model)
    pport, rport = free_port(), free_port()
    peer = pf.Daemon(splitd, peer_conf(model, pport), pport, "peer", tmp)
    conf = robot_conf(model, rport, pport, state_dir)
    x = np.random.default_rng(1).standard_normal((1, 3, 32, 32)).astype(np.float32)
    body = pf.npy_bytes(x)
    try:
        check("peer starts", poll(lambda: ready(pport) or not peer.alive(), 60) and peer.alive())
        robot = start_robot(splitd, conf, tmp, "robot")
        check("robot sees its peer up and calibrated",
              poll(lambda: (status(rport) or {}).get("peer", {}).get("state") == "up"
                   and status(rport)["planner"]["peer_calibrated"], 30))
        for _ in range(12):
            robot.infer(body, "application/x-npy")
        for q in ("?cut=2&encoding=f16", "?cut=1&encoding=i8", "?cut=0&encoding=f32"):
            st, r = robot.infer(body, "application/x-npy", q)
            check(f"{q}: offloaded", st == 200 and not r["placement"]["fallback"], (st, r.get("placement")))
        run_policy(robot, body)
        max_bands_reload(robot, conf)
        learnt = status(rport)["planner"]["state"]["runs_learnt"]
        stop_robot(robot)

        # the state as written on the clean stop
        with open(path) as f:
            saved = json.load(f)
        check(f"state file written on stop: {saved['runs']} requests learnt (status said {learnt})",
              saved["runs"] >= learnt > 0 and saved["peer"] == f"http://127.0.0.1:{pport}"
              and saved["peer_speed"] > 0 and saved["link"]["rtt_ms"] is not None,
              {k: saved[k] for k in ("runs", "peer", "peer_speed", "link")})
        check("no temporary file left in the state directory", os.listdir(state_dir) == ["m.plan.json"],
              os.listdir(state_dir))

        # a restart starts from it, before any request
        robot = start_robot(splitd, conf, tmp, "robot-restarted")
        s = status(rport)
        check("restarted: /v1/status says the state was restored with what was learnt",
              s["planner"]["state"]["restored"] is True and s["planner"]["state"]["runs_learnt"] == saved["runs"]
              and s["planner"]["state"]["file"] == path, s["planner"]["state"])
        log = stop_robot(robot)
        line = [l for l in log.splitlines() if f"planner state from {path}" in l]
        check(f"restarted: the log says so ({line[0].strip() if line else None})",
              line and f"{saved['runs']} requests learnt" in line[0], log[-1500:])

        # bad files: ignored with the reason, the robot serves
        with open(path) as f:
            good = f.read()
        with open(path, "w") as f:
            f.write(good[: len(good) // 2])
        restart_with(splitd, conf, tmp, "robot-truncated", body, path, "not valid JSON")
        with open(path, "w") as f:
            f.write(good.replace(f"http://127.0.0.1:{pport}", "http://127.0.0.1:1"))
        restart_with(splitd, conf, tmp, "robot-other-peer", body, path, "of peer http://127.0.0.1:1")
        with open(path, "w") as f:
            f.write(good.replace('"version": 1', '"version": 99'))
        restart_with(splitd, conf, tmp, "robot-other-version", body, path, "format version 99")
        check("no temporary file left after the restarts", os.listdir(state_dir) == ["m.plan.json"],
              os.listdir(state_dir))
    finally:
        peer.stop()
        if pf.FAIL:
            print(f"--- logs in {tmp}")


if __name__ == "__main__":
    try:
        main()
    except Exception:  # a crash of the test is a failure, not a pass
        import traceback
        traceback.print_exc()
        pf.FAIL += 1
    print(f"{pf.PASS} passed, {pf.FAIL} failed")
    sys.exit(1 if pf.FAIL else 0)
