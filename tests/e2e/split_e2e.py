#!/usr/bin/python3
"""End-to-end split inference: a peer and a robot splitd on loopback.

Usage: split_e2e.py SPLITD MODEL.onnx OTHER_MODEL.onnx --errbound ERRBOUND_TOOL [--quick]

Checks, against the robot's own all-local answer as the reference:
  * every cut k in 0..N-1 with f32 gives the local outputs bit for bit (both
    daemons run this build with threads = 1: [0, k) then [k, N) is the same
    arithmetic in the same order as [0, N)), and f16 / i8 / compressed
    encodings stay within the tolerance tests/errbound.h's rounding model
    gives for this input, that cut and that encoding (errbound_tool, given
    with --errbound), f16 with the same top-1; banded runs sum in other
    orders, so banded f32 gets the model's f32 tolerance;
  * the received JPEG forwarded at cut 0 equals decoding it locally;
  * kill -9 of the peer in the middle of a stream: every request answered,
    the fallbacks counted in /metrics, traffic back on the peer after restart;
  * a peer holding another model is refused by identity (all requests local);
  * a stalling peer costs at most the request deadline, then local;
  * garbage sent to the peer gets a JSON 400 and the peer keeps serving.
Prints 'N passed, N failed' and exits non-zero on any failure.
"""
import io
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

import numpy as np

PASS = 0
FAIL = 0


def check(name, ok, detail=""):
    global PASS, FAIL
    if ok:
        PASS += 1
        print(f"ok   {name}")
    else:
        FAIL += 1
        print(f"FAIL {name} {detail}")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def http(url, data=None, ctype=None, timeout=60):
    req = urllib.request.Request(url, data=data)
    if ctype:
        req.add_header("Content-Type", ctype)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


def wait_ready(port, proc, timeout=120, path="/v2/health/ready"):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None:
            return False
        try:
            st, _, _ = http(f"http://127.0.0.1:{port}{path}", timeout=2)
            if st == 200:
                return True
        except Exception:
            pass
        time.sleep(0.2)
    return False


class Daemon:
    def __init__(self, splitd, conf_text, port, name, tmp):
        self.path = os.path.join(tmp, name + ".conf")
        with open(self.path, "w") as f:
            f.write(conf_text)
        self.log = open(os.path.join(tmp, name + ".log"), "w")
        self.splitd, self.port, self.name = splitd, port, name
        self.start()

    def start(self):
        self.proc = subprocess.Popen([self.splitd, "serve", "-c", self.path],
                                     stdout=self.log, stderr=subprocess.STDOUT)

    def kill(self, sig=signal.SIGKILL):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=30)


def peer_conf(model, port, model_keys=""):
    return f"""[daemon]
role = peer
threads = 1
[api]
listen = 127.0.0.1:{port}
[peer_server]
plain = true
[model.m]
path = {model}
{model_keys}"""


def peer_tls_conf(model, port, certs):
    return f"""[daemon]
role = peer
threads = 1
[api]
listen = 127.0.0.1:{port}
[peer_server]
tls_cert = {certs}/peer.pem
tls_key = {certs}/peer.key
client_ca = {certs}/ca.pem
[model.m]
path = {model}
"""


def robot_tls_conf(model, port, peer_port, certs, client_dir):
    cert = f"cert_file = {client_dir}/robot.pem\nkey_file = {client_dir}/robot.key\n"
    return f"""[daemon]
role = robot
threads = 1
[api]
listen = 127.0.0.1:{port}
[peer]
url = https://127.0.0.1:{peer_port}
ca_file = {certs}/ca.pem
{cert}request_timeout_ms = 5000
[model.m]
path = {model}
"""


def robot_conf(model, port, peer_port, timeout_ms=5000):
    return f"""[daemon]
role = robot
threads = 1
log_level = info
[api]
listen = 127.0.0.1:{port}
[peer]
url = http://127.0.0.1:{peer_port}
plain = true
request_timeout_ms = {timeout_ms}
probe_interval_ms = 200
backoff_max_ms = 400
[model.m]
path = {model}
"""


