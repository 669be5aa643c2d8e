#!/usr/bin/python3
"""Every reloadable key, changed by SIGHUP on a running `splitd serve`, and
its effect observed from outside (issue 16).

Usage: reload_keys.py SPLITD

Two daemons: a robot (a small model, power sampled under an empty fake
sysfs tree, so the estimate source; a peer of the test's own that counts
its health probes and can answer, refuse or black-hole connections) and a
TLS peer with a bearer token. Each phase rewrites the file, sends SIGHUP,
waits for the log to say the reload finished, and observes:

  api.token / api.token_file  the old token refused (401) and the new one
        accepted right after the reload; the file re-read on each reload;
  a bad file or an unreadable token file changes nothing (all or nothing)
        and the log says why; a key that needs a restart is named so;
  daemon.log_level            a debug line per inference appears, then not;
  power.rate_hz               samples counted over a window exceed what the
        old rate allows (rate x seconds + 2) and stay within the new one;
  power.estimate_*_watts      with 0 W the estimate rail's energy does not
        move; with core watts it grows; with idle watts it reads them;
  peer.probe_interval_ms      health probes at the fake peer: none in a
        window at 600 s, at least 5 in 2 s at 100 ms (at most 2 s/100 ms + 2);
  peer.backoff_max_ms         a refusing peer backed off past 3 s gets at
        most one probe in 2 s; at 100 ms at least 5;
  peer.connect_timeout_ms     a black-holed peer (a full accept queue drops
        SYNs): a 5 s connect deadline starts at most 1 attempt in 3 s, a
        200 ms one at least 3 (each attempt takes >= 200 ms, each wait
        >= 100 ms: at most 3 s / 300 ms + 1);
  peer.request_timeout_ms     the whole-request deadline caps a 60 s connect
        deadline at 300 ms: again at least 3 attempts in 3 s;
  planner.wifi_interface      /v1/status names the new interface;
  planner.p_tx_w, peer.encoding  the planner's default transmit watts and
        the encodings its candidates weigh (/v1/status?explain=1);
  the other [planner] keys: the values the planner itself runs with
        (/v1/status planner.config, phase_power) and the link estimator's
        idle probe period (link.idle_probe_ms).

The lower bounds of counts sit 4x or more below what the settings give, the
upper bounds follow from the settings alone, so a loaded machine (or the
sanitizers' build) slows nothing into a failure.
Prints 'N passed, N failed' and exits non-zero on any failure.
"""
import http.client
import http.server
import io
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import onnx_compat  # noqa: E402,F401  (numpy aliases onnx 1.12 needs)
from onnx import TensorProto, helper  # noqa: E402
import onnx  # noqa: E402

import split_e2e as e2e  # noqa: E402
from split_e2e import check, free_port  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def make_model(path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16])
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu"),
             helper.make_node("Sigmoid", ["r"], ["y"], name="sig")]
    model = helper.make_model(helper.make_graph(nodes, "tiny", [x], [y]),
                              opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 7
    onnx.save(model, path)


# ---- the peer of the test's own -------------------------------------------

class FakePeer:
    """'up': ready and serving model m (no identity: allow_unverified);
    'down': 503 to the health probe; 'blackhole': nothing answers, a full
    accept queue drops the SYNs. Counts health probes with their times."""

    def __init__(self, port):
        self.port, self.mode, self.probes = port, "up", []
        self.lock = threading.Lock()
        self.server = self.hole = None
        self.fill = []
        self._serve()

    def _serve(self):
        peer = self

        class H(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _send(self, status, body=b"{}"):
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if self.path == "/v2/health/ready":
                    with peer.lock:
                        peer.probes.append(time.monotonic())
                    self._send(200 if peer.mode == "up" else 503)
                elif self.path == "/v2/models/m":
                    self._send(200, json.dumps({"name": "m", "platform": "onnx"}).encode())
                else:
                    self._send(404)

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0") or 0)
                self.rfile.read(n)
                self._send(503, b'{"error":"busy"}')

        http.server.ThreadingHTTPServer.allow_reuse_address = True
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), H)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def count(self, t0, t1):
        with self.lock:
            return sum(1 for t in self.probes if t0 <= t < t1)

    def blackhole(self):
        self.server.shutdown()
        self.server.server_close()
        self.mode = "blackhole"
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", self.port))
        s.listen(0)
        for _ in range(3):
            c = socket.socket()
            c.setblocking(False)
            try:
                c.connect(("127.0.0.1", self.port))
            except BlockingIOError:
                pass
            self.fill.append(c)
        self.hole = s


