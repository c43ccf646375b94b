#!/usr/bin/python3
"""gatewayd benchmarks, side by side with smstools3 and gammu-smsd on the modem simulator.

    ninja -C build && /usr/bin/python3 tests/bench/bench.py [--quick]
        [--only latency|throughput|sms|rss|faults|voice|cluster] [--seed N] [--keep]

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
(faults and voice: see their functions.)
5. cluster: two gatewayd on two real corosync nodes (tests/lib/gwcluster.py through
   cluster_rig.py: network namespaces, token 1000 ms, ipc:// endpoints), root only.
   a. acceptance: both daemons without a [modem] section (alerts wait, queued); 20,000
      alerts with distinct keys, 8 client processes x 8 in flight (DEALER), 4 processes on
      node a and 4 on node b. "queued" = committed on both nodes. Rate as in 2. Then the
      same load on one modem-less solo gatewayd, for comparison.
   b. latency: open loop at 1,000 alerts/s (500/s to each node, one process per node),
      20 s; each request on a DEALER of its own from a pool (replies may come out of order),
      latency = reply - scheduled send time. The same at 1,000/s on the solo gatewayd.
   c. diagnostic: a and b again after every corosync thread was moved from SCHED_RR 99 to
      SCHED_OTHER (both nodes share this machine's cores; see README).
   d. takeover: modems on both nodes; a's modem 3 s per send (simulator send_delay), b's
      instant. Alerts go to node a until a owns 5 of them (ownership computed by the
      daemon's rule, members.c); once b has sent its own and a's modem is mid-send, a
      random pause in [0, 3 s], then Cluster.kill9("a") (daemon and corosync, SIGKILL).
      Figures: from the kill to the first AT+CMGS on b's modem carrying an alert a owned
      and had not completed, and to that SMS completed (simulator records, as in 1);
      also when b's log first showed "left the cluster" (polled). 5 rounds, a restarted
      between them.
   e. catch-up: no modems; b's daemon stopped (SIGTERM; its corosync stays), 100,000
      alerts (ttl 7 d) accepted by a alone as in 2, then b started with an empty state dir.
      Time from that start until b's status queue counts equal a's, neither reports
      cluster.syncing and both list a and b online (status polled every 0.2 s).
   --quick: 5,000 alerts, 5 s paced, 1 takeover round, 10,000 alerts to catch up.

Every process started here is stopped by PID (sysproc.py), every wait is bounded, every socket
is on loopback (the cluster's: ipc:// in the rig's directory), all files live in temporary
directories (removed unless --keep).
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
from gwtest import listen_port_range  # noqa: E402
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
                "[bundle]\nthreshold = 0\n\n")
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
# cluster: two gatewayd on two real corosync nodes (tests/lib/gwcluster.py, token 1000 ms)

TAKEOVER_DELAY = 3.0  # simulator send delay of a's modem while alerts pile up behind it
TAKEOVER_GOAL = 2.7   # token 1000 + consensus 1200 + 0.5 s


class LogWatch:
    """When a line containing `needle` first appeared in a log file (the daemon's stderr lines
    carry no time of their own): polled, so to within the poll interval."""

    def __init__(self, path: str, needles: list[str]):
        self.path, self.needles = path, needles
        try:
            self.pos = os.path.getsize(path)
        except FileNotFoundError:
            self.pos = 0
        self.seen: dict[str, float] = {}
        self.lines: dict[str, str] = {}

    def poll(self) -> None:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.pos)
                data = f.read()
        except FileNotFoundError:
            return
        cut = data.rfind(b"\n") + 1
        self.pos += cut
        now = time.monotonic()
        for line in data[:cut].decode(errors="replace").splitlines():
            for n in self.needles:
                if n in line and n not in self.seen:
                    self.seen[n], self.lines[n] = now, line.strip()


def cluster_rig():
    """The rig module, or a reason why the lab cannot run here."""
    import cluster_rig as cr
    import gwcluster
    reason = gwcluster.can_run()
    return cr, reason


def close_cluster(c, args) -> None:
    c.close()
    if args.keep:
        print(f"kept {c.dir}")
    else:
        c.remove_dir()


def cluster_accept(ctx, work: str, args, cr) -> dict:
    """1 and 2: acceptance with 8 clients x 8 in flight, half on each node, then the paced
    open-loop latency at 1,000 alerts/s, both on one pair of modem-less nodes; then the same
    two loads on one modem-less solo gatewayd for comparison."""
    total = 5000 if args.quick else 20000
    paced_n = 1000 * (5 if args.quick else 20)
    out = {"total": total, "paced_n": paced_n}
    c = cr.BenchCluster("bench-accept", GATEWAYD, modems=False)
    c.up()
    try:
        c.start_both_nomodem()
        c.wait_members()
        eps = [c.node("a").endpoint, c.node("b").endpoint]
        mark = {}

        def on_start():
            mark["d"], mark["c"], mark["w"] = c.cpu(), c.cpu(corosync=True), c.runqueue_wait()
            mark["t"] = time.monotonic()

        # 8 in flight per client, as the single-node figure; then 32, where the round trip
        # through both nodes (two CPG deliveries, two fsyncs) is hidden behind more pipelining.
        for key, depth, prefix in (("accept", 8, "cl"), ("accept_deep", 32, "cldeep")):
            payloads = [json.dumps({"to": [NUMBER], "text": f"bench cluster alert {i}",
                                    "key": f"{prefix}-{i}"}).encode() for i in range(total)]
            log(f"cluster: {total} alerts, 8 clients x {depth} in flight, 4 on each node")
            res = clients.load(eps, payloads, 8, depth, on_start=on_start)
            wall = time.monotonic() - mark["t"]
            d_cpu, all_cpu = c.cpu() - mark["d"], c.cpu(corosync=True) - mark["c"]
            res["daemons_cpu"] = d_cpu / wall * 100
            res["corosync_cpu"] = (all_cpu - d_cpu) / wall * 100
            res["client_cpu_pct"] = res["client_cpu"] / wall * 100
            res["daemons_wait"] = (c.runqueue_wait() - mark["w"]) / wall * 100
            res["status"] = {n: c.status(n)["queue"]["queued"] for n in ("a", "b")}
            out[key] = res

        log(f"cluster: paced {paced_n} alerts at 1,000/s, open loop, 500/s to each node")
        payloads = [json.dumps({"to": [NUMBER], "text": f"bench cluster paced {i}",
                                "key": f"clp-{i}"}).encode() for i in range(paced_n)]
        d0, a0, w0, t0 = c.cpu(), c.cpu(corosync=True), c.runqueue_wait(), time.monotonic()
        res = clients.paced(eps, payloads, 1000.0)
        wall = time.monotonic() - t0
        res["daemons_cpu"] = (c.cpu() - d0) / wall * 100
        res["daemons_wait"] = (c.runqueue_wait() - w0) / wall * 100
        res["corosync_cpu"] = (c.cpu(corosync=True) - a0) / wall * 100 - res["daemons_cpu"]
        out["paced"] = res
        for n in ("a", "b"):
            c.node(n).check_alive()

        # Diagnostic: the same two loads with both corosyncs demoted from SCHED_RR 99.
        out["policy"] = c.corosync_policy("a")
        threads = c.demote_corosync()
        log(f"cluster: diagnostic: {threads} corosync threads from {out['policy']} to "
            f"SCHED_OTHER; the same two loads again")
        payloads = [json.dumps({"to": [NUMBER], "text": f"bench cluster diag alert {i}",
                                "key": f"cld-{i}"}).encode() for i in range(total)]
        mark.clear()
        res = clients.load(eps, payloads, 8, 8, on_start=on_start)
        wall = time.monotonic() - mark["t"]
        d_cpu, all_cpu = c.cpu() - mark["d"], c.cpu(corosync=True) - mark["c"]
        res["daemons_cpu"] = d_cpu / wall * 100
        res["corosync_cpu"] = (all_cpu - d_cpu) / wall * 100
        res["client_cpu_pct"] = res["client_cpu"] / wall * 100
        res["daemons_wait"] = (c.runqueue_wait() - mark["w"]) / wall * 100
        out["diag_accept"] = res
        payloads = [json.dumps({"to": [NUMBER], "text": f"bench cluster diag paced {i}",
                                "key": f"cldp-{i}"}).encode() for i in range(paced_n)]
        d0, a0, w0, t0 = c.cpu(), c.cpu(corosync=True), c.runqueue_wait(), time.monotonic()
        res = clients.paced(eps, payloads, 1000.0)
        wall = time.monotonic() - t0
        res["daemons_cpu"] = (c.cpu() - d0) / wall * 100
        res["daemons_wait"] = (c.runqueue_wait() - w0) / wall * 100
        res["corosync_cpu"] = (c.cpu(corosync=True) - a0) / wall * 100 - res["daemons_cpu"]
        out["diag_paced"] = res
        out["diag_members"] = {n: sorted(c.online_members(c.status(n))) for n in ("a", "b")}
    finally:
        close_cluster(c, args)

    log(f"cluster: single-node comparison, {total} alerts 8 x 8, then paced at 1,000/s")
    res, gw = accept_run(ctx, work, "gw-solo-accept", total, 8, 8)
    gw.stop()
    out["solo_accept"] = res
    gw = Gatewayd(ctx, work, "gw-solo-paced", {}).start()
    try:
        payloads = [json.dumps({"to": [NUMBER], "text": f"bench solo paced {i}",
                                "key": f"sp-{i}"}).encode() for i in range(paced_n)]
        out["solo_paced"] = clients.paced([gw.endpoint, gw.endpoint], payloads, 1000.0)
        gw.daemon.check()
    finally:
        gw.stop()
    return out


def cluster_takeover(args, cr, seed: int) -> dict:
    """3: kill -9 of node a (daemon and corosync) while alerts a owns are pending; time to the
    first AT+CMGS (and completed SMS) on b's modem of an alert a owned."""
    rounds = 1 if args.quick else 5
    rng = random.Random(seed)
    out = {"rounds": [], "mispredicted": 0}
    c = cr.BenchCluster("bench-takeover", GATEWAYD, modems=True, send_delay=0)
    c.up()
    try:
        c.start_both()
        for r in range(rounds):
            if r:
                c.sim.control({"cmd": "set", "modem": "a0", "send_delay": 0})
                c.start("a")
            c.wait_members(timeout=30)

            def settled():
                for n in ("a", "b"):
                    st = c.node(n).try_request({"op": "status"}, timeout=2)
                    if not st or st["cluster"].get("syncing"):
                        return False
                    ok = {(m["node"], m["state"]) for m in st.get("modems", [])}
                    if not {("a", "ok"), ("b", "ok")} <= ok:
                        return False
                return True

            cr.wait_until(settled, 30, "both nodes settled with both modems ok", interval=0.2)
            c.sim.control({"cmd": "set", "modem": "a0", "send_delay": TAKEOVER_DELAY})
            c.sim.control({"cmd": "set", "modem": "b0", "send_delay": 0})
            tb = Tracker(c.sim, ["b0"])
            tall = Tracker(c.sim, ["a0", "b0"])
            owned = {"a": [], "b": []}
            i = 0
            while len(owned["a"]) < 5 and i < 40:
                tok = token()
                number = f"+32479{r:02d}{i:04d}"
                rep = c.send("a", [number], f"bench takeover {r} {i} {tok}",
                             key=f"takeover-{r}-{i}-{tok}")
                if rep.get("status") != "queued":
                    raise RuntimeError(f"node a answered {rep}")
                owned[cr.owner(rep["id"], number)].append(tok)
                i += 1
            log(f"cluster: takeover round {r + 1}/{rounds}: {i} alerts to a, "
                f"{len(owned['a'])} owned by a, {len(owned['b'])} by b")
            tall.wait(owned["b"], 60, c.node("b").check_alive)  # b's modem idle again
            # a's modem is busy with one of its alerts (3 s each): kill at a random phase
            deadline = time.monotonic() + 30
            while not any(tall.seen.get(t, {}).get("cmgs") for t in owned["a"]):
                tall.poll()
                if time.monotonic() > deadline:
                    raise RuntimeError("a's modem never started sending")
                time.sleep(0.02)
            time.sleep(rng.uniform(0, TAKEOVER_DELAY))
            tall.poll()
            tb.poll()
            pending = [t for t in owned["a"] if "done" not in tall.seen.get(t, {})]
            early = [t for t in owned["a"] if t in tb.seen]
            out["mispredicted"] += len(early)
            watch = LogWatch(c.node("b").log_path, ["left the cluster", "Taking over"])
            t_kill = c.kill9("a")
            first = None
            deadline = t_kill + 60
            while time.monotonic() < deadline:
                tb.poll()
                watch.poll()
                got = [tb.seen[t] for t in pending if "done" in tb.seen.get(t, {})]
                if got and first is None:
                    first = min(got, key=lambda s: s["cmgs"])
                if len(got) == len(pending):
                    break
                time.sleep(0.01)
            if first is None:
                raise RuntimeError(f"b's modem sent none of a's {len(pending)} pending alerts "
                                   f"within 60 s\n{c.node('b').log_tail(10)}")
            done = [tb.seen[t]["done"] for t in pending if "done" in tb.seen.get(t, {})]
            rec = {"cmgs": first["cmgs"] - t_kill, "done": first["done"] - t_kill,
                   "pending": len(pending), "all": max(done) - t_kill, "sent": len(done),
                   "left": watch.seen.get("left the cluster", float("nan")) - t_kill,
                   "left_line": watch.lines.get("left the cluster", "")}
            out["rounds"].append(rec)
            log(f"  kill -> b0 AT+CMGS {ms(rec['cmgs'])}, sent {ms(rec['done'])}; b logged "
                f"'left the cluster' after {ms(rec['left'])}; {len(done)}/{len(pending)} of "
                f"a's pending sent by b0 after {ms(rec['all'])}")
    finally:
        close_cluster(c, args)
    return out


