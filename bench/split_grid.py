#!/usr/bin/python3
"""Split-inference grid in the two-namespace lab (tools/netlab.sh).

For each robot CPU share and link rate, a peer and a robot splitd run in
their namespaces (the robot inside the CPU-quota cgroup, TLS with client
certificates over the shaped veth). For each model, every candidate cut x
encoding is forced (`POST /v1/infer?cut=K&encoding=E`, interleaved rounds,
R requests each), next to all-local and all-offload (the JPEG at cut 0),
and then the planner chooses (no cut= in the request). Per cell one table:
bytes on the wire, measured latency (median, p95), the measured transfer vs
bytes / rate (protocol overhead), and the planner's prediction for the same
candidate from `splitd plan --json` fed with the robot's own link estimate
and the peer's own profile.

  split_grid.py --splitd BIN --models DIR [--model resnet18 ...]
                [--rate 137 --rate 400] [--cpu 1 --cpu 0.5 --cpu 0.125]
                [--requests 5] [--cuts all|frontier] [--encodings f32,f16,i8,i8+zstd]
                [--out FILE.md] [--json FILE]

Needs root (namespaces, tc, cgroups). The lab is removed on exit.
This file is also the library tests/netlab/planner_oracle.py uses.
"""
import argparse
import ctypes
import http.client
import io
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
NETLAB = os.path.join(ROOT, "tools", "netlab.sh")
# The lab's name (tools/netlab.sh): one per run unless the caller set one, so
# that two runs on one machine (CI and a developer's) never share namespaces.
LAB = os.environ.setdefault("SPLITD_NETLAB", f"splitd{os.getpid()}")
NS_ROBOT, NS_PEER = f"{LAB}-robot", f"{LAB}-peer"
MKCERTS = os.path.join(ROOT, "tools", "mkcerts.sh")
ROBOT_IP, PEER_IP, PEER_PORT, API_PORT = "10.77.0.1", "10.77.0.2", 8443, 8080
# TCP payload per L2 byte on the veth: 1448 B of data in a 1514 B frame
# (Ethernet 14 + IPv4 20 + TCP 20 + timestamps 12). tbf counts L2 bytes.
PAYLOAD_PER_L2 = 1448.0 / 1514.0
CLONE_NEWNET = 0x40000000


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def pct(xs, q):
    xs = sorted(xs)
    if not xs:
        return float("nan")
    i = (len(xs) - 1) * q
    lo = int(i)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (i - lo)


def can_run():
    """None when the lab can run here, else the reason."""
    if os.geteuid() != 0:
        return "needs root (network namespaces, tc, cgroups)"
    if not shutil.which("ip") or not shutil.which("tc"):
        return "needs iproute2 (ip, tc)"
    if not os.path.isdir("/sys/fs/cgroup/cpu"):
        return "needs the cgroup v1 cpu controller at /sys/fs/cgroup/cpu"
    r = subprocess.run(["ip", "netns", "add", "splitd-probe"], capture_output=True)
    if r.returncode != 0:
        return "ip netns does not work here: " + r.stderr.decode().strip()
    subprocess.run(["ip", "netns", "del", "splitd-probe"], capture_output=True)
    return None


