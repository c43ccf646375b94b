"""Two (or three) gatewayd nodes on real corosync nodes and one modem simulator.

    from gwcluster import main
    def test_something(rig):
        c = rig.cluster()                    # lab (2 corosyncs in netns) + simulator, no daemon yet
        c.start_both()                       # gatewayd a and b, each in its node's namespace
        c.wait_members()                     # both nodes list a and b online
        r = c.send("a", ["+32470000001"], "db01 DOWN")
        c.wait_texts(["db01 DOWN"])          # what the user's phone got (the simulator's records)
        c.wait_agree([r["id"]])              # both nodes report the same final state
    if __name__ == "__main__":
        main(globals())                      # must be the last statement of the script

What is where:
  - The lab (tests/lib/corosync_lab.py): namespaces gw-a-XXXXXX / gw-b-XXXXXX, corosync node a
    (nodeid 1) and b (nodeid 2), token 1000 ms.
  - One simulator (tests/lib/modemsim_client.py) with modems "a0" (node a's) and "b0" (node b's).
    Each node's config has one [modem gsm0] on its own simulator device, so an attempt says
    node a/b, modem gsm0, while the simulator's records say modem a0/b0.
  - gatewayd a and b run inside their node's network namespace (lab.popen), so each talks to
    its own corosync. Their ZeroMQ endpoints are ipc:// sockets in the test's directory: path
    unix sockets are reachable across network namespaces, so the test process (outside) talks
    to both.

Cluster(name, peer_grace=None, rejoin_margin=None, exchange_timeout=None ([cluster] keys,
        each written only when set),
        send_delay=0 (simulator),
        modem_extra={"a": "...keys of [modem gsm0]..."}, extra={"a": "...more sections..."},
        modems_per_node=1 (node a's gsm0, gsm1, ... are simulator modems a0, a1, ...; same
        keys for each), nodes=("a", "b") (("a", "b", "c"): three corosync nodes on a bridge,
        node c with simulator modem c0))
Cluster API (every wait is bounded and raises AssertionError saying what it waited for):
  start(name, wipe_state=False, wait=True)   corosync too if it is not running; waits until the
                                             daemon answers status and its own modem is up
  start_both() = start_all(), stop(name) (SIGTERM),
  kill9(name) (SIGKILL daemon and corosync, by pid)
  kill9_daemon(name)                         SIGKILL the daemon only (corosync stays)
  corosync_kill(name) / corosync_start(name) / restart_corosync(name, down_for=0)
                                             corosync only, under a running daemon
  partition() / heal(), isolate(name) (one node cut off from the others; heal() ends it)
  node(name) -> Node: send/get/status/queue/request (bounded timeouts), alive(), log_tail()
  send(name, to, text, **fields), get(name, id), status(name), queue(name)
  wait_members(names=("a","b"), want=("a","b"))
                                             every node in names lists exactly `want` online
                                             (after a kill or in a partition: names=("b",),
                                             want=("b",))
  sms(modem=None), texts(modem=None) -> Counter, wait_texts(texts), wait_sms_count(n)
  wait_state(name, id, states), wait_agree(ids, nodes=("a","b"), full=False)
  report()                                   daemon log tails, status, corosync log tails
  close()                                    everything stopped by pid; also on __exit__
Errors: NodeDown (a request to a daemon that is not running, or that died on its own: the
message says which), WaitTimeout (a bounded wait ran out: the message says what was seen last);
both are AssertionErrors. Node.try_request returns None on no answer.

Runner: main(globals()) runs each test_* function (or those named in argv, or with
`--part K/N` every Nth from the Kth) with a Rig (rig.cluster(**kw) makes a
Cluster that is closed when the test ends, also on failure and on SIGTERM); on failure it
prints the test line, the message and report(); GWTEST_KEEP=1 keeps a failed test's directory.
summary(line) prints a test's one-line measurement.

Skip: the runner exits 77 with the reason when not root / no corosync / no namespaces.
"""

from __future__ import annotations

import collections
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from corosync_lab import Lab, LabError, Skip, pid_alive  # noqa: E402
from modemsim_client import Sim  # noqa: E402
import waiting  # noqa: E402

