"""ZeroMQ clients for bench.py: a lone REQ client, a burst sender, and a multi-process load.

The load generator runs in several processes (multiprocessing, "spawn": each child has its own
interpreter, GIL and zmq context) so that the Python client is not what limits the rate. Each
child owns one DEALER socket (empty delimiter frame, as the README allows) and keeps `window`
requests in flight; with window 1 it behaves exactly like a REQ client. All requests are
encoded before the start signal. A child reports how many replies said "queued", the first
send and last reply times (CLOCK_MONOTONIC, shared by all processes) and its own CPU time.

load_native() and paced_native() drive the same two loads from tests/bench/zload.c, one C process
in one thread, for the cluster figures: the Python clients took a quarter of one of the two
cores the gateway is measured on.

paced() is the open-loop load of the cluster phase: one process per endpoint, requests leaving
at fixed times whatever the replies do, each on a DEALER of its own from a pool so that every
reply is matched to its request (the daemon may answer out of order); latency counts from the
scheduled send time.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import resource
import subprocess
import tempfile
import time

import zmq


class ReqClient:
    """One persistent REQ socket (connected once, so a request pays no connect)."""

    def __init__(self, ctx: zmq.Context, endpoint: str):
        self.ctx = ctx
        self.endpoint = endpoint
        self.sock = None
        self._open()

    def _open(self):
        if self.sock is not None:
            self.sock.close()
        self.sock = self.ctx.socket(zmq.REQ)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(self.endpoint)

    def request(self, obj: dict, timeout: float = 10.0) -> dict:
        self.sock.send(json.dumps(obj).encode())
        if not self.sock.poll(int(timeout * 1000)):
            self._open()  # a REQ socket without its reply is wedged: start over
            raise TimeoutError(f"no reply within {timeout} s to {obj.get('op', 'send')}")
        return json.loads(self.sock.recv())

    def close(self):
        self.sock.close()


def burst(ctx: zmq.Context, endpoint: str, requests: list[dict], timeout: float = 30.0):
    """Send every request at once over one DEALER, then collect the replies.

    Returns (monotonic time before the first send, replies)."""
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    try:
        frames = [json.dumps(r).encode() for r in requests]
        t0 = time.monotonic()
        for f in frames:
            sock.send_multipart([b"", f])
        replies = []
        deadline = time.monotonic() + timeout
        while len(replies) < len(frames):
            left = deadline - time.monotonic()
            if left <= 0 or not sock.poll(int(left * 1000)):
                raise TimeoutError(f"{len(replies)} of {len(frames)} replies in {timeout} s")
            replies.append(json.loads(sock.recv_multipart()[-1]))
        return t0, replies
    finally:
        sock.close()


def _load_child(endpoint, payloads, window, barrier, results):
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    out = {"queued": 0, "other": {}, "done": 0, "t0": None, "t1": None, "cpu": 0.0}
    try:
        # one round trip first, so that the connection is up before the clock starts
        sock.send_multipart([b"", b'{"op":"status"}'])
        if not sock.poll(20000):
            raise TimeoutError("no answer to status")
        sock.recv_multipart()
        barrier.wait(60)
        ru0 = resource.getrusage(resource.RUSAGE_SELF)
        out["t0"] = time.monotonic()
        n, sent = len(payloads), 0
        while sent < min(window, n):
            sock.send_multipart([b"", payloads[sent]])
            sent += 1
        while out["done"] < n:
            if not sock.poll(30000):
                break  # bounded: report what we have
            body = sock.recv_multipart()[-1]
            out["done"] += 1
            if b'"queued"' in body:
                out["queued"] += 1
            else:
                status = json.loads(body).get("status") or json.loads(body).get("error")
                out["other"][status] = out["other"].get(status, 0) + 1
            if sent < n:
                sock.send_multipart([b"", payloads[sent]])
                sent += 1
        out["t1"] = time.monotonic()
        ru1 = resource.getrusage(resource.RUSAGE_SELF)
        out["cpu"] = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    except Exception as e:  # reported to the parent, which prints it
        out["error"] = f"{type(e).__name__}: {e}"
    finally:
        sock.close()
        ctx.term()
        results.put(out)


def load(endpoint, payloads: list[bytes], procs: int, window: int, on_start=None,
         timeout: float = 300.0) -> dict:
    """Spread payloads over `procs` processes, `window` in flight each; wait for all replies.

    endpoint: one endpoint, or a list of them: child i then talks to endpoint[i % len] (the
    cluster phase puts half of the clients on each node). on_start() is called in the parent
    right when the children are released (to read the daemon's CPU counter). Returns totals:
    queued, other, seconds, rate, client_cpu, errors."""
    mp = multiprocessing.get_context("spawn")
    barrier = mp.Barrier(procs + 1)
    results = mp.Queue()
    shares = [payloads[i::procs] for i in range(procs)]
    endpoints = [endpoint] if isinstance(endpoint, str) else list(endpoint)
    children = [mp.Process(target=_load_child,
                           args=(endpoints[i % len(endpoints)], s, window, barrier, results),
                           daemon=True) for i, s in enumerate(shares)]
    for c in children:
        c.start()
    outs = []
    try:
        barrier.wait(90)
        if on_start:
            on_start()
        deadline = time.monotonic() + timeout
        while len(outs) < procs and time.monotonic() < deadline:
            try:
                outs.append(results.get(timeout=max(0.1, deadline - time.monotonic())))
            except Exception:
                break
    finally:
        for c in children:
            c.join(10)
            if c.is_alive():
                c.terminate()  # SIGTERM to that child's pid
                c.join(5)
    errors = [o["error"] for o in outs if "error" in o]
    if len(outs) < procs:
        errors.append(f"{procs - len(outs)} client processes did not report")
    good = [o for o in outs if o["t0"] is not None and o["t1"] is not None]
    queued = sum(o["queued"] for o in outs)
    other: dict[str, int] = {}
    for o in outs:
        for k, v in o["other"].items():
            other[k] = other.get(k, 0) + v
    seconds = (max(o["t1"] for o in good) - min(o["t0"] for o in good)) if good else float("nan")
    return {"queued": queued, "other": other, "seconds": seconds,
            "rate": queued / seconds if good and seconds > 0 else 0.0,
            "client_cpu": sum(o["cpu"] for o in outs), "errors": errors}


def _paced_child(endpoint, payloads, rate, pool, barrier, results):
    """Open loop: request i leaves at t0 + i / rate whatever the replies do. Each request has a
    DEALER of its own from a pool (one in flight per socket), so every reply is matched to its
    request even when the server answers out of order; should the whole pool be busy, requests
    leave late and their latency still counts from their scheduled time."""
    ctx = zmq.Context()
    socks = []
    out = {"lat": [], "service": [], "lag": [], "queued": 0, "other": {}, "t0": None,
           "t1": None, "dry": 0}
    try:
        poller = zmq.Poller()
        for _ in range(pool):
            s = ctx.socket(zmq.DEALER)
            s.setsockopt(zmq.LINGER, 0)
            s.connect(endpoint)
            socks.append(s)
            poller.register(s, zmq.POLLIN)
        for s in socks:  # every connection up before the clock starts
            s.send_multipart([b"", b'{"op":"status"}'])
        for s in socks:
            if not s.poll(20000):
                raise TimeoutError("no answer to status")
            s.recv_multipart()
        barrier.wait(60)
        free = list(socks)
        inflight = {}
        n, i = len(payloads), 0
        t0 = out["t0"] = time.monotonic()
        quiet_since = t0
        while i < n or inflight:
            now = time.monotonic()
            while i < n and free and t0 + i / rate <= now:
                s = free.pop()
                sched = t0 + i / rate
                s.send_multipart([b"", payloads[i]])
                sent = time.monotonic()
                inflight[s] = (sched, sent)
                out["lag"].append(sent - sched)
                if not free:
                    out["dry"] += 1  # the pool ran dry: the next ones may leave late
                i += 1
            if i < n and free:
                wait_ms = max(0.0, (t0 + i / rate - time.monotonic()) * 1000)
            else:
                wait_ms = 100.0
            events = poller.poll(wait_ms)
            now = time.monotonic()
            for s, _ in events:
                body = s.recv_multipart()[-1]
                t = time.monotonic()
                sched, sent = inflight.pop(s)
                free.append(s)
                out["lat"].append(t - sched)
                out["service"].append(t - sent)
                if b'"queued"' in body:
                    out["queued"] += 1
                else:
                    o = json.loads(body)
                    k = o.get("status") or o.get("error")
                    out["other"][k] = out["other"].get(k, 0) + 1
            if events:
                quiet_since = now
            elif inflight and now - quiet_since > 30:
                out["error"] = f"{len(inflight)} requests unanswered for 30 s"
                break
        out["t1"] = time.monotonic()
    except Exception as e:
        out["error"] = f"{type(e).__name__}: {e}"
    finally:
        for s in socks:
            s.close()
        ctx.term()
        results.put(out)


def paced(endpoints: list[str], payloads: list[bytes], rate: float, pool: int = 64,
          timeout: float = 300.0) -> dict:
    """Open-loop load at `rate` requests/s in total, spread evenly over one process per
    endpoint. Returns latencies (reply - scheduled send, s), service times (reply - actual
    send), send lags, queued, other, errors, seconds, achieved rate."""
    mp = multiprocessing.get_context("spawn")
    k = len(endpoints)
    barrier = mp.Barrier(k + 1)
    results = mp.Queue()
    children = [mp.Process(target=_paced_child,
                           args=(ep, payloads[i::k], rate / k, pool, barrier, results),
                           daemon=True) for i, ep in enumerate(endpoints)]
    for c in children:
        c.start()
    outs = []
    try:
        barrier.wait(90)
        deadline = time.monotonic() + timeout
        while len(outs) < k and time.monotonic() < deadline:
            try:
                outs.append(results.get(timeout=max(0.1, deadline - time.monotonic())))
            except Exception:
                break
    finally:
        for c in children:
            c.join(10)
            if c.is_alive():
                c.terminate()
                c.join(5)
    errors = [o["error"] for o in outs if "error" in o]
    if len(outs) < k:
        errors.append(f"{k - len(outs)} client processes did not report")
    good = [o for o in outs if o["t0"] is not None and o["t1"] is not None]
    other: dict[str, int] = {}
    for o in outs:
        for key, v in o["other"].items():
            other[key] = other.get(key, 0) + v
    seconds = (max(o["t1"] for o in good) - min(o["t0"] for o in good)) if good else float("nan")
    queued = sum(o["queued"] for o in outs)
    return {"lat": [x for o in outs for x in o["lat"]],
            "service": [x for o in outs for x in o["service"]],
            "lag": [x for o in outs for x in o["lag"]],
            "dry": sum(o["dry"] for o in outs), "queued": queued, "other": other,
            "errors": errors, "seconds": seconds,
            "rate": queued / seconds if good and seconds > 0 else 0.0}


ZLOAD = os.environ.get("ZLOAD", os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "build", "tests", "zload"))


def _zload(mode: str, args: list[str], endpoints, payloads: list[bytes], on_start=None,
           timeout: float = 300.0) -> dict:
    """Runs zload on a file of the payloads; on_start() right before its clock starts."""
    eps = [endpoints] if isinstance(endpoints, str) else list(endpoints)
    with tempfile.NamedTemporaryFile("wb", suffix=".jsonl") as f:
        f.write(b"\n".join(payloads) + b"\n")
        f.flush()
        p = subprocess.Popen([ZLOAD, mode, *args, "--endpoints", ",".join(eps), f.name],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            if p.stdout.readline().strip() != "ready":
                raise RuntimeError(f"zload {mode} did not start (exit {p.wait(10)})")
            if on_start:
                on_start()
            p.stdin.write("go\n")
            p.stdin.flush()
            out, _ = p.communicate(timeout=timeout)
        finally:
            if p.poll() is None:
                p.kill()  # its own pid
                p.wait()
    res = json.loads(out)
    res["rate"] = res["queued"] / res["seconds"] if res["seconds"] > 0 else 0.0
    return res


def load_native(endpoint, payloads: list[bytes], procs: int, window: int, on_start=None) -> dict:
    """load() from zload: `procs` DEALER clients in one C thread. Same result keys."""
    res = _zload("load", ["--clients", str(procs), "--window", str(window)], endpoint, payloads,
                 on_start)
    res["client_cpu"] = res.pop("cpu")
    return res


def paced_native(endpoints: list[str], payloads: list[bytes], rate: float,
                 pool: int = 64) -> dict:
    """paced() from zload: request i at t0 + i / rate to endpoint i % len. Same result keys."""
    return _zload("paced", ["--rate", str(rate), "--pool", str(pool)], endpoints, payloads)
