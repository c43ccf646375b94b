"""ZeroMQ clients for bench.py: a lone REQ client, a burst sender, and a multi-process load.

The load generator runs in several processes (multiprocessing, "spawn": each child has its own
interpreter, GIL and zmq context) so that the Python client is not what limits the rate. Each
child owns one DEALER socket (empty delimiter frame, as the README allows) and keeps `window`
requests in flight; with window 1 it behaves exactly like a REQ client. All requests are
encoded before the start signal. A child reports how many replies said "queued", the first
send and last reply times (CLOCK_MONOTONIC, shared by all processes) and its own CPU time.
"""

from __future__ import annotations

import json
import multiprocessing
import resource
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


def load(endpoint: str, payloads: list[bytes], procs: int, window: int, on_start=None,
         timeout: float = 300.0) -> dict:
    """Spread payloads over `procs` processes, `window` in flight each; wait for all replies.

    on_start() is called in the parent right when the children are released (to read the
    daemon's CPU counter). Returns totals: queued, other, seconds, rate, client_cpu, errors."""
    mp = multiprocessing.get_context("spawn")
    barrier = mp.Barrier(procs + 1)
    results = mp.Queue()
    shares = [payloads[i::procs] for i in range(procs)]
    children = [mp.Process(target=_load_child, args=(endpoint, s, window, barrier, results),
                           daemon=True) for s in shares]
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