try:
    import zmq
except ImportError:  # pragma: no cover
    print("SKIP: python3-zmq is not installed (apt-get install python3-zmq)", flush=True)
    sys.exit(77)

GATEWAYD = os.path.abspath(os.environ.get("GATEWAYD", "build/gatewayd/gatewayd"))
GATEWAYCTL = os.path.abspath(os.environ.get("GATEWAYCTL", "build/gatewayd/gatewayctl/gatewayctl"))

NODE_NAMES = ("a", "b")  # the default; Cluster(nodes=("a", "b", "c")) makes three
NODE_IDS = {"a": 1, "b": 2, "c": 3}
SIM_MODEM = {"a": "a0", "b": "b0", "c": "c0"}  # simulator modem of each node

FNV_OFFSET, FNV_PRIME, MASK = 0xcbf29ce484222325, 0x100000001b3, (1 << 64) - 1


def fnv1a(h: int, s: str) -> int:
    for b in s.encode():
        h = ((h ^ b) * FNV_PRIME) & MASK
    return h


def owner(alert_id: str, number: str, nodes=NODE_NAMES) -> str:
    """The node that sends a delivery (or, with number "escalation", publishes an alert's
    escalation steps) while every node in `nodes` is eligible: gatewayd/members.c
    members_owner, FNV-1a 64 of the id then the number, modulo the eligible nodes in name
    order. A delivery's sender (members_sender) weighs each node by its usable modems: the
    same answer while every node has one."""
    eligible = sorted(nodes)
    return eligible[fnv1a(fnv1a(FNV_OFFSET, alert_id), number) % len(eligible)]
FINAL = ("sent", "delivered", "failed", "expired")


class NodeDown(AssertionError):
    """A request to a node whose daemon is not running."""


class WaitTimeout(AssertionError):
    """A bounded wait ran out."""


def wait_until(predicate, timeout: float, what: str, interval: float = 0.1):
    """Polls predicate until it returns a true value (returned); WaitTimeout after timeout.
    A predicate may raise AssertionError to abort at once (a daemon died)."""
    return waiting.wait_until(predicate, timeout, what, interval, error=WaitTimeout)


def health_cluster(rig, ops: str, **thresholds):
    """Two nodes with [health] paging `ops` (normal priority) and the thresholds given, both
    started and in one view."""
    watch = f"[health]\nto = {ops}\npriority = normal\n"
    watch += "".join(f"{k} = {v}\n" for k, v in thresholds.items())
    c = rig.cluster(extra={"a": watch + "[submit]\nread_rate = 0\n",
                           "b": watch + "[submit]\nread_rate = 0\n"})
    c.start_both()
    c.wait_members()
    return c


def _tail(path: str, lines: int) -> str:
    try:
        with open(path, errors="replace") as f:
            return "".join(collections.deque(f, maxlen=lines))
    except FileNotFoundError:
        return "(no file)\n"


