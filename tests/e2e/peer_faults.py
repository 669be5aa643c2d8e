#!/usr/bin/python3
"""A robot splitd against a misbehaving peer, under concurrent load.

Usage: peer_faults.py SPLITD [PHASE...]

PHASE (default all): load, shape, dtype, missing, nan, garbage, oversized,
trickle, hang, own-nan, client-image, input-plan.

The peer is the test's own: an HTTP proxy (http.server) in front of a real
splitd peer, which answers the health and identity probes as that peer does
and, phase by phase, breaks its inference answers: the wrong output shape,
the wrong dtype, a missing output, garbage, NaN, a trickle, a hang, an
answer far larger than the model's outputs. The robot's planner counts
only its own compute (policy energy, no transmit or wait power), so once an
image came it sends received images as they are ("cut 0 input"). The model is a small CNN written here (python3-onnx),
so the test runs in seconds even against the ASan build.

Checks, with a few client threads at once in every phase:
  * every request is answered: 200 with the local answer and
    placement.fallback when the peer's answer is bad, never a crash;
  * a bad answer is counted against the peer (/v1/status peer.failures, and
    peer.bad_answers when it parsed but could not be used: the robot also
    backs the peer off);
  * NaN in the peer's answer where the robot's own run of the same nodes
    has none: the local answer, fallback_reason naming the non-finite
    values, counted against the peer; NaN the model produces itself (a NaN
    input): not counted;
  * a client's truncated JPEG at cut 0 (the peer answers 400): the client gets
    the 400, the peer is not counted as failed, and the other clients'
    requests keep going to the peer;
  * with the plan at "cut 0 input", plain npy requests are answered (200);
  * the robot is still up at the end, exits cleanly on SIGTERM, and its log
    has no sanitizer report.
Every wait is a poll with a generous deadline; nothing races a sleep.
Prints 'N passed, N failed' and exits non-zero on any failure.
"""
import http.client
import http.server
import io
import json
import os
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from split_e2e import free_port, peer_conf  # noqa: E402  (the two-daemon test's own)

PASS = 0
FAIL = 0
LOCK = threading.Lock()


def check(name, ok, detail=""):
    global PASS, FAIL
    with LOCK:
        if ok:
            PASS += 1
            print(f"ok   {name}", flush=True)
        else:
            FAIL += 1
            print(f"FAIL {name} {str(detail)[:600]}", flush=True)


def call(url, data=None, ctype=None, timeout=60):
    req = urllib.request.Request(url, data=data)
    if ctype:
        req.add_header("Content-Type", ctype)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def poll(what, deadline_s=30.0):
    """what() until it is true or the deadline passes; its last value."""
    t0 = time.monotonic()
    while True:
        v = what()
        if v or time.monotonic() - t0 > deadline_s:
            return v
        time.sleep(0.05)


# ---- the model: a small CNN, every node cheap ------------------------------

def write_model(path):
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(3)

    def init(name, shape, scale):
        return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)
    inits = [init("w1", (8, 3, 3, 3), 0.3), init("b1", (8,), 0.1), init("w2", (8, 8, 3, 3), 0.2),
             init("b2", (8,), 0.1), init("w3", (8, 10), 0.5), init("b3", (10,), 0.1)]
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("GlobalAveragePool", ["r2"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("Gemm", ["f", "w3", "b3"], ["y"]),
    ]
    g = helper.make_graph(nodes, "faults", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 32, 32])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 7
    onnx.checker.check_model(m)
    with open(path, "wb") as f:
        f.write(m.SerializeToString())


# ---- the misbehaving peer ---------------------------------------------------

