"""Integration-test helpers: a real gatewayd on simulated modems, real ZeroMQ clients.

    from gwtest import Harness, main
    def test_something(h):
        gw = h.gateway(modems=["gsm0"])          # simulator + gatewayd, both bounded
        r = gw.send(["+32470000001"], "db01 DOWN")
        assert r["status"] == "queued"
        h.sim.wait_sms(1)
    if __name__ == "__main__":
        main(globals())

Every process a test starts is stopped by PID when the test ends, every wait is bounded,
and every socket is on loopback. Paths of the binaries come from the environment that
meson sets (GATEWAYD, GATEWAYCTL); tests run with /usr/bin/python3 (Debian's python3-zmq).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from modemsim_client import Sim  # noqa: E402
from waiting import wait_until  # noqa: E402,F401 (tests import it from here)

try:
    import zmq
except ImportError:  # pragma: no cover
    print("SKIP: python3-zmq is not installed (apt-get install python3-zmq)")
    sys.exit(77)

GATEWAYD = os.environ.get("GATEWAYD", "build/gatewayd/gatewayd")
GATEWAYCTL = os.environ.get("GATEWAYCTL", "build/gatewayd/gatewayctl/gatewayctl")


class Skip(Exception):
    pass


def listen_port_range() -> tuple[int, int]:
    """Ports for the daemons' sockets: below the kernel's ephemeral range. A ZeroMQ client that
    keeps reconnecting to a dead daemon's loopback port inside that range can be given the very
    same port as its source and connect to itself (a TCP simultaneous open), holding the port
    so that the restarted daemon cannot bind it."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            ephemeral_low = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        ephemeral_low = 32768
    return 10000, max(10100, ephemeral_low - 1)


VOICE_CENTER = "+3222000000"  # the contact center of Harness.voice_gateway()


def ack_code(alert_id: str, digits: int = 4) -> str:
    """The acknowledgment code an SMS of a critical alert carries (gatewayd/protocol/ackcode.h)."""
    return str(int(alert_id[:16], 16) % 10 ** digits).zfill(digits)


class Client:
    """A REQ client; a new socket per request, so that a lost reply never wedges it."""

    def __init__(self, ctx, endpoint: str):
        self.ctx = ctx
        self.endpoint = endpoint

    def request(self, obj, timeout: float = 10.0, raw: bytes | None = None) -> dict:
        sock = self.ctx.socket(zmq.REQ)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(self.endpoint)
        try:
            sock.send(raw if raw is not None else json.dumps(obj).encode())
            if not sock.poll(int(timeout * 1000)):
                raise AssertionError(f"no reply within {timeout} s to {obj or raw!r}")
            return json.loads(sock.recv())
        finally:
            sock.close()


class Gateway:
    def __init__(self, harness: "Harness", name: str, config: str, state_dir: str, port: int,
                 env: dict | None = None):
        self.h = harness
        self.name = name
        self.config_path = os.path.join(harness.dir, f"{name}.conf")
        with open(self.config_path, "w") as f:
            f.write(config)
        self.state_dir = state_dir
        self.endpoint = f"tcp://127.0.0.1:{port}"
        self.events_endpoint = f"tcp://127.0.0.1:{port + 1}"
        self.client = Client(harness.ctx, self.endpoint)
        self.proc = None
        self.log_path = os.path.join(harness.dir, f"{name}.log")
        # Added to the daemon's environment, e.g. {"TZ": "UTC"} for the on-call rotation.
        self.env = dict(os.environ, **env) if env else None

    def start(self, wait_modems: int | None = None, timeout: float = 30.0):
        log = open(self.log_path, "ab")
        cmd = self.h.wrapper + [GATEWAYD, "-c", self.config_path]
        self.started = time.monotonic()  # the daemon's timers count from about here
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                     env=self.env)
        log.close()
        self.h.procs.append(self.proc)
        wait_until(self._answers, timeout, f"gatewayd {self.name} to answer")
        if wait_modems:
            self.wait_modems_ok(wait_modems, timeout)
        return self

    def _answers(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"gatewayd exited with {self.proc.returncode}:\n"
                                 + self.log_tail())
        try:
            return self.client.request({"op": "status"}, timeout=0.5)
        except AssertionError:
            return None

    def wait_modems_ok(self, count: int, timeout: float = 30.0):
        def ok():
            st = self.status()
            return sum(1 for m in st["modems"] if m["state"] in ("ok", "degraded")) >= count
        wait_until(ok, timeout, f"{count} modem(s) ok", interval=0.2)

    def log_tail(self, lines: int = 40) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except FileNotFoundError:
            return ""

    def request(self, obj, **kw) -> dict:
        return self.client.request(obj, **kw)

    def send(self, to, text, **fields) -> dict:
        req = {"to": to, "text": text}
        req.update(fields)
        return self.request(req)

    def status(self) -> dict:
        return self.request({"op": "status"})

    def get(self, alert_id: str) -> dict:
        return self.request({"op": "get", "id": alert_id})

    def wait_state(self, alert_id: str, state: str, timeout: float = 30.0) -> dict:
        return wait_until(lambda: (lambda a: a if a.get("state") == state else None)(
            self.get(alert_id)), timeout, f"alert {alert_id} to be {state}", interval=0.1)

    def subscribe(self, topics=("",)):
        sub = self.h.ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        for t in topics:
            sub.setsockopt_string(zmq.SUBSCRIBE, t)
        sub.connect(self.events_endpoint)
        self.h.sockets.append(sub)
        time.sleep(0.3)  # slow joiner: let the subscription reach the publisher
        return sub

    def stop(self, sig=signal.SIGTERM, timeout: float = 15.0) -> int:
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout)
        return self.proc.returncode if self.proc else 0

    def kill9(self) -> None:
        self.stop(signal.SIGKILL)