class Node:
    """One gatewayd: its config, state dir, log and a ZeroMQ client on its ipc endpoints."""

    def __init__(self, cluster: "Cluster", name: str):
        self.c = cluster
        self.name = name
        self.nodeid = NODE_IDS[name]
        d = cluster.dir
        self.config_path = os.path.join(d, f"{name}.conf")
        self.state_dir = os.path.join(d, f"state-{name}")
        self.log_path = os.path.join(d, f"{name}.log")
        self.submit_path = os.path.join(d, f"{name}-submit.sock")
        self.events_path = os.path.join(d, f"{name}-events.sock")
        for p in (self.submit_path, self.events_path):
            if len(p) > 100:  # sun_path is 108 bytes
                raise AssertionError(f"ipc path too long for a unix socket: {p}")
        self.endpoint = f"ipc://{self.submit_path}"
        self.events_endpoint = f"ipc://{self.events_path}"
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    # ---- config and process ----

    def write_config(self) -> None:
        c = self.c
        text = (f"# written by tests/lib/gwcluster.py\n"
                f"[node]\nname = {self.name}\nstate_dir = {self.state_dir}\n\n"
                # The checks read every alert on both nodes: no read rate limit here.
                f"[submit]\nbind = {self.endpoint}\nread_rate = 0\n\n"
                f"[events]\nbind = {self.events_endpoint}\n\n"
                f"[cluster]\nenabled = true\ngroup = {c.group}\n")
        if c.peer_grace is not None:
            text += f"peer_grace = {c.peer_grace}\n"
        if c.rejoin_margin is not None:
            text += f"rejoin_margin = {c.rejoin_margin}\n"
        if c.exchange_timeout is not None:
            text += f"exchange_timeout = {c.exchange_timeout}\n"
        text += "\n[delivery]\nretry_min = 1\nretry_max = 5\n\n"
        if "[bundle]" not in c.extra.get(self.name, ""):
            text += "[bundle]\nthreshold = 0\n\n"  # bundling has tests of its own
        if "[limits]" not in c.extra.get(self.name, ""):
            text += "[limits]\nsms = off\ncalls = off\n\n"  # so have the per-person limits
        for i, sim_modem in enumerate(self.sim_modems):
            text += (f"[modem gsm{i}]\ndevice = {c.sim.device(sim_modem)}\n"
                     f"connection = at\n{c.modem_extra.get(self.name, c.default_modem_extra)}\n")
        text += c.extra.get(self.name, "")
        with open(self.config_path, "w") as f:
            f.write(text)

    @property
    def sim_modems(self) -> list[str]:
        """The simulator modems of this node, in the order of its gsm0, gsm1, ..."""
        return [f"{self.name}{i}" for i in range(self.c.modems_per_node)]

    @property
    def pid(self) -> int | None:
        if self.proc and self.proc.poll() is None:
            return self.proc.pid
        return None

    def alive(self) -> bool:
        return self.pid is not None

    def log_tail(self, lines: int = 30) -> str:
        return _tail(self.log_path, lines)

    def check_alive(self) -> None:
        """AssertionError with the log tail if the daemon died on its own."""
        if self.proc is not None and self.proc.poll() is not None and not self.c._expect_dead(
                self.name):
            raise NodeDown(f"gatewayd {self.name} exited with {self.proc.returncode} on its own "
                           f"(see its log below)")

    # ---- requests ----

    def request(self, obj, timeout: float = 5.0) -> dict:
        """One request on a fresh REQ socket (a lost reply never wedges anything)."""
        if not self.alive():
            self.check_alive()
            raise NodeDown(f"gatewayd {self.name} is not running")
        sock = self.c.ctx.socket(zmq.REQ)
        sock.setsockopt(zmq.LINGER, 0)
        try:
            sock.connect(self.endpoint)
            sock.send(json.dumps(obj).encode())
            if not sock.poll(int(timeout * 1000)):
                self.check_alive()
                raise AssertionError(f"node {self.name}: no reply within {timeout:.0f} s to "
                                     f"{json.dumps(obj)[:200]}")
            return json.loads(sock.recv())
        finally:
            sock.close()

    def try_request(self, obj, timeout: float = 2.0) -> dict | None:
        """As request(), but None instead of an error when there is no answer in time (NodeDown
        still raised: waiting on a dead daemon is pointless)."""
        try:
            return self.request(obj, timeout)
        except NodeDown:
            raise
        except AssertionError:
            return None

    def send(self, to, text: str, timeout: float = 10.0, **fields) -> dict:
        req = {"op": "send", "to": list(to) if not isinstance(to, str) else [to], "text": text}
        req.update(fields)
        return self.request(req, timeout)

    def get(self, alert_id: str, timeout: float = 5.0) -> dict:
        return self.request({"op": "get", "id": alert_id}, timeout)

    def status(self, timeout: float = 5.0) -> dict:
        return self.request({"op": "status"}, timeout)

    def queue(self, timeout: float = 5.0) -> dict:
        return self.request({"op": "queue"}, timeout)

    def subscribe(self, topics=("",)):
        sub = self.c.ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        for t in topics:
            sub.setsockopt_string(zmq.SUBSCRIBE, t)
        sub.connect(self.events_endpoint)
        self.c.sockets.append(sub)
        return sub