def enter_netns(name):
    """Move this process (its one thread) into a named network namespace:
    connections to 127.0.0.1 then reach the robot's API, and children
    start there."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns {name}")
    finally:
        os.close(fd)


def make_jpeg(path, w=640, h=480, quality=85):
    """A deterministic camera-like frame: smooth shapes and mild noise."""
    import numpy as np
    from PIL import Image
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.zeros((h, w, 3), np.float32)
    img[..., 0] = 120 + 80 * np.sin(x / 37.0) * np.cos(y / 53.0)
    img[..., 1] = 100 + 90 * np.sin((x + y) / 71.0)
    img[..., 2] = 90 + 60 * np.cos(np.hypot(x - w / 2, y - h / 2) / 29.0)
    for cx, cy, r, c in ((200, 150, 60, (230, 40, 40)), (450, 300, 90, (30, 200, 60)),
                         (320, 400, 40, (250, 250, 250))):
        m = (x - cx) ** 2 + (y - cy) ** 2 < r * r
        img[m] = c
    img += np.random.default_rng(3).normal(0, 6, img.shape)
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(path, "JPEG", quality=quality)
    return open(path, "rb").read()


class Lab:
    """tools/netlab.sh, the TLS material, and the two daemons."""

    def __init__(self, splitd, models, tmp=None, peer_threads=1, robot_threads=1, robot_planner="",
                 robot_model_keys=""):
        self.splitd = os.path.abspath(splitd)
        self.models = models            # name -> model.onnx
        self.tmp = tmp or tempfile.mkdtemp(prefix="splitd-netlab-")
        self.peer = self.robot = None
        self.peer_threads, self.robot_threads = peer_threads, robot_threads
        self.robot_planner = robot_planner    # extra [planner] lines of the robot
        self.robot_model_keys = robot_model_keys  # extra lines of each robot [model]
        self.conn = None
        self.is_up = False
        certs = os.path.join(self.tmp, "tls")
        if not os.path.exists(os.path.join(certs, "robot.pem")):
            subprocess.run(["sh", MKCERTS, certs, PEER_IP], check=True, capture_output=True)
        self.certs = certs

    # -- the lab --------------------------------------------------------------
    def netlab(self, *args):
        r = subprocess.run(["sh", NETLAB] + [str(a) for a in args], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"netlab.sh {' '.join(map(str, args))}: {r.stderr.strip()}")
        return r.stdout

    def up(self, rate_mbit, cpu):
        self.stop()
        self.netlab("up", rate_mbit, cpu)
        self.is_up = True
        self.rate_mbit, self.cpu = rate_mbit, cpu

    def set_rate(self, rate_mbit):
        self.netlab("rate", rate_mbit)
        self.rate_mbit = rate_mbit

    def down(self):
        self.stop()
        if self.is_up:
            subprocess.run(["sh", NETLAB, "down"], capture_output=True)
            self.is_up = False

    # -- the daemons ----------------------------------------------------------
    def _models_ini(self, extra=""):
        return "".join(f"[model.{n}]\npath = {p}\n{extra}" for n, p in self.models.items())

    def start(self, timeout_s=180):
        """Peer (no quota), then robot (in the cgroup); wait until the robot
        serves and sees the peer up and calibrated for every model."""
        self.stop()
        c = self.certs
        st = os.path.join(self.tmp, "state-" + str(time.monotonic_ns()))
        os.makedirs(st + "/peer")
        os.makedirs(st + "/robot")
        peer_conf = os.path.join(self.tmp, "peer.conf")
        robot_conf = os.path.join(self.tmp, "robot.conf")
        with open(peer_conf, "w") as f:
            f.write(f"""[daemon]
role = peer
threads = {self.peer_threads}
backend = cpu
state_dir = {st}/peer
[api]
listen = {PEER_IP}:{PEER_PORT}
[peer_server]
tls_cert = {c}/peer.pem
tls_key = {c}/peer.key
client_ca = {c}/ca.pem
""" + self._models_ini())
        with open(robot_conf, "w") as f:
            f.write(f"""[daemon]
