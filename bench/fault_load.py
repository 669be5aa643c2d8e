#!/usr/bin/python3
"""A robot under load while its peer dies and freezes (issue 15's figures).

Usage: bench/fault_load.py SPLITD MODEL.onnx [--connections 16] [--seconds 60]
                           [--cut K] [--encoding f16] [--out FILE.json]

A peer and a robot splitd on loopback (threads 1 each, as tests/e2e). N client
threads, one keep-alive connection each, post the same npy tensor to the robot
with ?cut=K&encoding=E (offloaded) for the whole run. At 1/4 of the run the
peer is killed with SIGKILL and started again 5 s later; at 1/2 it is frozen
with SIGSTOP for 5 s (the robot's request deadline decides), then SIGCONT.
Prints, and writes as JSON: requests sent, answered (any HTTP status),
answered 200, 5xx, other statuses, lost (sent and never answered: a
connection error or no answer within 30 s), fallbacks, and the robot's RSS
(VmRSS) at the start and the end, with the sanitizer reports found in its
log. Exit status 1 when a request was lost, answered 5xx, or the robot died.
"""
import argparse
import http.client
import json
import os
import signal
import sys
import tempfile
import threading
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "e2e"))
import split_e2e as e2e  # noqa: E402


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("splitd")
    ap.add_argument("model")
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--cut", type=int, default=3)
    ap.add_argument("--encoding", default="f16")
    ap.add_argument("--out")
    a = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="splitd-fault-")
    pport, rport = e2e.free_port(), e2e.free_port()
    peer = e2e.Daemon(a.splitd, e2e.peer_conf(a.model, pport), pport, "peer", tmp)
    if not e2e.wait_ready(pport, peer.proc):
        sys.exit("the peer did not start")
    robot = e2e.Daemon(a.splitd, e2e.robot_conf(a.model, rport, pport, timeout_ms=2000), rport, "robot", tmp)
    if not e2e.wait_ready(rport, robot.proc):
        sys.exit("the robot did not start")
    _, meta, _ = e2e.http(f"http://127.0.0.1:{rport}/v2/models/m")
    shape = json.loads(meta)["inputs"][0]["shape"]
    body = e2e.npy_bytes(np.random.default_rng(7).standard_normal(shape).astype(np.float32))
    path = f"/v1/infer?cut={a.cut}&encoding={a.encoding}&outputs=none"
    # warm up, then the baseline RSS
    for _ in range(5):
        e2e.infer(rport, body, "application/x-npy", f"?cut={a.cut}&encoding={a.encoding}&outputs=none")
    rss0 = rss_kb(robot.proc.pid)

    lock = threading.Lock()
    c = {"sent": 0, "answered": 0, "ok": 0, "5xx": 0, "other": 0, "lost": 0, "fallback": 0}
    stop = time.monotonic() + a.seconds

    def client():
        conn = None
        while time.monotonic() < stop:
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", rport, timeout=30)
            with lock:
                c["sent"] += 1
            try:
                conn.request("POST", path, body, {"Content-Type": "application/x-npy"})
                r = conn.getresponse()
                data = r.read()
            except (OSError, http.client.HTTPException):
                with lock:
                    c["lost"] += 1
                conn.close()
                conn = None
                continue
            with lock:
                c["answered"] += 1
                if r.status == 200:
                    c["ok"] += 1
                    try:
                        c["fallback"] += bool(json.loads(data)["placement"]["fallback"])
                    except (ValueError, KeyError):
                        pass
                elif r.status >= 500:
                    c["5xx"] += 1
                else:
                    c["other"] += 1
            if r.getheader("Connection", "").lower() == "close":
                conn.close()
                conn = None
        if conn:
            conn.close()

    threads = [threading.Thread(target=client) for _ in range(a.connections)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    events = []
    time.sleep(a.seconds / 4)
    peer.kill(signal.SIGKILL)
    events.append((round(time.monotonic() - t0, 1), "peer SIGKILL"))
    time.sleep(5)
    peer.start()
    events.append((round(time.monotonic() - t0, 1), "peer restarted"))
    time.sleep(max(0, t0 + a.seconds / 2 - time.monotonic()))
    peer.proc.send_signal(signal.SIGSTOP)
    events.append((round(time.monotonic() - t0, 1), "peer SIGSTOP"))
    time.sleep(5)
    peer.proc.send_signal(signal.SIGCONT)
    events.append((round(time.monotonic() - t0, 1), "peer SIGCONT"))
    for t in threads:
        t.join()
    alive = robot.proc.poll() is None
    rss1 = rss_kb(robot.proc.pid) if alive else -1
    _, st, _ = e2e.http(f"http://127.0.0.1:{rport}/v1/status")
    peer_state = json.loads(st)["models"][0]["peer"] if alive else None
    robot.kill(signal.SIGTERM)
    peer.kill(signal.SIGTERM)
    log = open(os.path.join(tmp, "robot.log")).read()
    sanitizer = [ln for ln in log.splitlines() if "Sanitizer" in ln or "runtime error" in ln]
    res = dict(c, connections=a.connections, seconds=a.seconds, cut=a.cut, encoding=a.encoding,
               events=events, robot_alive=alive, robot_exit=robot.proc.returncode,
               rss_kb_start=rss0, rss_kb_end=rss1, sanitizer_reports=sanitizer[:5],
               peer_counters={k: peer_state.get(k) for k in ("state", "failures", "refusals", "bad_answers")}
               if peer_state else None)
    print(json.dumps(res, indent=1))
    if a.out:
        with open(a.out, "w") as f:
            json.dump(res, f, indent=1)
    return 0 if alive and not c["lost"] and not c["5xx"] and not sanitizer else 1


if __name__ == "__main__":
    sys.exit(main())