# ---- a daemon and its reloads ------------------------------------------------

class Daemon:
    def __init__(self, splitd, tmp, name, conf):
        self.path = os.path.join(tmp, name + ".conf")
        self.logpath = os.path.join(tmp, name + ".log")
        self.write(conf)
        self.log = open(self.logpath, "w")
        self.proc = subprocess.Popen([splitd, "serve", "-c", self.path], stdout=self.log,
                                     stderr=subprocess.STDOUT)

    def write(self, conf):
        with open(self.path + ".tmp", "w") as f:
            f.write(conf)
        os.replace(self.path + ".tmp", self.path)

    def text(self):
        with open(self.logpath, errors="replace") as f:
            return f.read()

    def reload(self, conf=None, timeout=30):
        """SIGHUP; True when the log says the reload finished (done or
        refused), with the log's new part in self.last."""
        if conf is not None:
            self.write(conf)
        before = self.text()
        n0 = before.count("reload: done") + before.count("keeping the running configuration")
        self.proc.send_signal(signal.SIGHUP)
        t0 = time.time()
        while time.time() - t0 < timeout:
            now = self.text()
            if now.count("reload: done") + now.count("keeping the running configuration") > n0:
                self.last = now[len(before):]
                return True
            time.sleep(0.02)
        self.last = self.text()[len(before):]
        return False

    def stop(self, name):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        # the sanitizers' build: leaks fail the exit, UBSan only prints
        text = self.text()
        check(f"{name}: clean exit after the reloads", self.proc.returncode == 0 and
              "runtime error" not in text and "Sanitizer" not in text,
              f"rc {self.proc.returncode} {text[-1500:]}")


def get(port, path, token=None, ctx=None, timeout=10):
    c = (http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=timeout) if ctx
         else http.client.HTTPConnection("127.0.0.1", port, timeout=timeout))
    try:
        c.request("GET", path, headers={"Authorization": "Bearer " + token} if token else {})
        r = c.getresponse()
        return r.status, r.read()
    except (OSError, http.client.HTTPException) as e:
        return None, repr(e).encode()
    finally:
        c.close()


def status(port):
    st, body = get(port, "/v1/status")
    return json.loads(body) if st == 200 else {}


def wait_for(what, timeout=30.0, step=0.05):
    t0 = time.time()
    while time.time() - t0 < timeout:
        v = what()
        if v:
            return v
        time.sleep(step)
    return None


# ---- the token, on a TLS peer ------------------------------------------------

def peer_conf(model, port, certs, token_line, extra=""):
    return f"""[daemon]
role = peer
threads = 1
[api]
listen = 127.0.0.1:{port}
{token_line}
{extra}[peer_server]
tls_cert = {certs}/peer.pem
tls_key = {certs}/peer.key
[model.m]
path = {model}
"""