def npy_bytes(x):
    b = io.BytesIO()
    np.save(b, x)
    return b.getvalue()


def infer(port, body, ctype, query="", timeout=60):
    st, data, _ = http(f"http://127.0.0.1:{port}/v1/infer{query}", body, ctype, timeout=timeout)
    try:
        return st, json.loads(data)
    except ValueError:
        return st, {"raw": data[:200]}


def out0(resp):
    o = resp["outputs"][0]
    return np.array(o["data"], dtype=np.float32).reshape(o["shape"])


def metric(port, name, labels=""):
    _, text, _ = http(f"http://127.0.0.1:{port}/metrics")
    for line in text.decode().splitlines():
        if line.startswith(name + labels) or (not labels and line.startswith(name + " ")):
            return float(line.split()[-1])
    return None


ERRBOUND = None


def tolerances(model, x, tmp, cuts=None):
    """tests/errbound.h's tolerances for this input: f32, and per cut f16 / i8
    (only at `cuts` when given)"""
    path = os.path.join(tmp, "x.f32")
    x.astype("<f4").tofile(path)
    extra = ["--cuts", ",".join(str(k) for k in sorted(cuts))] if cuts is not None else []
    out = subprocess.run([ERRBOUND, model, path, "--threads", "1"] + extra, capture_output=True, text=True,
                         timeout=600)
    if out.returncode != 0:
        raise SystemExit(f"errbound_tool failed: {out.stderr}")
    return json.loads(out.stdout)


def main():
    global ERRBOUND
    splitd, model, other = sys.argv[1], sys.argv[2], sys.argv[3]
    quick = "--quick" in sys.argv
    ERRBOUND = sys.argv[sys.argv.index("--errbound") + 1]
    tmp = tempfile.mkdtemp(prefix="splitd-e2e-")
    pport, rport = free_port(), free_port()
    peer = Daemon(splitd, peer_conf(model, pport), pport, "peer", tmp)
    if not wait_ready(pport, peer.proc):
        print(open(os.path.join(tmp, "peer.log")).read())
        check("peer starts", False)
        return
    robot = Daemon(splitd, robot_conf(model, rport, pport), rport, "robot", tmp)
    try:
        run(robot, peer, model, other, splitd, tmp, rport, pport, quick)
    finally:
        robot.kill(signal.SIGTERM)
        peer.kill(signal.SIGTERM)
        if FAIL:
            for n in ("robot", "peer"):
                print(f"--- {n}.log (tail)")
                print("".join(open(os.path.join(tmp, n + ".log")).readlines()[-30:]))


