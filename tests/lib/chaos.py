"""The chaos engine: alerts streamed into the two-node cluster while seeded random faults hit it,
then heal, quiescence, and the count of what the phones got. Used by tests/cluster/test_chaos.py
(a few hundred alerts) and tests/bench/chaos.py (10,000).

    from gwcluster import Cluster
    from chaos import Chaos
    with Cluster("chaos", modems_per_node=2) as c:
        c.start_both(); c.wait_members()
        run = Chaos(c, seed=1234, alerts=300, faults=8, window=75.0).run()
        print(run.report())
        assert not run.violations(), run.violations()

What it does (every wait bounded, every process it starts stopped by pid):

* Prints "chaos seed: N" first. random.Random(seed) draws the fault plan (kinds, targets,
  start times, durations) and each alert's node. The faults happen at their planned moments,
  but the moments the daemons reach are timing, so a replay is close, not identical.
* Alerts: alert n has the key "chaos-SEED-n", a recipient of its own and the text
  "chaos SEED #n", and is due at n * window / alerts after the start. `clients` threads submit
  them (each request on a fresh REQ socket, as gwcluster.Node.request does), each to its planned
  node; with no answer within `client_timeout` or the node's daemon down, the client tries the
  other node once with the same key (an upstream system retrying). Every reply is recorded:
  "queued", "duplicate", an error code, "no_answer" or "node_down". An alert is *accepted*
  when one of its replies is queued or duplicate (a duplicate names an alert the cluster holds).
* Faults, from KINDS, started at random moments of the window (at least one of each kind when
  there are enough faults), each in its own thread and possibly overlapping others:
    kill_gatewayd  SIGKILL of one gatewayd (in 1 of 3, its corosync too: the node's death),
                   restarted on its disk after 0.5-5 s;
    kill_corosync  SIGKILL of one corosync under its running daemon, restarted after 0-5 s;
    partition      all traffic between the nodes dropped for 3-15 s, then healed;
    hang_modem     one simulator modem stops answering for 3-15 s;
    fail_sends     one simulator modem answers every send +CMS ERROR 500 for 3-15 s;
    lock_db        another process holds BEGIN EXCLUSIVE on one node's gatewayd.db for 2-6 s
                   (Python's sqlite3), then ROLLBACK.
  Never both daemons down at once: a daemon is killed only while the other runs. A fault that
  would collide with a running one (the same daemon, corosync, modem or database, or a second
  partition) waits until that one has ended. Kinds in `skip` are planned all the same (the
  same seed gives the same plan) but not injected: a seed that failed can be replayed without
  one kind of fault, to see whether that kind is the cause.
* A daemon that exits on its own is a finding: recorded (with its exit status) and started
  again on its disk, so that the run goes on.
* After the window and the last fault: everything healed (idempotent), every daemon and
  corosync running; then quiescence is awaited: both daemons answer, both list a and b online,
  neither is syncing, no alert is queued or sending on either, and every accepted alert reached
  its phone at least once. Time to quiescence counts from that heal. It gives up when no SMS
  arrived for `stall` seconds while it was not quiescent (wedged), or after `bound` seconds.
* Then: per alert, the copies its phone got (the simulator's sent.jsonl, by the number in the
  text), and `get` of every accepted alert on both nodes.

Duplicates: an alert's extra copies are *explained* when the faults allow that many: a copy
that left a modem of the killed node in the 3 s before a kill_gatewayd, or the hung modem in
the 3 s before a hang_modem, was a send in flight there and allows one more copy (DESIGN 2);
copies sent from 3 s before a partition or kill_corosync to 12 s after its end allow all but
one of them (DESIGN 4: alerts pending at a cut may go out once on each side, and nothing either
side sent is sent again after the merge). A node down (killed) when a cut began and back only
during it was out of touch from its kill on, so for that cut the window opens 3 s before the
kill. Other extra copies are violations.
"""

from __future__ import annotations

import collections
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gwcluster import NODE_NAMES, Cluster, NodeDown  # noqa: E402

KINDS = ("kill_gatewayd", "kill_corosync", "partition", "hang_modem", "fail_sends", "lock_db")
ACCEPTED = ("queued", "duplicate")
SENT = ("sent", "delivered")
PYTHON = "/usr/bin/python3"

# Held by another process: BEGIN EXCLUSIVE on the database, "locked" on stdout, hold, ROLLBACK.
LOCKER = r"""
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], timeout=10.0, isolation_level=None)
db.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
db.execute("ROLLBACK")
db.close()
print("released", flush=True)
"""