role = robot
threads = {self.robot_threads}
backend = cpu
state_dir = {st}/robot
[api]
listen = 127.0.0.1:{API_PORT}
[peer]
url = https://{PEER_IP}:{PEER_PORT}
ca_file = {c}/ca.pem
cert_file = {c}/robot.pem
key_file = {c}/robot.key
connect_timeout_ms = 1000
request_timeout_ms = 10000
probe_interval_ms = 500
backoff_max_ms = 1000
""" + (f"[planner]\n{self.robot_planner}\n" if self.robot_planner else "") + self._models_ini(self.robot_model_keys))
        self.peer_log = open(os.path.join(self.tmp, "peer.log"), "a")
        self.robot_log = open(os.path.join(self.tmp, "robot.log"), "a")
        self.peer = subprocess.Popen(["sh", NETLAB, "exec-peer", self.splitd, "serve", "-c", peer_conf],
                                     stdout=self.peer_log, stderr=subprocess.STDOUT)
        # the peer must listen before the robot starts (calibration at start)
        t0 = time.time()
        while time.time() - t0 < timeout_s:
            if self.peer.poll() is not None:
                raise RuntimeError("peer exited: " + self.tail("peer"))
            if self._peer_listening():
                break
            time.sleep(0.2)
        self.robot = subprocess.Popen(["sh", NETLAB, "exec-robot", self.splitd, "serve", "-c", robot_conf],
                                      stdout=self.robot_log, stderr=subprocess.STDOUT)
        while time.time() - t0 < timeout_s:
            if self.robot.poll() is not None:
                raise RuntimeError("robot exited: " + self.tail("robot"))
            try:
                s = self.status()
                if all(m.get("peer", {}).get("state") == "up" for m in s["models"]):
                    return
            except (OSError, http.client.HTTPException, ValueError, KeyError):
                self.conn = None
            time.sleep(0.3)
        raise RuntimeError("robot not ready with its peer up: " + self.tail("robot"))

    def restart_peer(self, timeout_s=60):
        """Start the peer again with the configuration start() wrote (after
        it died or was killed) and wait until it listens; the robot is left
        as it is and finds the peer again by itself."""
        if self.peer and self.peer.poll() is None:
            raise RuntimeError("the peer is still running")
        self.peer = subprocess.Popen(["sh", NETLAB, "exec-peer", self.splitd, "serve", "-c",
                                      os.path.join(self.tmp, "peer.conf")],
                                     stdout=self.peer_log, stderr=subprocess.STDOUT)
        t0 = time.time()
        while time.time() - t0 < timeout_s:
            if self.peer.poll() is not None:
                raise RuntimeError("peer exited: " + self.tail("peer"))
            if self._peer_listening():
                return time.time() - t0
            time.sleep(0.1)
        raise RuntimeError("peer does not listen again: " + self.tail("peer"))

    def _peer_listening(self):
        r = subprocess.run(["ip", "netns", "exec", NS_PEER, "ss", "-ltnH",
                            f"src {PEER_IP}:{PEER_PORT}"], capture_output=True, text=True)
        return r.returncode == 0 and str(PEER_PORT) in r.stdout

    def tail(self, who, n=25):
        try:
            return "".join(open(os.path.join(self.tmp, who + ".log")).readlines()[-n:])
        except OSError:
            return ""

    def stop(self):
        self.conn = None
        for p in (self.robot, self.peer):
            if p and p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=25)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        self.robot = self.peer = None

    # -- HTTP to the robot ------------------------------------------------------
    def http(self, method, path, body=None, ctype=None, timeout=120):
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", API_PORT, timeout=timeout)
            try:
                h = {"Content-Type": ctype} if ctype else {}
                self.conn.request(method, path, body=body, headers=h)
                r = self.conn.getresponse()
                return r.status, r.read()
            except (OSError, http.client.HTTPException):
                self.conn.close()
                self.conn = None
                if attempt:
                    raise
        raise RuntimeError("unreachable")

    def status(self):
        st, b = self.http("GET", "/v1/status")
        if st != 200:
            raise ValueError(f"/v1/status {st}")
        return json.loads(b)

    def model_status(self, model):
        s = self.status()
        for m in s["models"]:
            if m["name"] == model:
                return m, s["link"]
        raise KeyError(model)

    def metric(self, name, model=None):
        st, b = self.http("GET", "/metrics")
        for line in b.decode().splitlines():
            if not line.startswith(name):
                continue
            if model and f'model="{model}"' not in line:
                continue
            rest = line[len(name):]
            if rest[:1] in (" ", "{"):
                return float(line.split()[-1])
        return None

    def infer(self, model, jpeg, cut=None, enc=None, bands=None, ctype="image/jpeg", extra=""):
        q = f"?model={model}"
        if cut is not None:
            q += f"&cut={cut}"
        if bands is not None and bands > 1:
            q += f"&bands={bands}"
        q += extra
        if enc is not None:
            q += "&encoding=" + enc.replace("+", "%2B")
        t0 = time.perf_counter()
        st, b = self.http("POST", "/v1/infer" + q, jpeg, ctype)
        wall = (time.perf_counter() - t0) * 1e3
        if st != 200:
            raise RuntimeError(f"infer {q}: {st} {b[:300]!r}")
        r = json.loads(b)
        r["wall_ms"] = wall
        return r

    # -- the planner's view -----------------------------------------------------
    def plan_json(self, model, where, bandwidth_bps, rtt_ms, peer_profile=None, input_bytes=None,
                  decode_ms=None, peer_decode_ms=None, runs=5):
        """`splitd plan --json` run as the robot (in its cgroup) or as the peer."""
        cmd = ["sh", NETLAB, "exec-robot" if where == "robot" else "exec-peer", self.splitd, "plan",
               "-m", self.models[model], "--threads",
               str(self.robot_threads if where == "robot" else self.peer_threads),
               "--runs", str(runs), "--bandwidth", f"{bandwidth_bps:.0f}", "--rtt-ms", f"{rtt_ms:.3f}",
               "--bands", "1", "--json"]
        if peer_profile:
            cmd += ["--peer-profile", peer_profile]
        if input_bytes:
            cmd += ["--input-bytes", str(input_bytes)]
        if decode_ms is not None:
            cmd += ["--decode-ms", f"{decode_ms:.3f}"]
        if peer_decode_ms is not None:
            cmd += ["--peer-decode-ms", f"{peer_decode_ms:.3f}"]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        if r.returncode != 0:
            raise RuntimeError(f"splitd plan: {r.stderr.strip()[:300]}")
        return json.loads(r.stdout)

    def peer_profile(self, model):
        """The peer's per-node profile, measured by the peer itself (no quota),
        as a --peer-profile file."""
        path = os.path.join(self.tmp, f"peer-profile-{model}.json")
        if os.path.exists(path):
            return path
        d = self.plan_json(model, "peer", 1e9, 1.0)
        cum = {row["cut"]: row["local_ms"] for row in d["cuts"]}
        n = max(cum)
        node_ms = [max(cum.get(k + 1, 0) - cum.get(k, 0), 0.0) for k in range(n)]
        with open(path, "w") as f:
            json.dump({"node_ms": node_ms}, f)
        return path


def model_cuts(lab, model):
    """Cut count and float32 bytes at each cut, from the planner's own table."""
    d = lab.plan_json(model, "peer", 1e9, 1.0, runs=1)
    n = max(r["cut"] for r in d["cuts"])
    f32 = {}
    for r in d["cuts"]:
        for o in r["options"]:
            if o["encoding"] == "f32":
                f32[r["cut"]] = o["bytes"]
    return n, f32


