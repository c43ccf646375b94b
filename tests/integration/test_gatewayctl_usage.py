#!/usr/bin/python3
"""gatewayctl against a fake gatewayd: every command, --json, and the exit status contract.

Usage: test_gatewayctl_usage.py PATH/TO/gatewayctl

A ROUTER socket on a free loopback port plays the daemon's submit socket with canned replies
and records each request, so the test checks both sides: what gatewayctl asks and how it shows
the answer. More sockets play a daemon that never answers, one that answers garbage, and one
whose replies carry nothing but "ok": true (a newer or older daemon must not crash the tool).
Exit 0 pass, 1 fail, 77 skip (Debian's python3-zmq missing, or no binary given).

Needs /usr/bin/python3 with Debian's python3-zmq; nothing else, no daemon, no network.
"""

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

try:
    import zmq
except ImportError:
    print("SKIP: python3-zmq is not installed (apt-get install python3-zmq)")
    sys.exit(77)

SERVER_LIFETIME = 120.0  # the fake daemon stops by itself after this, whatever happens
RUN_TIMEOUT = 20.0  # a gatewayctl run that takes longer is a failure

ID = "0123456789abcdef0123456789abcdef"
ID2 = "fedcba9876543210fedcba9876543210"
UNKNOWN_ID = "ffffffffffffffffffffffffffffffff"

STATUS = {
    "ok": True,
    "node": {"name": "a", "id": 1},
    "cluster": {
        "enabled": True,
        "quorate": True,
        "members": [
            {"name": "a", "id": 1, "online": True},
            {"name": "b", "id": 2, "online": False},
        ],
    },
    "modems": [
        {"node": "a", "name": "gsm0", "state": "ok", "reason": None, "signal": 20,
         "operator": "Proximus", "sent": 12, "failed": 0, "last_error": None},
        {"node": "b", "name": "gsm1", "state": "failed", "reason": "no SIM",
         "signal": 99, "operator": None, "sent": 0, "failed": 3,
         "last_error": "timeout\x1b[31m after 30 s"},
    ],
    "queue": {"queued": 1, "sending": 2, "sent": 12, "failed": 0, "expired": 4},
    "voice": {"calls": 1, "last_outcome": "answered"},
}

ALERT = {
    "ok": True,
    "id": ID,
    "state": "sent",
    "priority": "critical",
    "text": "db01 is DOWN\nsince 10:28",
    "key": "db01/ping",
    "source": "nagios-1",
    "accepted_at": "2026-11-23T10:28:58.123Z",
    "node": "a",
    "deliveries": [
        {"to": "+32470123456", "state": "sent", "attempts": [
            {"node": "a", "modem": "gsm0", "at": "2026-11-23T10:28:59.001Z",
             "result": "failed", "error": "+CMS ERROR: 500"},
            {"node": "b", "modem": "gsm1", "at": "2026-11-23T10:29:05.456Z",
             "result": "sent", "error": None},
        ]},
        {"to": "+32471000000", "state": "queued", "attempts": []},
    ],
    "calls": [
        {"number": "+3222000000", "node": "a", "modem": "gsm0",
         "at": "2026-11-23T10:30:00.000Z", "outcome": "answered", "duration": 32},
    ],
    "ack": {"by": "alice", "via": "gatewayctl", "at": "2026-11-23T10:31:00.000Z"},
}

QUEUE = {
    "ok": True,
    "alerts": [
        {"id": ID2, "state": "sending", "priority": "normal",
         "text": "disk /var on web03 is 97% full and growing by one percent an hour",
         "key": "web03/disk", "source": "zabbix", "accepted_at": "2026-11-23T10:40:00.000Z",
         "node": "b", "deliveries": [{"to": "role:primary", "state": "sending"}],
         "calls": [], "ack": None},
        {"id": ID, "state": "queued", "priority": "critical", "text": "db01 is DOWN",
         "key": "db01/ping", "source": "nagios-1", "accepted_at": "2026-11-23T10:28:58.123Z",
         "node": "a", "deliveries": [{"to": "+32470123456", "state": "queued"},
                                     {"to": "+32471000000", "state": "queued"}],
         "calls": [], "ack": None},
    ],
}

