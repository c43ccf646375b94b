#!/usr/bin/python3
"""fuzz_integrations: a bounded, seeded mutation fuzzer for the monitoring integrations.

The Alertmanager receiver (Python) and the Zabbix media script (POSIX sh) are scripts, so
libFuzzer does not apply. This drives the real scripts with mutated real inputs, a fake
gatewayctl on PATH recording what they would have submitted:

- Alertmanager: the receiver runs as an HTTP server on loopback; each case POSTs a mutated
  webhook body (bit flips, truncation, huge values, NUL, lone surrogates, wrong types, raw
  bytes, bad or negative Content-Length). The receiver must never die and must answer every
  request with an HTTP status: 200 for a notification, 4xx for a bad one, never a dropped
  connection; a submitted text fits the SMS limit, a resolved notification only resolves.
- Zabbix: each case runs gatewayd.sh with mutated {ALERT.SENDTO} {ALERT.SUBJECT}
  {ALERT.MESSAGE} (and options). It must exit 0, 1 or 2, never with a shell error (unbound
  variable, syntax error), call gatewayctl at most once, and pass the priority its input says:
  critical for a "Severity: High" or "Disaster" problem, normal otherwise; a recovery
  (RESOLVED, OK) with an event id resolves zabbix/ID/PROBLEM instead of sending.

A failure whose cause is one of KNOWN_BUGS is an expected failure: reported, not fatal, so
the suite stays green until the fix lands; a case built to show that bug that then passes
fails the run, so that the mark is removed with the fix. Anything else fails the run, and
every failing case is written to fuzz-integrations-failures.json (in the working directory)
to replay. Python standard library only; /usr/bin/python3.

Usage: fuzz_integrations.py [--seconds N] [--seed N] [--only alertmanager|zabbix]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.environ.get("GATEWAYD_SOURCE_ROOT") or os.path.dirname(os.path.dirname(HERE))
ALERTMANAGER = os.path.join(ROOT, "packaging/integrations/alertmanager/gatewayd-alertmanager")
ZABBIX = os.path.join(ROOT, "packaging/integrations/zabbix/gatewayd.sh")
QUEUED_ID = "0123456789abcdef0123456789abcdef"

# Bugs known and being fixed elsewhere: name -> what goes wrong. A failure classified as one
# of these is expected (XFAIL). Remove an entry with its fix, and move its showcase case to the
# regressions (am_regressions, zabbix_regressions), which must pass.
KNOWN_BUGS: dict = {}

FAKE_GATEWAYCTL = """#!/bin/sh
# fake gatewayctl: records its arguments, NUL-separated, one file per call; "send" is queued,
# "resolve" finds nothing open (so each key is resolved with one call)
printf '%s\\0' "$@" > "$FAKE_GATEWAYCTL_DIR/call.$$"
for a; do
    case $a in
    -*) ;;
    resolve) echo "gatewayctl: unknown_id: nothing open with this key" >&2; exit 1 ;;
    *) break ;;
    esac