def other(name: str) -> str:
    return "b" if name == "a" else "a"


@dataclass
class Fault:
    n: int
    kind: str
    target: str            # node name, or simulator modem name for modem faults
    at: float              # planned start, seconds after the run's start
    duration: float        # planned length (down time, hold time)
    node_death: bool = False
    t_start: float | None = None   # actual, seconds after the run's start
    t_end: float | None = None
    note: str = ""
    error: str = ""

    def nodes(self) -> tuple[str, ...]:
        if self.kind == "partition":
            return NODE_NAMES
        return (self.target[0],)

    def resources(self) -> set[str]:
        t = self.target
        if self.kind == "kill_gatewayd":
            return {f"daemon:{t}", f"corosync:{t}", f"db:{t}"}
        if self.kind == "kill_corosync":
            return {f"corosync:{t}"}
        if self.kind == "partition":
            return {"net"}
        if self.kind in ("hang_modem", "fail_sends"):
            return {f"modem:{t}"}
        return {f"db:{t}"}

    def describe(self) -> str:
        what = {
            "kill_gatewayd": f"kill -9 gatewayd {self.target}"
                             f"{' and its corosync (node death)' if self.node_death else ''},"
                             f" restart after {self.duration:.1f} s",
            "kill_corosync": f"kill -9 corosync {self.target}, restart after "
                             f"{self.duration:.1f} s",
            "partition": f"partition a|b for {self.duration:.1f} s",
            "hang_modem": f"hang modem {self.target} for {self.duration:.1f} s",
            "fail_sends": f"fail every send on modem {self.target} for {self.duration:.1f} s",
            "lock_db": f"lock {self.target}'s gatewayd.db (BEGIN EXCLUSIVE) for "
                       f"{self.duration:.1f} s",
        }[self.kind]
        if self.t_start is None:
            when = "not started"
        else:
            end = f"{self.t_end:.1f}" if self.t_end is not None else "?"
            when = f"{self.t_start:6.1f} .. {end} s"
        extra = f" ({self.note})" if self.note else ""
        err = f" ERROR: {self.error}" if self.error else ""
        return f"fault {self.n}: {when}: {what}{extra}{err}"


@dataclass
class Alert:
    n: int
    node: str
    due: float
    text: str
    key: str
    to: str
    replies: list = field(default_factory=list)  # (node, status, id, t)
    id: str | None = None

    @property
    def accepted(self) -> bool:
        return any(s in ACCEPTED for _, s, _, _ in self.replies)

    @property
    def final_reply(self) -> str:
        for _, s, _, _ in self.replies:
            if s in ACCEPTED:
                return s
        return self.replies[-1][1] if self.replies else "not_submitted"