ONCALL = {
    "ok": True,
    "at": "2026-03-28T12:00:00.000Z",
    "roles": [
        {"role": "primary", "contact": "bob", "number": "+32470100002", "source": "override",
         "until": "2026-03-30T07:00:00.000Z",
         "next": {"contact": "alice", "number": "+32470100001",
                  "at": "2026-03-30T09:00:00.000Z"},
         "contacts": ["alice", "bob"], "rotation": "weekly", "handoff": "mon 09:00"},
        {"role": "secondary", "contact": "carol\x1b[2J", "number": "+32470100003",
         "source": "rotation", "until": None, "next": None, "contacts": ["carol"],
         "rotation": "none", "handoff": None},
    ],
    "escalation": {"steps": ["primary", "secondary"], "step_timeout": 300},
}


def answer(request):
    """The canned reply of the fake daemon to one request object."""
    op = request.get("op", "send")
    if op == "status":
        return STATUS
    if op == "queue":
        return QUEUE
    if op == "get":
        if request.get("id") == ID:
            return ALERT
        return {"ok": False, "error": "unknown_id", "detail": "no alert " + str(request.get("id"))}
    if op == "ack":
        if request.get("id") != ID:
            return {"ok": False, "error": "unknown_id", "detail": "no such alert"}
        return {"ok": True, "id": ID, "ack": {"by": request.get("by"), "via": "gatewayctl",
                                              "at": "2026-11-23T10:31:00.000Z"}}
    if op == "oncall":
        return ONCALL
    if op == "override":
        if request.get("role") != "primary":
            return {"ok": False, "error": "unknown_role",
                    "detail": f"no role named '{request.get('role')}'"}
        if request.get("clear"):
            return {"ok": True, "role": "primary", "contact": None, "until": None}
        return {"ok": True, "role": "primary", "contact": request.get("contact"),
                "until": "2026-03-30T07:00:00.000Z"}
    if op == "send":
        if "+999" in request.get("to", []):
            return {"ok": False, "error": "invalid_number", "detail": "+999 is not E.164"}
        if request.get("key") == "dup":
            return {"ok": True, "id": ID2, "status": "duplicate"}
        return {"ok": True, "id": ID, "status": "queued"}
    return {"ok": False, "error": "unknown_op", "detail": "no op " + str(op)}


class FakeDaemon:
    """ROUTER sockets served by one thread: answering, silent, garbage, minimal."""

    def __init__(self):
        self.ctx = zmq.Context()
        self.requests = []
        self.stop = threading.Event()
        self.sockets = {}
        for kind in ("answer", "silent", "garbage", "minimal"):
            s = self.ctx.socket(zmq.ROUTER)
            s.setsockopt(zmq.LINGER, 0)
            s.bind("tcp://127.0.0.1:*")
            self.sockets[kind] = s
        self.endpoint = {k: s.getsockopt_string(zmq.LAST_ENDPOINT)
                         for k, s in self.sockets.items()}
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        poller = zmq.Poller()
        kinds = {}
        for kind, s in self.sockets.items():
            poller.register(s, zmq.POLLIN)
            kinds[s] = kind
        deadline = time.monotonic() + SERVER_LIFETIME
        while not self.stop.is_set() and time.monotonic() < deadline:
            for s, _ in poller.poll(100):
                frames = s.recv_multipart()
                kind = kinds[s]
                if kind == "silent":
                    continue
                envelope, payload = frames[:-1], frames[-1]
                if kind == "garbage":
                    s.send_multipart(envelope + [b"this is not json"])
                    continue
                if kind == "minimal":
                    s.send_multipart(envelope + [b'{"ok": true}'])
                    continue
                request = json.loads(payload.decode("utf-8"))
                self.requests.append(request)
                s.send_multipart(envelope + [json.dumps(answer(request)).encode("utf-8")])
        for s in self.sockets.values():
            s.close()

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(10)
        self.ctx.term()