class Cluster:
    """Lab + simulator + a gatewayd per node. See the module's comment. Use as a context manager, or
    through Rig.cluster() which closes it when the test ends."""

    def __init__(self, name: str = "cluster", peer_grace: int | None = None,
                 send_delay: float = 0.0, modem_extra: dict | None = None,
                 extra: dict | None = None, token_ms: int = 1000, quiet: bool = True,
                 modems_per_node: int = 1, nodes=NODE_NAMES, rejoin_margin: int | None = None,
                 exchange_timeout: int | None = None):
        self.dir = tempfile.mkdtemp(prefix=f"gwc-{name[:20]}-")
        self.modems_per_node = modems_per_node
        self.peer_grace = peer_grace
        self.rejoin_margin = rejoin_margin
        self.exchange_timeout = exchange_timeout
        self.send_delay = send_delay
        # health_interval short, send/command timeouts short: faults show within seconds.
        self.default_modem_extra = "health_interval = 2\nsend_timeout = 5\ncommand_timeout = 3\n"
        self.modem_extra = modem_extra or {}
        self.extra = extra or {}
        self.token_ms = token_ms
        self.quiet = quiet
        self.lab: Lab | None = None
        self.sim: Sim | None = None
        self.ctx = zmq.Context()
        self.sockets = []
        self.names = tuple(nodes)
        self.nodes = {n: Node(self, n) for n in self.names}
        self.dead: set[str] = set()  # daemons stopped on purpose
        self.group = "gwt"
        self.closed = False

    # ---- set-up / tear-down ----

    def up(self) -> "Cluster":
        """Lab up (raises corosync_lab.Skip when it cannot run here), then the simulator."""
        try:
            self.lab = Lab(os.path.join(self.dir, "lab"), token_ms=self.token_ms,
                           quiet=self.quiet, names=self.names)
            self.lab.up()
            self.group = f"gwt-{self.lab.suffix}"
            self.sim = Sim.start(os.path.join(self.dir, "sim"),
                                 modems=[m for n in self.nodes.values() for m in n.sim_modems],
                                 send_delay=self.send_delay)
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        """Stops both daemons (SIGTERM, SIGKILL after 10 s), the simulator and the lab, each by
        pid. Safe to call twice and after a failed up()."""
        if self.closed:
            return
        self.closed = True
        errors = []
        for s in self.sockets:
            try:
                s.close()
            except Exception:
                pass
        self.sockets = []
        for n in self.nodes.values():
            try:
                self._stop_proc(n, signal.SIGTERM, 10.0)
            except Exception as e:
                errors.append(f"gatewayd {n.name}: {e}")
        if self.sim:
            try:
                self.sim.stop()
            except Exception as e:
                errors.append(f"simulator: {e}")
        if self.lab:
            try:
                self.lab.down()
            except Exception as e:
                errors.append(f"lab: {e}")
        try:
            self.ctx.destroy(linger=0)
        except Exception:
            pass
        if errors:
            print("gwcluster close: " + "; ".join(errors), flush=True)

    def remove_dir(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "Cluster":
        return self.up()

    def __exit__(self, *exc) -> bool:
        self.close()
        return False

    # ---- daemons ----

    def node(self, name: str) -> Node:
        try:
            return self.nodes[name]
        except KeyError:
            raise AssertionError(f"no node {name!r} (nodes: {', '.join(self.names)})") \
                from None

    def _expect_dead(self, name: str) -> bool:
        return name in self.dead

    def start(self, name: str, wipe_state: bool = False, wait: bool = True,
              timeout: float = 30.0) -> Node:
        """Starts gatewayd `name` in its namespace (and its corosync first if that is not
        running). wipe_state: an empty state dir. wait: until it answers status and its own
        modem is ok or degraded."""
        n = self.node(name)
        if n.alive():
            raise AssertionError(f"gatewayd {name} already runs (pid {n.pid})")
        if not self.lab.pid(name):
            self.lab.start(name)
        if wipe_state:
            shutil.rmtree(n.state_dir, ignore_errors=True)
        os.makedirs(n.state_dir, exist_ok=True)
        n.write_config()
        n.starts += 1
        with open(n.log_path, "ab") as log:
            log.write(f"=== gwcluster: start #{n.starts} of gatewayd {name} at "
                      f"{time.strftime('%H:%M:%S')}{' (empty state dir)' if wipe_state else ''}"
                      f" ===\n".encode())
            log.flush()
            n.proc = self.lab.popen(name, [GATEWAYD, "-c", n.config_path],
                                    stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        self.dead.discard(name)
        if wait:
            self.wait_ready(name, timeout)
        return n

    def start_both(self, wait: bool = True, timeout: float = 30.0) -> None:
        """Starts every node's daemon (both, or all three)."""
        for name in self.names:
            self.start(name, wait=False)
        if wait:
            for name in self.names:
                self.wait_ready(name, timeout)

    start_all = start_both

    def wait_ready(self, name: str, timeout: float = 30.0) -> dict:
        """Until the daemon answers status and lists its own gsm0 as ok or degraded."""
        n = self.node(name)

        def ready():
            n.check_alive()
            st = n.try_request({"op": "status"}, timeout=1.0)
            if not st or not st.get("ok"):
                return None
            own = [m for m in st.get("modems", [])
                   if m.get("node") == name and m.get("name") == "gsm0"]
            return st if own and own[0].get("state") in ("ok", "degraded") else None

        return wait_until(ready, timeout, f"gatewayd {name} to answer with its modem up",
                          interval=0.2)

    def _stop_proc(self, n: Node, sig: int, timeout: float) -> int | None:
        if n.proc is None:
            return None
        self.dead.add(n.name)
        if n.proc.poll() is None:
            try:
                os.kill(n.proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                n.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(n.proc.pid, signal.SIGKILL)
                n.proc.wait(10)
        return n.proc.returncode

    def stop(self, name: str, timeout: float = 15.0) -> int | None:
        """Graceful stop of the daemon (SIGTERM; SIGKILL after timeout). Corosync stays."""
        return self._stop_proc(self.node(name), signal.SIGTERM, timeout)

    def kill9(self, name: str) -> float:
        """A node's death: SIGKILL to its corosync and its daemon at once (by pid), waits until
        both have gone, cleans corosync's /dev/shm files. Returns the monotonic time."""
        n = self.node(name)
        lab_node = self.lab.node(name)
        cpid = lab_node.pid
        t = time.monotonic()
        self.dead.add(name)
        if cpid:
            os.kill(cpid, signal.SIGKILL)
        if n.pid:
            os.kill(n.proc.pid, signal.SIGKILL)
        if n.proc:
            n.proc.wait(10)
        if cpid:
            lab_node.proc.wait(10)
            lab_node.proc = None
            wait_until(lambda: not pid_alive(cpid), 10, f"corosync {cpid} to be gone")
            self.lab._clean_shm([cpid])
        return t

    def kill9_daemon(self, name: str) -> float:
        """SIGKILL to the node's gatewayd only (its corosync keeps running); waits until it has
        gone. Returns the monotonic time of the signal."""
        n = self.node(name)
        t = time.monotonic()
        self.dead.add(name)
        if n.pid:
            os.kill(n.proc.pid, signal.SIGKILL)
        if n.proc:
            n.proc.wait(10)
        return t

    def corosync_kill(self, name: str, sig: int = signal.SIGKILL) -> float:
        """Kills only the node's corosync (the daemon keeps running); returns the time."""
        return self.lab.kill(name, sig)

    def corosync_start(self, name: str) -> int:
        return self.lab.start(name)

    def restart_corosync(self, name: str, down_for: float = 0.0,
                         sig: int = signal.SIGKILL) -> tuple[float, float]:
        """Kills the node's corosync under its running daemon, starts it again after down_for
        seconds. Returns (kill time, start time), monotonic."""
        t_kill = self.lab.kill(name, sig)
        if down_for > 0:
            time.sleep(down_for)
        t_start = time.monotonic()
        self.lab.start(name)
        return t_kill, t_start

    def partition(self) -> float:
        return self.lab.partition()

    def isolate(self, name: str) -> float:
        return self.lab.isolate(name)

    def heal(self) -> float:
        return self.lab.heal()

    # ---- requests (shortcuts) ----

    def send(self, name: str, to, text: str, **fields) -> dict:
        return self.node(name).send(to, text, **fields)

    def get(self, name: str, alert_id: str) -> dict:
        return self.node(name).get(alert_id)

    def status(self, name: str) -> dict:
        return self.node(name).status()

    def queue(self, name: str) -> dict:
        return self.node(name).queue()

    # ---- waits on the cluster ----

    @staticmethod
    def online_members(st: dict) -> set[str]:
        return {m.get("name") for m in (st.get("cluster") or {}).get("members") or []
                if m.get("online")}

    def wait_members(self, names=None, want=None, timeout: float = 20.0) -> float:
        """Until every node in `names` (default: all) lists exactly the nodes `want` (default:
        all) online. Returns seconds."""
        names = self.names if names is None else names
        want = self.names if want is None else want
        t0 = time.monotonic()
        last = {}

        def seen():
            ok = True
            for n in names:
                self.node(n).check_alive()
                st = self.node(n).try_request({"op": "status"}, timeout=1.0)
                last[n] = sorted(self.online_members(st)) if st else "no answer"
                if not st or self.online_members(st) != set(want):
                    ok = False
            return ok

        try:
            wait_until(seen, timeout, "", interval=0.2)
        except WaitTimeout:
            raise WaitTimeout(f"timed out after {timeout:.0f} s waiting for "
                                 f"{', '.join(names)} to list {sorted(want)} online; last "
                                 f"seen: {last}") from None
        return time.monotonic() - t0

    # ---- the simulator: what the phones got ----

    def sms(self, modem: str | None = None) -> list[dict]:
        return self.sim.sms(modem)

    def texts(self, modem: str | None = None) -> collections.Counter:
        return collections.Counter(m["text"] for m in self.sim.sms(modem))

    def wait_texts(self, texts, timeout: float = 30.0) -> collections.Counter:
        """Until every text in `texts` was received at least once; returns the Counter of all
        texts received."""
        want = set(texts)

        def got():
            c = self.texts()
            return c if all(c[t] for t in want) else None

        try:
            return wait_until(got, timeout, "", interval=0.1)
        except WaitTimeout:
            c = self.texts()
            missing = sorted(t for t in want if not c[t])
            raise AssertionError(f"{len(missing)} of {len(want)} texts not received within "
                                 f"{timeout:.0f} s: {missing[:10]}"
                                 f"{' ...' if len(missing) > 10 else ''}") from None

    def wait_sms_count(self, count: int, timeout: float = 30.0) -> list[dict]:
        def got():
            s = self.sim.sms()
            return s if len(s) >= count else None
        try:
            return wait_until(got, timeout, "", interval=0.1)
        except WaitTimeout:
            raise WaitTimeout(f"{len(self.sim.sms())} of {count} SMS received within "
                                 f"{timeout:.0f} s") from None

    # ---- waits on alerts ----

    def wait_state(self, name: str, alert_id: str, states=FINAL,
                   timeout: float = 30.0) -> dict:
        """Until `get` on node `name` shows the alert in one of `states` (a str or a list)."""
        if isinstance(states, str):
            states = (states,)
        last = {}

        def ok():
            a = self.node(name).try_request({"op": "get", "id": alert_id}, timeout=2.0)
            last["a"] = a
            return a if a and a.get("state") in states else None

        try:
            return wait_until(ok, timeout, "", interval=0.2)
        except WaitTimeout:
            a = last.get("a")
            raise AssertionError(
                f"node {name}: alert {alert_id} not {'/'.join(states)} within {timeout:.0f} s; "
                f"last get: {json.dumps(a)[:300] if a else 'no answer'}") from None

    @staticmethod
    def view(alert: dict) -> dict:
        """What must be identical on both nodes for one alert."""
        return {
            "ok": alert.get("ok"), "error": alert.get("error"),
            "id": alert.get("id"), "state": alert.get("state"), "text": alert.get("text"),
            "key": alert.get("key"), "priority": alert.get("priority"),
            "source": alert.get("source"), "node": alert.get("node"),
            "accepted_at": alert.get("accepted_at"), "ack": alert.get("ack"),
            "deliveries": sorted(
                ((d.get("to"), d.get("state"),
                  tuple((x.get("node"), x.get("modem"), x.get("result"), x.get("at"))
                        for x in d.get("attempts") or []))
                 for d in alert.get("deliveries") or []), key=repr),
        }

    def wait_agree(self, ids, nodes=None, timeout: float = 30.0, full: bool = False,
                   final: bool = True) -> dict:
        """Until `get` on every node in `nodes` (default: all) shows every alert in the same
        state (final ones if final), or the same whole view (full: deliveries, attempts,
        accepted_at ...). Returns {id: {node: alert}} of the last poll."""
        ids = list(ids)
        nodes = self.names if nodes is None else nodes
        pending = set(ids)
        result: dict = {}

        def check():
            for i in sorted(pending):
                got = {}
                for n in nodes:
                    a = self.node(n).try_request({"op": "get", "id": i}, timeout=2.0)
                    if a is None:
                        return False
                    got[n] = a
                result[i] = got
                states = {a.get("state") for a in got.values()}
                same = (len({json.dumps(self.view(a), sort_keys=True) for a in got.values()})
                        == 1) if full else len(states) == 1
                if same and all(a.get("ok") for a in got.values()) and (
                        not final or states <= set(FINAL)):
                    pending.discard(i)
                else:
                    return False
            return True

        try:
            wait_until(check, timeout, "", interval=0.3)
        except WaitTimeout:
            bad = sorted(pending)
            detail = []
            for i in bad[:5]:
                got = result.get(i) or {}
                if full:
                    detail.append(f"  {i}: " + "; ".join(
                        f"{n}: {json.dumps(self.view(a), sort_keys=True)[:400]}"
                        for n, a in got.items()))
                else:
                    detail.append(f"  {i}: " + ", ".join(
                        f"{n}: {a.get('state') if a.get('ok') else a.get('error')}"
                        for n, a in got.items()))
            raise AssertionError(
                f"{len(bad)} of {len(ids)} alerts do not agree on {'/'.join(nodes)} within "
                f"{timeout:.0f} s ({'whole view' if full else 'state'}"
                f"{', final' if final else ''}):\n" + "\n".join(detail)) from None
        return result

    # ---- reports ----

    def report(self, lines: int = 30) -> str:
        out = []
        for n in self.nodes.values():
            pid = n.pid
            rc = n.proc.returncode if n.proc and pid is None else None
            out.append(f"--- gatewayd {n.name} ({'pid ' + str(pid) if pid else 'not running'}"
                       f"{', exit ' + str(rc) if rc is not None else ''}): last lines of "
                       f"{n.log_path}\n{n.log_tail(lines)}")
        for n in self.nodes.values():
            if not n.alive():
                continue
            try:
                st = n.try_request({"op": "status"}, timeout=1.0)
            except AssertionError:
                st = None
            if st:
                mods = ", ".join(f"{m.get('node')}/{m.get('name')} {m.get('state')}"
                                 for m in st.get("modems") or [])
                out.append(f"--- status of {n.name}: cluster {json.dumps(st.get('cluster'))}; "
                           f"modems {mods}; queue {json.dumps(st.get('queue'))}")
            else:
                out.append(f"--- status of {n.name}: no answer within 1 s")
        if self.lab:
            for name, ln in self.lab.nodes.items():
                out.append(f"--- corosync {name} ({'pid ' + str(ln.pid) if ln.pid else 'down'})"
                           f": last lines of {ln.log}\n{_tail(str(ln.log), 6)}")
        if self.sim:
            c = self.texts()
            out.append(f"--- simulator: {sum(c.values())} SMS ({len(c)} distinct texts), "
                       + ", ".join(f"{SIM_MODEM[n]} {len(self.sim.sms(SIM_MODEM[n]))}"
                                   for n in self.names))
        return "\n".join(out)


class Rig:
    """Per test: makes clusters and closes them when the test ends."""

    def __init__(self, test_name: str):
        self.test_name = test_name
        self.clusters: list[Cluster] = []

    def cluster(self, up: bool = True, **kw) -> Cluster:
        c = Cluster(self.test_name.replace("test_", ""), **kw)
        self.clusters.append(c)
        return c.up() if up else c

    def close(self, keep: bool = False) -> None:
        for c in self.clusters:
            c.close()
            if not keep:
                c.remove_dir()


def can_run() -> str | None:
    """Why the rig cannot run here, or None."""
    if not os.path.exists(GATEWAYD):
        return None  # a real failure, reported by the first start
    try:
        Lab(tempfile.gettempdir()).check_can_run()
    except Skip as e:
        return str(e)
    return None


def summary(line: str) -> None:
    """The one-line summary of what a test measured."""
    print(f"     {line}", flush=True)


def main(namespace: dict) -> None:
    """Runs the test_* functions of the module (or those named on the command line), each with
    its own Rig. Exit 0, 1 (a failure) or 77 (skipped: the reason is printed)."""
    only = sys.argv[1:]
    tests = [(n, f) for n, f in namespace.items() if n.startswith("test_") and callable(f)]
    if len(only) == 2 and only[0] == "--part":
        # --part K/N: every Nth test from the Kth, so that N runners share a module.
        k, n = (int(x) for x in only[1].split("/"))
        tests = tests[k - 1::n]
        only = []
    if only:
        unknown = set(only) - {n for n, _ in tests}
        if unknown:
            print(f"no such test: {', '.join(sorted(unknown))}", flush=True)
            sys.exit(2)
        tests = [(n, f) for n, f in tests if n in only]
    reason = can_run()
    if reason:
        print(f"SKIP: {reason}", flush=True)
        sys.exit(77)
    if not os.path.exists(GATEWAYD):
        print(f"FAIL: gatewayd not found at {GATEWAYD} (set GATEWAYD)", flush=True)
        sys.exit(1)
    def on_term(signum, frame):  # meson's timeout: clean up like any other failure
        raise SystemExit(f"signal {signum}")
    signal.signal(signal.SIGTERM, on_term)
    failed = skipped = 0
    t_all = time.monotonic()
    for name, fn in tests:
        rig = Rig(name)
        t0 = time.monotonic()
        ok = False
        try:
            fn(rig)
            ok = True
            print(f"ok   {name} ({time.monotonic() - t0:.1f} s)", flush=True)
        except Skip as e:
            ok = True
            skipped += 1
            print(f"skip {name}: {e}", flush=True)
        except (Exception, SystemExit, KeyboardInterrupt) as e:
            failed += 1
            print(f"FAIL {name} ({time.monotonic() - t0:.1f} s): "
                  f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}", flush=True)
            if isinstance(e, (AssertionError, NodeDown, LabError)):
                # Where in the test, then the message (the rig's own frames add nothing).
                test_file = fn.__code__.co_filename
                frames = [f for f in traceback.extract_tb(e.__traceback__)
                          if f.filename == test_file]
                print("".join(traceback.format_list(frames[-1:])), end="")
                print(f"{type(e).__name__}: {e}", flush=True)
            else:
                traceback.print_exc()
            for c in rig.clusters:
                try:
                    print(c.report(), flush=True)
                except Exception as re:
                    print(f"(no report: {re})", flush=True)
            if isinstance(e, (SystemExit, KeyboardInterrupt)):
                raise  # after the clean-up in finally
        finally:
            keep = not ok and os.environ.get("GWTEST_KEEP") == "1"
            # A SIGTERM now waits until everything is stopped, then ends the run.
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
            try:
                rig.close(keep=keep)
            finally:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
            if keep:
                for c in rig.clusters:
                    print(f"kept {c.dir}", flush=True)
    print(f"{len(tests) - failed - skipped} passed, {failed} failed, {skipped} skipped "
          f"({time.monotonic() - t_all:.0f} s)", flush=True)
    if failed:
        sys.exit(1)
    if tests and skipped == len(tests):
        sys.exit(77)
    sys.exit(0)
