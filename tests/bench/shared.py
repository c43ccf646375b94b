"""What every phase of bench.py shares: the simulator's records, gatewayd as a measured
daemon, statistics and tables.

Everything is timed from the simulator's records, never from a daemon's own logs (bench.py's
top comment says how): Tracker matches each message's token to the AT+CMGS that carried it, its
PDU/Ctrl-Z and its completion. Gatewayd starts one gatewayd of this build with a config of its
own; accept_run() is the durable-acceptance load that the throughput, rss and cluster phases
use.
"""

from __future__ import annotations

import json
import os
import random
import re
import secrets
import socket
import sys
import time

import clients
from gwtest import listen_port_range
from modemsim_client import Sim
from sysproc import Daemon

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

GATEWAYD = os.environ.get("GATEWAYD", os.path.join(ROOT, "build", "gatewayd", "gatewayd"))
NUMBER = "+32470000001"
TOKEN_RE = re.compile(r"tok[0-9a-f]{10}")
IDLE_WINDOW = 10.0
SETTLE = 0.5


def token() -> str:
    return "tok" + secrets.token_hex(5)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# what the simulator saw

class Tail:
    """New complete records of a JSON-lines file since the last call."""

    def __init__(self, path: str):
        self.path, self.pos, self.buf = path, 0, b""

    def read(self) -> list[dict]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.pos)
                data = f.read()
        except FileNotFoundError:
            return []
        self.pos += len(data)
        lines = (self.buf + data).split(b"\n")
        self.buf = lines.pop()
        return [json.loads(x) for x in lines if x.strip()]


class Tracker:
    """Per token: mono of the AT+CMGS that carried it, of its PDU/Ctrl-Z, of its completion."""

    def __init__(self, sim: Sim, modems):
        self.modems = set(modems)
        self.at = {m: Tail(os.path.join(sim.dir, f"{m}.at.jsonl")) for m in modems}
        self.sent = Tail(os.path.join(sim.dir, "sent.jsonl"))
        self.last_cmgs = {m: None for m in modems}
        self.seen: dict[str, dict] = {}

    def poll(self) -> None:
        for m, tail in self.at.items():
            for r in tail.read():
                cmd = r.get("cmd") or ""
                if cmd.startswith("AT+CMGS="):
                    self.last_cmgs[m] = r["mono"]
                elif "decoded" in r:
                    for tok in TOKEN_RE.findall(r["decoded"]):
                        s = self.seen.setdefault(tok, {})
                        s.setdefault("modem", m)
                        s.setdefault("cmgs", self.last_cmgs[m])
                        s.setdefault("ctrlz", r["mono"])
        for r in self.sent.read():
            if r.get("event") == "sms" and r.get("modem") in self.modems:
                for tok in TOKEN_RE.findall(r.get("text", "")):
                    self.seen.setdefault(tok, {}).setdefault("done", r["mono"])

    def wait(self, tokens, timeout: float, check=None) -> dict[str, dict]:
        """Wait until every token was sent and completed; TimeoutError says how many were."""
        deadline = time.monotonic() + timeout
        while True:
            self.poll()
            done = {t: self.seen[t] for t in tokens
                    if "done" in self.seen.get(t, {}) and self.seen[t].get("cmgs")}
            if len(done) == len(tokens):
                return done
            if check:
                check()
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(done)} of {len(tokens)} messages sent in {timeout} s")
            time.sleep(0.02)


# ---------------------------------------------------------------------------------------------
# gatewayd

def port_pair() -> int:
    low, high = listen_port_range()  # below the ephemeral range: see gwtest
    for _ in range(100):
        p = random.randint(low, high - 1)
        try:
            for q in (p, p + 1):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", q))
            return p
        except OSError:
            continue
    raise RuntimeError("no free port pair")