class Proxy:
    """Forwards to the real peer; PROXY_MODE[0] says how to break inference
    answers."""

    def __init__(self, port, peer_port):
        self.peer_port = peer_port
        self.stop = threading.Event()
        proxy = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def forward(self, method, body):
                c = http.client.HTTPConnection("127.0.0.1", proxy.peer_port, timeout=60)
                hdrs = {k: v for k, v in self.headers.items()
                        if k.lower() in ("content-type", "inference-header-content-length")}
                c.request(method, self.path, body=body, headers=hdrs)
                r = c.getresponse()
                data = r.read()
                out = {k: v for k, v in r.getheaders()
                       if k.lower() in ("content-type", "inference-header-content-length")}
                c.close()
                return r.status, out, data

            def answer(self, status, hdrs, body, content_length=None):
                self.send_response(status)
                for k, v in hdrs.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body) if content_length is None else content_length))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                st, hdrs, data = self.forward("GET", None)
                self.answer(st, hdrs, data)

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                req = self.rfile.read(n)
                mode = PROXY_MODE[0]
                if mode == "hang":  # the robot's deadline ends it
                    self.close_connection = True
                    proxy.stop.wait(20)
                    return
                st, hdrs, data = self.forward("POST", req)
                hl = None
                for k, v in hdrs.items():
                    if k.lower() == "inference-header-content-length":
                        hl = int(v)
                if st != 200 or hl is None:
                    self.answer(st, hdrs, data)
                    return
                head, binary = json.loads(data[:hl]), bytearray(data[hl:])
                o = head["outputs"][0]
                if mode == "shape":
                    o["shape"] = list(reversed(o["shape"]))
                elif mode == "dtype":
                    o["datatype"] = "INT32"
                elif mode == "missing":
                    o["name"] = "not_" + o["name"]
                elif mode == "nan":
                    binary[0:8] = struct.pack("<2f", float("nan"), float("inf"))
                hb = json.dumps(head).encode()
                body = hb + bytes(binary)
                hdrs = {"Content-Type": "application/octet-stream",
                        "Inference-Header-Content-Length": str(len(hb))}
                if mode == "garbage":
                    body = bytes(np.random.default_rng(len(req)).integers(0, 256, 3000, dtype=np.uint8))
                    hdrs["Inference-Header-Content-Length"] = "100"
                if mode == "trickle":  # one byte at a time, past the deadline
                    self.close_connection = True
                    self.send_response(200)
                    for k, v in hdrs.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    try:
                        for i in range(len(body)):
                            if proxy.stop.wait(0.2):
                                return
                            self.wfile.write(body[i:i + 1])
                            self.wfile.flush()
                    except OSError:
                        pass
                    return
                if mode == "oversized":  # 64 MiB on its way
                    self.close_connection = True
                    pad = bytes(1 << 20)
                    try:
                        self.send_response(200)
                        for k, v in hdrs.items():
                            self.send_header(k, v)
                        self.send_header("Content-Length", str(len(body) + 64 * len(pad)))
                        self.end_headers()
                        self.wfile.write(body)
                        for _ in range(64):
                            self.wfile.write(pad)
                    except OSError:
                        pass
                    return
                self.answer(200, hdrs, body)

        class S(http.server.ThreadingHTTPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.srv = S(("127.0.0.1", port), H)
        self.th = threading.Thread(target=self.srv.serve_forever, daemon=True)
        self.th.start()

    def close(self):
        self.stop.set()
        self.srv.shutdown()
        self.srv.server_close()


# ---- the daemons ------------------------------------------------------------

class Daemon:
    def __init__(self, splitd, conf_text, port, name, tmp):
        self.path = os.path.join(tmp, name + ".conf")
        with open(self.path, "w") as f:
            f.write(conf_text)
        self.logpath = os.path.join(tmp, name + ".log")
        self.log = open(self.logpath, "w")
        self.port, self.name = port, name
        env = dict(os.environ)
        # the sanitizer build stops at its first report (ignored otherwise)
        env.setdefault("ASAN_OPTIONS", "abort_on_error=1:detect_leaks=1")
        env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
        self.proc = subprocess.Popen([splitd, "serve", "-c", self.path], stdout=self.log,
                                     stderr=subprocess.STDOUT, env=env)

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def text(self):
        self.log.flush()
        with open(self.logpath, errors="replace") as f:
            return f.read()


def robot_conf(model, port, peer_port):
    return f"""[daemon]
role = robot
threads = 1
log_level = info
[api]
listen = 127.0.0.1:{port}
[peer]
url = http://127.0.0.1:{peer_port}
plain = true
request_timeout_ms = 3000
probe_interval_ms = 100
backoff_max_ms = 200
[power]
enabled = false
[planner]
# the robot's energy is its compute only: sending the received image
# (nothing computed here) is the plan once one came, whatever the link does
policy = energy
p_compute_w = 1000
p_tx_w = 0
p_wait_w = 0
[model.m]
path = {model}
"""


def ready(port):
    try:
        return call(f"http://127.0.0.1:{port}/v2/health/ready", timeout=2)[0] == 200
    except OSError:
        return False


def npy_bytes(x):
    b = io.BytesIO()
    np.save(b, x)
    return b.getvalue()


def jpeg_bytes(w, h, quality=30):
    from PIL import Image
    yy, xx = np.mgrid[0:h, 0:w]
    rgb = np.stack([(xx * 255 // w), (yy * 255 // h), ((xx + yy) * 127 // (w + h))], -1).astype(np.uint8)
    b = io.BytesIO()
    Image.fromarray(rgb).save(b, format="JPEG", quality=quality)
    return b.getvalue()


class Robot:
    def __init__(self, port):
        self.port = port

    def infer(self, body, ctype, query=""):
        try:
            st, data = call(f"http://127.0.0.1:{self.port}/v1/infer{query}", body, ctype)
        except OSError as e:  # the robot is gone
            return -1, {"error": str(e)}
        try:
            return st, json.loads(data)
        except ValueError:
            return st, {"raw": data[:200]}

    def status(self):
        try:
            st, data = call(f"http://127.0.0.1:{self.port}/v1/status", timeout=10)
            return json.loads(data)["models"][0] if st == 200 else None
        except (OSError, ValueError, KeyError, IndexError):
            return None

    def peer(self):
        s = self.status()
        return s["peer"] if s else {}


def load(jobs):
    """Run each list of (body, ctype, query) on its own client thread at
    once; the answers, in the order of the jobs."""
    out = [[] for _ in jobs]

    def run(i, reqs):
        for body, ctype, query in reqs:
            out[i].append(ROBOT.infer(body, ctype, query))
    ths = [threading.Thread(target=run, args=(i, j)) for i, j in enumerate(jobs)]
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    return out


ROBOT = None


def main():
    global ROBOT
    splitd = sys.argv[1]
    tmp = tempfile.mkdtemp(prefix="splitd-faults-")
    model = os.path.join(tmp, "faults.onnx")
    write_model(model)
    pport, qport, rport = free_port(), free_port(), free_port()
    peer = Daemon(splitd, peer_conf(model, pport), pport, "peer", tmp)
    proxy = None
    robot = None
    try:
        check("peer starts", poll(lambda: ready(pport) or not peer.alive(), 60) and peer.alive())
        proxy = Proxy(qport, pport)
        robot = Daemon(splitd, robot_conf(model, rport, qport), rport, "robot", tmp)
        ROBOT = Robot(rport)
        check("robot starts", poll(lambda: ready(rport) or not robot.alive(), 60) and robot.alive())
        check("robot sees its peer up", poll(lambda: ROBOT.peer().get("state") == "up", 30), ROBOT.peer())
        run(robot)
    finally:
        rc = robot.stop() if robot else None
        if robot:
            log = robot.text()
            check(f"robot exits cleanly on SIGTERM (status {rc})", rc == 0, log[-1500:])
            bad = [l for l in log.splitlines() if "Sanitizer" in l or "runtime error" in l
                   or "double free" in l]
            check("no sanitizer report in the robot's log", not bad, bad[:5])
        peer.stop()
        if proxy:
            proxy.close()
        if FAIL:
            for d in (robot, peer):
                if d:
                    print(f"--- {d.name}.log (tail)")
                    print("\n".join(d.text().splitlines()[-40:]))


def recovered():
    """The proxy is passing again: the peer back up and used."""
    def ok():
        if ROBOT.peer().get("state") != "up":
            return False
        st, r = ROBOT.infer(NPY, "application/x-npy", "?cut=2&encoding=f32")
        return st == 200 and not r["placement"]["fallback"]
    return poll(ok, 30)


def run(robot):
    global NPY
    rng = np.random.default_rng(7)
    x = rng.standard_normal((1, 3, 32, 32)).astype(np.float32)
    NPY = npy_bytes(x)
    n = ROBOT.status()["nodes"]
    st, ref = ROBOT.infer(NPY, "application/x-npy", f"?cut={n}")
    check(f"all-local answer ({n} nodes)", st == 200 and ref["placement"]["remote_nodes"] == 0 and n >= 4,
          (st, ref))
    y = np.array(ref["outputs"][0]["data"], dtype=np.float32)

    jobs = [[(NPY, "application/x-npy", f"?cut={k}&encoding=f32")] * 4 for k in (1, 2, 3)]
    res = [a for t in load(jobs) for a in t]
    check("a passing peer: every request offloaded", all(st == 200 and not r["placement"]["fallback"]
                                                          for st, r in res), res[:2])

    # Load as the planner sees it: images and tensors at the plan's choice,
    # each answer learnt from after it went out.
    if want("load"):
        img = jpeg_bytes(96, 72)
        jobs = [[(img, "image/jpeg", ""), (NPY, "application/x-npy", "")] * 8 for _ in range(3)]
        res = [a for t in load(jobs) for a in t]
        check(f"load at the plan's choice: all {len(res)} answered (200)", all(st == 200 for st, _ in res),
              [r for st, r in res if st != 200][:2])
        if not robot.alive():
            return

    # Answers that are bad in each way: every request answered from the
    # robot's own run, and the peer counted as failed.
    proxy_modes = [("shape", "shape", True), ("dtype", "INT32", True), ("missing", "lacks output", True),
                   ("nan", "non-finite", True), ("garbage", "", False), ("oversized", "exceeds", False),
                   ("trickle", "", False), ("hang", "", False)]
    for mode, why, parsed in proxy_modes:
        if not want(mode):
            continue
        before = ROBOT.peer()
        PROXY_MODE[0] = mode
        per = 4 if mode not in ("trickle", "hang") else 2
        jobs = [[(NPY, "application/x-npy", f"?cut={k}&encoding=f32")] * per for k in (1, 2, 3)]
        res = [a for t in load(jobs) for a in t]
        after = ROBOT.peer()
        PROXY_MODE[0] = "pass"
        # a fallback runs the rest of the model on the robot itself (threads = 1): the
        # arithmetic of its all-local answer, in the same order, so the same bits
        good = [st == 200 and r["placement"]["fallback"] and
                float(np.abs(np.array(r["outputs"][0]["data"], dtype=np.float32) - y).max()) == 0
                for st, r in res]
        check(f"peer answers '{mode}': all {len(res)} answered locally (200, fallback)", all(good),
              [r for (st, r), g in zip(res, good) if not g][:2])
        reasons = {r["placement"].get("fallback_reason") for st, r in res if st == 200}
        check(f"  ... the fallback reason says why ({why or 'any'})",
              any(why in (s or "") for s in reasons), reasons)
        fails = after.get("failures", 0) - before.get("failures", 0)
        check(f"  ... counted against the peer ({fails} failures)", fails >= 1, (before, after))
        if parsed:
            bad = after.get("bad_answers", 0) - before.get("bad_answers", 0)
            check(f"  ... as answers that parsed but could not be used ({bad})", bad >= 1, after)
        check("  ... robot up, peer back in use once it answers well", robot.alive() and recovered(),
              ROBOT.peer())
        if not robot.alive():
            return

    # NaN the model produces itself (a NaN input): the peer's answer agrees
    # with the robot's own run, so the peer is not blamed.
    xn = x.copy()
    xn[0, 0, 3, 3] = np.nan
    before = ROBOT.peer()
    res = [] if not want("own-nan") else load([[(npy_bytes(xn), "application/x-npy", "?cut=2&encoding=f32")] * 3] * 2)
    res = [a for t in res for a in t]
    after = ROBOT.peer()
    check("NaN of the model's own: answered, the peer not counted", not want("own-nan") or
          all(st == 200 for st, _ in res) and after.get("failures") == before.get("failures")
          and after.get("state") == "up", (res[:1], before, after))

    if want("client-image"):
        client_image()
    if want("input-plan"):
        input_plan()
    check("robot still up and ready", robot.alive() and ready(ROBOT.port))


def client_image():
    """A client's corrupt image at cut 0: the peer's 400 is the client's."""
    jpg = jpeg_bytes(64, 48)
    corrupt = jpg[:len(jpg) // 3]  # a truncated upload: no scan to decode
    before = ROBOT.peer()
    jobs = [[(corrupt, "image/jpeg", "?cut=0&encoding=input"), (NPY, "application/x-npy", "?cut=2&encoding=f32")] * 3,
            [(corrupt, "image/jpeg", "?cut=0&encoding=input")] * 3,
            [(NPY, "application/x-npy", "?cut=3&encoding=f32")] * 6]
    out = load(jobs)
    after = ROBOT.peer()
    bad = [a for i, t in enumerate(out) for j, a in enumerate(t) if jobs[i][j][1] == "image/jpeg"]
    goods = [a for i, t in enumerate(out) for j, a in enumerate(t) if jobs[i][j][1] != "image/jpeg"]
    check(f"a client's truncated JPEG at cut 0: 400 to that client ({len(bad)})",
          all(st == 400 and "error" in r for st, r in bad), bad[:2])
    check("  ... the peer not counted as failed nor backed off",
          after.get("failures") == before.get("failures") and after.get("state") == "up"
          and after.get("refusals", 0) - before.get("refusals", 0) >= 1, (before, after))
    check(f"  ... the other clients' requests still offloaded ({len(goods)})",
          all(st == 200 and not r["placement"]["fallback"] for st, r in goods),
          [r.get("placement") for st, r in goods if st != 200 or r["placement"]["fallback"]][:2])



def input_plan():
    """The plan comes to "cut 0 input" (the robot's compute is all its
    energy); tensor requests are still answered."""
    big = jpeg_bytes(320, 240)

    def planned():
        st, r = ROBOT.infer(big, "image/jpeg", "?outputs=none")
        s = ROBOT.status()
        return st == 200 and s and s["planner"].get("cut") == 0 and s["planner"].get("encoding") == "input"
    check("the plan comes to 'cut 0 input' for images", poll(planned, 40),
          (ROBOT.status() or {}).get("planner", {}).get("plan"))
    # nothing else runs: the next request meets that plan (its own run may
    # then move the plan, as any request's may)
    st, r = ROBOT.infer(NPY, "application/x-npy")
    check("  ... a plain npy request meanwhile is answered (200)", st == 200, r)
    res = [a for t in load([[(NPY, "application/x-npy", "")] * 3] * 3) for a in t]
    check("  ... and so are concurrent ones", all(st == 200 for st, _ in res),
          [r for st, r in res if st != 200][:2])
    st, r = ROBOT.infer(big, "image/jpeg", "?outputs=none")
    check("  ... while images still go as received", st == 200 and r["placement"]["encoding"] == "input"
          and r["placement"]["cut"] == 0 and not r["placement"]["fallback"], r.get("placement"))


PROXY_MODE = ["pass"]
NPY = b""
SELECT = set(sys.argv[2:])


def want(phase):
    return not SELECT or phase in SELECT

if __name__ == "__main__":
    try:
        main()
    except Exception:  # a crash of the test is a failure, not a pass
        import traceback
        traceback.print_exc()
        FAIL += 1
    print(f"{PASS} passed, {FAIL} failed")
    sys.exit(1 if FAIL else 0)