def frontier(n, f32):
    """A dense subset of cuts: the input, every cut whose tensor is smaller
    than both neighbours (the bottlenecks, where a split can pay), the last
    cuts before the head, and all-local."""
    keep = {0, n}
    for k in range(1, n):
        b = f32.get(k)
        if b is None:
            continue
        if b <= f32.get(k - 1, b) and b <= f32.get(k + 1, b):
            keep.add(k)
    keep.update(k for k in (n - 3, n - 2, n - 1) if k > 0)
    return sorted(keep)


def candidates(n, cuts, encodings):
    """(cut, encoding) pairs to force; cut n = all-local, cut 0 also 'input'."""
    out = [(0, "input")]
    for k in cuts:
        if k == n:
            out.append((n, "local"))
            continue
        for e in encodings:
            out.append((k, e))
    return out


def measure_cell(lab, model, jpeg, cands, n, requests, log_every=True):
    """Force every candidate (one warm-up each, then `requests` interleaved
    rounds), then let the planner choose. Returns a dict."""
    rows = {c: {"total": [], "wall": [], "transfer": [], "local": [], "remote": [], "decode": [],
                "queue": [], "bytes": None, "fallbacks": 0} for c in cands}
    sent0 = lab.metric("splitd_peer_sent_bytes_total", model) or 0.0
    for c in cands:        # warm-up: bytes on the wire; teaches the planner ratios
        k, e = c
        lab.infer(model, jpeg, k, None if e == "local" else e)
        sent1 = lab.metric("splitd_peer_sent_bytes_total", model) or 0.0
        rows[c]["bytes"] = sent1 - sent0
        sent0 = sent1
    # The planner's own choice (no cut= in the request) is one more entry of
    # every round, so that load from elsewhere on the machine hits the
    # choice and the forced candidates alike.
    chosen = []
    for _ in range(2):     # let the plan settle after the warm-up
        lab.infer(model, jpeg)
    for rnd in range(requests):
        for c in cands + [None]:
            if c is None:
                chosen.append(lab.infer(model, jpeg))
                continue
            k, e = c
            r = lab.infer(model, jpeg, k, None if e == "local" else e)
            t = r["timing_ms"]
            row = rows[c]
            if r["placement"].get("fallback"):
                row["fallbacks"] += 1
            row["total"].append(t["total"])
            row["wall"].append(r["wall_ms"])
            for f in ("transfer", "local", "remote", "decode", "queue"):
                row[f].append(t.get(f, 0.0) or 0.0)
        if log_every:
            log(f"  {model}: round {rnd + 1}/{requests}")
    ms, link = lab.model_status(model)
    return {"rows": rows, "chosen": chosen, "status": ms, "link": link}