def cluster_catchup(args, cr) -> dict:
    """4: b's daemon stopped, `total` alerts accepted by a alone, b started with an empty state
    dir; time until b's queue counts equal a's and neither is syncing."""
    total = 10000 if args.quick else 100000
    out = {"total": total}
    c = cr.BenchCluster("bench-catchup", GATEWAYD, modems=False)
    c.up()
    try:
        c.start_both_nomodem()
        c.wait_members()
        c.stop("b")  # the daemon only: b's corosync keeps running
        c.wait_members(names=("a",), want=("a",))
        log(f"cluster: catch-up: {total} alerts accepted by a alone (ttl 7 d, no modem)")
        payloads = [json.dumps({"to": [NUMBER], "text": f"bench catch-up alert {i}",
                                "key": f"cu-{i}", "ttl": 604800}).encode()
                    for i in range(total)]
        res = clients.load(c.node("a").endpoint, payloads, 8, 8)
        out["accept_rate"], out["queued"] = res["rate"], res["queued"]
        target = c.status("a")["queue"]
        out["target"] = target
        db = sum(os.path.getsize(os.path.join(dp, f))
                 for dp, _, fs in os.walk(c.node("a").state_dir) for f in fs)
        out["db_bytes"] = db
        log(f"cluster: catch-up: starting b with an empty state dir (a holds "
            f"{target['queued']:,} queued, store {db / 1e6:.0f} MB)")
        watch = LogWatch(c.node("b").log_path, ["exchanging state", "In step with the cluster",
                                                "Ending the state exchange"])
        watch_a = LogWatch(c.node("a").log_path, ["In step with the cluster",
                                                  "Ending the state exchange"])
        cpu0 = c.cpu(("a",), corosync=True)
        # Meanwhile an upstream system keeps submitting to a: one alert every 0.25 s, each
        # waiting for its reply (at most 60 s); how long a keeps it waiting is the stall
        # that a user of the cluster sees while b catches up.
        probes: list[tuple[float, float]] = []
        stop = threading.Event()

        def probe():
            i = 0
            while not stop.is_set():
                ts = time.monotonic()
                try:
                    rep = c.node("a").send([NUMBER], f"bench catch-up probe {i}",
                                           timeout=60, key=f"cu-probe-{i}")
                    if rep.get("status") == "queued":
                        probes.append((ts - t0, time.monotonic() - ts))
                except AssertionError:
                    probes.append((ts - t0, float("inf")))
                i += 1
                stop.wait(0.25)

        t0 = time.monotonic()
        c.start("b", wipe_state=True, wait=False)
        prober = threading.Thread(target=probe, daemon=True)
        prober.start()
        marks: dict[str, float] = {}
        waits = {"a": (0.0, 0.0), "b": (0.0, 0.0)}  # longest status wait: (at, seconds)
        last = {}
        limit = 120 if args.quick else 900
        try:
            while True:
                watch.poll()
                watch_a.poll()
                st = {}
                for n in ("a", "b"):
                    ts = time.monotonic()
                    st[n] = c.node(n).try_request({"op": "status"}, timeout=60)
                    w = time.monotonic() - ts
                    if st[n] is not None and w > waits[n][1]:
                        waits[n] = (ts - t0, w)
                sa, sb = st["a"], st["b"]
                now = time.monotonic() - t0
                if sb and "answer" not in marks:
                    marks["answer"] = now
                if sa and sb:
                    last = {"a": (sa["queue"], sa["cluster"]["syncing"]),
                            "b": (sb["queue"], sb["cluster"]["syncing"])}
                    if sb["queue"] == sa["queue"] and "counts" not in marks:
                        marks["counts"] = now
                    if (sb["queue"] == sa["queue"] and not sa["cluster"]["syncing"]
                            and not sb["cluster"]["syncing"]
                            and cr.Cluster.online_members(sb) == {"a", "b"}
                            and cr.Cluster.online_members(sa) == {"a", "b"}):
                        marks["done"] = now
                        break
                if now > limit:
                    raise RuntimeError(f"b not caught up after {limit} s; last seen {last}\n"
                                       f"{c.node('b').log_tail(10)}")
                time.sleep(0.2)
        finally:
            stop.set()
            prober.join(70)
        out["cpu_a"] = c.cpu(("a",), corosync=True) - cpu0
        watch.poll()
        watch_a.poll()
        worst = max(probes, key=lambda x: x[1], default=(float("nan"), float("nan")))
        out.update(marks=marks, seconds=marks["done"], status_waits=waits,
                   probes=len(probes), probe_worst=worst,
                   probe_p50=pct([x[1] for x in probes], 50),
                   logs={**{f"b: {k}": (v - t0, watch.lines[k]) for k, v in watch.seen.items()},
                         **{f"a: {k}": (v - t0, watch_a.lines[k])
                            for k, v in watch_a.seen.items()}})
        log(f"  caught up in {marks['done']:.1f} s")
    finally:
        close_cluster(c, args)
    return out