def token_phase(splitd, model, tmp):
    certs = os.path.join(tmp, "certs")
    subprocess.run(["sh", os.path.join(HERE, "..", "..", "tools", "mkcerts.sh"), certs],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ctx = ssl.create_default_context(cafile=os.path.join(certs, "ca.pem"))
    port = free_port()
    conf = lambda tok, extra="": peer_conf(model, port, certs, tok, extra)  # noqa: E731
    d = Daemon(splitd, tmp, "tls-peer", conf("token = tok-A"))
    try:
        ok = wait_for(lambda: get(port, "/v2/health/ready", "tok-A", ctx)[0] == 200, 120)
        check("token: the TLS peer serves with tok-A", ok, d.text()[-2000:])
        if not ok:
            return

        def accepted(tok):
            return get(port, "/v2/health/ready", tok, ctx)[0]
        check("token: tok-B refused before the reload", accepted("tok-B") == 401)
        check("token: reload to tok-B", d.reload(conf("token = tok-B")) and "reload: done" in d.last, d.last)
        # right after the reload: no settling time
        check("token: the old token is refused at once", accepted("tok-A") == 401)
        check("token: the new token is accepted", accepted("tok-B") == 200)

        tf = os.path.join(tmp, "token")
        with open(tf, "w") as f:
            f.write("tok-C\n")
        check("token_file: reload to a token file",
              d.reload(conf(f"token_file = {tf}")) and "reload: done" in d.last, d.last)
        check("token_file: the inline token is refused", accepted("tok-B") == 401)
        check("token_file: the file's token is accepted", accepted("tok-C") == 200)
        with open(tf, "w") as f:
            f.write("tok-D\n")
        check("token_file: same file, new token: re-read on reload", d.reload() and "reload: done" in d.last,
              d.last)
        check("token_file: the file's old token is refused", accepted("tok-C") == 401)
        check("token_file: the file's new token is accepted", accepted("tok-D") == 200)

        # all or nothing: a bad key beside a new token changes nothing
        d.reload(conf("token = tok-E", "[power]\nrate_hz = 0\n"))
        check("all or nothing: a bad value refuses the reload and says why",
              "keeping the running configuration" in d.last and "rate_hz" in d.last, d.last)
        check("all or nothing: the new token of the refused file is refused", accepted("tok-E") == 401)
        check("all or nothing: the running token stays", accepted("tok-D") == 200)
        d.reload(conf(f"token_file = {tmp}/no-such-token"))
        check("all or nothing: an unreadable token file refuses the reload, naming it",
              "keeping the running configuration" in d.last and "no-such-token" in d.last, d.last)
        check("all or nothing: the running token stays after it", accepted("tok-D") == 200)

        check("restart: a key that needs a restart is named so",
              d.reload(conf(f"token_file = {tf}\nmax_connections = 10")) and
              "api.max_connections changed: needs restart" in d.last, d.last)
        check("restart: the reloadable part of that reload applies", accepted("tok-D") == 200)
    finally:
        d.stop("TLS peer")


# ---- the robot -------------------------------------------------------------

def robot_conf(model, port, pport, sysfs, **kv):
    v = dict(log_level="info", rate_hz=5, idle=0, core=0, connect=5000, request=20000,
             probe=600000, backoff=3600000, wifi="")
    v.update(kv)
    return f"""[daemon]
role = robot
threads = 1
log_level = {v['log_level']}
[api]
listen = 127.0.0.1:{port}
[power]
sysfs_root = {sysfs}
rate_hz = {v['rate_hz']}
estimate_idle_watts = {v['idle']}
estimate_core_watts = {v['core']}
[peer]
url = http://127.0.0.1:{pport}
plain = true
allow_unverified = true
connect_timeout_ms = {v['connect']}
request_timeout_ms = {v['request']}
probe_interval_ms = {v['probe']}
backoff_max_ms = {v['backoff']}
[planner]
wifi_interface = {v['wifi']}
[model.m]
path = {model}
"""


def rail(port):
    rails = status(port).get("power", {}).get("rails", [])
    return rails[0] if rails else {}


def peer_status(port):
    ms = status(port).get("models", [])
    return ms[0].get("peer", {}) if ms else {}


def infer(port):
    b = io.BytesIO()
    np.save(b, np.linspace(-1, 1, 16, dtype=np.float32).reshape(1, 16))
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        c.request("POST", "/v1/infer", body=b.getvalue(), headers={"Content-Type": "application/x-npy"})
        return c.getresponse().status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        c.close()


def samples_in(port, seconds):
    """Rail samples counted over about `seconds`, and the exact span."""
    s0, t0 = rail(port).get("samples", 0), time.monotonic()
    time.sleep(seconds)
    s1, t1 = rail(port).get("samples", 0), time.monotonic()
    return s1 - s0, t1 - t0


def power_phases(r, port, cfg):
    n, dt = samples_in(port, 2.0)
    check("rate_hz: at 5 Hz, at most rate x seconds + 2 samples", 0 < n <= 5 * dt + 2, f"{n} in {dt:.2f} s")
    check("rate_hz: reload to 200 Hz", r.reload(cfg(rate_hz=200)) and "reload: done" in r.last, r.last)
    n, dt = samples_in(port, 2.0)
    check("rate_hz: at 200 Hz, more samples than 5 Hz allows, at most 200 x seconds + 2",
          2 * (5 * dt + 2) < n <= 200 * dt + 2, f"{n} in {dt:.2f} s")
    st, text = get(port, "/metrics")
    check("rate_hz: /metrics says 200 Hz", b"splitd_power_sample_rate_hertz 200" in text)

    if rail(port).get("method") != "estimate":
        print(f"skip estimate watts: a measured rail exists ({rail(port)})")
        return
    j0 = rail(port)["joules"]
    time.sleep(0.5)
    check("estimate: at 0 W idle and 0 W per core the energy stays", rail(port)["joules"] == j0)
    check("estimate: reload core watts to 10000",
          r.reload(cfg(rate_hz=200, core=10000)) and "reload: done" in r.last, r.last)
    j0, t0 = rail(port)["joules"], time.monotonic()
    for _ in range(20):     # some CPU time for the daemon
        get(port, "/v1/status")
    time.sleep(0.3)
    j1, t1 = rail(port)["joules"], time.monotonic()
    ncpu = os.cpu_count() or 1
    check("estimate: with core watts the energy grows, at most watts x cores x seconds",
          0 < j1 - j0 <= 10000 * ncpu * (t1 - t0 + 0.1), f"{j1 - j0} J in {t1 - t0:.2f} s")
    check("estimate: reload idle watts to 50, core 0",
          r.reload(cfg(rate_hz=200, idle=50)) and "reload: done" in r.last, r.last)
    # two samples after the reload read 50 W exactly (no CPU part)
    w = wait_for(lambda: abs(rail(port).get("watts", 0) - 50.0) < 1e-3, 10)
    check("estimate: the rail reads the new idle watts", w, rail(port))


def peer_phases(r, port, peer, cfg):
    # the robot found the peer down at start (no calibration to fail);
    # it comes up within the first backoffs
    peer.mode = "up"
    up = wait_for(lambda: peer_status(port).get("state") == "up", 30)
    check("probe_interval: the peer is up", up, peer_status(port))
    time.sleep(0.5)
    t0 = time.monotonic()
    time.sleep(2.0)
    n = peer.count(t0, time.monotonic())
    check("probe_interval: at 600 s, no probe of an idle peer in 2 s", n == 0, f"{n} probes")
    check("probe_interval: reload to 100 ms", r.reload(cfg(probe=100)) and "reload: done" in r.last, r.last)
    t0 = time.monotonic()
    time.sleep(2.0)
    t1 = time.monotonic()
    n = peer.count(t0, t1)
    check("probe_interval: at 100 ms, 5 to seconds/100 ms + 2 probes in 2 s", 5 <= n <= (t1 - t0) / 0.1 + 2,
          f"{n} probes in {t1 - t0:.2f} s")

    peer.mode = "down"
    grown = wait_for(lambda: peer_status(port).get("backoff_ms", 0) >= 3200, 30)
    check("backoff_max: a refusing peer is backed off past 3.2 s", grown, peer_status(port))
    t0 = time.monotonic()
    time.sleep(2.0)
    n = peer.count(t0, time.monotonic())
    check("backoff_max: at most one probe in 2 s while backed off past 3 s", n <= 1, f"{n} probes")
    check("backoff_max: reload to 100 ms", r.reload(cfg(probe=100, backoff=100)) and "reload: done" in r.last,
          r.last)
    t0 = time.monotonic()
    time.sleep(2.0)
    t1 = time.monotonic()
    n = peer.count(t0, t1)
    check("backoff_max: at 100 ms, 5 to seconds/100 ms + 2 probes in 2 s", 5 <= n <= (t1 - t0) / 0.1 + 2,
          f"{n} probes in {t1 - t0:.2f} s")

    peer.blackhole()

    def attempts(seconds):
        a0, t0 = peer_status(port).get("probes", 0), time.monotonic()
        time.sleep(seconds)
        return peer_status(port).get("probes", 0) - a0, time.monotonic() - t0

    def settle():
        # the attempt under way ends within its old deadline
        f0 = peer_status(port).get("probe_failures", 0)
        wait_for(lambda: peer_status(port).get("probe_failures", 0) > f0, 30)

    settle()
    n, dt = attempts(3.0)
    check("connect_timeout: at 5 s, at most one attempt starts in 3 s", n <= 1, f"{n} attempts")
    check("connect_timeout: reload to 200 ms", r.reload(cfg(probe=100, backoff=100, connect=200)) and
          "reload: done" in r.last, r.last)
    settle()
    n, dt = attempts(3.0)
    check("connect_timeout: at 200 ms, 3 to seconds/300 ms + 1 attempts",
          3 <= n <= dt / 0.3 + 1, f"{n} attempts in {dt:.2f} s")
    check("request_timeout: reload to a 60 s connect deadline capped by a 300 ms request",
          r.reload(cfg(probe=100, backoff=100, connect=60000, request=300)) and "reload: done" in r.last, r.last)
    settle()
    n, dt = attempts(3.0)
    check("request_timeout: at 300 ms, 3 to seconds/400 ms + 1 attempts",
          3 <= n <= dt / 0.4 + 1, f"{n} attempts in {dt:.2f} s")


def planner_phases(r, port, cfg):
    """One hook applies [planner] and peer.encoding: the planner's default
    phase watts and its candidates' encodings show it."""
    def model(explain=False):
        _, body = get(port, "/v1/status" + ("?explain=1" if explain else ""))
        ms = json.loads(body).get("models", [])
        return ms[0] if ms else {}

    def planner():
        return model().get("planner", {})

    def encodings():
        m = model(True)     # the cuts that send something to the peer
        return {c["encoding"] for c in m.get("planner", {}).get("candidates", []) if c["cut"] < m["nodes"]}

    tx = planner().get("phase_power", {}).get("transmit", {})
    check("p_tx_w: the planner's default transmit watts are 6", tx.get("watts") == 6.0 and
          tx.get("source") == "default", tx)
    check("encoding: auto weighs several encodings", len(encodings()) > 1, encodings())
    conf = cfg().replace("[planner]\n", "[planner]\np_tx_w = 7.5\n")
    conf = conf.replace("[peer]\n", "[peer]\nencoding = f16\n")
    check("planner: reload p_tx_w and peer.encoding", r.reload(conf) and "reload: done" in r.last, r.last)
    tx = planner().get("phase_power", {}).get("transmit", {})
    check("p_tx_w: the planner's transmit watts are 7.5", tx.get("watts") == 7.5, tx)
    check("encoding: f16 is the only encoding weighed", encodings() == {"f16"}, encodings())
    # every other key of the hook, and probe_idle_ms (the link estimator's):
    # each value the planner (and the estimator) runs with after the reload
    before = planner().get("config", {})
    check("planner config shown before the reload", before.get("policy") == "latency" and
          before.get("max_bands") == 1, before)
    keys = {"policy": "energy", "slo_ms": 250.0, "replan_threshold": 0.35, "hysteresis": 0.15,
            "p_compute_w": 3.5, "p_wait_w": 1.25, "max_bands": 4, "band_overhead": 0.125,
            "probe_idle_ms": 12345}
    conf2 = conf.replace("[planner]\n", "[planner]\n" + "".join(f"{k} = {v}\n" for k, v in keys.items()))
    check("planner: reload every [planner] key", r.reload(conf2) and "reload: done" in r.last, r.last)
    pl = planner()
    cf, pw = pl.get("config", {}), pl.get("phase_power", {})
    for k in ("policy", "slo_ms", "replan_threshold", "hysteresis", "band_overhead"):
        check(f"{k}: the planner runs with {keys[k]}", cf.get(k) == keys[k], cf)
    # this robot's peer is allow_unverified (maybe not a splitd): never banded
    # whatever max_bands says; plan_e2e reloads max_bands with a splitd peer
    check("max_bands: still 1 towards a peer that may not read bands", cf.get("max_bands") == 1, cf)
    check("p_compute_w: the planner's compute watts are 3.5", pw.get("compute", {}).get("watts") == 3.5, pw)
    check("p_wait_w: the planner's wait watts are 1.25", pw.get("wait", {}).get("watts") == 1.25, pw)
    _, body = get(port, "/v1/status")
    idle = json.loads(body).get("link", {}).get("idle_probe_ms")
    check("probe_idle_ms: the link estimator probes after 12345 ms idle", idle == 12345.0, idle)


def robot_phases(splitd, model, tmp):
    port, pport = free_port(), free_port()
    sysfs = os.path.join(tmp, "sysfs")
    os.makedirs(sysfs, exist_ok=True)
    peer = FakePeer(pport)
    peer.mode = "down"
    cfg = lambda **kv: robot_conf(model, port, pport, sysfs, **kv)  # noqa: E731
    r = Daemon(splitd, tmp, "robot", cfg())
    try:
        ok = wait_for(lambda: get(port, "/v2/health/ready")[0] == 200, 120)
        check("robot: serving", ok, r.text()[-2000:])
        if not ok:
            return
        peer_phases(r, port, peer, cfg)
        # from here on, the peer settings the peer phases ended with

        def cfgp(**kv):
            return cfg(probe=100, backoff=100, connect=60000, request=300, **kv)
        dbg = re.compile(r"model m: [a-z-]+, cut \d+, ")   # pipeline_infer.c's debug line

        def debug_lines():
            return len(dbg.findall(r.text()))
        check("log_level: no debug line per inference at info", infer(port) == 200 and debug_lines() == 0)
        check("log_level: reload to debug", r.reload(cfgp(log_level="debug")) and "reload: done" in r.last, r.last)
        n0 = debug_lines()
        infer(port)
        check("log_level: a debug line per inference at debug", wait_for(lambda: debug_lines() > n0, 5))
        r.reload(cfgp())
        n0 = debug_lines()
        infer(port)
        time.sleep(0.3)
        check("log_level: none again at info", debug_lines() == n0)

        check("wifi_interface: none configured, none in /v1/status", "wifi" not in status(port).get("link", {}))
        check("wifi_interface: reload to wlsplit0", r.reload(cfgp(wifi="wlsplit0")) and "reload: done" in r.last,
              r.last)
        w = status(port).get("link", {}).get("wifi", {})
        check("wifi_interface: /v1/status reads wlsplit0", w.get("interface") == "wlsplit0", w)
        r.reload(cfgp(wifi="wlsplit1"))
        w = status(port).get("link", {}).get("wifi", {})
        check("wifi_interface: then wlsplit1", w.get("interface") == "wlsplit1", w)
        r.reload(cfgp(wifi="wlsplit-too-long"))
        check("wifi_interface: a name longer than an interface's is refused, naming the key",
              "keeping the running configuration" in r.last and "wifi_interface" in r.last, r.last)
        w = status(port).get("link", {}).get("wifi", {})
        check("wifi_interface: and wlsplit1 stays", w.get("interface") == "wlsplit1", w)
        r.reload(cfgp())

        power_phases(r, port, cfgp)
        planner_phases(r, port, lambda: cfgp(rate_hz=200, idle=50))

        r.reload(cfgp(rate_hz=1) + "[daemon]\nbogus = 1\n")
        check("all or nothing: an unknown key refuses the whole reload and names it",
              "keeping the running configuration" in r.last and "bogus" in r.last, r.last)
        st, text = get(port, "/metrics")
        check("all or nothing: the rate stays 200 Hz", b"splitd_power_sample_rate_hertz 200" in text)
        check("robot: still serving after every reload", infer(port) == 200 and r.proc.poll() is None)
    finally:
        r.stop("robot")


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    splitd = sys.argv[1]
    with tempfile.TemporaryDirectory(prefix="splitd-reload-") as tmp:
        model = os.path.join(tmp, "m.onnx")
        make_model(model)
        token_phase(splitd, model, tmp)
        robot_phases(splitd, model, tmp)
    print(f"{e2e.PASS} passed, {e2e.FAIL} failed")
    return 1 if e2e.FAIL else 0


if __name__ == "__main__":
    sys.exit(main())