done
echo "{id} queued"
""".format(id=QUEUED_ID)

# ---------------------------------------------------------------------------- seeds

AM_SEEDS = [
    {
        "version": "4", "groupKey": "{}:{alertname=\"HighLoad\"}", "truncatedAlerts": 0,
        "status": "firing", "receiver": "gatewayd", "groupLabels": {"alertname": "HighLoad"},
        "commonLabels": {"alertname": "HighLoad", "severity": "critical", "job": "node"},
        "commonAnnotations": {"summary": "load above 10"},
        "externalURL": "http://alertmanager:9093",
        "alerts": [
            {"status": "firing", "labels": {"alertname": "HighLoad", "instance": "db01:9100",
                                            "severity": "critical"},
             "annotations": {"summary": "load above 10"},
             "startsAt": "2026-12-04T10:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
             "generatorURL": "http://prometheus:9090/graph", "fingerprint": "a1b2c3d4e5f60718"},
            {"status": "firing", "labels": {"alertname": "HighLoad", "instance": "db02:9100",
                                            "severity": "critical"},
             "annotations": {"summary": "load above 10"},
             "startsAt": "2026-12-04T10:00:30Z", "endsAt": "0001-01-01T00:00:00Z",
             "generatorURL": "http://prometheus:9090/graph", "fingerprint": "b1b2c3d4e5f60718"},
        ],
    },
    {
        "version": "4", "groupKey": "{}/{team=\"web\"}:{alertname=\"DiskFull\"}",
        "status": "resolved", "receiver": "gatewayd",
        "groupLabels": {"alertname": "DiskFull"},
        "commonLabels": {"alertname": "DiskFull", "severity": "warning", "team": "web"},
        "commonAnnotations": {},
        "alerts": [
            {"status": "resolved", "labels": {"alertname": "DiskFull", "host": "web1",
                                              "mountpoint": "/var"},
             "annotations": {"description": "/var is 97% full", "runbook": "https://wiki/x"},
             "startsAt": "2026-12-04T09:00:00Z", "endsAt": "2026-12-04T09:30:00Z",
             "fingerprint": "c1b2c3d4e5f60718"},
        ],
    },
    {
        "version": "4", "status": "firing", "receiver": "pager",
        "groupLabels": {}, "commonLabels": {"oncall": "+32470100001,+32470100002"},
        "commonAnnotations": {"message": "Watchdog: the alerting pipeline works"},
        "alerts": [{"status": "firing", "labels": {"alertname": "Watchdog"},
                    "annotations": {}, "startsAt": "2026-12-04T00:00:00Z"}],
    },
    {
        "version": "4", "groupKey": "{}:{}", "status": "firing", "receiver": "gatewayd",
        "commonLabels": {"severity": "critical"}, "commonAnnotations": {},
        "alerts": [{"status": "firing" if i % 3 else "resolved",
                    "labels": {"alertname": f"Probe{i}", "pod": f"api-{i}"},
                    "annotations": {"summary": f"probe {i} failed"},
                    "fingerprint": f"{i:016x}"} for i in range(6)],
    },
]

ZABBIX_SEEDS = [
    ("+32470100001", "Problem: High CPU utilization on db01",
     "Problem started at 10:02:11 on 2026.12.04\nProblem name: High CPU utilization\n"
     "Host: db01\nSeverity: High\nOperational data: 97 %\nOriginal problem ID: 4711\n"
     "Event ID: 4711\nStatus: PROBLEM"),
    ("role:primary", "Resolved in 5m: Disk space is low on web1",
     "Problem has been resolved at 10:07:00 on 2026.12.04\nProblem name: Disk space is low\n"
     "Problem duration: 5m\nHost: web1\nSeverity: Disaster\nEvent ID: 4712\n"
     "Status: RESOLVED"),
    ("+32470100002", "Updated problem: Zabbix agent is not available",
     "Admin acknowledged problem at 10:10:00 on 2026.12.04\nSeverity: Average\n"
     "Event ID: 4713\nStatus: UPDATE"),
    ("+32470100003", "Problem: Host is unreachable",
     "Host: router1\r\nSeverity: Disaster\r\nEvent ID: 4714\r\n"),
    ("+32470100001", "Problem: Interface eth0 down", "Severity: Warning\nEvent ID: 4715"),
    ("role:db", "Problem: Replication lag", "  severity :  high  \n  event id: 4716\n"),
]
ZABBIX_OPTIONS = [[], ["--ttl=600"], ["--source", "zabbix-prod"], ["--max-length=40"],
                  ["-t", "3"], ["--max-length", "19"], ["--ttl"], ["--bogus"], ["--"]]

# ---------------------------------------------------------------------------- mutations

WEIRD = ["\x00", "\ud800", "\udfff", "\u2028", "\ufeff", "é", "😀", "\x1b[2J", "%s%n", "$(id)",
         "`id`", "'", '"', "\\", "\r\n", "\t", " ", "-", "--", ":", "9" * 400]


def weird_string(rng: random.Random) -> str:
    r = rng.random()
    if r < 0.15:
        return "x" * rng.choice([300, 5000, 70000])  # huge values
    if r < 0.3:
        return "".join(chr(rng.randrange(0, 0x3000)) for _ in range(rng.randrange(1, 20)))
    return "".join(rng.choice(WEIRD) for _ in range(rng.randrange(1, 4)))


def mutate_json(rng: random.Random, value, depth: int = 0):
    """Replaces some value somewhere with a weird string, a wrong type, or drops a key."""
    if isinstance(value, dict) and value and rng.random() < 0.8:
        key = rng.choice(list(value))
        value = dict(value)
        r = rng.random()
        if r < 0.1:
            del value[key]
        elif r < 0.15:
            value[weird_string(rng)] = value.pop(key)
        else:
            value[key] = mutate_json(rng, value[key], depth + 1)
        return value
    if isinstance(value, list) and value and rng.random() < 0.8:
        value = list(value)
        i = rng.randrange(len(value))
        r = rng.random()
        if r < 0.1:
            del value[i]
        elif r < 0.2:
            value.extend([value[i]] * rng.choice([1, 50]))
        else:
            value[i] = mutate_json(rng, value[i], depth + 1)
        return value
    return rng.choice([weird_string(rng), None, 0, -1, 2**64, 1e308, True, [], {}, [1, "a"],
                       {"a": {}}, "4", 4, "firing", "resolved", "critical"])


def mutate_bytes(rng: random.Random, data: bytes) -> bytes:
    data = bytearray(data)
    for _ in range(rng.randrange(1, 8)):
        if not data:
            break
        r = rng.random()
        i = rng.randrange(len(data))
        if r < 0.4:
            data[i] ^= 1 << rng.randrange(8)
        elif r < 0.6:
            del data[rng.randrange(len(data)):]
        elif r < 0.8:
            data[i:i] = rng.choice([b"\x00", b"\xff", b"\xed\xa0\x80", b"\\u0000", b"\\ud800",
                                    b"{", b"]", b'"', b"\xc3"])
        else:
            del data[i:i + rng.randrange(1, 16)]
    return bytes(data)


# ---------------------------------------------------------------------------- harness


class Report:
    def __init__(self):
        self.cases = 0
        self.by_target = {}
        self.outcomes = {}   # target -> {"HTTP 200" / "exit 2" ...: count}
        self.xfail = {}      # known bug -> count
        self.failures = []   # unexpected: dicts to replay

    def count(self, target: str, outcome: str):
        self.cases += 1
        self.by_target[target] = self.by_target.get(target, 0) + 1
        o = self.outcomes.setdefault(target, {})
        o[outcome] = o.get(outcome, 0) + 1

    def fail(self, target: str, problem: str, case: dict, known: str | None):
        if known:
            if known not in self.xfail:
                print(f"XFAIL {target}: {problem} [known bug {known}]", flush=True)
            self.xfail[known] = self.xfail.get(known, 0) + 1
            return
        print(f"FAIL {target}: {problem}\n  case: {json.dumps(case)[:600]}", flush=True)
        self.failures.append({"target": target, "problem": problem, "case": case})


class FakeGatewayctl:
    def __init__(self, tmp: str):
        self.dir = os.path.join(tmp, "calls")
        os.mkdir(self.dir)
        self.path = os.path.join(tmp, "gatewayctl")
        with open(self.path, "w") as f:
            f.write(FAKE_GATEWAYCTL)
        os.chmod(self.path, 0o755)

    def take_calls(self) -> list:
        calls = []
        for name in sorted(os.listdir(self.dir)):
            p = os.path.join(self.dir, name)
            with open(p, "rb") as f:
                calls.append(f.read().split(b"\0")[:-1])
            os.unlink(p)
        return calls


def is_resolve(args: list) -> bool:
    """Whether a recorded gatewayctl call is "resolve --key KEY --by NAME"."""
    words = [a for a in args if not a.startswith(b"-")]
    return bool(words) and words[0] == b"resolve" and b"--key" in args and b"--by" in args


def arg_value(args: list, name: bytes) -> bytes | None:
    for a in args:
        if a.startswith(name + b"="):
            return a[len(name) + 1:]
    return None


class Receiver:
    """gatewayd-alertmanager on a free loopback port, restarted if it dies."""

    def __init__(self, fake: FakeGatewayctl, env: dict):
        self.fake, self.env, self.proc, self.port = fake, env, None, 0
        self.start()

    def start(self):
        self.proc = subprocess.Popen(
            ["/usr/bin/python3", ALERTMANAGER, "--listen", "127.0.0.1:0",
             "--gatewayctl", self.fake.path, "--to", "+32470100001"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=self.env, text=True)
        line = self.proc.stdout.readline()
        m = re.search(r":(\d+)/", line)
        if not m:
            raise RuntimeError(f"the receiver did not start: {line!r}")
        self.port = int(m.group(1))

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self):
        if self.proc and self.alive():
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def post(self, body: bytes, length: str | None, timeout: float = 5.0) -> int | None:
        """The HTTP status of the answer, or None for a connection closed or silent."""
        head = b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        if length is not None:
            head += b"Content-Length: " + length.encode() + b"\r\n"
        head += b"Connection: close\r\n\r\n"
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as s:
            try:
                s.sendall(head + body)
                data = b""
                while b"\r\n" not in data:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    data += chunk
            except (socket.timeout, ConnectionError):
                return None
        m = re.match(rb"HTTP/1\.[01] (\d{3}) ", data)
        return int(m.group(1)) if m else None


def am_case(rng: random.Random, i: int) -> dict:
    seed = rng.choice(AM_SEEDS)
    r = rng.random()
    if i == 0:
        body, length = json.dumps(seed).encode(), None  # unmutated: must be 200
    elif r < 0.5:
        body = json.dumps(mutate_json(rng, seed)).encode()
        length = None
    elif r < 0.85:
        body, length = mutate_bytes(rng, json.dumps(seed).encode()), None
    else:
        body = json.dumps(seed).encode()
        length = rng.choice(["abc", "", "0", "1", "+5", " 12", "1e3", "-1", "-99999",
                             "99999999999999999999999", str(len(body) // 2)])
    if length is None:
        length = str(len(body))
    return {"body": body.decode("latin-1"), "length": length}


def am_check(receiver: Receiver, case: dict, report: Report, showcase: str | None = None):
    body = case["body"].encode("latin-1")
    length = case["length"]
    status = receiver.post(body, length, timeout=3.0 if showcase else 10.0)
    calls = receiver.fake.take_calls()
    problem = None
    if not receiver.alive():
        problem = "the receiver died"
        receiver.start()
    elif status is None:
        problem = "no HTTP status: the connection was dropped or left silent"
    elif status >= 500:
        problem = f"HTTP {status} although gatewayctl answered queued"
    elif status == 200 and calls and all(is_resolve(c) for c in calls):
        # A resolved notification: its own key, then those its group paged with (the seeds
        # and mutations may have paged a few), each once since nothing is open.
        if len(calls) > 17:
            problem = f"HTTP 200 with {len(calls)} resolve calls"
    elif status == 200:
        if len(calls) != 1:
            problem = f"HTTP 200 with {len(calls)} gatewayctl calls"
        else:
            text = arg_value(calls[0], b"--message") or b""
            prio = arg_value(calls[0], b"--priority")
            limit = 130 if prio == b"critical" else 160
            if len(text) > limit:
                problem = f"a text of {len(text)} bytes, over {limit}"
    elif calls:
        problem = f"HTTP {status} but gatewayctl was called"
    known = None
    report.count("alertmanager", f"HTTP {status}" if status else "no answer")
    if showcase:
        if not problem:
            report.failures.append({"target": "alertmanager", "case": case,
                                    "problem": f"known bug {showcase} seems fixed: remove its "
                                               "entry from KNOWN_BUGS"})
            print(f"XPASS alertmanager: {showcase} no longer fails: remove its mark", flush=True)
            return
        if known != showcase:
            known = None
    if problem:
        report.fail("alertmanager", problem, case, known)


def am_regressions() -> list:
    good = json.dumps(AM_SEEDS[0]).encode()
    nul = json.loads(good)
    nul["commonAnnotations"]["summary"] = "load\u0000above 10"
    sur = json.loads(good)
    sur["alerts"][0]["labels"]["instance"] = "db\ud800"
    sur["commonLabels"].pop("alertname")
    return [
        ("am-negative-content-length", {"body": good.decode(), "length": "-1"}),
        ("am-nul-or-surrogate", {"body": json.dumps(nul), "length": str(len(json.dumps(nul)))}),
        ("am-nul-or-surrogate", {"body": json.dumps(sur), "length": str(len(json.dumps(sur)))}),
    ]


def zabbix_expected(sendto: str, subject: str, message: str) -> str:
    return zabbix_reading(subject, message)[0]


def zabbix_reading(subject: str, message: str) -> tuple[str, str]:
    """The priority the input says, by the script's documented rule: critical when any
    "Severity:" line starts with the word High or Disaster (several severities: the highest
    counts, so extra text never lowers the priority), unless the status is RESOLVED, OK or
    UPDATE. The status is that of the "Status:" lines whose value starts with a known word, when
    they agree (lines that disagree give no status); without any non-empty "Status:" line, the
    first word of the subject."""
    space = r"[ \t\n\v\f]"

    def fields(name):
        values = []
        for line in message.replace("\r", "").split("\n"):
            m = re.match(space + "*" + name + space + "*:" + space + "*(.*)", line,
                         re.IGNORECASE | re.ASCII | re.DOTALL)
            if m:
                values.append(re.sub(space + "*$", "", m.group(1)))
        return values

    severities = [v.lower() for v in fields("severity")]
    known = r"(not classified|information|warning|average|high|disaster)( .*)?"
    high = any(re.fullmatch(known, v, re.DOTALL) and re.fullmatch(known, v, re.DOTALL).group(1)
               in ("high", "disaster") for v in severities)
    statuses = fields("status")
    if any(statuses):
        words = set()
        for v in statuses:
            v = v.upper()
            m = re.fullmatch(r"(UPDATE [0-9]{4}\.[0-9]{2}\.[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2})"
                             r"( .*)?", v, re.DOTALL) or \
                re.fullmatch(r"(PROBLEM|RESOLVED|OK|UPDATE)( .*)?", v, re.DOTALL)
            if m:
                words.add(m.group(1))
        status = words.pop() if len(words) == 1 else ""
    else:
        subj = re.sub(r"[\t\r\n]", " ", subject)
        subj = re.sub(" +", " ", subj).strip(" ")
        status = re.split(r"[ \t\n\v\f:]", subj, maxsplit=1)[0].upper()
    if not high:
        return "normal", status
    if status in ("RESOLVED", "OK") or status.startswith("UPDATE"):
        return "normal", status
    return "critical", status


def zabbix_case(rng: random.Random, i: int) -> dict:
    sendto, subject, message = rng.choice(ZABBIX_SEEDS)
    options = list(rng.choice(ZABBIX_OPTIONS)) if rng.random() < 0.3 else []
    fields = [sendto, subject, message]
    if i > 0:
        for _ in range(rng.randrange(1, 4)):
            k = rng.randrange(3)
            r = rng.random()
            s = fields[k]
            if r < 0.3 and s:
                b = bytearray(s.encode("utf-8", "surrogatepass"))
                j = rng.randrange(len(b))
                b[j] ^= 1 << rng.randrange(8)
                s = b.decode("utf-8", "surrogateescape")
            elif r < 0.45:
                s = s[:rng.randrange(len(s) + 1)]
            elif r < 0.6:
                j = rng.randrange(len(s) + 1)
                s = s[:j] + weird_string(rng).replace("\x00", "") + s[j:]
            elif r < 0.8 and k == 2:
                # a Severity:/Status: line with a new value, maybe with text after it
                word = rng.choice(["High", "Disaster", "high", "DISASTER", "Average", "Warning",
                                   "Information", "Not classified", "High (escalated)",
                                   "Disaster!", "PROBLEM", "RESOLVED", "OK", "UPDATE",
                                   "Resolved (auto)", ""])
                name = rng.choice(["Severity", "severity", "SEVERITY ", "Status", " status"])
                line = f"{name}: {word}"
                lines = s.split("\n")
                lines.insert(rng.randrange(len(lines) + 1), line)
                s = "\n".join(lines)
            else:
                s = weird_string(rng).replace("\x00", "")
            fields[k] = s
    # argv holds no NUL and (MAX_ARG_STRLEN) no string over 128 KiB
    fields = [f.replace("\x00", "")[:100000] for f in fields]
    return {"options": options, "args": fields}


def to_bytes(s: str) -> bytes:
    """An argument's bytes: surrogateescape'd bytes back as they were, lone surrogates as the
    (invalid) UTF-8 a broken upstream would send."""
    out = bytearray()
    for ch in s:
        o = ord(ch)
        out += bytes([o - 0xdc00]) if 0xdc80 <= o <= 0xdcff else \
            ch.encode("utf-8", "surrogatepass")
    return bytes(out)


def zabbix_check(fake: FakeGatewayctl, env: dict, case: dict, report: Report,
                 showcase: str | None = None):
    argv = [os.fsencode(a) if isinstance(a, str) else a for a in case["options"]]
    args = [to_bytes(a) for a in case["args"]]
    try:
        p = subprocess.run(["/bin/sh", ZABBIX, *argv, *args], capture_output=True, env=env,
                           timeout=20, stdin=subprocess.DEVNULL)
        rc, err = p.returncode, p.stderr.decode("utf-8", "replace")
    except subprocess.TimeoutExpired:
        rc, err = None, "timed out"
    calls = fake.take_calls()
    problem = None
    if rc not in (0, 1, 2):
        problem = f"exit status {rc}: {err.strip()[-300:]}"
    elif re.search(r"parameter not set|unbound variable|syntax error|Traceback|"
                   r"Illegal number|bad substitution|not found", err):
        problem = f"a shell error: {err.strip()[-300:]}"
    elif len(calls) > 1:
        problem = f"{len(calls)} gatewayctl calls"
    elif rc == 0 and len(calls) != 1:
        problem = "exit 0 without a gatewayctl call"
    elif calls and is_resolve(calls[0]):
        # A recovery resolves its problem's key (nothing open here: exit 0).
        subject, message = [a.decode("utf-8", "surrogateescape") for a in args[1:]]
        status = zabbix_reading(subject, message)[1]
        key = calls[0][calls[0].index(b"--key") + 1]
        if status not in ("RESOLVED", "OK"):
            problem = f"resolved {key!r} although the input's status is {status!r}"
        elif not re.fullmatch(rb"zabbix/[0-9]{1,20}/PROBLEM", key):
            problem = f"resolved the key {key!r}"
        elif rc != 0:
            problem = f"exit status {rc} when nothing was open to resolve"
    elif calls:
        prio = (arg_value(calls[0], b"--priority") or b"").decode()
        sendto, subject, message = [a.decode("utf-8", "surrogateescape") for a in args]
        want = zabbix_expected(sendto, subject, message)
        if prio != want:
            problem = f"priority {prio}, the input says {want}"
        else:
            text = arg_value(calls[0], b"--message") or b""
            limit = 130 if prio == "critical" else 160
            for o in case["options"]:
                m = re.fullmatch(r"--max-length=(\d+)", o)
                if m:
                    limit = int(m.group(1))
            if len(text) > limit:
                problem = f"a text of {len(text)} bytes, over {limit}"
    known = None
    report.count("zabbix", f"exit {rc}")
    if showcase:
        if not problem:
            report.failures.append({"target": "zabbix", "case": case,
                                    "problem": f"known bug {showcase} seems fixed: remove its "
                                               "entry from KNOWN_BUGS"})
            print(f"XPASS zabbix: {showcase} no longer fails: remove its mark", flush=True)
            return
        if known != showcase:
            known = None
    if problem:
        report.fail("zabbix", problem, case, known)


def zabbix_regressions() -> list:
    return [("zabbix-trailing-text",
             {"options": [], "args": ["+32470100001", "Problem: db01 down",
                                      "Severity: High (escalated)\nEvent ID: 1\n"]})]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=20, help="time budget (default 20)")
    ap.add_argument("--seed", type=int, default=13, help="random seed (default 13)")
    ap.add_argument("--only", choices=["alertmanager", "zabbix"])
    args = ap.parse_args()
    for path in (ALERTMANAGER, ZABBIX):
        if not os.path.exists(path):
            print(f"skipped: {path} not found (set GATEWAYD_SOURCE_ROOT)")
            return 77

    report = Report()
    rng = random.Random(args.seed)
    targets = [args.only] if args.only else ["alertmanager", "zabbix"]
    tmp = tempfile.mkdtemp(prefix="fuzz-integrations.")
    receiver = None
    try:
        fake = FakeGatewayctl(tmp)
        env = {"PATH": f"{tmp}:/usr/bin:/bin", "LC_ALL": "C", "GATEWAYCTL": fake.path,
               "FAKE_GATEWAYCTL_DIR": fake.dir, "PYTHONDONTWRITEBYTECODE": "1"}
        budget = args.seconds / len(targets)
        for target in targets:
            end = time.monotonic() + budget
            if target == "alertmanager":
                receiver = Receiver(fake, env)
                for _, case in am_regressions():
                    am_check(receiver, case, report)
                i = 0
                while time.monotonic() < end:
                    am_check(receiver, am_case(rng, i), report)
                    i += 1
                if not receiver.alive():
                    report.failures.append({"target": "alertmanager",
                                            "problem": "the receiver died", "case": None})
                receiver.stop()
                receiver = None
            else:
                for _, case in zabbix_regressions():
                    zabbix_check(fake, env, case, report)
                i = 0
                while time.monotonic() < end:
                    zabbix_check(fake, env, zabbix_case(rng, i), report)
                    i += 1
    finally:
        if receiver:
            receiver.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    cases = ", ".join(f"{t}: {n}" for t, n in report.by_target.items())
    print(f"{report.cases} cases (seed {args.seed}; {cases})")
    for target, outcomes in report.outcomes.items():
        print(f"  {target}: " + ", ".join(f"{k}: {v}" for k, v in sorted(outcomes.items())))
    for bug, n in sorted(report.xfail.items()):
        print(f"expected failure, known bug {bug}: {n} case(s): {KNOWN_BUGS[bug]}")
    if report.failures:
        with open("fuzz-integrations-failures.json", "w") as f:
            json.dump(report.failures, f, indent=1)
        print(f"{len(report.failures)} unexpected failure(s), written to "
              f"{os.path.abspath('fuzz-integrations-failures.json')}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
