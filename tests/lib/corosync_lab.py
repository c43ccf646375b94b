"""Two (or three) real corosync nodes on one machine, each in its own network namespace.

    from corosync_lab import Lab, Skip
    with Lab(tempfile.mkdtemp(), token_ms=1000) as lab:     # up() on enter, down() on exit
        p = lab.popen("a", ["/path/to/program"], stdin=PIPE, stdout=PIPE)
        lab.kill("b")              # SIGKILL b's corosync, wait until it is gone, clean its shm
        lab.start("b")             # start it again
        lab.partition(); lab.heal()

The recipe (measured in shared/lab/corosync.md): a veth pair between two namespaces,
192.0.2.1/24 (node a, nodeid 1) and 192.0.2.2/24 (node b, nodeid 2); knet with aes256/sha256
and a shared authkey; votequorum with two_node: 1 and wait_for_all: 0 (a restarted corosync
briefly sees itself alone, and quorate). Each corosync runs under `ip netns exec` with a
per-node directory bind-mounted over /run, because corosync 3.1.7 flocks a hard-coded
/var/run/corosync.pid; `ip netns exec` gives the command its own mount namespace (slave), so
the bind never reaches the host. Clients need only the network namespace: libqb's IPC sockets
are abstract unix sockets, which are per network namespace, while /dev/shm stays shared.

A partition is a silent drop of incoming IP on both sides: the `local` routing rule is moved
from pref 0 to pref 20 at setup, so that `ip rule add pref 10 iif VETH blackhole` takes effect
(the image has no iptables/nft, and its kernel no tc drop actions).

Three nodes (Lab(dir, names=("a", "b", "c")); c is nodeid 3, 192.0.2.3): each node's veth
has its peer in a hub namespace (gw-hub-XXXXXX) where a bridge joins them; votequorum without
two_node (two of three are a quorum). partition() then cuts every node off from every other;
isolate(name) cuts one node off from the rest, which stay together.

Every name is unique per Lab (a random suffix: namespaces gw-a-XXXXXX, veth gwXXXXXXa, which
stays within IFNAMSIZ), so parallel runs never collide. Everything started is recorded by PID
and stopped by PID in down(), which runs on every exit path of the context manager, including
SIGTERM (turned into SystemExit while the lab is up) -- never by name. Every wait is bounded.

Skip: up() raises Skip (use skip_exit() or exit 77 yourself) when not root, when corosync or
iproute2 is missing, or when network namespaces cannot be created here.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import waiting  # noqa: E402

NODES = {
    "a": {"nodeid": 1, "addr": "192.0.2.1"},
    "b": {"nodeid": 2, "addr": "192.0.2.2"},
    "c": {"nodeid": 3, "addr": "192.0.2.3"},
}
PREFIX_LEN = 24
TOOLS = ["corosync", "corosync-keygen", "corosync-quorumtool", "corosync-cfgtool",
         "corosync-cpgtool", "ip"]
_SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin", "/usr/bin",
                                "/bin"])


def tool(name: str) -> str:
    """Absolute path of a tool (corosync's live in /usr/sbin, often not in a user's PATH)."""
    return shutil.which(name, path=_SEARCH_PATH) or name


class Skip(Exception):
    """The lab cannot run here; the message says why."""


class LabError(Exception):
    pass


def skip_exit(reason: str) -> None:
    print(f"SKIP: {reason}", flush=True)
    sys.exit(77)


def wait_until(predicate, timeout: float, what: str, interval: float = 0.05):
    """Polls predicate until it returns a true value (returned); LabError after timeout."""
    return waiting.wait_until(predicate, timeout, what, interval, error=LabError)


def pid_alive(pid: int) -> bool:
    """True while pid exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


class Node:
    def __init__(self, lab: "Lab", name: str, nodeid: int, addr: str):
        self.lab = lab
        self.name = name
        self.nodeid = nodeid
        self.addr = addr
        self.netns = f"gw-{name}-{lab.suffix}"
        self.veth = f"gw{lab.suffix}{name}"  # 2 + 6 + 1 = 9 characters
        self.hub_veth = f"gh{lab.suffix}{name}"  # its peer on the bridge (three nodes)
        self.dir = lab.dir / name
        self.conf = self.dir / "corosync.conf"
        self.log = self.dir / "corosync.log"
        self.run_dir = self.dir / "run"
        self.state_dir = self.dir / "state"
        self.proc: subprocess.Popen | None = None

    @property
    def pid(self) -> int | None:
        if self.proc and self.proc.poll() is None:
            return self.proc.pid
        return None


