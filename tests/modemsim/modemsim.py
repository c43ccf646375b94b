#!/usr/bin/python3
"""GSM modem simulator: one process, one or more SIM800-like modems on ptys.

Usage:
  /usr/bin/python3 tests/modemsim/modemsim.py --dir DIR --modem gsm0 [--modem gsm1 ...]
      [--send-delay SECONDS] [--imei-base N] [--pin 1234] [--call-duration SECONDS]
      [--number NAME=+32470000001 ...]

For each --modem NAME the simulator opens a pseudo-terminal and makes
DIR/NAME a symlink to its slave (/dev/pts/N); clients (libgammu with
`connection = at`, gammu-smsd, smstools3 smsd) use that path as the serial
device.  When every port is up it writes DIR/ready (containing its pid).
SIGTERM or SIGINT removes the symlinks, DIR/ready and DIR/control.sock and
exits 0.

--number NAME=NUMBER (repeatable) gives modem NAME's SIM a subscriber number
(AT+CNUM answers it; default none).  The modems can then reach each other:
an SMS a modem sends to another modem's number (or its own) is delivered
into that modem's inbox like inject_sms does (SIM storage, +CMTI/+CMT per
AT+CNMI, a multipart message as the same parts with its concatenation
header, the text's alphabet kept), with the sender's number as originating
address (+0000 when the sender has none).  Numbers compare without '+'/'00'.
sent.jsonl records {"event":"route_queued"} when the sender's SMS is
complete, then "routed" (arrived: mem, indexes, delay), "route_dropped"
(route_drop, or storage full) or "route_held" (receiver unplugged, SIM
locked or not registered: delivered, and logged "routed" with held=true,
once it is reachable again).  Each carries from_modem, to_modem, from, to,
text, parts.

Why it is built this way
------------------------
Tests of the gateway need a modem that behaves like hardware (echo, URCs,
prompts, slow sends, failures, hangs, disappearing devices) yet is fully
scriptable and observable.  So:

* one single-threaded event loop (evloop.py) multiplexes every pty master,
  the control socket and all timers; nothing polls or spins, and replies go
  out within a millisecond unless a delay was configured;
* each modem (modem.py) is an AT state machine with a dispatcher table of
  27.005/27.007 commands, a real SMS-SUBMIT decoder (sms_pdu.py) and
  fault/voice/inbox state set from outside;
* observation is through append-only JSON-lines logs that tests read
  without talking to the process: DIR/<name>.at.jsonl (every command line
  and its final result), DIR/sent.jsonl (every accepted SMS part, every
  completed reassembled SMS, every refused send) and DIR/calls.jsonl;
* control is through DIR/control.sock, a unix stream socket taking one
  JSON object per line and answering one JSON line:

  {"cmd":"set","modem":M, "send_delay":s, "reply_delay":s, "signal":0-31|99,
        "registered":bool, "roaming":bool, "operator":name,
        "operator_numeric":"20601", "smsc":"+32...", "call_duration":s|null,
        "cnmi":bool (false: AT+CNMI answers ERROR), "creg":0-5|null (forced +CREG stat),
        "pdu":bool (false: text mode only, AT+CMGF=0 answers ERROR),
        "number":"+32..."|null (subscriber number, AT+CNUM; must be unused),
        "route_delay":s (SMS routed to this modem arrive s later; default 0),
        "route_drop":bool (SMS routed to this modem are lost: a dead SIM)}
  {"cmd":"fail_sends","modem":M,"count":N|-1,"cms":500}
  {"cmd":"fail_number","modem":M,"number":"+32...","cms":21|null}
  {"cmd":"hang","modem":M,"on":bool[,"after":"CMGS"[,"deliver":bool]]}
  {"cmd":"urc_flood","modem":M,"interval":0.05,"lines":["+CREG: 1"]}  (0 stops)
  {"cmd":"unplug","modem":M}
  {"cmd":"replug","modem":M[,"path":"ttyUSB7"]}
  {"cmd":"inject_sms","modem":M,"from":"+32470100001","text":"ACK 1234"
        [,"unicode":bool][,"ref":N][,"ref16":bool][,"parts":[1,3]]}
  {"cmd":"inject_pdu","modem":M,"pdu":"07912374151616F6040B91..."}  (stored as it is)
  {"cmd":"status_reports","modem":M[,"enabled":bool][,"status":"delivered|failed|pending|
        rejected|expired|forwarded|replaced"|TP-ST][,"delay":0.2]}
  {"cmd":"call_outcome","modem":M,"outcome":"answer|busy|no_answer|reject|no_carrier",
        "after":2.0[,"dtmf":"1"][,"duration":s][,"persist":bool]}
  {"cmd":"pin","modem":M,"required":bool[,"pin":"1234"]}
  {"cmd":"stats","modem":M}         {"cmd":"list"}       {"cmd":"ping"}

  Replies: {"ok":true,...} or {"ok":false,"error":"why"}.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sys

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from evloop import Loop  # noqa: E402
from modem import JsonLog, Modem, Network, check_number, number_key  # noqa: E402

MAX_CONTROL_CLIENTS = 16
MAX_CONTROL_LINE = 65536
DEFAULT_IMEI_BASE = 35693803564380


class ControlServer:
    """Line-oriented JSON control socket; every operation is quick and local."""

    def __init__(self, loop: Loop, path: str, modems: dict[str, Modem]):
        self.loop = loop
        self.path = path
        self.modems = modems
        self.clients: dict[int, tuple[socket.socket, bytearray]] = {}
        if os.path.exists(path):
            os.unlink(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(MAX_CONTROL_CLIENTS)
        self.sock.setblocking(False)
        loop.add_reader(self.sock.fileno(), self._accept)

    def _accept(self) -> None:
        try:
            conn, _ = self.sock.accept()
        except BlockingIOError:
            return
        if len(self.clients) >= MAX_CONTROL_CLIENTS:
            conn.close()
            return
        conn.setblocking(False)
        fd = conn.fileno()
        self.clients[fd] = (conn, bytearray())
        self.loop.add_reader(fd, lambda: self._on_client(fd))

    def _drop(self, fd: int) -> None:
        conn, _ = self.clients.pop(fd)
        self.loop.remove(fd)
        conn.close()

    def _on_client(self, fd: int) -> None:
        conn, buf = self.clients[fd]
        try:
            data = conn.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._drop(fd)
            return
        buf += data
        while b"\n" in buf:
            line, _, rest = bytes(buf).partition(b"\n")
            buf[:] = rest
            reply = json.dumps(self.handle_line(line), ensure_ascii=False).encode() + b"\n"
            try:
                sent = conn.send(reply)
            except OSError:
                sent = -1
            if sent != len(reply):  # replies are small; a client that cannot take one is gone
                self._drop(fd)
                return
        if len(buf) > MAX_CONTROL_LINE:
            self._drop(fd)

    def handle_line(self, line: bytes) -> dict:
        try:
            req = json.loads(line)
            if not isinstance(req, dict):
                raise ValueError("request must be a JSON object")
            return {"ok": True, **self.handle(req)}
        except (ValueError, KeyError, TypeError) as e:
            return {"ok": False, "error": f"{type(e).__name__}: {e}"}

    def handle(self, req: dict) -> dict:
        cmd = req.get("cmd")
        if cmd == "ping":
            return {"pid": os.getpid()}
        if cmd == "list":
            return {"modems": {name: m.status() for name, m in self.modems.items()}}
        name = req.get("modem")
        if name not in self.modems:
            raise ValueError(f"unknown modem {name!r}")
        m = self.modems[name]
        if cmd == "set":
            return m.set_params(req)
        if cmd == "fail_sends":
            return m.fail_sends(req.get("count", 1), req.get("cms", 500))
        if cmd == "fail_number":
            return m.fail_number(str(req["number"]), req.get("cms", 21))
        if cmd == "hang":
            return m.hang(bool(req.get("on", True)), req.get("after"), req.get("deliver", False))
        if cmd == "urc_flood":
            return m.urc_flood(req.get("interval", 0), req.get("lines") or [])
        if cmd == "unplug":
            return m.unplug()
        if cmd == "replug":
            return m.replug(req.get("path"))
        if cmd == "inject_sms":
            text = req["text"]
            if not isinstance(text, str) or not text or len(text) > 10000:
                raise ValueError("text must be a non-empty string of at most 10000 characters")
            only = req.get("parts")
            if only is not None and not isinstance(only, list):
                raise ValueError("parts must be a list of part numbers")
            ref = req.get("ref")
            return m.inject_sms(str(req["from"]), text, unicode=bool(req.get("unicode", False)),
                                ref=None if ref is None else int(ref) & 0xFFFF,
                                ref16=bool(req.get("ref16", False)), only_parts=only)
        if cmd == "inject_pdu":
            pdu = req.get("pdu")
            if not isinstance(pdu, str):
                raise ValueError("pdu must be a string of hex digits")
            return m.inject_pdu(pdu)
        if cmd == "status_reports":
            return m.status_reports(req.get("enabled", True), req.get("status", "delivered"),
                                    req.get("delay", 0.2))
        if cmd == "call_outcome":
            return m.call_outcome(req["outcome"], req.get("after", 2.0), req.get("dtmf", ""),
                                  req.get("duration"), req.get("persist", False))
        if cmd == "pin":
            return m.set_pin(req.get("required", True), req.get("pin"))
        if cmd == "stats":
            return m.status()
        raise ValueError(f"unknown cmd {cmd!r}")

    def close(self) -> None:
        for fd in list(self.clients):
            self._drop(fd)
        self.loop.remove(self.sock.fileno())
        self.sock.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Simulate SIM800-like GSM modems on pseudo-terminals "
                    "(see the module docstring for the control protocol).")
    p.add_argument("--dir", required=True, help="directory for symlinks, logs, control.sock")
    p.add_argument("--modem", action="append", required=True, metavar="NAME",
                   help="a modem; DIR/NAME becomes its device (repeatable)")
    p.add_argument("--send-delay", type=float, default=0.0, metavar="SECONDS",
                   help="time between Ctrl-Z and +CMGS (default 0)")
    p.add_argument("--imei-base", type=int, default=DEFAULT_IMEI_BASE, metavar="N",
                   help="14-digit IMEI body of the first modem; the others count up")
    p.add_argument("--pin", default=None, help="SIM PIN each modem's SIM asks for")
    p.add_argument("--call-duration", type=float, default=None, metavar="SECONDS",
                   help="an answered call is hung up by the far end after this long")
    p.add_argument("--number", action="append", default=[], metavar="NAME=NUMBER",
                   help="subscriber number of modem NAME's SIM, e.g. gsm0=+32470000001; "
                        "SMS to it from another modem arrive in its inbox (repeatable)")
    args = p.parse_args(argv)
    if len(set(args.modem)) != len(args.modem):
        p.error("modem names must be distinct")
    for name in args.modem:
        if "/" in name or name in (".", "..", "ready", "control.sock"):
            p.error(f"bad modem name {name!r}")
    args.numbers = {}
    seen: dict[str, str] = {}
    for spec in args.number:
        name, sep, number = spec.partition("=")
        if not sep or name not in args.modem:
            p.error(f"--number {spec!r}: want NAME=NUMBER with NAME one of the --modem names")
        if name in args.numbers:
            p.error(f"--number: modem {name} given twice")
        try:
            number = check_number(number)
        except ValueError as e:
            p.error(f"--number {spec!r}: {e}")
        if number is None:
            continue
        if number_key(number) in seen:
            p.error(f"--number: {number} already belongs to {seen[number_key(number)]}")
        seen[number_key(number)] = name
        args.numbers[name] = number
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    directory = os.path.abspath(args.dir)
    os.makedirs(directory, exist_ok=True)
    ready_path = os.path.join(directory, "ready")
    if os.path.exists(ready_path):
        os.unlink(ready_path)

    loop = Loop()
    sent_log = JsonLog(os.path.join(directory, "sent.jsonl"))
    calls_log = JsonLog(os.path.join(directory, "calls.jsonl"))
    network = Network(loop, sent_log)
    modems: dict[str, Modem] = {}
    for i, name in enumerate(args.modem):
        m = Modem(loop, name, i, directory, imei_base=args.imei_base,
                  send_delay=args.send_delay, pin=args.pin,
                  call_duration=args.call_duration, sent_log=sent_log, calls_log=calls_log,
                  number=args.numbers.get(name), network=network)
        m.open_pty()
        network.add(m)
        modems[name] = m
    control = ControlServer(loop, os.path.join(directory, "control.sock"), modems)
    loop.handle_signals((signal.SIGTERM, signal.SIGINT), lambda _s: loop.stop())

    tmp = ready_path + ".tmp"
    with open(tmp, "w") as f:
        f.write(f"{os.getpid()}\n")
    os.replace(tmp, ready_path)
    print(f"modemsim: pid {os.getpid()}, " +
          ", ".join(f"{n} -> {m.device}" for n, m in modems.items()), flush=True)

    try:
        loop.run()
    finally:
        control.close()
        for m in modems.values():
            m.shutdown()
        sent_log.close()
        calls_log.close()
        try:
            os.unlink(ready_path)
        except FileNotFoundError:
            pass
        loop.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