def phase_cluster(ctx, work: str, args) -> dict | None:
    cr, reason = cluster_rig()
    if reason:
        print(f"\ncluster: not measured here: {reason}")
        return None
    out: dict = {}
    for key, fn in [("accept", lambda: cluster_accept(ctx, work, args, cr)),
                    ("takeover", lambda: cluster_takeover(args, cr, args.seed)),
                    ("catchup", lambda: cluster_catchup(args, cr))]:
        try:
            out[key] = fn()
        except Exception as e:
            log(f"cluster: {key} failed: {type(e).__name__}: {e}")
            out[key] = {"error": f"{type(e).__name__}: {e}"}
    print_cluster(out)
    return out


def print_cluster(out: dict) -> None:
    def failed(part):
        r = out.get(part) or {}
        return r.get("error", "").splitlines()[0] if "error" in r else None

    acc = out.get("accept") or {}
    if failed("accept"):
        print(f"\ncluster acceptance/latency: could not measure: {failed('accept')}")
    else:
        rows = []
        for label, r, cpu in [
                ("cluster: 4 clients on a + 4 on b", acc["accept"],
                 f"{acc['accept']['daemons_cpu']:.0f} % (+ corosyncs "
                 f"{acc['accept']['corosync_cpu']:.0f} %); daemons runnable, waiting for a "
                 f"core: {acc['accept']['daemons_wait']:.0f} %"),
                ("cluster: the same, 32 in flight per client", acc["accept_deep"],
                 f"{acc['accept_deep']['daemons_cpu']:.0f} % (+ corosyncs "
                 f"{acc['accept_deep']['corosync_cpu']:.0f} %); daemons runnable, waiting for a "
                 f"core: {acc['accept_deep']['daemons_wait']:.0f} %"),
                ("single node, same clients", acc["solo_accept"],
                 f"{acc['solo_accept']['daemon_cpu']:.0f} %")]:
            st = r.get("status") or {"solo": r.get("status_queued")}
            rows.append([label, f"{r['queued']}/{acc['total']}", f"{r['seconds']:.2f} s",
                         f"{r['rate']:,.0f}", cpu, f"{r['client_cpu_pct']:.0f} %",
                         ", ".join(f"{k} {v}" for k, v in st.items()),
                         "; ".join(r["errors"] + [f"{k}: {v}" for k, v in r["other"].items()])
                         or "-"])
        ratio = acc["accept"]["rate"] / acc["solo_accept"]["rate"]
        table("Cluster: durable replicated acceptance (committed on both nodes), 8 clients x 8 "
              "in flight, no modem", ["run", "queued", "time", "alerts/s",
                                      "daemons CPU (1 core = 100 %)", "clients CPU",
                                      "status queue.queued", "errors"], rows)
        best = max(acc["accept"]["rate"], acc["accept_deep"]["rate"])
        print(f"\nGoal >= 5,000/s: {'met' if best >= 5000 else 'NOT met'} ({best:,.0f}/s at best; "
              f"8 x 8 in flight: {acc['accept']['rate']:,.0f}/s, "
              f"{ratio * 100:.0f} % of the single node's rate measured just after it; the "
              f"single-node reference of the throughput phase is ~7,800/s). Both nodes, both "
              f"corosyncs and the 8 client processes share {os.cpu_count()} cores.")
        rows = []
        for label, r in [("cluster: 500/s to a + 500/s to b", acc["paced"]),
                         ("single node, 1,000/s", acc["solo_paced"])]:
            rows.append([label, f"{r['queued']}/{acc['paced_n']}", f"{r['rate']:,.0f}/s",
                         ms(pct(r["lat"], 50)), ms(pct(r["lat"], 90)), ms(pct(r["lat"], 99)),
                         ms(max(r["lat"], default=float("nan"))),
                         ms(pct(r["lag"], 99)),
                         "; ".join(r["errors"] + [f"{k}: {v}" for k, v in r["other"].items()])
                         or "-"])
        table("Cluster: submit -> 'queued' reply at a paced 1,000 alerts/s (open loop, from the "
              "scheduled send time)", ["run", "queued", "achieved", "p50", "p90", "p99", "max",
                                       "send lag p99", "errors"], rows)
        p = acc["paced"]
        print(f"\nCluster daemons' CPU at 1,000/s: {p['daemons_cpu']:.0f} % (+ corosyncs "
              f"{p['corosync_cpu']:.0f} %); the daemons' threads spent {p['daemons_wait']:.0f} % "
              "(of one core's time) runnable but waiting for a core. A reply means committed (fsync'd) on this node and "
              "confirmed committed by the other. Latency counts from the scheduled send time, "
              "so a stall also delays the requests behind it (no coordinated omission).")
        if "diag_accept" in acc:
            da, dp = acc["diag_accept"], acc["diag_paced"]
            table(f"Diagnostic, not a goal figure: the same cluster with both corosyncs demoted "
                  f"from {acc['policy']} to SCHED_OTHER",
                  ["load", "result", "daemons CPU", "daemons waiting for a core",
                   "corosyncs CPU", "errors"],
                  [["8 clients x 8 in flight, half to each node", f"{da['rate']:,.0f} alerts/s",
                    f"{da['daemons_cpu']:.0f} %", f"{da['daemons_wait']:.0f} %",
                    f"{da['corosync_cpu']:.0f} %",
                    "; ".join(da["errors"] + [f"{k}: {v}" for k, v in da["other"].items()])
                    or "-"],
                   ["paced 1,000/s", f"p50 {ms(pct(dp['lat'], 50))}, p99 "
                    f"{ms(pct(dp['lat'], 99))}, max {ms(max(dp['lat'], default=float('nan')))}",
                    f"{dp['daemons_cpu']:.0f} %", f"{dp['daemons_wait']:.0f} %",
                    f"{dp['corosync_cpu']:.0f} %",
                    "; ".join(dp["errors"] + [f"{k}: {v}" for k, v in dp["other"].items()])
                    or "-"]])
            print(f"\nBoth nodes share this machine's {os.cpu_count()} cores. corosync runs "
                  f"every thread {acc['policy']}, so under load the two corosyncs (token "
                  "circulating thousands of times a second) preempt both daemons, which then "
                  "spend most of their time runnable but waiting for a core. On two real "
                  "machines each node has its own cores. Members online afterwards: "
                  + ", ".join(f"{k}: {'+'.join(v)}" for k, v in acc["diag_members"].items())
                  + ".")

    tk = out.get("takeover") or {}
    if failed("takeover"):
        print(f"\ncluster takeover: could not measure: {failed('takeover')}")
    elif tk.get("rounds"):
        rs = tk["rounds"]
        rows = []
        for label, key in [("kill -9 of a -> b logs 'left the cluster'", "left"),
                           ("kill -9 of a -> first AT+CMGS on b's modem of an alert a owned",
                            "cmgs"),
                           ("kill -9 of a -> that SMS completed (b0 answered +CMGS)", "done"),
                           ("kill -9 of a -> all of a's pending alerts sent by b", "all")]:
            v = [r[key] for r in rs]
            rows.append([label, len(v), f"{statistics.median(v):.2f} s", f"{max(v):.2f} s"])
        table(f"Cluster: takeover after kill -9 of node a (token 1000 ms; a's modem {TAKEOVER_DELAY:g} "
              "s per send, b's instant)", ["figure", "n", "median", "max"], rows)
        cm = [r["cmgs"] for r in rs]
        dn = [r["done"] for r in rs]
        print(f"\nGoal <= token + consensus + 0.5 s = {TAKEOVER_GOAL} s: to the first AT+CMGS "
              f"{'met' if max(cm) <= TAKEOVER_GOAL else 'NOT met'} (max {max(cm):.2f} s); to "
              f"the SMS completed {'met' if max(dn) <= TAKEOVER_GOAL else 'NOT met'} (max "
              f"{max(dn):.2f} s; libgammu sleeps ~0.6 s between '> ' and Ctrl-Z). Pending "
              f"alerts of a at the kill: {', '.join(str(r['pending']) for r in rs)}"
              f"{'; ownership mispredicted ' + str(tk['mispredicted']) if tk['mispredicted'] else ''}"
              ". A single node has no takeover.")

    cu = out.get("catchup") or {}
    if failed("catchup"):
        print(f"\ncluster catch-up: could not measure: {failed('catchup')}")
    elif cu.get("marks"):
        m = cu["marks"]
        rows = [["b answers status", ms(m.get("answer", float("nan")))],
                ["b's queue counts = a's", ms(m.get("counts", float("nan")))],
                ["... and syncing false on both, both online (caught up)", ms(m["done"])]]
        table(f"Cluster: catch-up of node b started with an empty state dir, "
              f"{cu['total']:,} alerts accepted by a alone (no modem)",
              ["from b's start to", "time"], rows)
        q = cu["target"]
        wa, wb = cu["status_waits"]["a"], cu["status_waits"]["b"]
        pw = cu["probe_worst"]
        print(f"\na held {q['queued']:,} queued alerts (store {cu['db_bytes'] / 1e6:.0f} MB), "
              f"accepted alone at {cu['accept_rate']:,.0f}/s; caught up at "
              f"{cu['total'] / m['done']:,.0f} alerts/s. Meanwhile: the longest wait for a "
              f"status answer was {ms(wa[1])} from a (asked at {wa[0]:.1f} s) and {ms(wb[1])} "
              f"from b (at {wb[0]:.1f} s); {cu['probes']} alerts submitted to a one at a time "
              f"(every 0.25 s) waited p50 {ms(cu['probe_p50'])}, the longest {ms(pw[1])} "
              f"(submitted {pw[0]:.1f} s after b's start): new changes are held while the "
              "nodes exchange state. Daemon log lines (seconds after b's start, polled):")
        for k, (t, line) in sorted(cu["logs"].items(), key=lambda kv: kv[1][0]):
            print(f"    {t:7.2f} s  {k.split(':')[0]}: {line}")