def run(robot, peer, model, other, splitd, tmp, rport, pport, quick):
    meta_raw = b"{}"
    check("robot ready", wait_ready(rport, robot.proc))
    st, body, _ = http(f"http://127.0.0.1:{rport}/v1/status")
    status = json.loads(body)
    m = status["models"][0]
    n = m["nodes"]
    check("robot sees the peer up", m["peer"]["state"] == "up", m["peer"])
    _, meta, _ = http(f"http://127.0.0.1:{rport}/v2/models/m")
    meta = json.loads(meta)
    shape = meta["inputs"][0]["shape"]
    rng = np.random.default_rng(7)
    x = rng.standard_normal(shape).astype(np.float32)
    body = npy_bytes(x)

    st, ref = infer(rport, body, "application/x-npy", f"?cut={n}")
    check("all-local answer", st == 200 and ref["placement"]["remote_nodes"] == 0, ref)
    y = out0(ref)
    scale = float(np.abs(y).max()) or 1.0
    cuts = range(n) if not quick else sorted(set([0, 1, n // 3, n // 2, n - 1]))
    bcuts = range(0, n) if not quick else sorted(set([0, 1, n // 4, n // 3, n // 2]))
    tols = tolerances(model, x, tmp, None if not quick else set(cuts) | set(bcuts) | {1})

    def tol(enc, k):
        """max |split - local| allowed: exact for unbanded f32, else the model's"""
        base = enc.split("%2B")[0]
        return tols["f32"] if base == "f32" else tols[base][k]

    worst = {}
    for enc in ("f32", "f16", "i8", "f16%2Bzstd", "i8%2Blz4"):
        bad = []
        for k in cuts:
            st, r = infer(rport, body, "application/x-npy", f"?cut={k}&encoding={enc}")
            if st != 200 or r["placement"]["fallback"] or r["placement"]["cut"] != k:
                bad.append((k, st, r.get("placement"), r.get("error")))
                continue
            d = float(np.abs(out0(r) - y).max())
            t = 0.0 if enc == "f32" else tol(enc, k)
            worst[enc] = max(worst.get(enc, 0.0), d / t if t > 0 else (0.0 if d == 0 else float("inf")))
            if d > t or (enc.startswith("f16") and int(out0(r).argmax()) != int(y.argmax())):
                bad.append((k, d, t))
        check(f"every cut with {enc.replace('%2B', '+')} matches local ("
              f"{'bit for bit' if enc == 'f32' else 'margin %.3g of its tolerance' % worst.get(enc, float('nan'))})",
              not bad, bad[:3])
        print(f"MARGIN e2e/split/{enc.replace('%2B', '+')} {worst.get(enc, float('nan')):.3g}")

    # Banded (streamed) cuts: every cut before the first barrier, B in
    # {2, 4, 8}, f32, f16 and i8: the outputs of the banded run + peer equal the
    # all-local ones, the timeline has one entry per band with its rows in
    # order, covering the cut tensor; past the barrier a clear 400.
    banded, refused, bad, barrier_msgs, wavefront, no_wave, refused_at = 0, 0, [], set(), 0, set(), set()
    bworst = 0.0
    # (cut 0: the input itself in bands, for the peer's wavefront)
    for k in bcuts:
        for b in (2, 4, 8):
            for enc in ("f32", "f16", "i8"):
                st, r = infer(rport, body, "application/x-npy", f"?cut={k}&bands={b}&encoding={enc}")
                if st == 400:
                    refused += 1
                    refused_at.add(k)
                    barrier_msgs.add(json.dumps(r.get("error", ""))[:160])
                    continue
                if st != 200 or r["placement"]["fallback"] or r["placement"]["bands"] != b:
                    bad.append((k, b, enc, st, r.get("placement"), r.get("error")))
                    continue
                banded += 1
                d = float(np.abs(out0(r) - y).max())
                t = tol(enc, k)
                bworst = max(bworst, d / t if t > 0 else (0.0 if d == 0 else float("inf")))
                tl = r.get("timeline", [])
                rows_ok = len(tl) == b and tl[0]["rows"][0] == 0 and \
                    all(tl[i]["rows"][0] == tl[i - 1]["rows"][1] for i in range(1, b)) and \
                    all(t["compute_end_ms"] <= t["ready_ms"] + 1e-3 and t["sent_ms"] >= t["ready_ms"] - 1e-3
                        for t in tl)
                # the peer ran its wavefront on the bands as they came: each
                # band's step after its bytes, in order
                peer_ok = all("peer_arrived_ms" in t for t in tl) and \
                    all(t["peer_compute_start_ms"] >= t["peer_arrived_ms"] - 1e-3 and
                        t["peer_compute_end_ms"] >= t["peer_compute_start_ms"] for t in tl) and \
                    all(tl[i]["peer_arrived_ms"] >= tl[i - 1]["peer_arrived_ms"] - 1e-3 and
                        tl[i]["peer_compute_start_ms"] >= tl[i - 1]["peer_compute_end_ms"] - 1e-3
                        for i in range(1, b))
                if peer_ok:
                    wavefront += 1
                else:
                    no_wave.add(k)
                if d > t or not rows_ok:
                    bad.append((k, b, enc, d, t, tl[:2]))
    check(f"banded cuts x B in (2, 4, 8) x (f32, f16, i8) equal local within tolerance ({banded} streamed, "
          f"{refused} refused at barriers; margin {bworst:.3g})", banded > 0 and not bad, bad[:3])
    print(f"MARGIN e2e/banded {bworst:.3g}")
    # ... all but at the last cut before the barrier, where the peer's first
    # node is the barrier itself
    last_banded = max((k for k in bcuts if k not in refused_at), default=-1)
    check(f"the peer ran every banded request as a wavefront but at the barrier ({wavefront} of {banded}; "
          f"not at cuts {sorted(no_wave)})", no_wave <= {last_banded} and wavefront >= banded - 9,
          (sorted(no_wave), last_banded))
    st, r = infer(rport, body, "application/x-npy", "?cut=1&bands=4&encoding=f32&wavefront=0")
    check("wavefront=0: the peer waits for the whole banded body (no peer times), same outputs",
          st == 200 and not r["placement"]["fallback"] and
          all("peer_arrived_ms" not in t for t in r.get("timeline", [{}])) and
          float(np.abs(out0(r) - y).max()) <= tol("f32", 1), (st, r.get("timeline", [])[:1]))
    st, r = infer(rport, body, "application/x-npy", "?cut=1&bands=4&wavefront=2")
    check("wavefront=2 is refused", st == 400 and "wavefront" in json.dumps(r), r)
    # one band limit (link/peer_proto.h PEER_MAX_BANDS = 64): the API parses
    # any count, the daemon refuses more than the link carries
    st, r = infer(rport, body, "application/x-npy", "?cut=1&bands=65&encoding=f32")
    check("bands=65 is refused: at most 64", st == 400 and "at most 64" in json.dumps(r), (st, r))
    check("banded requests past a barrier are refused with the reason",
          all("barrier" in m_ or "band" in m_ for m_ in barrier_msgs), barrier_msgs)
    st, r = infer(rport, body, "application/x-npy", "?cut=2&bands=4&encoding=f16%2Bzstd")
    check("a banded cut refuses encodings of variable size", st == 400 and "without compression" in json.dumps(r), r)

    # A band the robot cannot encode (int8 of a non-finite value) stops the
    # upload: the request is answered locally, and the peer is not blamed —
    # the next request goes to it.
    xn = x.copy()
    xn[0, 0, :8, :8] = np.inf
    st, r = infer(rport, npy_bytes(xn), "application/x-npy", "?cut=2&bands=4&encoding=i8&outputs=none")
    st2, r2 = infer(rport, body, "application/x-npy", "?cut=2&encoding=f16")
    check("a band that cannot be encoded: answered locally, the peer not put in backoff",
          st == 200 and r["placement"]["fallback"] and st2 == 200 and not r2["placement"]["fallback"],
          (st, r.get("placement"), st2, r2.get("placement")))

    # The received JPEG at cut 0 vs decoding it here.
    try:
        from PIL import Image
        img = Image.fromarray((rng.random((200, 260, 3)) * 255).astype(np.uint8))
        b = io.BytesIO()
        img.save(b, format="JPEG", quality=90)
        jpg = b.getvalue()
        st1, a = infer(rport, jpg, "image/jpeg", f"?cut={n}")
        st2, c = infer(rport, jpg, "image/jpeg", "?cut=0&encoding=input")
        ok = st1 == 200 and st2 == 200 and c["placement"]["encoding"] == "input" \
            and not c["placement"]["fallback"]
        # the same decoder and engine build, threads = 1 on both: the same bits
        d = float(np.abs(out0(a) - out0(c)).max()) if ok else -1
        check(f"JPEG forwarded at cut 0 equals local decode bit for bit (max diff {d:.1e})", ok and d == 0,
              (st1, st2, c))
    except ImportError:
        check("JPEG forwarded at cut 0 (python3-pil missing)", False)

    # The daemon's own exposition passes Prometheus's linter (promtool reads
    # the text format; OpenMetrics is scraped by a real Prometheus in the API's
    # integration test).
    import shutil
    if shutil.which("promtool"):
        for accept in ("text/plain",):
            req = urllib.request.Request(f"http://127.0.0.1:{rport}/metrics", headers={"Accept": accept})
            with urllib.request.urlopen(req, timeout=10) as resp:
                text = resp.read()
            lint = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True)
            check(f"promtool check metrics on the robot's /metrics ({accept.split(';')[0]})",
                  lint.returncode == 0 and b"splitd_requests_total" in text,
                  (lint.stdout + lint.stderr)[-400:])
    else:
        check("promtool present (Debian's prometheus package)", False)

    # A real Prometheus scrapes the robot; the request count comes back
    # through Prometheus's own query API.
    if os.path.exists("/usr/bin/prometheus"):
        prom_dir = os.path.join(tmp, "prom")
        os.makedirs(prom_dir)
        with open(os.path.join(prom_dir, "prometheus.yml"), "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n"
                    f"  - job_name: splitd\n    static_configs:\n      - targets: ['127.0.0.1:{rport}']\n")
        qport = free_port()
        prom = subprocess.Popen(["/usr/bin/prometheus", f"--config.file={prom_dir}/prometheus.yml",
                                 f"--storage.tsdb.path={prom_dir}/data",
                                 f"--web.listen-address=127.0.0.1:{qport}"],
                                stdout=subprocess.DEVNULL, stderr=open(os.path.join(prom_dir, "log"), "w"))
        want = sum(metric(rport, "splitd_requests_total", f'{{model="m",placement="{pl}"}}') or 0
                   for pl in ("local", "split", "offload", "fallback"))
        got = None
        try:
            t0 = time.time()
            while time.time() - t0 < 45 and got is None:
                time.sleep(0.5)
                try:
                    st, b, _ = http(f"http://127.0.0.1:{qport}/api/v1/query?query="
                                    "sum(splitd_requests_total%7Bmodel%3D%22m%22%7D)", timeout=5)
                    res = json.loads(b)["data"]["result"] if st == 200 else []
                    if res:
                        got = float(res[0]["value"][1])
                except (OSError, ValueError, KeyError):
                    pass
        finally:
            prom.terminate()
            prom.wait(timeout=30)
        check(f"Prometheus scraped the robot: {got} requests (the robot says {want:.0f})",
              got is not None and got == want, got)
    else:
        check("prometheus present (Debian's prometheus package)", False)

    # Garbage to the peer: a clear 400, and it keeps serving.
    st, g, _ = http(f"http://127.0.0.1:{pport}/v2/models/m/infer",
                    b'{"parameters":{"splitd_cut":3},"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]}]}',
                    "application/json")
    check("peer refuses a malformed cut request with 400 + JSON error",
          st == 400 and "error" in json.loads(g), (st, g[:200]))

    _, meta_raw, _ = http(f"http://127.0.0.1:{pport}/v2/models/m")

    # kill -9 the peer mid-stream; every request answered; back after restart.
    k = max(1, n // 2)
    results = []

    def stream(count, delay):
        for _ in range(count):
            results.append(infer(rport, body, "application/x-npy", f"?cut={k}&encoding=f16"))
            time.sleep(delay)

    fb0 = metric(rport, "splitd_fallbacks_total") or 0
    t = threading.Thread(target=stream, args=(30, 0.05))
    t.start()
    time.sleep(0.6)
    peer.kill()
    time.sleep(1.0)
    peer.start()
    t.join()
    ok = all(st == 200 for st, _ in results)
    fbs = sum(1 for st, r in results if st == 200 and r["placement"]["fallback"])
    check(f"kill -9 peer mid-stream: all {len(results)} answered ({fbs} fell back)", ok and fbs > 0,
          [r for st, r in results if st != 200][:2])
    fb1 = metric(rport, "splitd_fallbacks_total") or 0
    check("fallbacks counted in /metrics", fb1 - fb0 == fbs, (fb0, fb1, fbs))
    wait_ready(pport, peer.proc)
    back = False
    t0 = time.time()
    while time.time() - t0 < 15 and not back:
        st, r = infer(rport, body, "application/x-npy", f"?cut={k}&encoding=f16")
        back = st == 200 and not r["placement"]["fallback"]
        time.sleep(0.3)
    check(f"traffic back on the peer {time.time() - t0:.1f} s after restart", back)

    # A peer with another model under the same name: refused by identity.
    peer.kill()
    p2 = Daemon(splitd, peer_conf(other, pport), pport, "peer-other", tmp)
    wait_ready(pport, p2.proc)
    time.sleep(1.0)
    st, r = infer(rport, body, "application/x-npy", f"?cut={k}")
    _, s, _ = http(f"http://127.0.0.1:{rport}/v1/status")
    pst = json.loads(s)["models"][0]["peer"]
    check("peer with another model: answered locally, identity mismatch counted",
          st == 200 and r["placement"]["fallback"] and pst["identity_mismatches"] > 0, (st, pst))
    d = float(np.abs(out0(r) - y).max()) if st == 200 else 1
    check("  ... and the answer is still right (the robot's own run: bit for bit)", d == 0, d)
    p2.kill()

    # A stalling peer: answers the health and identity probes as the real
    # one did, then never answers an inference.
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", pport))
    srv.listen(16)
    conns = []
    stop = threading.Event()

    def serve(c):
        buf = b""
        try:
            while not stop.is_set():
                chunk = c.recv(65536)
                if not chunk:
                    return
                buf += chunk
                while b"\r\n\r\n" in buf:
                    head, buf = buf.split(b"\r\n\r\n", 1)
                    line = head.split(b"\r\n")[0].decode()
                    if line.startswith("POST"):
                        stop.wait()  # stall
                        return
                    body = b"{}" if "health" in line else meta_raw
                    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                              b"Content-Length: %d\r\n\r\n" % len(body) + body)
        except OSError:
            pass

    def accept():
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                c = srv.accept()[0]
            except OSError:
                continue
            conns.append(c)
            threading.Thread(target=serve, args=(c,), daemon=True).start()

    th = threading.Thread(target=accept)
    th.start()
    rport2 = free_port()
    r2 = Daemon(splitd, robot_conf(model, rport2, pport, timeout_ms=600), rport2, "robot-stall", tmp)
    check("robot starts although its peer stalls", wait_ready(rport2, r2.proc))
    time.sleep(1.5)  # the start-up calibration stalled too: let the prober bring it back up
    _, s2, _ = http(f"http://127.0.0.1:{rport2}/v1/status")
    check("  ... the stalling peer passed the probe", json.loads(s2)["models"][0]["peer"]["state"] == "up")
    t0 = time.time()
    st, r = infer(rport2, body, "application/x-npy", f"?cut={k}")
    dt = time.time() - t0
    check(f"stalling peer: answered locally in {dt:.2f} s (deadline 0.6 s)",
          st == 200 and r["placement"]["fallback"] and 0.5 < dt < 5, (st, r.get("placement")))
    r2.kill(signal.SIGTERM)
    stop.set()
    th.join()
    for c in conns:
        c.close()
    srv.close()
    tls_checks(splitd, model, body, y, scale, tmp)


def tls_checks(splitd, model, body, y, scale, tmp):
    """TLS 1.3 with client certificates: a robot with its certificate
    offloads; one whose certificate the peer's CA did not sign is refused
    (401) and answers locally; a client with no certificate gets 401."""
    certs, other = os.path.join(tmp, "certs"), os.path.join(tmp, "other-ca")
    here = os.path.dirname(os.path.abspath(__file__))
    for d in (certs, other):
        subprocess.run(["sh", os.path.join(here, "..", "..", "tools", "mkcerts.sh"), d],
                       check=True, capture_output=True)
    pport, rport, rport2 = free_port(), free_port(), free_port()
    peer = Daemon(splitd, peer_tls_conf(model, pport, certs), pport, "peer-tls", tmp)
    robot = Daemon(splitd, robot_tls_conf(model, rport, pport, certs, certs), rport, "robot-tls", tmp)
    anon = Daemon(splitd, robot_tls_conf(model, rport2, pport, certs, other), rport2, "robot-othercert", tmp)
    try:
        check("robots start next to a TLS peer", wait_ready(rport, robot.proc) and wait_ready(rport2, anon.proc))
        st, r = infer(rport, body, "application/x-npy", "?cut=2&encoding=f16")
        ok = st == 200 and not r["placement"]["fallback"] and r["placement"]["peer"].startswith("https://")
        check("robot with its client certificate offloads over TLS", ok, (st, r.get("placement")))
        st, r = infer(rport2, body, "application/x-npy", "?cut=2&encoding=f16")
        d = float(np.abs(out0(r) - y).max()) if st == 200 else 1
        check("robot with a certificate of another CA: refused by the peer, answered locally (bit for bit)",
              st == 200 and r["placement"]["fallback"] and d == 0, (st, r.get("placement")))
        _, s2, _ = http(f"http://127.0.0.1:{rport2}/v1/status")
        pst = json.loads(s2)["models"][0]["peer"]
        check("  ... counted as an authentication failure", pst["auth_failures"] > 0, pst)
        import ssl
        ctx = ssl.create_default_context(cafile=os.path.join(certs, "ca.pem"))
        try:
            req = urllib.request.Request(f"https://127.0.0.1:{pport}/v2/models/m")
            with urllib.request.urlopen(req, context=ctx, timeout=5) as resp:
                code = resp.status
        except urllib.error.HTTPError as e:
            code = e.code
        except Exception as e:  # a refused handshake is a refusal too
            code = str(e)
        check("a client without a certificate is refused by the peer", code != 200, code)
        # TLS 1.3 only, as the docs say: a client that offers at most 1.2 (with
        # the robot's valid certificate) gets no handshake; the same at 1.3 does
        def handshake(top):
            c = ssl.create_default_context(cafile=os.path.join(certs, "ca.pem"))
            c.load_cert_chain(os.path.join(certs, "robot.pem"), os.path.join(certs, "robot.key"))
            c.check_hostname = False
            c.minimum_version = ssl.TLSVersion.TLSv1_2
            c.maximum_version = top
            try:
                with socket.create_connection(("127.0.0.1", pport), timeout=5) as raw:
                    with c.wrap_socket(raw) as t:
                        return t.version()
            except (ssl.SSLError, OSError) as e:
                return f"refused: {e}"
        v12, v13 = handshake(ssl.TLSVersion.TLSv1_2), handshake(ssl.TLSVersion.TLSv1_3)
        check("the TLS peer refuses TLS 1.2 and speaks TLS 1.3", v12.startswith("refused") and v13 == "TLSv1.3",
              (v12, v13))
        # plain HTTP to the TLS port is no way in either
        try:
            st, _, _ = http(f"http://127.0.0.1:{pport}/v2/health/ready", timeout=5)
            check("plain HTTP to the TLS peer fails", False, st)
        except Exception:
            check("plain HTTP to the TLS peer fails", True)
    finally:
        for d in (robot, anon, peer):
            d.kill(signal.SIGTERM)


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # a crash of the test is a failure, not a pass
        import traceback
        traceback.print_exc()
        FAIL += 1
    print(f"{PASS} passed, {FAIL} failed")
    sys.exit(1 if FAIL else 0)