def confirm(lab, model, jpeg, cell, rows, top=3, rounds=10):
    """The screening ranks some 60 candidates by medians of a few requests
    each: the smallest of so many noisy medians is biased low (the winner's
    curse), and the planner's choice, measured the same few times, is not.
    So the few best screened candidates, the planner's own choice forced,
    and the planner unforced are measured again, interleaved, `rounds`
    times each; the oracle is the best of these medians and the choice is
    the median of the unforced requests of this stage. Returns
    {"best": (cut, enc), "best_ms", "chosen", "chosen_ms", "chosen_p95_ms",
     "medians": {(cut, enc): ms}, "choices": [...], "predicted_ms", "plan"}."""
    ranked = sorted(rows, key=lambda r: r["total_ms"])
    ch = cell["chosen"]
    pl = [(r["placement"]["cut"], r["placement"].get("encoding") or "local") for r in ch]
    picks = [(r["cut"], r["enc"]) for r in ranked[:top]]
    for c in sorted(set(pl)):
        if c in cell["rows"] and c not in picks:
            picks.append(c)
    got = {c: [] for c in picks}
    parts = {c: {f: [] for f in ("decode", "local", "transfer", "remote")} for c in picks}
    unforced, uplace = [], []
    for _ in range(2):
        lab.infer(model, jpeg)
    for _ in range(rounds):
        for c in picks + [None]:
            if c is None:
                r = lab.infer(model, jpeg)
                unforced.append(r["timing_ms"]["total"])
                uplace.append((r["placement"]["cut"], r["placement"].get("encoding") or "local"))
                continue
            k, e = c
            r = lab.infer(model, jpeg, k, None if e == "local" else e)
            got[c].append(r["timing_ms"]["total"])
            for f in parts[c]:
                parts[c][f].append(r["timing_ms"].get(f, 0.0) or 0.0)
    med = {c: statistics.median(v) for c, v in got.items()}
    # the live planner's prediction of each, part by part, next to the measured parts
    st_, b_ = lab.http("GET", "/v1/status?explain=1")
    expl = {}
    for m_ in json.loads(b_)["models"]:
        if m_["name"] != model:
            continue
        pl_ = m_.get("planner", {})
        for c in pl_.get("candidates", []):
            if c["bands"] != 1:
                continue
            key = (c["cut"], c["encoding"]) if c["encoding"] not in ("local",) else (c["cut"], "local")
            expl[key] = c
    diag = ["| cut | enc | measured ms | decode | local | transfer | remote | predicted ms | local | transfer "
            "| remote | net |", "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for c in sorted(picks, key=lambda c: med[c]):
        pm = {f: statistics.median(v) for f, v in parts[c].items()}
        x = expl.get(c)
        pr = (f"{x['total_ms']:.1f} | {x['local_ms']:.1f} | {x['transfer_ms']:.1f} | {x['remote_ms']:.1f} | "
              f"{x['net_ms']:.1f}") if x else " | | | |"
        diag.append(f"| {c[0]} | {c[1]} | {med[c]:.1f} | {pm['decode']:.1f} | {pm['local']:.1f} | "
                    f"{pm['transfer']:.1f} | {pm['remote']:.1f} | {pr} |")
    best = min(med, key=med.get)
    ms, _ = lab.model_status(model)
    st = ms.get("planner", {})
    choice = max(set(uplace), key=uplace.count)
    cm = statistics.median(unforced)
    pred = st.get("predicted_ms")
    return {"best": best, "best_ms": med[best], "chosen": choice, "chosen_ms": cm,
            "chosen_p95_ms": pct(unforced, 0.95), "medians": med, "choices": sorted(set(uplace)),
            "predicted_ms": pred, "plan": st.get("plan"), "ratio": cm / med[best],
            "diag": "\n".join(diag) + "\n",
            "pred_err": (pred - cm) / cm if pred else None}


def summarize(cell, n, rate_mbit, pred=None):
    """Rows for the table; pred = {(cut, enc): predicted total ms}."""
    out = []
    payload_bps = rate_mbit * 1e6 * PAYLOAD_PER_L2
    for (k, e), row in cell["rows"].items():
        med = statistics.median(row["total"])
        x = statistics.median(row["transfer"]) if e != "local" else 0.0
        raw = (row["bytes"] or 0) * 8 / payload_bps * 1e3 if e != "local" else 0.0
        out.append({
            "cut": k, "enc": e, "bytes": int(row["bytes"] or 0),
            "total_ms": med, "p95_ms": pct(row["total"], 0.95), "wall_ms": statistics.median(row["wall"]),
            "local_ms": statistics.median(row["local"]), "decode_ms": statistics.median(row["decode"]),
            "remote_ms": statistics.median(row["remote"]), "transfer_ms": x, "raw_ms": raw,
            "overhead_ms": x - raw if e != "local" else None,
            "pred_ms": (pred or {}).get((k, e)), "fallbacks": row["fallbacks"],
        })
    return out


def predictions(lab, model, cell, jpeg_bytes, n):
    """The planner's prediction of each forced candidate: `splitd plan --json`
    as the robot (its cgroup), with the robot's own link estimate, the peer's
    own profile, and the measured decode times."""
    link = cell["link"]
    rows = cell["rows"]
    dec = [v for (k, e), r in rows.items() if k > 0 for v in r["decode"]]
    pdec = None
    if (0, "input") in rows and (0, "f32") in rows:
        # the peer's decode at k = 0: its remote time for the image minus for the tensor
        pdec = max(statistics.median(rows[(0, "input")]["remote"]) -
                   statistics.median(rows[(0, "f32")]["remote"]), 0.0)
    d = lab.plan_json(model, "robot", link["bandwidth_bits_per_second"], link["rtt_ms"],
                      peer_profile=lab.peer_profile(model), input_bytes=jpeg_bytes,
                      decode_ms=statistics.median(dec) if dec else None, peer_decode_ms=pdec)
    pred = {}
    for row in d["cuts"]:
        for o in row["options"]:
            e = o["encoding"]
            if row["cut"] == n:
                e = "local"
            pred[(row["cut"], e)] = o["total_ms"]
    return pred, d


def oracle(cell, rows):
    """Best measured candidate vs the planner's choice."""
    best = min(rows, key=lambda r: r["total_ms"])
    ch = cell["chosen"]
    tot = [r["timing_ms"]["total"] for r in ch]
    pl = [(r["placement"]["cut"], r["placement"].get("encoding") or "local") for r in ch]
    choice = max(set(pl), key=pl.count)
    st = cell["status"].get("planner", {})
    parts = {f: statistics.median(r["timing_ms"].get(f, 0.0) or 0.0 for r in ch)
             for f in ("queue", "decode", "local", "transfer", "remote")}
    return {
        "parts": parts,
        "best": best, "chosen": choice, "chosen_ms": statistics.median(tot),
        "chosen_p95_ms": pct(tot, 0.95), "choices": sorted(set(pl)),
        "predicted_ms": st.get("predicted_ms"), "plan": st.get("plan"),
        "ratio": statistics.median(tot) / best["total_ms"],
        "pred_err": (st.get("predicted_ms") - statistics.median(tot)) / statistics.median(tot)
        if st.get("predicted_ms") else None,
    }


def fmt_table(model, rate, cpu, rows, orc, link, n):
    L = []
    L.append(f"### {model}, {rate:g} Mbit/s, robot {cpu:g} core")
    L.append("")
    L.append(f"link estimate (robot): {link['bandwidth_bits_per_second'] / 1e6:.1f} Mbit/s, "
             f"rtt {link['rtt_ms']:.2f} ms; payload capacity {rate * PAYLOAD_PER_L2:.1f} Mbit/s")
    L.append("")
    L.append("| cut | enc | bytes up | total ms (p50) | p95 | local | xfer | bytes/rate | overhead | remote | predicted | pred err |")
    L.append("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in sorted(rows, key=lambda r: (r["cut"], r["enc"] != "input", r["enc"])):
        label = "all-local" if r["enc"] == "local" else ("JPEG" if r["enc"] == "input" else r["enc"])
        mark = " **best**" if r is orc["best"] else ""
        pe = "" if r["pred_ms"] is None else f"{(r['pred_ms'] - r['total_ms']) / r['total_ms'] * 100:+.0f}%"
        ov = "" if r["overhead_ms"] is None else f"{r['overhead_ms']:.2f}"
        pm = "" if r["pred_ms"] is None else f"{r['pred_ms']:.1f}"
        fb = f" ({r['fallbacks']} fallbacks)" if r["fallbacks"] else ""
        L.append(f"| {r['cut']}{' (local)' if r['enc'] == 'local' else ''} | {label}{mark}{fb} | {r['bytes']} | "
                 f"{r['total_ms']:.1f} | {r['p95_ms']:.1f} | {r['local_ms']:.1f} | {r['transfer_ms']:.2f} | "
                 f"{r['raw_ms']:.2f} | {ov} | {r['remote_ms']:.1f} | {pm} | {pe} |")
    L.append("")
    ch = orc["chosen"]
    pe = "n/a" if orc["pred_err"] is None else f"{orc['pred_err'] * 100:+.0f}%"
    L.append(f"planner (not forced): {orc['plan']} = cut {ch[0]} {ch[1]}; measured {orc['chosen_ms']:.1f} ms "
             f"(p95 {orc['chosen_p95_ms']:.1f}), predicted {orc['predicted_ms'] or float('nan'):.1f} ms ({pe}); "
             f"best measured cut {orc['best']['cut']} {orc['best']['enc']} {orc['best']['total_ms']:.1f} ms; "
             f"chosen/best = {orc['ratio']:.2f}; chosen parts (p50 ms) " +
             ", ".join(f"{k} {v:.1f}" for k, v in orc["parts"].items()))
    L.append("")
    return "\n".join(L)


def overhead_summary(all_rows):
    """Protocol overhead per request beyond the raw transfer, over every
    offloaded candidate: against the target 1 ms + 5 % of the transfer."""
    L = ["| cell | offloaded candidates | overhead p50 ms | max ms | over target (1 ms + 5%) |",
         "|---|---:|---:|---:|---:|"]
    for key, rows in all_rows:
        ov = [r for r in rows if r["overhead_ms"] is not None]
        if not ov:
            continue
        bad = [r for r in ov if r["overhead_ms"] > 1.0 + 0.05 * r["raw_ms"]]
        L.append(f"| {key} | {len(ov)} | {statistics.median(r['overhead_ms'] for r in ov):.2f} | "
                 f"{max(r['overhead_ms'] for r in ov):.2f} | {len(bad)} |")
    return "\n".join(L)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--splitd", required=True)
    ap.add_argument("--models", required=True, help="folder with NAME/model.onnx")
    ap.add_argument("--model", action="append")
    ap.add_argument("--rate", action="append", type=float)
    ap.add_argument("--cpu", action="append", type=float)
    ap.add_argument("--requests", type=int, default=5)
    ap.add_argument("--cuts", default="frontier", help="all or frontier")
    ap.add_argument("--encodings", default="f32,f16,i8,i8+zstd")
    ap.add_argument("--out")
    ap.add_argument("--json")
    a = ap.parse_args()
    why = can_run()
    if why:
        log("split_grid: " + why)
        return 77
    models = {m: os.path.join(a.models, m, "model.onnx") for m in (a.model or ["mobilenet_v2", "resnet18"])}
    rates = a.rate or [137.0, 400.0]
    cpus = a.cpu or [1.0]
    encs = a.encodings.split(",")
    lab = Lab(a.splitd, models)
    jpeg = make_jpeg(os.path.join(lab.tmp, "frame.jpg"))
    md = [f"# split grid: {', '.join(models)}; rates {rates} Mbit/s; robot cpu {cpus}; "
          f"{a.requests} requests per candidate; JPEG {len(jpeg)} B (640x480)", "",
          f"`{' '.join(sys.argv)}`", ""]
    all_rows, dump = [], []
    try:
        for cpu in cpus:
            lab.up(rates[0], cpu)
            enter_netns(NS_ROBOT)
            lab.start()
            for rate in rates:
                lab.set_rate(rate)
                for model in models:
                    n, f32 = model_cuts(lab, model)
                    cuts = list(range(n + 1)) if a.cuts == "all" else frontier(n, f32)
                    cands = candidates(n, cuts, encs)
                    log(f"cell {model} {rate:g} Mbit/s cpu {cpu:g}: {len(cands)} candidates")
                    cell = measure_cell(lab, model, jpeg, cands, n, a.requests)
                    pred, _ = predictions(lab, model, cell, len(jpeg), n)
                    rows = summarize(cell, n, rate, pred)
                    orc = oracle(cell, rows)
                    t = fmt_table(model, rate, cpu, rows, orc, cell["link"], n)
                    print(t, flush=True)
                    md.append(t)
                    all_rows.append((f"{model} {rate:g} Mbit/s cpu {cpu:g}", rows))
                    dump.append({"model": model, "rate_mbit": rate, "cpu": cpu, "rows": rows,
                                 "oracle": {k: v for k, v in orc.items() if k != "best"},
                                 "best": orc["best"], "link": cell["link"]})
            lab.stop()
    finally:
        lab.down()
    md.append("## protocol overhead (measured transfer - bytes / payload rate)")
    md.append("")
    md.append(overhead_summary(all_rows))
    text = "\n".join(md) + "\n"
    print(overhead_summary(all_rows))
    if a.out:
        with open(a.out, "w") as f:
            f.write(text)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(dump, f, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