class Checks:
    def __init__(self, binary):
        self.binary = binary
        self.failures = 0
        self.count = 0
        self.env = {k: v for k, v in os.environ.items()
                    if k not in ("JOURNAL_STREAM", "GATEWAYD_LOG_LEVEL", "POSIXLY_CORRECT")}

    def run(self, *args, env=None):
        started = time.monotonic()
        p = subprocess.run([self.binary, *args], capture_output=True, text=True,
                           timeout=RUN_TIMEOUT, env={**self.env, **(env or {})})
        return p, time.monotonic() - started

    def check(self, what, condition, detail=""):
        self.count += 1
        if condition:
            print(f"ok {self.count} - {what}")
        else:
            self.failures += 1
            print(f"not ok {self.count} - {what}")
            for line in str(detail).splitlines():
                print(f"#   {line}")

    def expect(self, what, args, rc, stdout=None, stderr=None, env=None):
        """Runs gatewayctl; checks the exit status and, when given, exact stdout/stderr."""
        p, _ = self.run(*args, env=env)
        ok = p.returncode == rc
        ok = ok and (stdout is None or p.stdout == stdout)
        ok = ok and (stderr is None or p.stderr == stderr)
        self.check(what, ok, f"args: {list(args)}\nrc: {p.returncode} (want {rc})\n"
                   f"stdout: {p.stdout!r}\nstderr: {p.stderr!r}")
        return p