class Gatewayd:
    def __init__(self, ctx, workdir: str, name: str, modems: dict[str, str],
                 modem_extra: str = ""):
        self.ctx = ctx
        self.dir = os.path.join(workdir, name)
        os.makedirs(self.dir, exist_ok=True)
        port = port_pair()
        self.endpoint = f"tcp://127.0.0.1:{port}"
        self.state_dir = os.path.join(self.dir, "state")
        text = (f"[node]\nname = bench\nstate_dir = {self.state_dir}\n\n"
                f"[submit]\nbind = {self.endpoint}\n\n"
                f"[events]\nbind = tcp://127.0.0.1:{port + 1}\n\n"
                # Every alert its own SMS: the figures are per alert, not per flood summary.
                "[bundle]\nthreshold = 0\n\n[limits]\nsms = off\ncalls = off\n\n")
        for m, dev in modems.items():
            text += f"[modem {m}]\ndevice = {dev}\nconnection = at\n{modem_extra}\n"
        self.config = os.path.join(self.dir, "gatewayd.conf")
        with open(self.config, "w") as f:
            f.write(text)
        self.modems = list(modems)
        self.daemon = Daemon("gatewayd", [GATEWAYD, "-c", self.config],
                             os.path.join(self.dir, "gatewayd.log"))
        self.req: clients.ReqClient | None = None

    def start(self, timeout: float = 60.0) -> "Gatewayd":
        self.daemon.start()
        self.req = clients.ReqClient(self.ctx, self.endpoint)
        deadline = time.monotonic() + timeout
        while True:
            self.daemon.check()
            try:
                st = self.req.request({"op": "status"}, timeout=0.5)
                up = sum(1 for m in st.get("modems", []) if m["state"] in ("ok", "degraded"))
                if up >= len(self.modems):
                    return self
            except TimeoutError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"gatewayd not ready in {timeout} s:\n{self.daemon.log_tail()}")
            time.sleep(0.2)

    def status(self) -> dict:
        return self.req.request({"op": "status"}, timeout=30)

    def send(self, text: str, **extra) -> float:
        """Submit one alert; returns t0 (just before the send). Raises unless queued."""
        req = {"to": [NUMBER], "text": text, **extra}
        t0 = time.monotonic()
        r = self.req.request(req, timeout=10)
        self.last_reply = time.monotonic() - t0
        if r.get("status") != "queued":
            raise RuntimeError(f"gatewayd answered {r}")
        return t0

    def stop(self) -> None:
        if self.req:
            self.req.close()
        self.daemon.stop()


# ---------------------------------------------------------------------------------------------
# statistics and printing

def pct(values, p: float) -> float:
    """Percentile with linear interpolation between closest ranks (numpy's default)."""
    v = sorted(values)
    if not v:
        return float("nan")
    k = (len(v) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def ms(x: float) -> str:
    if x != x:
        return "-"
    return f"{x * 1000:.1f} ms" if x < 1 else f"{x:.2f} s"


def table(title: str, headers: list[str], rows: list[list]) -> None:
    cells = [[str(c) for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h)
              for i, h in enumerate(headers)]
    print(f"\n### {title}\n")
    print("| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in cells:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |")
    sys.stdout.flush()


def idle_cpu(daemon: Daemon, seconds: float) -> float:
    c0 = daemon.cpu()
    time.sleep(seconds)
    daemon.check()
    return (daemon.cpu() - c0) / seconds * 100



def goal(ok) -> str:
    """A goal column: "" when the figure has no goal, else met or NOT met."""
    return "" if ok is None else ("met" if ok else "NOT met")


# ---------------------------------------------------------------------------------------------
# durable acceptance: the load of the throughput, rss and cluster phases

def accept_run(ctx, work: str, name: str, total: int, procs: int, window: int,
               ttl: int | None = None, native: bool = False) -> tuple[dict, Gatewayd]:
    """A fresh gatewayd with no modem; `total` alerts with distinct keys (from the C clients
    with `native`). Leaves it running."""
    gw = Gatewayd(ctx, work, name, {}).start()
    payloads = []
    for i in range(total):
        req = {"to": [NUMBER], "text": f"bench load {name} alert {i}", "key": f"{name}-{i}"}
        if ttl:
            req["ttl"] = ttl
        payloads.append(json.dumps(req).encode())
    mark = {}

    def on_start():
        mark["cpu"], mark["t"] = gw.daemon.cpu(), time.monotonic()

    load = clients.load_native if native else clients.load
    res = load(gw.endpoint, payloads, procs, window, on_start=on_start)
    wall = time.monotonic() - mark["t"]
    res["daemon_cpu"] = (gw.daemon.cpu() - mark["cpu"]) / wall * 100
    res["client_cpu_pct"] = res["client_cpu"] / wall * 100
    gw.daemon.check()
    res["status_queued"] = gw.status()["queue"]["queued"]
    res["total"], res["procs"], res["window"] = total, procs, window
    return res, gw