class Lab:
    """Corosync nodes "a" and "b" (and "c" with names=("a", "b", "c")) in network namespaces.
    See the module's comment."""

    def __init__(self, dir, token_ms: int | None = 1000, crypto: bool = True,
                 handle_signals: bool = True, quiet: bool = False,
                 names: tuple = ("a", "b")):
        if len(names) < 2 or any(n not in NODES for n in names) or len(set(names)) != len(names):
            raise LabError(f"nodes must be two or three of {', '.join(NODES)}: {names}")
        self.dir = Path(dir).absolute()
        self.token_ms = token_ms
        self.crypto = crypto
        self.handle_signals = handle_signals
        self.quiet = quiet
        self.suffix = secrets.token_hex(3)
        self.authkey = self.dir / "authkey"
        self.names = tuple(names)
        self.nodes = {n: Node(self, n, NODES[n]["nodeid"], NODES[n]["addr"]) for n in names}
        self.hub_netns = f"gw-hub-{self.suffix}"
        self.netns_made: list[str] = []
        self.corosync_pids: list[int] = []  # every corosync started, for the shm cleanup
        self.clients: list[subprocess.Popen] = []
        self.partitioned = False
        self._old_sigterm = None
        self._is_up = False

    # ---- set-up ----

    def log(self, msg: str) -> None:
        if not self.quiet:
            print(f"lab: {msg}", flush=True)

    def check_can_run(self) -> None:
        if os.geteuid() != 0:
            raise Skip("needs root (network namespaces, veth, bind mounts)")
        missing = [t for t in TOOLS if not shutil.which(t, path=_SEARCH_PATH)]
        if missing:
            raise Skip(f"missing {', '.join(missing)} (apt-get install corosync iproute2)")

    def _ip(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        r = subprocess.run([tool("ip"), *args], stdin=subprocess.DEVNULL, capture_output=True,
                           text=True, timeout=30)
        if check and r.returncode != 0:
            raise LabError(f"ip {' '.join(args)}: {r.stderr.strip()}")
        return r

    def up(self, timeout: float = 60.0) -> "Lab":
        """Namespaces, veth, configs, authkey; starts every node; waits until all are quorate
        with every vote."""
        self.check_can_run()
        self.dir.mkdir(parents=True, exist_ok=True)
        if self.handle_signals:
            self._trap_sigterm()
        self._is_up = True
        t0 = time.monotonic()
        try:
            self._make_network()
            if not self.authkey.exists():
                subprocess.run([tool("corosync-keygen"), "-k", str(self.authkey)], check=True,
                               stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
            for node in self.nodes.values():
                self._write_config(node)
            for node in self.nodes.values():
                self.start(node.name)
            self.wait_quorate(list(self.names), votes=len(self.names), timeout=timeout)
        except BaseException:
            self.down()
            raise
        self.up_seconds = time.monotonic() - t0
        self.log(f"up in {self.up_seconds:.2f} s (namespaces "
                 f"{', '.join(n.netns for n in self.nodes.values())})")
        return self

    def _add_netns(self, ns: str) -> None:
        r = self._ip("netns", "add", ns, check=False)
        if r.returncode != 0:
            if not self.netns_made:
                raise Skip(f"cannot create a network namespace: {r.stderr.strip()}")
            raise LabError(f"ip netns add {ns}: {r.stderr.strip()}")
        self.netns_made.append(ns)

    def _make_network(self) -> None:
        nodes = list(self.nodes.values())
        for node in nodes:
            self._add_netns(node.netns)
        if len(nodes) == 2:
            a, b = nodes
            self._ip("link", "add", a.veth, "netns", a.netns, "type", "veth",
                     "peer", "name", b.veth, "netns", b.netns)
        else:
            # A bridge in a namespace of its own, one veth from each node to it.
            self._add_netns(self.hub_netns)
            bridge = f"gb{self.suffix}"
            self._ip("-n", self.hub_netns, "link", "add", bridge, "type", "bridge")
            self._ip("-n", self.hub_netns, "link", "set", bridge, "up")
            for node in nodes:
                self._ip("link", "add", node.veth, "netns", node.netns, "type", "veth",
                         "peer", "name", node.hub_veth, "netns", self.hub_netns)
                self._ip("-n", self.hub_netns, "link", "set", node.hub_veth, "master", bridge)
                self._ip("-n", self.hub_netns, "link", "set", node.hub_veth, "up")
        for node in nodes:
            self._ip("-n", node.netns, "addr", "add", f"{node.addr}/{PREFIX_LEN}",
                     "dev", node.veth)
            self._ip("-n", node.netns, "link", "set", node.veth, "up")
            self._ip("-n", node.netns, "link", "set", "lo", "up")
            # Local delivery behind pref 10, where partition() puts its blackhole.
            self._ip("-n", node.netns, "rule", "add", "pref", "20", "lookup", "local")
            self._ip("-n", node.netns, "rule", "del", "pref", "0")

    def _write_config(self, node: Node) -> None:
        for d in (node.dir, node.run_dir, node.state_dir):
            d.mkdir(parents=True, exist_ok=True)
        crypto = ("    crypto_model: openssl\n    crypto_cipher: aes256\n"
                  "    crypto_hash: sha256\n" if self.crypto else
                  "    crypto_cipher: none\n    crypto_hash: none\n")
        token = f"    token: {self.token_ms}\n" if self.token_ms else ""
        # As packaging/corosync.conf.example: the token rests after 2 idle turns, not 30.
        token += "    seqno_unchanged_const: 2\n"
        two_node = "    two_node: 1\n" if len(self.nodes) == 2 else ""
        nodelist = "".join(
            f"    node {{\n        name: {n.name}\n        nodeid: {n.nodeid}\n"
            f"        ring0_addr: {n.addr}\n    }}\n" for n in self.nodes.values())
        node.conf.write_text(
            "# Written by tests/lib/corosync_lab.py\n"
            "totem {\n    version: 2\n    cluster_name: gwlab\n    transport: knet\n"
            f"{crypto}    keyfile: {self.authkey}\n{token}}}\n"
            f"nodelist {{\n{nodelist}}}\n"
            "quorum {\n    provider: corosync_votequorum\n"
            f"{two_node}"
            "    wait_for_all: 0\n}\n"
            "logging {\n    to_stderr: no\n    to_syslog: no\n    to_logfile: yes\n"
            f"    logfile: {node.log}\n    timestamp: hires\n}}\n"
            f"system {{\n    state_dir: {node.state_dir}\n}}\n")

    # ---- nodes ----

    def node(self, name: str) -> Node:
        try:
            return self.nodes[name]
        except KeyError:
            raise LabError(f"no node {name!r} (nodes: {', '.join(self.names)})") from None

    def start(self, name: str) -> int:
        """Starts the node's corosync (not waiting for anything); returns its pid."""
        node = self.node(name)
        if node.pid:
            raise LabError(f"corosync of {name} already runs (pid {node.pid})")
        out = open(node.dir / "stdout.log", "ab")
        try:
            # ip netns exec execs, and so do sh and corosync: the pid is corosync's.
            node.proc = subprocess.Popen(
                [tool("ip"), "netns", "exec", node.netns, "/bin/sh", "-c",
                 'mount --bind "$1" /run && exec "$2" -f -c "$3"', "sh",
                 str(node.run_dir), tool("corosync"), str(node.conf)],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        finally:
            out.close()
        self.corosync_pids.append(node.proc.pid)
        with open(self.dir / "pids.log", "a") as f:
            f.write(f"{time.time():.3f} {name} corosync {node.proc.pid}\n")
        return node.proc.pid

    def _wait_gone(self, node: Node, timeout: float) -> bool:
        try:
            node.proc.wait(timeout=timeout)
            return True
        except subprocess.TimeoutExpired:
            return False

    def kill(self, name: str, sig: int = signal.SIGKILL, timeout: float = 10.0) -> float:
        """Sends sig to the node's corosync, waits until it has gone (SIGKILL after timeout),
        cleans what it left in /dev/shm. Returns the monotonic time the signal was sent."""
        node = self.node(name)
        if not node.pid:
            raise LabError(f"corosync of {name} does not run")
        pid = node.proc.pid
        t = time.monotonic()
        os.kill(pid, sig)
        if not self._wait_gone(node, timeout):
            self.log(f"corosync of {name} (pid {pid}) ignored signal {sig}; SIGKILL")
            os.kill(pid, signal.SIGKILL)
            self._wait_gone(node, 10.0)
        node.proc = None
        self._clean_shm([pid])
        return t

    def stop(self, name: str, timeout: float = 10.0) -> float:
        """Graceful stop: SIGTERM, SIGKILL after timeout."""
        return self.kill(name, signal.SIGTERM, timeout)

    def pid(self, name: str) -> int | None:
        return self.node(name).pid

    # ---- running programs in a node ----

    def _argv(self, name: str, argv: list[str]) -> list[str]:
        argv = [str(a) for a in argv]
        if argv and "/" not in argv[0]:
            argv[0] = tool(argv[0])
        return [tool("ip"), "netns", "exec", self.node(name).netns, *argv]

    def run(self, name: str, argv: list[str], timeout: float = 30.0,
            **kwargs) -> subprocess.CompletedProcess:
        """Runs argv in the node's network namespace, where its corosync's IPC sockets are."""
        kwargs.setdefault("stdin", subprocess.DEVNULL)
        kwargs.setdefault("capture_output", True)
        kwargs.setdefault("text", True)
        return subprocess.run(self._argv(name, argv), timeout=timeout, **kwargs)

    def popen(self, name: str, argv: list[str], **kwargs) -> subprocess.Popen:
        """Starts argv in the node's network namespace; down() stops it by pid if still there."""
        p = subprocess.Popen(self._argv(name, argv), **kwargs)
        self.clients.append(p)
        with open(self.dir / "pids.log", "a") as f:
            f.write(f"{time.time():.3f} {name} client {p.pid} {argv[0]}\n")
        return p

    def stop_process(self, p: subprocess.Popen, timeout: float = 5.0) -> int | None:
        """SIGTERM, SIGKILL after timeout; returns the exit status."""
        if p.poll() is None:
            try:
                p.terminate()
                p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    pass
        for f in (p.stdin, p.stdout, p.stderr):
            if f:
                try:
                    f.close()
                except OSError:
                    pass
        return p.returncode

    # ---- quorum ----

    def quorum(self, name: str) -> dict:
        """corosync-quorumtool -s in the node: {"quorate": bool, "votes": int} or
        {"error": text} when corosync does not answer."""
        try:
            r = self.run(name, ["corosync-quorumtool", "-s"], timeout=10)
        except subprocess.TimeoutExpired:
            return {"error": "corosync-quorumtool timed out"}
        if r.returncode not in (0, 2):
            return {"error": (r.stderr or r.stdout).strip()}
        votes = re.search(r"^Total votes:\s+(\d+)", r.stdout, re.M)
        return {"quorate": r.returncode == 0, "votes": int(votes.group(1)) if votes else 0}

    def wait_quorate(self, names: list[str], votes: int | None = None,
                     timeout: float = 30.0) -> float:
        """Waits until every named node is quorate (with `votes` total votes if given); returns
        the seconds waited."""
        t0 = time.monotonic()

        def ready():
            for n in names:
                q = self.quorum(n)
                if not q.get("quorate") or (votes is not None and q.get("votes") != votes):
                    return False
            return True

        wait_until(ready, timeout, f"quorum on {', '.join(names)}"
                   + (f" with {votes} votes" if votes else ""), interval=0.1)
        return time.monotonic() - t0

    # ---- network faults ----

    def partition(self) -> float:
        """Silently drops all IP traffic between the nodes, both ways; returns the time."""
        t = time.monotonic()
        for node in self.nodes.values():
            self._ip("-n", node.netns, "rule", "add", "pref", "10", "iif", node.veth,
                     "blackhole")
        self.partitioned = True
        return t

    def isolate(self, name: str) -> float:
        """Silently drops all IP traffic between node `name` and the others, both ways; the
        others still reach one another. heal() ends it. Returns the time."""
        cut = self.node(name)
        t = time.monotonic()
        for node in self.nodes.values():
            if node is cut:
                self._ip("-n", node.netns, "rule", "add", "pref", "10", "iif", node.veth,
                         "blackhole")
            else:
                self._ip("-n", node.netns, "rule", "add", "pref", "10", "from", cut.addr,
                         "blackhole")
        self.partitioned = True
        return t

    def heal(self) -> float:
        t = time.monotonic()
        for node in self.nodes.values():
            self._ip("-n", node.netns, "rule", "del", "pref", "10", check=False)
        self.partitioned = False
        return t

    # ---- tear-down ----

    def _clean_shm(self, pids: list[int]) -> None:
        """Removes the libqb files in /dev/shm that belong to these (dead) corosync pids:
        qb-<pid>-<client>-... (IPC rings) and qb-corosync-<pid>-blackbox-*. A SIGKILLed
        corosync leaves about 8 MB plus 3 MB per connection there; a clean exit removes them."""
        shm = Path("/dev/shm")
        for pid in pids:
            if pid_alive(pid):
                continue
            for pattern in (f"qb-{pid}-*", f"qb-corosync-{pid}-*"):
                for p in shm.glob(pattern):
                    try:
                        if p.is_dir() and not p.is_symlink():
                            shutil.rmtree(p, ignore_errors=True)
                        else:
                            p.unlink()
                    except OSError:
                        pass

    def down(self) -> None:
        """Stops every client and corosync started here (TERM, KILL after 10 s), deletes the
        namespaces, cleans /dev/shm. Safe to call twice and after a failed up()."""
        errors = []
        for p in self.clients:
            try:
                self.stop_process(p)
            except Exception as e:  # keep tearing down
                errors.append(f"client {p.pid}: {e}")
        self.clients = []
        running = [n for n in self.nodes.values() if n.pid]
        for node in running:
            try:
                node.proc.terminate()
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 10.0
        for node in running:
            if not self._wait_gone(node, max(0.0, deadline - time.monotonic())):
                self.log(f"corosync of {node.name} (pid {node.proc.pid}) did not stop; SIGKILL")
                try:
                    node.proc.kill()
                except ProcessLookupError:
                    pass
                if not self._wait_gone(node, 10.0):
                    errors.append(f"corosync pid {node.proc.pid} survived SIGKILL")
            node.proc = None
        for ns in reversed(self.netns_made):
            r = self._ip("netns", "del", ns, check=False)
            if r.returncode != 0:
                errors.append(f"ip netns del {ns}: {r.stderr.strip()}")
        self.netns_made = []
        self._clean_shm(self.corosync_pids)
        self._restore_sigterm()
        self._is_up = False
        if errors:
            self.log("down: " + "; ".join(errors))

    def _trap_sigterm(self) -> None:
        def on_term(signum, frame):
            raise SystemExit(f"lab: signal {signum}")
        try:
            self._old_sigterm = signal.signal(signal.SIGTERM, on_term)
        except ValueError:  # not the main thread
            self._old_sigterm = None

    def _restore_sigterm(self) -> None:
        if self._old_sigterm is not None:
            try:
                signal.signal(signal.SIGTERM, self._old_sigterm)
            except ValueError:
                pass
            self._old_sigterm = None

    def __enter__(self) -> "Lab":
        return self.up()

    def __exit__(self, *exc) -> bool:
        self.down()
        return False

    def status(self) -> str:
        """A human summary for failure reports: quorum, links and CPG groups on every node."""
        lines = []
        for n in self.nodes:
            for argv in (["corosync-quorumtool", "-s"], ["corosync-cfgtool", "-n"],
                         ["corosync-cpgtool"]):
                try:
                    r = self.run(n, argv, timeout=10)
                    out = (r.stdout + r.stderr).strip()
                except Exception as e:
                    out = str(e)
                lines.append(f"--- {n}: {' '.join(argv)}\n{out}")
        return "\n".join(lines)
