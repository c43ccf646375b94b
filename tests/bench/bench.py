#!/usr/bin/python3
"""gatewayd benchmarks, side by side with smstools3 and gammu-smsd on the modem simulator.

    cd /work/main && ninja -C build && /usr/bin/python3 tests/bench/bench.py [--quick]
        [--only latency|throughput|sms|rss|faults|voice] [--seed N] [--keep]

This is a measurement, not a test: it prints tables and exits 0 whatever the figures are
(it exits 1 only if it could not measure at all, e.g. the binaries are not built).

Method
------
Everything runs on this machine against tests/modemsim (SIM800-like modems on pseudo-
terminals, answering in <1 ms unless a send delay is set). The simulator logs every AT command
it receives with "mono" = its time.monotonic() (CLOCK_MONOTONIC, the same clock as ours), the
PDU line with the decoded text, and each completed SMS in sent.jsonl. Every message carries a
unique token ("tok" + 10 hex digits) in its text, so a message is matched to the AT+CMGS
that carried it (the last AT+CMGS before the PDU whose decoded text holds the token) and to
its completion, whatever daemon sent it. Nothing is timed from a daemon's own logs.

1. latency: t0 = time.monotonic() just before the submission (gatewayd: the REQ send on an
   already connected socket; peers: the rename() of a file staged in a directory of the same
   file system into the spool directory they poll); end = simulator mono of the AT+CMGS that
   carried the message. One message at a time on an idle modem with zero send delay, each
   after a random pause uniform in [0, P] so injections land at a random phase of any polling
   loop (P = 1 s for gatewayd and the aggressive peer settings, the poll period otherwise:
   10 s smstools3 default, 30 s gammu-smsd default), plus 0.5 s after the previous message
   completed, so that its sender has finished too. A warm-up message first (not counted).
   Idle CPU = utime+stime of the daemon and its children over a 10 s window with nothing to
   do, as % of one core. gatewayd runs alone; the peer configurations then run concurrently,
   each its own daemon on its own simulated modem (they sleep between polls: <1 % CPU each),
   which keeps the default-settings peers (10-30 s polls) within the time budget.
2. throughput: gatewayd with no [modem] section, so only acceptance is measured: 20,000 alerts
   with distinct keys from 8 client processes (DEALER, 8 requests in flight each; then the same
   with 1 in flight each, i.e. REQ-like). Rate = replies "queued" / (first send .. last reply).
   Daemon CPU over the same window. Afterwards {"op":"status"} queue.queued must equal the
   count (printed, not asserted).
3. sms: N alerts queued at once, rate = N / (first AT+CMGS .. last completed SMS), for one
   modem with zero send delay and with a 3 s send delay (simulator send_delay, as
   --send-delay 3), and for 2 and 4 modems at zero delay (gatewayd). Peers on one modem, at
   their fastest: smstools3 aggressive, gammu-smsd LoopSleep 0 / CommTimeout 0 (peers.py).
   A burst starts 0.5 s after the previous message completed, on an idle daemon.
4. rss: gatewayd with no modem, 100,000 alerts (ttl 7 d) submitted as in 2; VmRSS and VmHWM
   from /proc/PID/status afterwards.

Every process started here is stopped by PID (sysproc.py), every wait is bounded, every socket
is on loopback, all files live in one temporary directory (removed unless --keep).
"""

from __future__ import annotations

import argparse
import json
import statistics
import os
import random
import re
import secrets
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))

try:
    import zmq
except ImportError:
    print("bench.py needs pyzmq: run it with /usr/bin/python3 (Debian's python3-zmq)")
    sys.exit(1)

import clients  # noqa: E402
import sysproc  # noqa: E402
from modemsim_client import Sim  # noqa: E402
from peers import GammuSmsd, Smstools  # noqa: E402
from sysproc import Daemon  # noqa: E402

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
    for _ in range(100):
        p = random.randint(20000, 60000)
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
                f"[events]\nbind = tcp://127.0.0.1:{port + 1}\n\n")
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


# ---------------------------------------------------------------------------------------------
# 1. latency