def main():
    if len(sys.argv) != 2 or not os.access(sys.argv[1], os.X_OK):
        print("SKIP: usage: test_gatewayctl_usage.py PATH/TO/gatewayctl")
        return 77
    t = Checks(sys.argv[1])

    # Help, version and usage errors need no daemon.
    p = t.expect("--help exits 0", ["--help"], 0)
    t.check("--help lists every command",
            all(c in p.stdout for c in ("status", "send", "show", "ack", "queue", "oncall")),
            p.stdout)
    t.expect("oncall --help exits 0", ["oncall", "--help"], 0)
    p = t.expect("--version exits 0", ["--version"], 0)
    t.check("--version prints the version", p.stdout.startswith("gatewayctl "), p.stdout)
    t.expect("send --help exits 0", ["send", "--help"], 0)
    for args in (
        [],
        ["frobnicate"],
        ["--bogus", "status"],
        ["-t", "abc", "status"],
        ["-t", "0", "status"],
        ["-c", "/nonexistent/gatewayd.conf", "status"],
        ["-c", "/dev/null", "-e", "tcp://127.0.0.1:1", "status"],
        ["status", "extra"],
        ["send", "+32470123456"],
        ["send", "-m", "no recipient"],
        ["send", "--ttl", "soon", "+32470123456", "-m", "x"],
        ["show"],
        ["show", "not-an-id"],
        ["ack", "0123"],
        ["oncall", "extra"],
        ["oncall", "--at", "soon"],
        ["oncall", "--at", "8"],
        ["oncall", "override", "primary", "carol"],
        ["oncall", "override", "primary", "--until", "1h"],
        ["oncall", "override", "primary", "carol", "--until", "2026-02-30 10:00"],
        ["oncall", "override", "primary", "carol", "dave", "--until", "1h"],
        ["oncall", "clear"],
        ["oncall", "clear", "primary", "carol"],
        ["oncall", "clear", "primary", "--until", "1h"],
    ):
        p = t.expect(f"usage error {args} exits 2", args, 2, stdout="")
        t.check(f"usage error {args} says why on stderr",
                p.stderr.startswith("gatewayctl: "), p.stderr)

    # The exact words of the one option loop the commands share, and of what follows "--":
    # positionals for every command, ignored by keygen (as it always was).
    for args, why in (
        (["ack", "--bogus"], "unknown or misused option '--bogus'"),
        (["send", "-q", "+32470123456", "-m", "x"], "unknown option '-q'"),
        (["oncall", "--at"], "option '--at' needs a value"),
        (["send", "+32470123456", "-m", "a", "-m", "b"], "-m given twice"),
        (["show", "--", "a", "b"], "unexpected argument 'b'"),
        (["keygen", "--", "somewhere"], "BASENAME is missing"),
    ):
        t.expect(f"usage error {args} says exactly why", args, 2, stdout="",
                 stderr=f"gatewayctl: {args[0]}: {why}\n"
                 f"Try 'gatewayctl {args[0]} --help' for more information.\n")

    with FakeDaemon() as d:
        ep = ["-e", d.endpoint["answer"]]

        # status
        p = t.expect("status exits 0", ep + ["status"], 0)
        out = p.stdout
        for needle in ("a (id 1)", "quorate", "b (id 2, offline)", "gsm0", "gsm1", "Proximus",
                       "no SIM", "unknown", "1 queued", "2 sending", "12 sent", "4 expired",
                       "answered", "LAST ERROR"):
            t.check(f"status shows {needle!r}", needle in out, out)
        t.check("status strips terminal escapes", "\x1b" not in out, repr(out))
        t.check("status asked {'op': 'status'}", d.requests[-1] == {"op": "status"},
                d.requests[-1])
        p = t.expect("status --json exits 0", ep + ["status", "--json"], 0)
        t.check("status --json is the reply", json.loads(p.stdout) == STATUS, p.stdout)
        t.check("status --json is pretty-printed", "\n  " in p.stdout, p.stdout)

        # send, every field
        t.expect("send with every option prints id and queued",
                 ep + ["send", "--key", "db01/ping", "--priority", "critical", "--ttl", "600",
                       "--copy", "+32471000000", "--copy", "+32471000001", "--source",
                       "nagios-1", "+32470123456", "role:primary", "-m", "db01 is DOWN"],
                 0, stdout=f"{ID} queued\n", stderr="")
        want = {"op": "send", "to": ["+32470123456", "role:primary"], "text": "db01 is DOWN",
                "key": "db01/ping", "priority": "critical", "ttl": 600,
                "copy": ["+32471000000", "+32471000001"], "source": "nagios-1"}
        t.check("send request carries every field", d.requests[-1] == want,
                f"got {d.requests[-1]}\nwant {want}")

        # send, defaults left to the daemon
        t.expect("send without options", ep + ["send", "+32470123456", "-m", "héllo"], 0,
                 stdout=f"{ID} queued\n")
        want = {"op": "send", "to": ["+32470123456"], "text": "héllo",
                "source": "gatewayctl@" + socket.gethostname()}
        t.check("send request leaves defaults out, source gatewayctl@host",
                d.requests[-1] == want, f"got {d.requests[-1]}\nwant {want}")
        t.expect("send -m before the recipients", ep + ["send", "-m", "x", "+32470123456"], 0,
                 stdout=f"{ID} queued\n")

        t.expect("send duplicate exits 0", ep + ["send", "--key", "dup", "+32470123456", "-m",
                                                 "x"], 0, stdout=f"{ID2} duplicate\n")
        t.expect("send refused exits 1 with error: detail",
                 ep + ["send", "+999", "-m", "x"], 1, stdout="",
                 stderr="gatewayctl: invalid_number: +999 is not E.164\n")

        # show
        p = t.expect("show exits 0", ep + ["show", ID], 0, stderr="")
        t.check("show asked get", d.requests[-1] == {"op": "get", "id": ID}, d.requests[-1])
        for needle in (ID, "sent", "critical", "db01/ping", "nagios-1",
                       "2026-11-23T10:28:58.123Z", "db01 is DOWN", "since 10:28", "alice",
                       "+32470123456", "+CMS ERROR: 500", "gsm1", "+32471000000",
                       "0 attempts", "+3222000000", "32 s"):
            t.check(f"show shows {needle!r}", needle in p.stdout, p.stdout)
        story = [line.split()[1] for line in p.stdout.splitlines()
                 if line.startswith("  2026-")]
        t.check("show tells the story in time order",
                story == ["received", "failed", "sent", "called", "acknowledged"], p.stdout)
        t.expect("show accepts an id in capitals", ep + ["show", ID.upper()], 0)
        t.check("show sends the id in lowercase", d.requests[-1] == {"op": "get", "id": ID},
                d.requests[-1])
        p = t.expect("show --json exits 0", ep + ["show", "--json", ID], 0)
        t.check("show --json is the reply", json.loads(p.stdout) == ALERT, p.stdout)
        t.expect("show of an unknown id exits 1", ep + ["show", UNKNOWN_ID], 1, stdout="",
                 stderr=f"gatewayctl: unknown_id: no alert {UNKNOWN_ID}\n")

        # ack
        p = t.expect("ack --by exits 0", ep + ["ack", ID, "--by", "bob"], 0, stderr="")
        t.check("ack asked with by", d.requests[-1] == {"op": "ack", "id": ID, "by": "bob"},
                d.requests[-1])
        t.check("ack says so", p.stdout.startswith(f"{ID} acknowledged by bob"), p.stdout)
        t.expect("ack without --by exits 0", ep + ["ack", ID], 0, env={"USER": "carol"})
        by = d.requests[-1].get("by")
        t.check("ack without --by names someone", isinstance(by, str) and by != "", by)
        t.expect("ack of an unknown id exits 1", ep + ["ack", UNKNOWN_ID], 1, stdout="",
                 stderr="gatewayctl: unknown_id: no such alert\n")

        # queue
        p = t.expect("queue exits 0", ep + ["queue"], 0, stderr="")
        lines = p.stdout.splitlines()
        t.check("queue prints a header and one line per alert", len(lines) == 3, p.stdout)
        if len(lines) == 3:
            t.check("queue header", lines[0].split() == ["ID", "STATE", "PRIORITY", "TO",
                                                         "TEXT"], lines[0])
            t.check("queue keeps the daemon's order (newest first)",
                    lines[1].startswith(ID2) and lines[2].startswith(ID), p.stdout)
            t.check("queue cuts long texts", "disk /var on web03" in lines[1]
                    and lines[1].endswith("...") and "an hour" not in lines[1], lines[1])
            t.check("queue lists recipients", "+32470123456,+32471000000" in lines[2],
                    lines[2])
        t.check("queue asked queue", d.requests[-1] == {"op": "queue"}, d.requests[-1])
        p = t.expect("queue --json exits 0", ep + ["queue", "--json"], 0)
        t.check("queue --json is the reply", json.loads(p.stdout) == QUEUE, p.stdout)

        # oncall: local times in the operator's time zone, both ways.
        utc, brussels = {"TZ": "UTC"}, {"TZ": "Europe/Brussels"}
        p = t.expect("oncall exits 0", ep + ["oncall"], 0, stderr="", env=utc)
        t.check("oncall asked oncall", d.requests[-1] == {"op": "oncall"}, d.requests[-1])
        lines = p.stdout.splitlines()
        t.check("oncall header", lines[:1] and lines[0].split() == [
            "ROLE", "ON", "DUTY", "SOURCE", "NEXT", "HAND-OVER"], p.stdout)
        primary = [x for x in lines if x.startswith("primary ")]
        t.check("oncall shows who, the override's end and the next hand-over in local time",
                len(primary) == 1 and "bob (+32470100002)" in primary[0]
                and "override until Mon 2026-03-30 07:00 UTC" in primary[0]
                and primary[0].endswith("alice, Mon 2026-03-30 09:00 UTC"), p.stdout)
        secondary = [x for x in lines if x.startswith("secondary ")]
        t.check("oncall shows a role without hand-over",
                len(secondary) == 1 and "rotation" in secondary[0]
                and secondary[0].endswith(" -"), p.stdout)
        t.check("oncall strips terminal escapes", "\x1b" not in p.stdout, repr(p.stdout))
        t.check("oncall ends with the escalation steps",
                lines[-1:] == ["Escalation: primary -> secondary, 300 s per step without "
                               "acknowledgment"], p.stdout)
        p = t.expect("oncall in another zone", ep + ["oncall"], 0, env=brussels)
        t.check("oncall shows the zone's wall clock",
                "alice, Mon 2026-03-30 11:00 CEST" in p.stdout, p.stdout)
        p = t.expect("oncall --json exits 0", ep + ["oncall", "--json"], 0)
        t.check("oncall --json is the reply", json.loads(p.stdout) == ONCALL, p.stdout)
        p = t.expect("oncall --at local time", ep + ["oncall", "--at", "2026-03-30 09:01"], 0,
                     env=brussels)
        t.check("oncall --at sends the instant in Unix seconds",
                d.requests[-1] == {"op": "oncall", "at": 1774854060}, d.requests[-1])
        t.check("oncall --at says when", p.stdout.startswith(
            "On duty at Sat 2026-03-28 13:00 CET:\n"), p.stdout)
        t.expect("oncall --at RFC 3339", ep + ["oncall", "--at", "2026-03-30T07:01:00Z"], 0)
        t.check("oncall --at RFC 3339 sent", d.requests[-1] == {"op": "oncall", "at": 1774854060},
                d.requests[-1])
        t.expect("oncall override with a local time",
                 ep + ["oncall", "override", "primary", "carol", "--until", "2026-03-30 09:00",
                       "--by", "alice"], 0,
                 stdout="primary: carol on duty until Mon 2026-03-30 09:00 CEST (override)\n",
                 stderr="", env=brussels)
        want = {"op": "override", "role": "primary", "contact": "carol", "until": 1774854000,
                "by": "alice"}
        t.check("oncall override request", d.requests[-1] == want,
                f"got {d.requests[-1]}\nwant {want}")
        t.expect("oncall override with a duration",
                 ep + ["oncall", "override", "--until", "8h", "primary", "carol"], 0)
        until = d.requests[-1].get("until")
        t.check("oncall override --until 8h is 8 hours from now",
                isinstance(until, int) and abs(until - (time.time() + 8 * 3600)) < 10,
                d.requests[-1])
        t.check("oncall override names someone by default",
                isinstance(d.requests[-1].get("by"), str) and d.requests[-1]["by"] != "",
                d.requests[-1])
        p = t.expect("oncall override in a DST gap is a usage error",
                     ep + ["oncall", "override", "primary", "carol", "--until",
                           "2026-03-29 02:30"], 2, stdout="", env=brussels)
        t.check("oncall override in a DST gap says why", "does not exist" in p.stderr, p.stderr)
        t.expect("oncall clear", ep + ["oncall", "clear", "primary", "--by", "alice"], 0,
                 stdout="primary: override cleared, the rotation applies\n", stderr="")
        want = {"op": "override", "role": "primary", "clear": True, "by": "alice"}
        t.check("oncall clear request", d.requests[-1] == want,
                f"got {d.requests[-1]}\nwant {want}")
        t.expect("oncall override refused exits 1",
                 ep + ["oncall", "override", "nobody", "carol", "--until", "1h"], 1, stdout="",
                 stderr="gatewayctl: unknown_role: no role named 'nobody'\n")

        # -c: [submit] bind from a config file, wildcard host reached over loopback
        port = d.endpoint["answer"].rsplit(":", 1)[1]
        with tempfile.NamedTemporaryFile("w", suffix=".conf") as conf:
            conf.write("# test\n[node]\nname = a\n\n[submit]\nbind = tcp://*:%s\n\n"
                       "[modem gsm0]\ndevice = /dev/ttyUSB0\n" % port)
            conf.flush()
            t.expect("-c reads [submit] bind and connects to a wildcard over loopback",
                     ["-c", conf.name, "status", "--json"], 0)

        # No answer within -t, and an answer that is not JSON.
        silent = d.endpoint["silent"]
        p, took = t.run("-e", silent, "-t", "1", "status")
        t.check("no answer exits 2 within about -t", p.returncode == 2 and 0.9 < took < 5,
                f"rc {p.returncode}, took {took:.2f} s")
        t.check("no answer message",
                p.stderr == f"gatewayctl: no answer from {silent} within 1 s\n", p.stderr)
        p, took = t.run("-e", "tcp://127.0.0.1:1", "-t", "1", "send", "+32470123456", "-m", "x")
        t.check("nobody listening exits 2", p.returncode == 2 and took < 5,
                f"rc {p.returncode}, took {took:.2f} s, stderr {p.stderr!r}")
        p = t.expect("garbage answer exits 2", ["-e", d.endpoint["garbage"], "queue"], 2,
                     stdout="")
        t.check("garbage answer message", "malformed reply" in p.stderr, p.stderr)

        # Replies with fields missing: shown as "-" where a human reads them, an error (2)
        # where the field is the answer itself.
        mini = ["-e", d.endpoint["minimal"]]
        t.expect("status with nothing in it exits 0", mini + ["status"], 0, stderr="")
        t.expect("show with nothing in it exits 0", mini + ["show", ID], 0, stderr="")
        t.expect("ack with nothing in it exits 0", mini + ["ack", ID, "--by", "x"], 0,
                 stdout=f"{ID} acknowledged\n", stderr="")
        t.expect("queue without alerts exits 2", mini + ["queue"], 2, stdout="")
        t.expect("oncall without roles exits 2", mini + ["oncall"], 2, stdout="")
        t.expect("oncall clear with nothing in it exits 0", mini + ["oncall", "clear", "x"], 0,
                 stderr="")
        t.expect("send without id exits 2", mini + ["send", "+32470123456", "-m", "x"], 2,
                 stdout="")

    print(f"1..{t.count}")
    if t.failures:
        print(f"# {t.failures} of {t.count} checks failed")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