def recv_events(sub, timeout: float = 5.0, until=None) -> list[tuple[str, dict]]:
    out = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sub.poll(50):
            topic, body = sub.recv_multipart()
            out.append((topic.decode(), json.loads(body)))
            if until and until(out):
                break
    return out


class Harness:
    def __init__(self, name: str):
        self.dir = tempfile.mkdtemp(prefix=f"gwtest-{name}-")
        self.ctx = zmq.Context()
        self.procs = []
        self.sockets = []
        self.sim = None
        self.wrapper = []

    def start_sim(self, modems=("gsm0",), send_delay: float = 0, **kw) -> Sim:
        self.sim = Sim.start(os.path.join(self.dir, "sim"), modems=list(modems),
                             send_delay=send_delay, **kw)
        return self.sim

    def config(self, name="a", modems=("gsm0",), port=None, extra="", state_dir=None,
               modem_extra=None) -> tuple:
        port = port or self.port_pair()
        state_dir = state_dir or os.path.join(self.dir, f"state-{name}")
        text = (f"[node]\nname = {name}\nstate_dir = {state_dir}\n\n"
                f"[submit]\nbind = tcp://127.0.0.1:{port}\n\n"
                f"[events]\nbind = tcp://127.0.0.1:{port + 1}\n\n"
                "[delivery]\nretry_min = 1\nretry_max = 5\n\n"
                # Flood bundling has tests of its own; elsewhere every alert is one SMS.
                + ("" if "[bundle]" in extra else "[bundle]\nthreshold = 0\n\n")
                # So have the per-person limits.
                + ("" if "[limits]" in extra else "[limits]\nsms = off\ncalls = off\n\n"))
        for m in modems:
            text += (f"[modem {m}]\ndevice = {self.sim.device(m)}\nconnection = at\n"
                     + (modem_extra or {}).get(m, "health_interval = 5\n") + "\n")
        return text + extra, state_dir, port

    def port_pair(self) -> int:
        low, high = listen_port_range()
        for _ in range(50):
            p = random.randint(low, high - 1)
            try:
                for q in (p, p + 1):
                    with socket.socket() as s:
                        s.bind(("127.0.0.1", q))
                return p
            except OSError:
                continue
        raise AssertionError("no free port pair")

    def gateway(self, modems=("gsm0",), send_delay: float = 0, extra: str = "", name="a",
                start=True, wait_modems=True, sim_kw=None, modem_extra=None,
                env: dict | None = None) -> Gateway:
        if self.sim is None:
            self.start_sim(modems, send_delay, **(sim_kw or {}))
        text, state_dir, port = self.config(name, modems, extra=extra, modem_extra=modem_extra)
        gw = Gateway(self, name, text, state_dir, port, env=env)
        if start:
            gw.start(wait_modems=len(modems) if (wait_modems and modems) else None)
        return gw

    def voice_gateway(self, outcome="answer", dtmf=None, retries="retries = 0\n",
                      extra="", modem_extra=None) -> Gateway:
        """A gateway whose every SMS send fails (CMS 500) and whose [voice] line is the
        simulator's voice0, answering calls with `outcome` after 1 s (and DTMF digits)."""
        self.start_sim(["gsm0", "voice0"])
        cmd = {"cmd": "call_outcome", "modem": "voice0", "outcome": outcome, "after": 1.0,
               "persist": True}
        if dtmf:
            cmd["dtmf"] = dtmf
        self.sim.control(cmd)
        voice = (f"[voice]\ndevice = {self.sim.device('voice0')}\n"
                 f"contact_center = {VOICE_CENTER}\nring_timeout = 5\nhold = 1\n" + retries)
        gw = self.gateway(modems=["gsm0"], extra=voice + extra, modem_extra=modem_extra)
        self.sim.control({"cmd": "fail_sends", "modem": "gsm0", "count": -1, "cms": 500})
        return gw

    def dials(self) -> list[str]:
        """The numbers the simulated modems dialled, in order."""
        return [c["number"] for c in self.sim.calls() if c.get("event") == "dial"]

    def close(self, keep=False):
        for s in self.sockets:
            s.close()
        for p in self.procs:
            if p.poll() is None:
                os.kill(p.pid, signal.SIGTERM)
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    os.kill(p.pid, signal.SIGKILL)
                    p.wait(10)
        if self.sim:
            self.sim.stop()
        self.ctx.term()
        if not keep:
            shutil.rmtree(self.dir, ignore_errors=True)


def main(namespace: dict) -> None:
    """Runs every test_* function of the module, each with its own Harness."""
    only = sys.argv[1:]
    tests = [(n, f) for n, f in namespace.items() if n.startswith("test_") and callable(f)]
    if only:
        tests = [(n, f) for n, f in tests if n in only]
    failed = skipped = 0
    for name, fn in tests:
        h = Harness(name)
        t0 = time.monotonic()
        ok = True
        try:
            fn(h)
            print(f"ok   {name} ({time.monotonic() - t0:.1f} s)", flush=True)
        except Skip as e:
            skipped += 1
            print(f"skip {name}: {e}", flush=True)
        except Exception:
            ok = False
            failed += 1
            print(f"FAIL {name} ({time.monotonic() - t0:.1f} s)", flush=True)
            traceback.print_exc()
            for p in os.listdir(h.dir):
                if p.endswith(".log"):
                    with open(os.path.join(h.dir, p), errors="replace") as f:
                        tail = f.readlines()[-30:]
                    print(f"--- {p} (last lines)\n" + "".join(tail), flush=True)
        finally:
            h.close(keep=not ok and os.environ.get("GWTEST_KEEP") == "1")
    if failed:
        sys.exit(1)
    if skipped == len(tests):
        sys.exit(77)
    sys.exit(0)