def latency_run(label: str, inject, tracker: Tracker, n: int, period: float, seed: int,
                timeout: float, check, prefix: str) -> dict:
    """Warm-up, then n messages one by one at random phases; latency to AT+CMGS and Ctrl-Z."""
    rng = random.Random(seed)
    tok = token()
    inject(f"bench {prefix} warmup {tok}")
    tracker.wait([tok], timeout + period, check)
    to_cmgs, to_ctrlz, lost = [], [], 0
    for i in range(n):
        # the modem answered the last send, but its sender may still be finishing (libgammu
        # reads the reply ~0.1 s later): settle, so that every message finds an idle daemon
        time.sleep(SETTLE + rng.uniform(0, period))
        tok = token()
        t0 = inject(f"bench {prefix} {i} {tok}")
        try:
            rec = tracker.wait([tok], timeout, check)[tok]
        except TimeoutError:
            lost += 1
            continue
        to_cmgs.append(rec["cmgs"] - t0)
        to_ctrlz.append(rec["ctrlz"] - t0)
        log(f"  {label}: {i + 1}/{n} {ms(to_cmgs[-1])}")
    return {"label": label, "n": n, "period": period, "cmgs": to_cmgs, "ctrlz": to_ctrlz,
            "lost": lost}


def latency_gatewayd(ctx, sim: Sim, work: str, n: int, seed: int, idle_window: float) -> dict:
    gw = Gatewayd(ctx, work, "gw-latency", {"gw0": sim.device("gw0")}).start()
    try:
        replies = []

        def inject(text):
            t0 = gw.send(text)
            replies.append(gw.last_reply)
            return t0

        res = latency_run("gatewayd", inject, Tracker(sim, ["gw0"]), n, 1.0, seed, 30,
                          gw.daemon.check, "gw")
        res["replies"] = replies[1:]  # without the warm-up
        time.sleep(1)
        res["idle_cpu"] = idle_cpu(gw.daemon, idle_window)
        res["rss_kb"] = sysproc.vm_status(gw.daemon.pid)["VmRSS"]
        return res
    finally:
        gw.stop()


def latency_peer(peer, sim: Sim, n: int, seed: int, idle_window: float, out: dict) -> None:
    """Thread body: start the peer, measure it, stop it; result or error into out."""
    try:
        d = peer.start()
        res = latency_run(peer.label, lambda text: peer.inject(NUMBER, text),
                          Tracker(sim, [peer.modem]), n, peer.poll, seed,
                          peer.poll * 1.5 + 40, d.check, peer.modem)
        time.sleep(1)
        res["idle_cpu"] = idle_cpu(d, idle_window)
        out.update(res)
    except Exception as e:
        out.update({"label": peer.label, "error": f"{type(e).__name__}: {e}"})
        if peer.daemon:
            out["error"] += "\n" + peer.daemon.log_tail(8)
    finally:
        peer.stop()


