"""Drive tests/modemsim/modemsim.py from integration tests.

    from modemsim_client import Sim
    with Sim.start(tmpdir, modems=["gsm0", "gsm1"], send_delay=0.5) as sim:
        dev = sim.device("gsm0")                 # DIR/gsm0 -> /dev/pts/N
        sim.control({"cmd": "fail_sends", "modem": "gsm0", "count": 1})
        ...                                      # run the daemon against dev
        msgs = sim.wait_sms(1, timeout=20)       # completed SMS, reassembled
        assert msgs[0]["text"] == "db01 is DOWN"

    # modems reaching each other by number (a path self-test)
    with Sim.start(tmpdir, modems=["a0", "a1"], numbers={"a0": "+32470000001",
                                                         "a1": "+32470000002"}) as sim:
        ...                                      # a0 sends to +32470000002
        sim.wait_routed(1, to_modem="a1")        # arrived in a1's inbox
        sim.inbox("a1")                          # what a1's SIM now holds

Every wait is bounded; stop() sends SIGTERM to the simulator's pid only,
then SIGKILL to that pid if it does not exit.  Standard library only.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time

SIMULATOR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "modemsim",
                         "modemsim.py")
PYTHON = "/usr/bin/python3"


class SimError(RuntimeError):
    pass


def read_jsonl(path: str) -> list[dict]:
    """All complete records of a JSON-lines log (a torn last line is skipped)."""
    try:
        with open(path, encoding="utf-8") as f:
            data = f.read()
    except FileNotFoundError:
        return []
    out = []
    for line in data.split("\n"):
        if line:
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
    return out


class Sim:
    def __init__(self, directory: str, proc: subprocess.Popen, modems: list[str]):
        self.dir = directory
        self.proc = proc
        self.modems = list(modems)

    @classmethod
    def start(cls, directory: str, modems=("gsm0",), send_delay: float = 0, pin=None,
              extra_args=(), timeout: float = 10.0, numbers=None) -> "Sim":
        """Spawn the simulator and wait (at most timeout s) for DIR/ready.

        numbers: {"gsm0": "+32470000001", ...}, the SIMs' subscriber numbers
        (--number): an SMS one modem sends to another's number arrives there."""
        directory = os.path.abspath(directory)
        os.makedirs(directory, exist_ok=True)
        ready = os.path.join(directory, "ready")
        if os.path.exists(ready):
            os.unlink(ready)
        cmd = [PYTHON, SIMULATOR, "--dir", directory, "--send-delay", str(send_delay)]
        for m in modems:
            cmd += ["--modem", m]
        if pin is not None:
            cmd += ["--pin", str(pin)]
        for name, number in (numbers or {}).items():
            cmd += ["--number", f"{name}={number}"]
        cmd += list(extra_args)
        log = open(os.path.join(directory, "modemsim.log"), "ab")
        try:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        finally:
            log.close()
        sim = cls(directory, proc, list(modems))
        deadline = time.monotonic() + timeout
        while not os.path.exists(ready):
            if proc.poll() is not None:
                raise SimError(f"simulator exited with {proc.returncode}; see "
                               f"{directory}/modemsim.log")
            if time.monotonic() > deadline:
                sim.stop()
                raise SimError(f"simulator not ready within {timeout} s")
            time.sleep(0.02)
        return sim

    # ---- control ------------------------------------------------------
    def control(self, cmd: dict, timeout: float = 5.0, check: bool = True) -> dict:
        """Send one control request; raise SimError on {"ok": false} if check."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(os.path.join(self.dir, "control.sock"))
            s.sendall(json.dumps(cmd).encode() + b"\n")
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    raise SimError("control socket closed without a reply")
                buf += chunk
        reply = json.loads(buf)
        if check and not reply.get("ok"):
            raise SimError(f"{cmd.get('cmd')}: {reply.get('error')}")
        return reply

    def stats(self, name: str) -> dict:
        return self.control({"cmd": "stats", "modem": name})

    def device(self, name: str) -> str:
        """The symlink clients open (follows replug renames)."""
        link = self.stats(name).get("link")
        if not link:
            raise SimError(f"modem {name} is unplugged")
        return link

    # ---- logs ---------------------------------------------------------
    def sent_events(self, event: str | None = None) -> list[dict]:
        recs = read_jsonl(os.path.join(self.dir, "sent.jsonl"))
        return [r for r in recs if event is None or r.get("event") == event]

    def sms(self, modem: str | None = None) -> list[dict]:
        """Completed (reassembled) messages, oldest first."""
        return [r for r in self.sent_events("sms") if modem is None or r["modem"] == modem]

    def parts(self) -> list[dict]:
        return self.sent_events("part")

    def calls(self) -> list[dict]:
        return read_jsonl(os.path.join(self.dir, "calls.jsonl"))

    def at_log(self, name: str) -> list[dict]:
        return read_jsonl(os.path.join(self.dir, f"{name}.at.jsonl"))

    def wait_sms(self, count: int, timeout: float = 10.0, modem: str | None = None) -> list[dict]:
        """Wait until at least count completed messages exist; TimeoutError if not."""
        deadline = time.monotonic() + timeout
        while True:
            got = self.sms(modem)
            if len(got) >= count:
                return got
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(got)} of {count} SMS after {timeout} s")
            time.sleep(0.05)

    def routed(self, to_modem: str | None = None, event: str = "routed") -> list[dict]:
        """SMS the simulated network delivered between modems (event route_queued,
        routed, route_held or route_dropped), oldest first."""
        return [r for r in self.sent_events(event)
                if to_modem is None or r["to_modem"] == to_modem]

    def wait_routed(self, count: int, timeout: float = 10.0, to_modem: str | None = None,
                    event: str = "routed") -> list[dict]:
        """Wait until at least count routing events exist; TimeoutError if not."""
        deadline = time.monotonic() + timeout
        while True:
            got = self.routed(to_modem, event)
            if len(got) >= count:
                return got
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(got)} of {count} {event} SMS after {timeout} s")
            time.sleep(0.05)

    def inbox(self, name: str) -> list[dict]:
        """Every message stored in the modem's SIM/ME memory (stats "messages")."""
        return self.stats(name)["messages"]

    def wait_calls(self, predicate, timeout: float = 10.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while True:
            recs = self.calls()
            if any(predicate(r) for r in recs):
                return recs
            if time.monotonic() > deadline:
                raise TimeoutError(f"no matching call event after {timeout} s")
            time.sleep(0.05)

    # ---- lifetime -----------------------------------------------------
    def stop(self, timeout: float = 5.0) -> int:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout)
        return self.proc.returncode

    def __enter__(self) -> "Sim":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