# ---------------------------------------------------------------------------------------------
# summary

def summary(args, lat, thr, sms, rss, clu, elapsed: float) -> None:
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
    if clu:
        rows += cluster_summary_rows(clu, goal)
    table("Summary", ["figure", "gatewayd", "goal", "goal?",
                      "smstools3 (delaytime 1/trust_outgoing)",
                      "gammu-smsd (LoopSleep 1/CommTimeout 1; SMS/s: 0/0)"],
          rows)
    cmd = shlex.join(["/usr/bin/python3"] + [os.path.relpath(sys.argv[0], os.getcwd())]
                     + sys.argv[1:])
    print(f"\nPrinted by: {cmd}   (from {os.getcwd()}; {elapsed / 60:.1f} min; seed {args.seed})")


def cluster_summary_rows(clu: dict, goal) -> list[list]:
    rows = []
    acc = clu.get("accept") or {}
    if "accept" in acc:
        r, solo = acc["accept"], acc["solo_accept"]
        rows.append(["cluster: accepted alerts/s, 8 x 8 in flight, half to each node",
                     f"{r['rate']:,.0f}/s (single node {solo['rate']:,.0f}/s)", ">= 5,000/s",
                     goal(r["rate"] >= 5000), "n/a", "n/a"])
        p, sp = acc["paced"], acc["solo_paced"]
        rows.append(["cluster: submit -> 'queued' at 1,000/s, p50 / p99",
                     f"{ms(pct(p['lat'], 50))} / {ms(pct(p['lat'], 99))} (single node "
                     f"{ms(pct(sp['lat'], 50))} / {ms(pct(sp['lat'], 99))})", "", "", "n/a",
                     "n/a"])
    tk = clu.get("takeover") or {}
    if tk.get("rounds"):
        cm = [x["cmgs"] for x in tk["rounds"]]
        dn = [x["done"] for x in tk["rounds"]]
        rows.append([f"cluster: kill -9 of a -> b's modem sends a's alert (AT+CMGS; SMS done), "
                     f"n={len(cm)}",
                     f"median {statistics.median(cm):.2f} s, max {max(cm):.2f} s; done median "
                     f"{statistics.median(dn):.2f} s, max {max(dn):.2f} s",
                     f"<= {TAKEOVER_GOAL} s",
                     f"AT+CMGS {goal(max(cm) <= TAKEOVER_GOAL)}, done "
                     f"{goal(max(dn) <= TAKEOVER_GOAL)}", "n/a", "n/a"])
    cu = clu.get("catchup") or {}
    if cu.get("marks"):
        rows.append([f"cluster: empty node b caught up on {cu['total']:,} alerts",
                     f"{cu['marks']['done']:.1f} s (an alert sent to a meanwhile waited up to "
                     f"{ms(cu['probe_worst'][1])})", "", "", "n/a", "n/a"])
    return rows


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
                   choices=["latency", "throughput", "sms", "rss", "faults", "voice",
                            "cluster"])
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
    lat = thr = sms = rss = clu = None
    try:
        phases = [args.only] if args.only else ["latency", "throughput", "sms", "rss", "faults",
                                                "voice", "cluster"]
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
                elif phase == "cluster":
                    clu = phase_cluster(ctx, work, args)
            except Exception as e:
                print(f"\n{phase}: could not measure: {type(e).__name__}: {e}")
            log(f"{phase}: {time.monotonic() - t:.0f} s")
        summary(args, lat, thr, sms, rss, clu, time.monotonic() - t_start)
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