def phase_latency(ctx, work: str, args) -> list[dict]:
    n_gw, n_aggr, n_def = (10, 5, 0) if args.quick else (30, 15, 8)
    idle_window = IDLE_WINDOW / 2 if args.quick else IDLE_WINDOW
    modems = ["gw0", "st_aggr", "gm_fast"] + ([] if args.quick else ["st_def", "gm_def"])
    sim = Sim.start(os.path.join(work, "sim-latency"), modems=modems, send_delay=0)
    try:
        log(f"latency: gatewayd, {n_gw} alerts")
        results = [latency_gatewayd(ctx, sim, work, n_gw, args.seed, idle_window)]
        peers = [(Smstools(work, "st_aggr", sim.device("st_aggr"), "aggressive"), n_aggr),
                 (GammuSmsd(work, "gm_fast", sim.device("gm_fast"), "fast"), n_aggr)]
        if not args.quick:
            peers += [(Smstools(work, "st_def", sim.device("st_def"), "default"), n_def),
                      (GammuSmsd(work, "gm_def", sim.device("gm_def"), "default"), n_def)]
        log("latency: peers, concurrently: " + ", ".join(f"{p.label} (n={k})" for p, k in peers))
        outs = [{} for _ in peers]
        threads = [threading.Thread(target=latency_peer, daemon=True,
                                    args=(p, sim, k, args.seed + 1 + i, idle_window, outs[i]))
                   for i, (p, k) in enumerate(peers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(900)
        results += outs
    finally:
        sim.stop()

    gw_med, gw_zmed = pct(results[0]["cmgs"], 50), pct(results[0]["ctrlz"], 50)
    rows = []
    for r in results:
        if "error" in r:
            rows.append([r["label"], "failed: " + r["error"].splitlines()[0]] + [""] * 8)
            continue
        med, zmed = pct(r["cmgs"], 50), pct(r["ctrlz"], 50)
        first = r is results[0]
        rows.append([r["label"], f"{len(r['cmgs'])}/{r['n']}", f"{r['period']:g} s", ms(med),
                     ms(pct(r["cmgs"], 99)), ms(max(r["cmgs"], default=float("nan"))),
                     "1" if first else f"{med / gw_med:.0f}x", ms(zmed),
                     "1" if first else f"{zmed / gw_zmed:.1f}x", f"{r['idle_cpu']:.2f} %"])
    table("Latency: alert submitted -> AT+CMGS at the modem (zero send delay, idle modem)",
          ["daemon / settings", "n ok", "phase P", "p50", "p99", "max", "p50 / gatewayd's",
           "to Ctrl-Z p50", "Ctrl-Z p50 / gatewayd's", "idle CPU (1 core)"], rows)
    gw = results[0]
    print(f"\ngatewayd: 'queued' reply (fsync'd) p50 {ms(pct(gw['replies'], 50))}, "
          f"p99 {ms(pct(gw['replies'], 99))}; RSS idle {gw['rss_kb'] / 1024:.1f} MB.")
    print("'to Ctrl-Z' = the PDU complete at the modem: libgammu (gatewayd, gammu-smsd) waits "
          "~0.6 s between the '> ' prompt and Ctrl-Z, smstools3 writes PDU and Ctrl-Z at once.")
    print("Peers ran concurrently, each on its own simulated modem, after gatewayd ran alone; "
          f"idle CPU over {idle_window:g} s. Small n for the peers: their polls take 1-30 s.")
    return results


# ---------------------------------------------------------------------------------------------
# 2. throughput (acceptance only)

def accept_run(ctx, work: str, name: str, total: int, procs: int, window: int,
               ttl: int | None = None) -> tuple[dict, Gatewayd]:
    """A fresh gatewayd with no modem; `total` alerts with distinct keys. Leaves it running."""
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

    res = clients.load(gw.endpoint, payloads, procs, window, on_start=on_start)
    wall = time.monotonic() - mark["t"]
    res["daemon_cpu"] = (gw.daemon.cpu() - mark["cpu"]) / wall * 100
    res["client_cpu_pct"] = res["client_cpu"] / wall * 100
    gw.daemon.check()
    res["status_queued"] = gw.status()["queue"]["queued"]
    res["total"], res["procs"], res["window"] = total, procs, window
    return res, gw


def phase_throughput(ctx, work: str, args) -> list[dict]:
    total = 5000 if args.quick else 20000
    runs = [(8, 8), (8, 1)]
    results = []
    for procs, window in runs:
        log(f"throughput: {total} alerts, {procs} client processes x {window} in flight")
        res, gw = accept_run(ctx, work, f"gw-accept-{window}", total, procs, window)
        gw.stop()
        results.append(res)
    rows = []
    for r in results:
        rows.append([f"{r['procs']} processes x {r['window']} in flight"
                     + (" (REQ-like)" if r["window"] == 1 else " (DEALER)"),
                     f"{r['queued']}/{r['total']}", f"{r['seconds']:.2f} s",
                     f"{r['rate']:,.0f}", f"{r['daemon_cpu']:.0f} %", f"{r['client_cpu_pct']:.0f} %",
                     f"{r['status_queued']}" + (" (= count)" if r["status_queued"] == r["queued"]
                                                 else " (MISMATCH)"),
                     "; ".join(r["errors"] + [f"{k}: {v}" for k, v in r["other"].items()])
                     or "-"])
    table("Durable acceptance: alerts answered 'queued' (fsync'd) per second, no modem",
          ["clients", "queued", "time", "alerts/s", "gatewayd CPU (1 core = 100 %)",
           "clients CPU", "status queue.queued", "errors"], rows)
    print(f"\n{os.cpu_count()} cores shared by gatewayd and the client processes; every alert "
          "has a distinct key. The peers take alerts as spool files and have no equivalent.")
    return results


# ---------------------------------------------------------------------------------------------
# 3. SMS per second

def burst_measure(tracker: Tracker, tokens: list[str], t_queue: float, cpu0: float,
                  daemon: Daemon, timeout: float) -> dict:
    recs = tracker.wait(tokens, timeout, daemon.check)
    t_end = time.monotonic()
    first = min(r["cmgs"] for r in recs.values())
    last = max(r["done"] for r in recs.values())
    per_modem: dict[str, int] = {}
    for r in recs.values():
        per_modem[r["modem"]] = per_modem.get(r["modem"], 0) + 1
    return {"n": len(tokens), "rate": len(tokens) / (last - first), "span": last - first,
            "first_after": first - t_queue, "cpu": (daemon.cpu() - cpu0) / (t_end - t_queue) * 100,
            "per_modem": per_modem}


def set_delay(sim: Sim, modems, delay: float) -> None:
    for m in modems:
        sim.control({"cmd": "set", "modem": m, "send_delay": delay})


def sms_gatewayd(ctx, sim: Sim, work: str, modems: list[str], regimes) -> list[dict]:
    gw = Gatewayd(ctx, work, f"gw-sms-{len(modems)}", {m: sim.device(m) for m in modems}).start()
    out = []
    try:
        tracker = Tracker(sim, modems)
        tok = token()
        gw.send(f"bench sms warmup {tok}")
        tracker.wait([tok], 60, gw.daemon.check)
        for delay, n in regimes:
            set_delay(sim, modems, delay)
            time.sleep(SETTLE)  # the previous send may still be finishing in libgammu
            log(f"sms: gatewayd, {len(modems)} modem(s), delay {delay:g} s, {n} alerts")
            toks = [token() for _ in range(n)]
            cpu0 = gw.daemon.cpu()
            t_queue, replies = clients.burst(
                ctx, gw.endpoint, [{"to": [NUMBER], "text": f"bench sms {i} {t}"}
                                   for i, t in enumerate(toks)])
            bad = [r for r in replies if r.get("status") != "queued"]
            if bad:
                raise RuntimeError(f"gatewayd refused: {bad[0]}")
            res = burst_measure(tracker, toks, t_queue, cpu0, gw.daemon, n * (delay + 2) + 60)
            res.update(label="gatewayd", modems=len(modems), delay=delay)
            out.append(res)
    finally:
        gw.stop()
        set_delay(sim, modems, 0)
    return out


def sms_peer(sim: Sim, peer, regimes) -> list[dict]:
    d = peer.start()
    out = []
    try:
        tracker = Tracker(sim, [peer.modem])
        tok = token()
        peer.inject(NUMBER, f"bench sms warmup {tok}")
        tracker.wait([tok], 60 + peer.poll, d.check)
        for delay, n in regimes:
            set_delay(sim, [peer.modem], delay)
            time.sleep(SETTLE)
            log(f"sms: {peer.label}, delay {delay:g} s, {n} messages")
            toks = [token() for _ in range(n)]
            staged = [peer.stage(NUMBER, f"bench sms {i} {t}") for i, t in enumerate(toks)]
            cpu0 = d.cpu()
            t_queue = time.monotonic()
            for s in staged:
                peer.release(s)
            res = burst_measure(tracker, toks, t_queue, cpu0, d, n * (delay + 2) + 60)
            res.update(label=peer.label, modems=1, delay=delay)
            out.append(res)
    finally:
        peer.stop()
        set_delay(sim, [peer.modem], 0)
    return out


def phase_sms(ctx, work: str, args) -> list[dict]:
    if args.quick:
        n0, n3, p0, p3 = 10, 2, 6, 2
    else:
        n0, n3, p0, p3 = 60, 12, 30, 8
    gwm = ["gw0", "gw1", "gw2", "gw3"]
    sim = Sim.start(os.path.join(work, "sim-sms"), modems=gwm + ["st0", "gm0"], send_delay=0)
    results = []
    try:
        for label, fn in [
            ("gatewayd 1 modem", lambda: sms_gatewayd(ctx, sim, work, gwm[:1], [(0, n0), (3, n3)])),
            ("gatewayd 2 modems", lambda: sms_gatewayd(ctx, sim, work, gwm[:2], [(0, n0)])),
            ("gatewayd 4 modems", lambda: sms_gatewayd(ctx, sim, work, gwm[:4], [(0, n0)])),
            ("smstools3", lambda: sms_peer(sim, Smstools(work, "st0", sim.device("st0"),
                                                         "aggressive"), [(0, p0), (3, p3)])),
            ("gammu-smsd", lambda: sms_peer(sim, GammuSmsd(work, "gm0", sim.device("gm0"),
                                                           "burst"), [(0, p0), (3, p3)])),
        ]:
            try:
                results += fn()
            except Exception as e:
                log(f"sms: {label} failed: {e}")
                results.append({"label": label, "error": f"{type(e).__name__}: {e}"})
    finally:
        sim.stop()

    rows = []
    for r in results:
        if "error" in r:
            rows.append([r["label"], "failed: " + r["error"].splitlines()[0]] + [""] * 7)
            continue
        label = r["label"] if r["label"] == "gatewayd" else r["label"].split(",")[0] + \
            (" (aggressive)" if "smstools" in r["label"] else " (LoopSleep 0/CommTimeout 0)")
        spread = "/".join(str(r["per_modem"][m]) for m in sorted(r["per_modem"]))
        rows.append([label, r["modems"], f"{r['delay']:g} s", r["n"], ms(r["first_after"]),
                     f"{r['span']:.2f} s", f"{r['rate']:.2f}", f"{r['cpu']:.1f} %", spread])
    table("SMS per second: N queued at once, rate = N / (first AT+CMGS .. last completed SMS)",
          ["daemon", "modems", "send delay", "N", "queued -> first AT+CMGS", "span", "msgs/s",
           "daemon CPU", "per modem"], rows)
    print_floor_note(results)
    return results


def print_floor_note(results: list[dict]) -> None:
    def rate(label, delay, modems=1):
        for r in results:
            if "error" not in r and r["label"].startswith(label) and r["delay"] == delay \
                    and r["modems"] == modems:
                return r["rate"]
        return None
    g0, g3 = rate("gatewayd", 0), rate("gatewayd", 3)
    s0, s3 = rate("smstools3", 0), rate("smstools3", 3)
    print("\nlibgammu's send path sleeps ~0.6 s between the '> ' prompt and Ctrl-Z (fixed sleeps "
          "in ATGEN), so one modem driven through libgammu (gatewayd, gammu-smsd) cannot exceed "
          "~1.4 SMS/s;", end=" ")
    if g0 and g3:
        per0, per3 = 1 / g0, 1 / g3
        line = (f"measured: gatewayd {per0:.2f} s per SMS at zero delay, {per3:.2f} s per SMS "
                f"with a 3 s send delay")
        if s3:
            line += (f" (smstools3, no sleeps, {1 / s3:.2f} s: the floor costs "
                     f"{(per3 / (1 / s3) - 1) * 100:.0f} % at 3 s)")
        if s0:
            line += f"; at zero delay smstools3 does {s0:.2f}/s to gatewayd's {g0:.2f}/s"
        print(line + ". With a real modem (2-5 s per send) the modem dominates; more modems "
              "scale the rate (see 2 and 4 modems).")
    else:
        print("(not all rates measured)")


# ---------------------------------------------------------------------------------------------
# 4. memory

def phase_rss(ctx, work: str, args) -> dict:
    total = 20000 if args.quick else 100000
    log(f"rss: {total} alerts queued, no modem")
    gw = Gatewayd(ctx, work, "gw-rss", {}).start()
    base = sysproc.vm_status(gw.daemon.pid)
    gw.stop()
    res, gw = accept_run(ctx, work, "gw-rss2", total, 8, 8, ttl=604800)
    try:
        time.sleep(1)
        vm = sysproc.vm_status(gw.daemon.pid)
        db = sum(os.path.getsize(os.path.join(dp, f))
                 for dp, _, fs in os.walk(gw.state_dir) for f in fs)
    finally:
        gw.stop()
    out = {"total": total, "queued": res["queued"], "status_queued": res["status_queued"],
           "rss_kb": vm["VmRSS"], "hwm_kb": vm["VmHWM"], "base_kb": base["VmRSS"],
           "db_bytes": db, "rate": res["rate"], "errors": res["errors"]}
    table("Memory: gatewayd with alerts queued and no modem to send them",
          ["alerts queued (status)", "VmRSS at start", "VmRSS after", "VmHWM (peak)",
           "store on disk", "submit rate"],
          [[f"{out['status_queued']:,}", f"{out['base_kb'] / 1024:.1f} MB",
            f"{out['rss_kb'] / 1024:.1f} MB", f"{out['hwm_kb'] / 1024:.1f} MB",
            f"{db / 1e6:.0f} MB", f"{res['rate']:,.0f}/s"]])
    return out


# ---------------------------------------------------------------------------------------------
# modem faults

def phase_faults(ctx, work: str, args) -> dict:
    """Time from a modem hanging mid-send to its queued work leaving through the other modem
    (send_timeout 5 s), and from a replug to the first successful send on that modem."""
    rounds = 2 if args.quick else 5
    sim = Sim.start(os.path.join(work, "sim-faults"), modems=["f0", "f1"], send_delay=0)
    out = {"hang": [], "replug": []}
    try:
        for i in range(rounds):
            log(f"faults: hang round {i + 1}/{rounds}")
            gw = Gatewayd(ctx, work, f"gw-hang-{i}", {m: sim.device(m) for m in ("f0", "f1")},
                          "send_timeout = 5\n").start()
            try:
                tracker = Tracker(sim, ["f0", "f1"])
                sim.control({"cmd": "hang", "modem": "f1", "on": True, "after": "CMGS"})
                sim.control({"cmd": "hang", "modem": "f0", "on": True, "after": "CMGS"})
                # Whichever modem takes the first alert hangs; the other is released at once.
                t0 = gw.send(f"bench hang {token()}")
                deadline = time.monotonic() + 10
                hung = None
                while hung is None and time.monotonic() < deadline:
                    for m in ("f0", "f1"):
                        if sim.stats(m).get("hung"):
                            hung = m
                    time.sleep(0.01)
                other = "f1" if hung == "f0" else "f0"
                sim.control({"cmd": "hang", "modem": other, "on": False})
                t_hang = time.monotonic()
                toks = [token() for _ in range(3)]
                for t in toks:
                    gw.send(f"bench after hang {t}")
                done = tracker.wait(toks, 60, gw.daemon.check)
                out["hang"].append(max(d["done"] for d in done.values()) - t_hang)
                del t0
            finally:
                sim.control({"cmd": "hang", "modem": "f0", "on": False})
                sim.control({"cmd": "hang", "modem": "f1", "on": False})
                gw.stop()
        for i in range(rounds):
            log(f"faults: replug round {i + 1}/{rounds}")
            gw = Gatewayd(ctx, work, f"gw-replug-{i}", {"f0": sim.device("f0")}).start()
            try:
                tracker = Tracker(sim, ["f0"])
                sim.control({"cmd": "unplug", "modem": "f0"})
                time.sleep(2)
                tok = token()
                gw.send(f"bench replug {tok}")
                t_replug = time.monotonic()
                sim.control({"cmd": "replug", "modem": "f0"})
                done = tracker.wait([tok], 60, gw.daemon.check)
                out["replug"].append(done[tok]["done"] - t_replug)
            finally:
                gw.stop()
    finally:
        sim.stop()
    table("Modem faults (2 modems for the hang, send_timeout 5 s; 1 modem for the replug)",
          ["figure", "n", "median", "max"],
          [["modem hangs mid-send -> 3 queued alerts sent by the other modem",
            len(out["hang"]), f"{statistics.median(out['hang']):.2f} s",
            f"{max(out['hang']):.2f} s"],
           ["replug -> first successful send on that modem", len(out["replug"]),
            f"{statistics.median(out['replug']):.2f} s", f"{max(out['replug']):.2f} s"]])
    print("The hung send itself is abandoned at its deadline (send_timeout) and retried on the"
          " other modem; work queued behind it moves at once. A replugged modem is noticed by"
          " inotify at once; libgammu's own init takes ~4.5 s of the figure.")
    return out


# ---------------------------------------------------------------------------------------------
# voice fallback

def phase_voice(ctx, work: str, args) -> list[float]:
    """Time from the last SMS path failing (the simulator refusing the AT+CMGS) to the ATD of
    the voice call on the dial-out line."""
    n = 3 if args.quick else 8
    sim = Sim.start(os.path.join(work, "sim-voice"), modems=["v0", "line0"], send_delay=0)
    out = []
    try:
        sim.control({"cmd": "call_outcome", "modem": "line0", "outcome": "busy",
                     "persist": True})
        # A modem failing every send would soon be taken out of service (then the call starts
        # at submission, there being no SMS path at all): keep it in service here.
        gw = Gatewayd(ctx, work, "gw-voice", {"v0": sim.device("v0")},
                      "max_consecutive_failures = 100\n")
        with open(gw.config, "a") as f:
            f.write(f"[voice]\ndevice = {sim.device('line0')}\nretries = 0\n")
        gw.start()
        try:
            sim.control({"cmd": "fail_sends", "modem": "v0", "count": -1, "cms": 500})
            for i in range(n):
                log(f"voice: {i + 1}/{n}")
                number = f"+3247099{i:04d}"
                gw.req.request({"to": [number], "text": f"bench voice {token()}",
                                "priority": "critical"}, timeout=10)
                deadline = time.monotonic() + 30
                dial = None
                while dial is None and time.monotonic() < deadline:
                    dial = next((c for c in sim.calls() if c.get("event") == "dial"
                                 and c.get("number") == number), None)
                    time.sleep(0.02)
                if dial is None:
                    raise RuntimeError(f"no call to {number}")
                fails = [r for r in sim.sent_events("fail") if r.get("to") == number
                         and r["mono"] <= dial["mono"]]
                out.append(dial["mono"] - fails[-1]["mono"])
                time.sleep(1.5)
        finally:
            gw.stop()
    finally:
        sim.stop()
    table("Voice fallback: last SMS path failed -> ATD on the dial-out line",
          ["n", "median", "max"],
          [[len(out), ms(statistics.median(out)), ms(max(out))]])
    return out


# ---------------------------------------------------------------------------------------------
# summary

def summary(args, lat, thr, sms, rss, elapsed: float) -> None:
    rows = []

    def goal(ok):
        return "" if ok is None else ("met" if ok else "NOT met")

    if lat:
        gw = lat[0]
        by = {r["label"]: r for r in lat if "error" not in r}

        def peer(kind, setting):
            r = next((v for k, v in by.items() if k.startswith(kind) and setting in k), None)
            return r

        st, gm = peer("smstools3", "delaytime 1"), peer("gammu-smsd", "CommTimeout 1")
        p50 = pct(gw["cmgs"], 50)
        rows.append(["latency alert -> AT+CMGS, p50", ms(p50), "< 20 ms", goal(p50 < 0.020),
                     f"{ms(pct(st['cmgs'], 50))} (n={len(st['cmgs'])})" if st else "-",
                     f"{ms(pct(gm['cmgs'], 50))} (n={len(gm['cmgs'])})" if gm else "-"])
        rows.append(["latency alert -> AT+CMGS, p99", ms(pct(gw["cmgs"], 99)), "", "",
                     ms(pct(st["cmgs"], 99)) if st else "-", ms(pct(gm["cmgs"], 99)) if gm else "-"])
        rows.append(["latency alert -> Ctrl-Z (PDU complete), p50", ms(pct(gw["ctrlz"], 50)),
                     "", "", ms(pct(st["ctrlz"], 50)) if st else "-",
                     ms(pct(gm["ctrlz"], 50)) if gm else "-"])
        rows.append(["idle CPU (% of one core)", f"{gw['idle_cpu']:.2f} %", "~0 %",
                     goal(gw["idle_cpu"] < 1.0), f"{st['idle_cpu']:.2f} %" if st else "-",
                     f"{gm['idle_cpu']:.2f} %" if gm else "-"])
        std, gmd = peer("smstools3", "default"), peer("gammu-smsd", "default")
        if std or gmd:
            rows.append(["latency p50, peers' default settings", "", "", "",
                         f"{ms(pct(std['cmgs'], 50))} (n={len(std['cmgs'])})" if std else "-",
                         f"{ms(pct(gmd['cmgs'], 50))} (n={len(gmd['cmgs'])})" if gmd else "-"])
    if thr:
        r = thr[0]
        rows.append([f"accepted alerts/s ({r['procs']} clients x {r['window']} in flight)",
                     f"{r['rate']:,.0f}/s", ">= 5,000/s", goal(r["rate"] >= 5000), "n/a", "n/a"])
        if len(thr) > 1:
            r = thr[1]
            rows.append([f"accepted alerts/s ({r['procs']} REQ-like clients)",
                         f"{r['rate']:,.0f}/s", "", "", "n/a", "n/a"])
        rows.append(["gatewayd CPU while accepting", f"{thr[0]['daemon_cpu']:.0f} %", "", "",
                     "", ""])
    if sms:
        def find(label, delay, modems=1):
            return next((r for r in sms if "error" not in r and r["label"].startswith(label)
                         and r["delay"] == delay and r["modems"] == modems), None)

        for delay, modems in [(0, 1), (3, 1), (0, 2), (0, 4)]:
            g = find("gatewayd", delay, modems)
            s = find("smstools3", delay) if modems == 1 else None
            m = find("gammu-smsd", delay) if modems == 1 else None
            rows.append([f"SMS/s, {modems} modem{'s' if modems > 1 else ''}, {delay} s send delay",
                         f"{g['rate']:.2f} (N={g['n']})" if g else "-", "", "",
                         f"{s['rate']:.2f} (N={s['n']})" if s else ("" if modems > 1 else "-"),
                         f"{m['rate']:.2f} (N={m['n']})" if m else ("" if modems > 1 else "-")])
    if rss:
        rows.append([f"RSS with {rss['status_queued']:,} alerts queued",
                     f"{rss['rss_kb'] / 1024:.1f} MB", "< 32 MB",
                     goal(rss["rss_kb"] < 32 * 1024 and rss["total"] >= 100000)
                     if rss["total"] >= 100000 else "(quick: fewer alerts)", "", ""])
    table("Summary", ["figure", "gatewayd", "goal", "goal?",
                      "smstools3 (delaytime 1/trust_outgoing)",
                      "gammu-smsd (LoopSleep 1/CommTimeout 1; SMS/s: 0/0)"],
          rows)
    cmd = shlex.join(["/usr/bin/python3"] + [os.path.relpath(sys.argv[0], os.getcwd())]
                     + sys.argv[1:])
    print(f"\nPrinted by: {cmd}   (from {os.getcwd()}; {elapsed / 60:.1f} min; seed {args.seed})")


def environment() -> str:
    def first_line(cmd):
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
            return (out.stdout + out.stderr).strip().splitlines()[0]
        except Exception as e:
            return f"? ({e})"
    smsd = first_line(["/usr/sbin/smsd", "-V"]).split(",")[0].replace("Version ", "")
    return (f"{os.uname().sysname} {os.uname().release}, {os.cpu_count()} cores; "
            f"gatewayd {GATEWAYD}; smstools3 {smsd}; "
            f"gammu-smsd {first_line(['/usr/bin/gammu-smsd', '-v']).split()[-1]}")


def main(argv) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="small N, no default-settings peers: a ~2 min smoke run")
    p.add_argument("--only",
                   choices=["latency", "throughput", "sms", "rss", "faults", "voice"])
    p.add_argument("--seed", type=int, default=1, help="seed of the random injection phases")
    p.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    args = p.parse_args(argv)
    if not os.access(GATEWAYD, os.X_OK):
        print(f"{GATEWAYD} not found: build first (meson setup build && ninja -C build)")
        return 1

    work = tempfile.mkdtemp(prefix="gatewayd-bench-")
    ctx = zmq.Context()
    t_start = time.monotonic()
    print(f"# gatewayd benchmark{' (quick)' if args.quick else ''}\n\n{environment()}")
    print(f"work directory: {work}")
    lat = thr = sms = rss = None
    try:
        phases = [args.only] if args.only else ["latency", "throughput", "sms", "rss", "faults",
                                                "voice"]
        for phase in phases:
            t = time.monotonic()
            try:
                if phase == "latency":
                    lat = phase_latency(ctx, work, args)
                elif phase == "throughput":
                    thr = phase_throughput(ctx, work, args)
                elif phase == "sms":
                    sms = phase_sms(ctx, work, args)
                elif phase == "rss":
                    rss = phase_rss(ctx, work, args)
                elif phase == "faults":
                    phase_faults(ctx, work, args)
                elif phase == "voice":
                    phase_voice(ctx, work, args)
            except Exception as e:
                print(f"\n{phase}: could not measure: {type(e).__name__}: {e}")
            log(f"{phase}: {time.monotonic() - t:.0f} s")
        summary(args, lat, thr, sms, rss, time.monotonic() - t_start)
    finally:
        sysproc.stop_all()
        ctx.destroy(linger=0)
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