class Chaos:
    def __init__(self, cluster: Cluster, seed: int, alerts: int = 300, faults: int = 8,
                 window: float = 75.0, clients: int = 4, client_timeout: float = 8.0,
                 kinds=KINDS, skip=(), stall: float = 60.0, bound: float | None = None,
                 settle: float = 3.0, progress: float = 0.0, log=None):
        self.c = cluster
        self.seed = seed
        self.n_alerts = alerts
        self.n_faults = faults
        self.window = window
        self.n_clients = clients
        self.client_timeout = client_timeout
        self.kinds = tuple(kinds)
        self.skip = tuple(skip)  # planned as usual (same seed, same plan) but not injected
        self.stall = stall
        self.bound = bound if bound is not None else max(120.0, alerts * 0.5)
        self.settle = settle
        self.progress = progress  # seconds between progress lines during the window; 0: none
        self._log = log or (lambda s: print(s, flush=True))
        self.rng = random.Random(seed)
        self.lock = threading.RLock()
        self.busy: set[str] = set()           # resources held by running faults
        self.crashes: list[str] = []          # daemons that exited on their own
        self.rig_errors: list[str] = []       # the rig's own trouble (not the daemon's)
        self.t0 = 0.0
        self.stop_event = threading.Event()
        self.clients_stop = threading.Event()
        self.lockers: list[subprocess.Popen] = []
        self.alerts = self._plan_alerts()
        self.faults = self._plan_faults()
        self.result: dict = {}

    # ---- planning ----

    def log(self, msg: str) -> None:
        t = time.monotonic() - self.t0 if self.t0 else 0.0
        self._log(f"[{t:7.1f}] {msg}")

    def _plan_alerts(self) -> list[Alert]:
        out = []
        for n in range(self.n_alerts):
            node = self.rng.choice(NODE_NAMES)
            out.append(Alert(n=n, node=node, due=n * self.window / max(1, self.n_alerts),
                             text=f"chaos {self.seed} #{n:05d}", key=f"chaos-{self.seed}-{n}",
                             to=f"+3247{n % 10}{n:06d}"))
        return out

    def _plan_faults(self) -> list[Fault]:
        kinds = list(self.kinds)
        self.rng.shuffle(kinds)
        plan = kinds[:self.n_faults]
        while len(plan) < self.n_faults:
            plan.append(self.rng.choice(self.kinds))
        self.rng.shuffle(plan)
        # Start times spread over the window, leaving its first 5 % quiet.
        lo, hi = 0.05 * self.window, 0.85 * self.window
        times = sorted(self.rng.uniform(lo, hi) for _ in plan)
        modems = [m for n in self.c.nodes.values() for m in n.sim_modems]
        faults = []
        for i, (kind, at) in enumerate(zip(plan, times), 1):
            node = self.rng.choice(NODE_NAMES)
            f = Fault(n=i, kind=kind, target=node, at=at, duration=0.0)
            if kind == "kill_gatewayd":
                f.duration = self.rng.uniform(0.5, 5.0)
                f.node_death = self.rng.random() < 1 / 3
            elif kind == "kill_corosync":
                f.duration = self.rng.uniform(0.0, 5.0)
            elif kind == "partition":
                f.target = "a|b"
                f.duration = self.rng.uniform(3.0, 15.0)
            elif kind in ("hang_modem", "fail_sends"):
                f.target = self.rng.choice(modems)
                f.duration = self.rng.uniform(3.0, 15.0)
            else:
                f.duration = self.rng.uniform(2.0, 6.0)
            faults.append(f)
        return faults

    def now(self) -> float:
        return time.monotonic() - self.t0

    # ---- submitting ----

    def _submit_one(self, a: Alert) -> None:
        req = {"op": "send", "to": [a.to], "text": a.text, "key": a.key}
        for node in (a.node, other(a.node)):
            t = self.now()
            try:
                r = self.c.node(node).request(req, timeout=self.client_timeout)
            except NodeDown:
                a.replies.append((node, "node_down", None, t))
                continue
            except AssertionError:
                a.replies.append((node, "no_answer", None, t))
                continue
            except Exception as e:  # a zmq error: recorded as the rig's, not the daemon's
                a.replies.append((node, "client_error", None, t))
                self.rig_errors.append(f"alert {a.n} to {node}: {type(e).__name__}: {e}")
                continue
            if r.get("ok"):
                status = r.get("status") or "ok_without_status"
                a.replies.append((node, status, r.get("id"), t))
                if status in ACCEPTED:
                    a.id = a.id or r.get("id")
                return
            a.replies.append((node, str(r.get("error")), None, t))
            return  # an error reply is an answer: not retried

    def _client(self, k: int) -> None:
        for a in self.alerts[k::self.n_clients]:
            delay = a.due - self.now()
            if self.clients_stop.wait(max(0.0, delay)):
                return
            self._submit_one(a)

    # ---- faults ----

    def _acquire(self, f: Fault) -> bool:
        with self.lock:
            res = f.resources()
            if res & self.busy:
                return False
            if f.kind == "kill_gatewayd":
                # Never both daemons down: the other one must run and not be in a fault.
                o = other(f.target)
                if f"daemon:{o}" in self.busy or not self.c.node(o).alive():
                    return False
            self.busy |= res
            return True

    def _release(self, f: Fault) -> None:
        with self.lock:
            self.busy -= f.resources()

    def _wait_answering(self, name: str, timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        n = self.c.node(name)
        while time.monotonic() < deadline:
            if not n.alive():
                return False
            try:
                st = n.try_request({"op": "status"}, timeout=1.0)
            except AssertionError:
                return False
            if st and st.get("ok"):
                return True
            time.sleep(0.2)
        return False

    def _start_daemon(self, name: str) -> None:
        self.c.start(name, wait=False)
        if not self._wait_answering(name, 30.0):
            raise AssertionError(f"gatewayd {name} restarted on its disk does not answer status "
                                 f"within 30 s")

    def _run_fault(self, f: Fault) -> None:
        c = self.c
        try:
            f.t_start = self.now()
            self.log(f"fault {f.n} begins: {f.describe().split(': ', 2)[-1]}")
            if f.kind == "kill_gatewayd":
                if f.node_death:
                    c.kill9(f.target)
                else:
                    c.kill9_daemon(f.target)
                time.sleep(f.duration)
                self._start_daemon(f.target)
            elif f.kind == "kill_corosync":
                c.restart_corosync(f.target, down_for=f.duration)
            elif f.kind == "partition":
                c.partition()
                time.sleep(f.duration)
                c.heal()
            elif f.kind == "hang_modem":
                c.sim.control({"cmd": "hang", "modem": f.target, "on": True})
                time.sleep(f.duration)
                c.sim.control({"cmd": "hang", "modem": f.target, "on": False})
            elif f.kind == "fail_sends":
                c.sim.control({"cmd": "fail_sends", "modem": f.target, "count": -1,
                               "cms": 500})
                time.sleep(f.duration)
                c.sim.control({"cmd": "fail_sends", "modem": f.target, "count": 0})
            elif f.kind == "lock_db":
                self._lock_db(f)
        except Exception as e:
            f.error = f"{type(e).__name__}: {e}"
            self.log(f"fault {f.n}: {f.error}")
        finally:
            f.t_end = self.now()
            self.log(f"fault {f.n} ends")
            self._release(f)

    def _lock_db(self, f: Fault) -> None:
        path = os.path.join(self.c.node(f.target).state_dir, "gatewayd.db")
        p = subprocess.Popen([PYTHON, "-c", LOCKER, path, f"{f.duration:.2f}"],
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        with self.lock:
            self.lockers.append(p)
        try:
            t_ask = self.now()
            line = p.stdout.readline()  # "locked" once it holds the lock; EOF if it failed
            if line.strip() != "locked":
                p.wait(10)
                raise AssertionError(f"could not lock {path}: {p.stderr.read().strip()[-300:]}")
            f.note = f"locked {self.now() - t_ask:.2f} s after asking"
            p.wait(f.duration + 15)
            if p.returncode != 0:
                raise AssertionError(f"the locker of {path} exited with {p.returncode}: "
                                     f"{p.stderr.read().strip()[-300:]}")
        finally:
            if p.poll() is None:
                os.kill(p.pid, signal.SIGKILL)
                p.wait(10)
            for s in (p.stdout, p.stderr):
                s.close()

    def _faulter(self) -> list[threading.Thread]:
        threads = []
        for f in self.faults:
            if f.kind in self.skip:
                f.note = "skipped (not injected)"
                continue
            delay = f.at - self.now()
            if delay > 0 and self.stop_event.wait(delay):
                break
            # Wait (bounded) for a colliding fault to end.
            deadline = time.monotonic() + 60.0
            while not self._acquire(f):
                if self.stop_event.wait(0.2):
                    return threads
                if time.monotonic() > deadline:
                    f.error = "never started: the resources it needs stayed busy for 60 s"
                    self.log(f"fault {f.n}: {f.error}")
                    break
            else:
                th = threading.Thread(target=self._run_fault, args=(f,), daemon=True)
                th.start()
                threads.append(th)
        return threads

    def _monitor(self) -> None:
        """Restarts a daemon that exited on its own (recorded as a finding); logs progress."""
        next_progress = self.progress
        while not self.stop_event.wait(0.5):
            if self.progress and self.now() >= next_progress:
                next_progress += self.progress
                submitted = sum(1 for a in self.alerts if a.replies)
                accepted = sum(1 for a in self.alerts if a.accepted)
                with self.lock:
                    busy = sorted(self.busy)
                self.log(f"progress: {submitted} submitted, {accepted} accepted, "
                         f"{len(self.c.sms())} SMS received, faults running: "
                         f"{busy or 'none'}")
            for name in NODE_NAMES:
                with self.lock:
                    # A fault on the daemon or its corosync restarts them itself.
                    if {f"daemon:{name}", f"corosync:{name}"} & self.busy:
                        continue
                    n = self.c.node(name)
                    if n.proc is None or n.proc.poll() is None:
                        continue
                    rc = n.proc.returncode
                    self.busy.add(f"daemon:{name}")
                try:
                    msg = f"gatewayd {name} exited on its own with status {rc} at {self.now():.1f} s"
                    self.crashes.append(msg)
                    self.log(msg + "; starting it again on its disk")
                    self.c.start(name, wait=False)
                except Exception as e:
                    self.rig_errors.append(f"restart of {name} after its crash: {e}")
                finally:
                    with self.lock:
                        self.busy.discard(f"daemon:{name}")

    # ---- heal and quiescence ----

    def heal_all(self) -> None:
        c = self.c
        c.heal()
        for n in c.nodes.values():
            for m in n.sim_modems:
                c.sim.control({"cmd": "hang", "modem": m, "on": False}, check=False)
                c.sim.control({"cmd": "fail_sends", "modem": m, "count": 0}, check=False)
        for name in NODE_NAMES:
            if not c.lab.pid(name):
                c.corosync_start(name)
            if not c.node(name).alive():
                self.crashes.append(f"gatewayd {name} found dead at the heal "
                                    f"(exit {c.node(name).proc.returncode})")
                c.start(name, wait=False)
        for name in NODE_NAMES:
            if not self._wait_answering(name, 30.0):
                raise AssertionError(f"gatewayd {name} does not answer status 30 s after the "
                                     f"heal")

    def _received(self) -> collections.Counter:
        got = collections.Counter()
        pat = re.compile(rf"^chaos {self.seed} #(\d+)$")
        for m in self.c.sms():
            mt = pat.match(m.get("text", ""))
            if mt:
                got[int(mt.group(1))] += 1
        return got

    def _quiet_state(self, accepted: list[Alert]) -> tuple[bool, str]:
        why = []
        for name in NODE_NAMES:
            n = self.c.node(name)
            if not n.alive():
                why.append(f"{name} down")
                continue
            try:
                st = n.try_request({"op": "status"}, timeout=2.0)
            except AssertionError:
                st = None
            if not st or not st.get("ok"):
                why.append(f"{name} does not answer status")
                continue
            cl = st.get("cluster") or {}
            online = Cluster.online_members(st)
            if online != set(NODE_NAMES):
                why.append(f"{name} sees online {sorted(online)}")
            if cl.get("syncing"):
                why.append(f"{name} syncing")
            q = st.get("queue") or {}
            if q.get("queued") or q.get("sending"):
                why.append(f"{name} queue queued {q.get('queued')} sending {q.get('sending')}")
        got = self._received()
        missing = sum(1 for a in accepted if not got[a.n])
        if missing:
            why.append(f"{missing} accepted alerts not received yet")
        return (not why), "; ".join(why)

    def wait_quiescent(self) -> dict:
        accepted = [a for a in self.alerts if a.accepted]
        t_heal = time.monotonic()
        last_count = len(self.c.sms())
        last_progress = time.monotonic()
        why = ""
        checks = 0
        while True:
            quiet, why = self._quiet_state(accepted)
            checks += 1
            if quiet:
                return {"quiescent": True, "seconds": time.monotonic() - t_heal, "why": ""}
            count = len(self.c.sms())
            if count != last_count:
                last_count, last_progress = count, time.monotonic()
            if checks % 10 == 0:
                self.log(f"waiting for quiescence: {why}")
            if time.monotonic() - last_progress > self.stall:
                return {"quiescent": False, "wedged": True,
                        "seconds": time.monotonic() - t_heal,
                        "why": f"no SMS for {self.stall:.0f} s while not quiescent: {why}"}
            if time.monotonic() - t_heal > self.bound:
                return {"quiescent": False, "wedged": False,
                        "seconds": time.monotonic() - t_heal,
                        "why": f"not quiescent {self.bound:.0f} s after the heal: {why}"}
            time.sleep(1.0)

    # ---- the run ----

    def run(self) -> "Chaos":
        self._log(f"chaos seed: {self.seed}")
        self._log(f"chaos: {self.n_alerts} alerts over {self.window:.0f} s by {self.n_clients} "
                  f"clients, {self.n_faults} faults ({', '.join(self.kinds)}"
                  f"{'; not injected: ' + ', '.join(self.skip) if self.skip else ''}), "
                  f"{self.c.modems_per_node} modem(s) per node")
        for f in self.faults:
            self._log(f"  plan: at {f.at:6.1f} s: {f.describe().split(': ', 2)[-1]}")
        self.t0 = time.monotonic()
        clients = [threading.Thread(target=self._client, args=(k,), daemon=True)
                   for k in range(self.n_clients)]
        monitor = threading.Thread(target=self._monitor, daemon=True)
        for th in clients:
            th.start()
        monitor.start()
        fault_threads: list[threading.Thread] = []
        try:
            fault_threads = self._faulter()
            # Clients late by more than 60 s (the daemons did not answer) stop submitting.
            deadline = self.t0 + self.window + 60.0
            for th in clients:
                th.join(max(0.0, deadline - time.monotonic()))
            self.clients_stop.set()
            for th in clients:
                th.join(2 * self.client_timeout + 10)
            for th in fault_threads:
                th.join(120)
            if any(th.is_alive() for th in clients + fault_threads):
                self.rig_errors.append("a client or fault thread did not end in time")
        finally:
            self.clients_stop.set()
            self.stop_event.set()
            monitor.join(30)
            with self.lock:
                lockers = list(self.lockers)
            for p in lockers:
                if p.poll() is None:
                    os.kill(p.pid, signal.SIGKILL)
                    p.wait(10)
        self.t_chaos_end = self.now()
        self.log("chaos over: healing everything")
        self.heal_all()
        self.t_heal = self.now()
        q = self.wait_quiescent()
        self.log(f"quiescence: {'reached' if q['quiescent'] else 'NOT reached'} after "
                 f"{q['seconds']:.1f} s{': ' + q['why'] if q['why'] else ''}")
        if q["quiescent"] and self.settle:
            time.sleep(self.settle)  # a late extra copy would show by now
        self.quiescence = q
        self.collect()
        return self

    # ---- what happened ----

    def _copies(self) -> dict[int, list[dict]]:
        pat = re.compile(rf"^chaos {self.seed} #(\d+)$")
        out = collections.defaultdict(list)
        for m in self.c.sms():
            mt = pat.match(m.get("text", ""))
            if mt:
                out[int(mt.group(1))].append(m)
        return out

    def _allowance(self, f: Fault, copies: list[dict]) -> int:
        """How many extra copies of one alert fault f explains (see the module's comment)."""
        if f.t_start is None:
            return 0
        t0, t1 = self.t0 + f.t_start, self.t0 + (f.t_end if f.t_end is not None else f.t_start)
        if f.kind in ("kill_gatewayd", "hang_modem"):
            # Each copy that left the killed node's (the hung) modem just before the fault was
            # a send in flight there: it may be made once more.
            modems = (self.c.node(f.target).sim_modems if f.kind == "kill_gatewayd"
                      else [f.target])
            return sum(1 for m in copies if m["modem"] in modems and t0 - 3.0 <= m["mono"]
                       <= t0 + 0.5)
        if f.kind in ("kill_corosync", "partition"):
            # Pending at the cut: each side may send it once while they are apart (and in the
            # few seconds until their histories have merged). A node that was down when the
            # cut began and came back during it was out of touch since it went down: what
            # the other side sent meanwhile was pending for it too.
            t0 = self.t0 + self._out_of_touch_since(f)
            around = sum(1 for m in copies if t0 - 3.0 <= m["mono"] <= t1 + 12.0)
            return max(0, around - 1)
        return 0

    def _out_of_touch_since(self, cut: Fault) -> float:
        """When the cut `cut` began for the node that saw least: its own start, or earlier
        when a node was down (gatewayd or corosync killed) at that start and came back only
        while the cut lasted; followed back through such faults in a chain."""
        start = cut.t_start
        changed = True
        while changed:
            changed = False
            for g in self.faults:
                if (g is not cut and g.kind in ("kill_gatewayd", "kill_corosync")
                        and g.t_start is not None and g.t_end is not None
                        and g.t_start < start <= g.t_end
                        and (cut.t_end is None or g.t_end <= cut.t_end)):
                    start, changed = g.t_start, True
        return start

    def collect(self) -> None:
        copies = self._copies()
        accepted = [a for a in self.alerts if a.accepted]
        replies = collections.Counter(a.final_reply for a in self.alerts)
        lost = [a for a in accepted if not copies.get(a.n)]
        dup_alerts = {n: cs for n, cs in copies.items() if len(cs) > 1}
        explained, unexplained = {}, {}
        for n, cs in dup_alerts.items():
            allowed = {f.n: self._allowance(f, cs) for f in self.faults}
            why = [k for k, v in allowed.items() if v]
            if sum(allowed.values()) >= len(cs) - 1:
                explained[n] = why
            else:
                unexplained[n] = why
        extra = sum(len(cs) - 1 for cs in dup_alerts.values())
        # Both stores: get of every accepted alert on both nodes.
        stores = {"compared": 0, "missing": collections.defaultdict(list),
                  "differ": [], "not_sent": [], "view_differs": 0}
        for a in accepted:
            got = {}
            for name in NODE_NAMES:
                try:
                    got[name] = self.c.node(name).request({"op": "get", "id": a.id}, timeout=5.0)
                except AssertionError as e:
                    got[name] = {"ok": False, "error": f"no answer ({e})"}
            stores["compared"] += 1
            for name, g in got.items():
                if not g.get("ok"):
                    stores["missing"][name].append((a, g.get("error")))
            sa, sb = got["a"].get("state"), got["b"].get("state")
            if got["a"].get("ok") and got["b"].get("ok"):
                if sa != sb:
                    stores["differ"].append((a, sa, sb))
                elif json.dumps(Cluster.view(got["a"]), sort_keys=True) != json.dumps(
                        Cluster.view(got["b"]), sort_keys=True):
                    stores["view_differs"] += 1
            states = {s for s in (sa, sb) if s}
            if states and not states <= set(SENT):
                stores["not_sent"].append((a, sa, sb))
        self.result = {
            "not_submitted": sum(1 for a in self.alerts if not a.replies),
            "accepted": len(accepted), "replies": dict(replies), "lost": lost,
            "dup_alerts": dup_alerts, "explained": explained, "unexplained": unexplained,
            "extra_copies": extra, "stores": stores,
            "received_total": sum(len(copies.get(a.n, [])) for a in accepted),
            # Refused (an error or no answer) and delivered all the same: no promise broken,
            # but a refusal that says "nothing was stored" was not true for these.
            "refused_but_sent": [a for a in self.alerts if not a.accepted and copies.get(a.n)],
            "alive": {n: self.c.node(n).alive() for n in NODE_NAMES},
        }

    def violations(self) -> list[str]:
        r, v = self.result, []
        if r["not_submitted"]:
            v.append(f"availability: {r['not_submitted']} alerts never submitted: the clients, "
                     f"waiting for answers, were more than 60 s late at the end of the window")
        if r["lost"]:
            v.append(f"lost: {len(r['lost'])} accepted alerts never reached their phone")
        if r["unexplained"]:
            v.append(f"duplicated: {len(r['unexplained'])} alerts sent more than once with no "
                     f"kill, cut or hang to explain it")
        st = r["stores"]
        for name, miss in st["missing"].items():
            v.append(f"stores: {len(miss)} accepted alerts unknown to node {name}")
        if st["differ"]:
            v.append(f"stores: {len(st['differ'])} alerts in different states on a and b")
        if st["not_sent"]:
            v.append(f"stores: {len(st['not_sent'])} accepted alerts not sent in the stores")
        if not self.quiescence["quiescent"]:
            v.append(f"quiescence: {self.quiescence['why']}")
        for name, alive in r["alive"].items():
            if not alive:
                v.append(f"gatewayd {name} is not running at the end")
        for cr in self.crashes:
            v.append(f"crash: {cr}")
        for f in self.faults:
            if f.error:
                v.append(f"rig: fault {f.n} ({f.kind}) {f.error}")
        for e in self.rig_errors:
            v.append(f"rig: {e}")
        return v

    def log_findings(self, limit: int = 12) -> list[str]:
        """Error lines of each daemon's log (store, commit, cluster), counted by their shape
        (ids and numbers masked), the most frequent first: where a failure comes from."""
        pat = re.compile(r"Store:|[Cc]annot |commit|locked|[Ff]ailed to|[Rr]efus|[Aa]ssert")
        out = []
        for n in self.c.nodes.values():
            counts: collections.Counter = collections.Counter()
            try:
                with open(n.log_path, errors="replace") as f:
                    for line in f:
                        if pat.search(line) and "Modem" not in line and "Job " not in line:
                            shape = re.sub(r"\b[0-9a-f]{32}\b", "ID", line.strip())
                            shape = re.sub(r"\d+", "N", shape)
                            counts[shape[:160]] += 1
            except OSError as e:
                out.append(f"  {n.name}: {e}")
                continue
            for shape, k in counts.most_common(limit):
                out.append(f"  {n.name}: {k} x {shape}")
        return out

    def _alert_line(self, a: Alert, copies: dict) -> str:
        reps = ", ".join(f"{node}:{s}@{t:.1f}" for node, s, _, t in a.replies)
        cs = ", ".join(f"{m['modem']}@{m['mono'] - self.t0:.1f}" for m in copies.get(a.n, []))
        return (f"  #{a.n:05d} id {a.id} due {a.due:.1f} s, replies [{reps}]"
                f"{', copies [' + cs + ']' if cs else ', no copy'}")

    def _where(self, a: Alert) -> str:
        """What both nodes say about one alert (for the lost and stuck ones)."""
        parts = []
        for name in NODE_NAMES:
            try:
                g = self.c.node(name).request({"op": "get", "id": a.id}, timeout=3.0)
            except AssertionError as e:
                parts.append(f"{name}: {e}")
                continue
            if not g.get("ok"):
                parts.append(f"{name}: {g.get('error')}")
                continue
            ds = "; ".join(
                f"{d.get('state')} [" + ", ".join(
                    f"{x.get('node')}/{x.get('modem')} {x.get('result')}"
                    f"{' (' + x['error'] + ')' if x.get('error') else ''}"
                    for x in d.get("attempts") or []) + "]"
                for d in g.get("deliveries") or [])
            parts.append(f"{name}: {g.get('state')}, accepted by {g.get('node')}, {ds}")
        return "    " + "\n    ".join(parts)

    def report(self, detail: int = 10) -> str:
        r = self.result
        copies = self._copies()
        out = [f"chaos seed: {self.seed}",
               f"faults injected ({len([f for f in self.faults if f.t_start is not None])} of "
               f"{len(self.faults)}), times in seconds from the start:"]
        out += ["  " + f.describe() for f in self.faults]
        q = self.quiescence
        dup_ex = len(r["explained"])
        out += [
            "figures:",
            f"  alerts submitted {self.n_alerts}: replies {dict(sorted(r['replies'].items()))}",
            f"  accepted {r['accepted']}, received {r['received_total']} SMS for them",
            f"  lost {len(r['lost'])}",
            f"  not accepted (error or no answer) yet delivered: "
            f"{len(r['refused_but_sent'])} "
            + str(dict(collections.Counter(a.final_reply for a in r["refused_but_sent"]))),
            f"  duplicated {len(r['dup_alerts'])} alerts ({r['extra_copies']} extra copies): "
            f"{dup_ex} explained by a fault (kill / cut / hang), {len(r['unexplained'])} "
            f"unexplained",
            f"  time to quiescence {q['seconds']:.1f} s"
            + ("" if q["quiescent"] else f" -- NOT quiescent: {q['why']}"),
            f"  chaos window {self.t_chaos_end:.1f} s, heal done at {self.t_heal:.1f} s",
            f"  stores: {r['stores']['compared']} compared; unknown on a "
            f"{len(r['stores']['missing'].get('a', []))}, on b "
            f"{len(r['stores']['missing'].get('b', []))}; states differ "
            f"{len(r['stores']['differ'])}; not sent {len(r['stores']['not_sent'])}; same state "
            f"but other attempts {r['stores']['view_differs']}",
            f"  daemons alive at the end: {r['alive']}; crashes {len(self.crashes)}",
        ]
        if r["lost"]:
            out.append(f"lost alerts (first {detail}), with what each node says:")
            for a in r["lost"][:detail]:
                out.append(self._alert_line(a, copies))
                out.append(self._where(a))
            missing = {name: {a.n for a, _ in miss} for name, miss in
                       r["stores"]["missing"].items()}
            where = collections.Counter(
                "unknown to both" if all(a.n in missing.get(x, ()) for x in NODE_NAMES) else
                "unknown to a" if a.n in missing.get("a", ()) else
                "unknown to b" if a.n in missing.get("b", ()) else "in both stores, not sent"
                for a in r["lost"])
            out.append(f"  lost alerts by store: {dict(where)}")
            by = collections.Counter(a.replies[-1][0] for a in r["lost"])
            out.append(f"  lost by the node that answered: {dict(by)}; due times "
                       f"{min(a.due for a in r['lost']):.1f}..{max(a.due for a in r['lost']):.1f} s")
        if r["unexplained"]:
            out.append(f"unexplained duplicates (first {detail}):")
            for n in list(r["unexplained"])[:detail]:
                out.append(self._alert_line(self.alerts[n], copies))
        if r["explained"]:
            out.append("explained duplicates: " + ", ".join(
                f"#{n:05d} (fault {'/'.join(map(str, w))})"
                for n, w in list(r["explained"].items())[:detail]))
        st = r["stores"]
        for name, miss in st["missing"].items():
            out.append(f"unknown to node {name} (first {detail}): " + ", ".join(
                f"#{a.n:05d} {a.id} ({err}; answered by {a.replies[-1][0]})"
                for a, err in miss[:detail]))
        if st["differ"]:
            out.append("states differ: " + ", ".join(f"#{a.n:05d} a {sa} b {sb}"
                                                     for a, sa, sb in st["differ"][:detail]))
        if st["not_sent"]:
            out.append(f"not sent in the stores (first {detail}):")
            for a, sa, sb in st["not_sent"][:detail]:
                out.append(f"  #{a.n:05d} {a.id}: a {sa}, b {sb}")
                out.append(self._where(a))
        for cr in self.crashes:
            out.append(f"crash: {cr}")
        for e in self.rig_errors:
            out.append(f"rig error: {e}")
        if self.violations():
            found = self.log_findings()
            if found:
                out.append("error lines in the daemons' logs (counted, ids and numbers masked):")
                out += found
        return "\n".join(out)
