"""One simulated GSM modem: a pseudo-terminal speaking 27.005/27.007 AT.

Design
------
A Modem owns one pty pair.  The master side is ours: it is read and written
from the shared event loop (evloop.Loop), never blocking.  The slave side is
what clients open through the symlink DIR/<name>.  We keep one slave fd open
for the modem's whole life: without it the master reports EIO/POLLHUP each
time a client closes the port (libgammu opens, closes and reopens during
init), and a level-triggered POLLHUP would make select() spin.

Input is a byte stream fed to a small state machine with two modes:

* command mode: bytes accumulate into a line until CR (S3).  Bytes before
  "AT" are dropped, ESC abandons the partial line, other control bytes are
  ignored, and with ATE1 every accepted byte is echoed as it arrives, like
  a real modem does.  A complete line is parsed into basic commands
  (E0, &F, D...;) and extended ones (+CSQ?, +CMGS=23) that may be chained
  with ';', and each is dispatched through the COMMANDS table, built by the
  @command decorator below.  A handler returns information lines, raises
  ATError (ERROR / +CME ERROR / +CMS ERROR) or Final (NO CARRIER...), or
  returns a Prompt to switch to ...
* prompt mode (after AT+CMGS): the PDU (or text) is collected up to Ctrl-Z,
  ESC cancels.  The PDU is decoded for real (sms_pdu), checked against the
  length given in AT+CMGS, and the answer (+CMGS: <mr> / +CMS ERROR) is
  given after the configured send delay.

While a reply is delayed the modem is "busy": further input is buffered and
processed when the reply has gone out, so commands are answered in order.

Faults (fail_sends, fail_number, hang, urc_flood, unplug/replug, PIN lock,
refused AT+CNMI, forced registration state), incoming SMS injection, status
reports for submits that ask for one (TP-SRR) and voice-call outcomes are set
from the control socket (modemsim.py) through the public methods at the end
of the class.

A Modem may have a subscriber number (AT+CNUM).  The Network at the end of
this file plays the SMSC between the simulated modems: a completed outgoing
SMS addressed to a modem's number is delivered into that modem's inbox by the
same code as inject_sms (_deliver_parts), after that modem's route_delay,
unless its route_drop loses it.

Every command line and its final result goes to DIR/<name>.at.jsonl; each
accepted SMS part and each completed (reassembled) SMS goes to
DIR/sent.jsonl; voice calls go to DIR/calls.jsonl.  Each record carries
"mono" (time.monotonic() of the event) and "modem".
"""

from __future__ import annotations

import datetime as _dt
import errno
import json
import os
import re
import termios
import time
import tty
from dataclasses import dataclass, field
from typing import Callable

import sms_pdu
from evloop import Loop, Timer

EXEC, READ, TEST, SET = "exec", "read", "test", "set"

MAX_LINE = 1024          # longest command line kept (SIM800 takes 556)
MAX_PROMPT_INPUT = 2048  # longest PDU/text after the "> " prompt
MAX_INBUF = 65536        # unprocessed input kept while busy
MAX_OUTBUF = 16384       # output kept when nobody reads the port
MAX_ASSEMBLIES = 256     # concatenated messages waiting for missing parts
MIN_FLOOD_INTERVAL = 0.005

NUMERIC_RESULTS = {"OK": 0, "CONNECT": 1, "RING": 2, "NO CARRIER": 3, "ERROR": 4,
                   "NO DIALTONE": 6, "BUSY": 7, "NO ANSWER": 8}

CME_TEXT = {3: "operation not allowed", 4: "operation not supported", 10: "SIM not inserted",
            11: "SIM PIN required", 12: "SIM PUK required", 16: "incorrect password",
            21: "invalid index", 30: "no network service", 100: "unknown"}

CALL_STATES = {0: "active", 1: "held", 2: "dialing", 3: "alerting", 4: "incoming",
               5: "waiting", 6: "disconnected"}
CALL_OUTCOMES = ("answer", "busy", "no_answer", "reject", "no_carrier")


class JsonLog:
    """Append-only JSON lines, flushed per record (tests tail these files)."""

    def __init__(self, path: str, **constant):
        self._f = open(path, "a", encoding="utf-8", errors="backslashreplace")
        self._constant = constant

    def write(self, mono: float | None = None, **fields) -> None:
        rec = {"mono": time.monotonic() if mono is None else mono, **self._constant, **fields}
        self._f.write(json.dumps(rec, ensure_ascii=False) + "\n")
        self._f.flush()

    def close(self) -> None:
        self._f.close()


class ATError(Exception):
    """A failed command: plain ERROR, or +CME ERROR / +CMS ERROR with a code."""

    def __init__(self, cme: int | None = None, cms: int | None = None):
        super().__init__(cme or cms)
        self.cme = cme
        self.cms = cms


class Final(Exception):
    """A final result other than OK/ERROR (NO CARRIER, BUSY...)."""

    def __init__(self, result: str):
        super().__init__(result)
        self.result = result


@dataclass
class Prompt:
    """Returned by AT+CMGS: collect input after "> " up to Ctrl-Z."""
    pdu_mode: bool
    length: int = 0       # PDU mode: TPDU octets announced
    to: str = ""          # text mode: destination
    toa: int = 129
    line: str = ""
    t0: float = 0.0
    buf: bytearray = field(default_factory=bytearray)
    overflow: bool = False


@dataclass
class Cmd:
    name: str        # "+CSQ", "E", "&F", "D", "S"
    kind: str        # EXEC / READ / TEST / SET
    args: list       # SET arguments, quotes removed
    text: str = ""   # D: the dial string


# --------------------------------------------------------------------------
# Command line parsing (V.250 section 5.3)

_EXT_PREFIXES = "+^$*#%"


def _split_args(s: str) -> list[str]:
    args, cur, quoted = [], [], False
    for ch in s:
        if ch == '"':
            quoted = not quoted
        elif ch == "," and not quoted:
            args.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    if quoted:
        raise ATError()
    args.append("".join(cur).strip())
    return args


def parse_line(body: str) -> list[Cmd]:
    """Commands of one line, 'AT' already removed; ATError on bad syntax."""
    cmds: list[Cmd] = []
    i, n = 0, len(body)
    while i < n:
        c = body[i]
        if c in " ;":
            i += 1
            continue
        if c in _EXT_PREFIXES:
            j = i + 1
            while j < n and (body[j].isalnum() or body[j] == "_"):
                j += 1
            if j == i + 1:
                raise ATError()
            k, quoted = j, False
            while k < n and (quoted or body[k] != ";"):
                quoted ^= body[k] == '"'
                k += 1
            rest = body[j:k].strip()
            if rest == "":
                kind, args = EXEC, []
            elif rest == "?":
                kind, args = READ, []
            elif rest.replace(" ", "") == "=?":
                kind, args = TEST, []
            elif rest.startswith("="):
                kind, args = SET, _split_args(rest[1:])
            else:
                raise ATError()
            cmds.append(Cmd(body[i:j].upper(), kind, args))
            i = k + 1
            continue
        u = c.upper()
        if u == "D":  # the dial string runs to the end of the line
            cmds.append(Cmd("D", EXEC, [], body[i + 1:].strip()))
            break
        if u == "S":
            j = i + 1
            while j < n and body[j].isdigit():
                j += 1
            reg = body[i + 1:j]
            if not reg:
                raise ATError()
            if j < n and body[j] == "?":
                cmds.append(Cmd("S", READ, [reg]))
                i = j + 1
                continue
            if j < n and body[j] == "=":
                k = j + 1
                while k < n and body[k].isdigit():
                    k += 1
                cmds.append(Cmd("S", SET, [reg, body[j + 1:k]]))
                i = k
                continue
            raise ATError()
        if u == "&":
            if i + 1 >= n or not body[i + 1].isalpha():
                raise ATError()
            name, j = "&" + body[i + 1].upper(), i + 2
        elif u.isalpha():
            name, j = u, i + 1
        else:
            raise ATError()
        k = j
        while k < n and body[k].isdigit():
            k += 1
        digits = body[j:k]
        cmds.append(Cmd(name, SET if digits else EXEC, [digits] if digits else []))
        i = k
    return cmds


def _int(args: list, i: int, lo: int, hi: int, default: int | None = None) -> int:
    if i >= len(args) or args[i] == "":
        if default is None:
            raise ATError()
        return default
    try:
        v = int(args[i])
    except ValueError:
        raise ATError() from None
    if not lo <= v <= hi:
        raise ATError()
    return v


# --------------------------------------------------------------------------
# The dispatcher table

@dataclass
class Handler:
    fn: Callable
    sim: str | None  # None, "cme" or "cms": needs an unlocked SIM


COMMANDS: dict[str, Handler] = {}


def command(*names: str, sim: str | None = None):
    def register(fn):
        for name in names:
            COMMANDS[name] = Handler(fn, sim)
        return fn
    return register


def _luhn(body: str) -> str:
    total = 0
    for i, d in enumerate(reversed(body)):
        v = int(d) * (2 if i % 2 == 0 else 1)
        total += v - 9 if v > 9 else v
    return str((10 - total % 10) % 10)


@dataclass
class Stored:
    """One message in SIM/ME storage: an SMS-DELIVER or a status report."""
    pdu: bytes
    tpdu_len: int
    stat: int       # 0 REC UNREAD, 1 REC READ, 2 STO UNSENT, 3 STO SENT
    sender: str     # status report: the recipient it reports on
    text: str
    scts: str
    report: sms_pdu.StatusReport | None = None


class Storage:
    def __init__(self, name: str, capacity: int):
        self.name = name
        self.capacity = capacity
        self.slots: dict[int, Stored] = {}

    def free_index(self) -> int | None:
        for i in range(1, self.capacity + 1):
            if i not in self.slots:
                return i
        return None


TEXT_STAT = ("REC UNREAD", "REC READ", "STO UNSENT", "STO SENT", "ALL")


@dataclass
class CallPlan:
    outcome: str = "answer"
    after: float = 1.0
    dtmf: str = ""
    duration: float | None = None  # remote hangs up this long after answering
    persist: bool = False


@dataclass
class Call:
    number: str
    toa: int
    plan: CallPlan
    started: float
    stat: int = 2
    answered: float | None = None
    timers: list = field(default_factory=list)


class Modem:
    MANUFACTURER = "SIMCOM_Ltd"
    MODEL = "SIMCOM_SIM800"
    REVISION = "Revision:1418B04SIM800L24"
    ATI = "SIM800 R14.18"

    def __init__(self, loop: Loop, name: str, index: int, directory: str, *,
                 imei_base: int, send_delay: float, pin: str | None,
                 call_duration: float | None, sent_log: JsonLog, calls_log: JsonLog,
                 number: str | None = None, network: Network | None = None):
        self.loop = loop
        self.name = name
        self.dir = directory
        self.link_name = name
        body = f"{(imei_base + index) % 10**14:014d}"
        self.imei = body + _luhn(body)
        self.imsi = f"20601{9000000000 + index:010d}"
        self.iccid = f"893206{1000000000000 + index:013d}"
        self.at_log = JsonLog(os.path.join(directory, f"{name}.at.jsonl"), modem=name)
        self.sent_log = sent_log
        self.calls_log = calls_log

        # network (survives ATZ)
        self.signal, self.ber = 20, 0
        self.registered, self.roaming = True, False
        self.operator = "Sim Net"
        self.operator_short = "SimNet"
        self.operator_numeric = "20601"
        self.fun = 1
        self.cops_mode = 0
        self.smsc = "+32475161616"
        # subscriber number (AT+CNUM) and SMS routing between simulated modems
        self.number = check_number(number)
        self.network = network
        self.route_delay = 0.0   # routed SMS to this modem arrive this much later
        self.route_drop = False  # routed SMS to this modem are lost (a dead SIM)

        # SIM
        self.pin = pin or "1234"
        self.puk = "12345678"
        self.pin_required = pin is not None
        self.sim_state = "SIM PIN" if pin else "READY"
        self.pin_attempts = 3

        # SMS storage and bookkeeping
        self.storages = {"SM": Storage("SM", 30), "ME": Storage("ME", 50)}
        self.next_mr = 0
        self.next_inbound_ref = 0
        self.assemblies: dict[tuple, dict[int, dict]] = {}

        # faults and timing
        self.send_delay = send_delay
        self.reply_delay = 0.0
        self.cnmi_supported = True
        self.pdu_supported = True  # False: text mode only, AT+CMGF=0 answers ERROR
        self.creg_override: int | None = None
        # status reports for submits with TP-SRR
        self.sr_enabled = True
        self.sr_status = 0x00
        self.sr_delay = 0.2
        self.fail_count = 0
        self.fail_cms = 500
        self.fail_numbers: dict[str, int] = {}
        self.hung = False
        self.hang_after: str | None = None
        self.hang_deliver = False
        self.flood_lines: list[str] = []
        self.flood_interval = 0.0
        self.flood_timer: Timer | None = None
        self.flood_index = 0

        # voice
        self.call: Call | None = None
        self.default_plan = CallPlan(duration=call_duration, persist=True)
        self.next_plan: CallPlan | None = None

        self.stats = {"commands": 0, "sms": 0, "parts": 0, "failed_sends": 0,
                      "calls": 0, "injected": 0, "unplugs": 0, "status_reports": 0,
                      "routed_in": 0}

        # port state
        self.master = self.slave = -1
        self.device = ""
        self.inbuf = bytearray()
        self.outbuf = bytearray()
        self._reset_port_state()
        self.reset_settings()

    # ------------------------------------------------------------------
    # settings that ATZ / AT&F / a power cycle restore

    def reset_settings(self) -> None:
        self.echo, self.verbose, self.quiet = True, True, False
        self.cmee = 0
        self.cmgf = 0 if self.pdu_supported else 1
        self.cscs = "IRA"
        self.cnmi = [0, 0, 0, 0, 0]
        self.creg_n = self.cgreg_n = 0
        self.cops_format = 0
        self.clcc_urc = 0
        self.ddet = 0
        self.cmms = 0
        self.cusd_n = 0
        self.csmp = [17, 167, 0, 0]
        self.csdh = 0
        self.clip = self.colp = self.crc = 0
        self.sregs = {0: 0, 3: 13, 4: 10, 5: 8, 6: 2, 7: 60, 8: 2, 10: 15}
        self.cpms = ["SM", "SM", "SM"]

    def _reset_port_state(self) -> None:
        self.line = bytearray()
        self.line_overflow = False
        self.prompt: Prompt | None = None
        self.busy = False
        self.pending: Timer | None = None
        self.hung_line = bytearray()
        self.inbuf.clear()
        self.outbuf.clear()

    # ------------------------------------------------------------------
    # pseudo-terminal

    @property
    def link_path(self) -> str:
        return os.path.join(self.dir, self.link_name)

    def open_pty(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        os.set_blocking(self.master, False)
        self.device = os.ttyname(self.slave)
        os.chmod(self.device, 0o666)  # smsd and friends may drop root
        tmp = self.link_path + ".tmp"
        if os.path.lexists(tmp):
            os.unlink(tmp)
        os.symlink(self.device, tmp)
        os.replace(tmp, self.link_path)
        self.loop.add_reader(self.master, self._on_readable)

    def close_pty(self) -> None:
        if self.master >= 0:
            self.loop.remove(self.master)
            os.close(self.master)
            os.close(self.slave)
            self.master = self.slave = -1
        try:
            if os.path.islink(self.link_path):
                os.unlink(self.link_path)
        except OSError:
            pass

    def _on_readable(self) -> None:
        try:
            data = os.read(self.master, 4096)
        except BlockingIOError:
            return
        except OSError as e:
            self.at_log.write(event="read_error", error=errno.errorcode.get(e.errno, str(e)))
            return
        if not data:
            return
        if self.hung:
            self._discard_while_hung(data)
            return
        room = MAX_INBUF - len(self.inbuf)
        self.inbuf += data[:room]
        self._process_input()
        self._flush()

    def _write(self, data: str | bytes) -> None:
        if self.hung or self.master < 0:
            return
        self.outbuf += data.encode("latin-1", "replace") if isinstance(data, str) else data

    def _flush(self) -> None:
        while self.outbuf and self.master >= 0:
            try:
                n = os.write(self.master, self.outbuf)
            except BlockingIOError:
                break
            except OSError:
                self.outbuf.clear()
                break
            del self.outbuf[:n]
        if self.master < 0:
            return
        if len(self.outbuf) > MAX_OUTBUF:
            # Nobody reads the port (no client has it open): a real serial
            # line loses such output, and so do we.
            termios.tcflush(self.slave, termios.TCIFLUSH)
            self.at_log.write(event="output_dropped", bytes=len(self.outbuf))
            self.outbuf.clear()
        self.loop.set_writer(self.master, self._flush if self.outbuf else None)

    def _discard_while_hung(self, data: bytes) -> None:
        for b in data:
            if b in (0x0D, 0x1A):
                text = self.hung_line.decode("latin-1").strip()
                if text:
                    self.at_log.write(cmd=text, result=None, hung=True)
                self.hung_line.clear()
            elif b >= 0x20 and len(self.hung_line) < MAX_LINE:
                self.hung_line.append(b)

    # ------------------------------------------------------------------
    # output framing

    def _info(self, lines: list[str]) -> str:
        if not lines:
            return ""
        body = "\r\n".join(lines)
        return f"\r\n{body}\r\n" if self.verbose else f"{body}\r\n"

    def _final(self, result: str) -> str:
        if self.quiet:
            return ""
        if self.verbose:
            return f"\r\n{result}\r\n"
        code = NUMERIC_RESULTS.get(result)
        return f"{code}\r" if code is not None else f"{result}\r\n"

    def _error_text(self, e: ATError) -> str:
        if e.cms is not None:
            return f"+CMS ERROR: {e.cms}"
        if e.cme is None or self.cmee == 0:
            return "ERROR"
        if self.cmee == 2 and e.cme in CME_TEXT:
            return f"+CME ERROR: {CME_TEXT[e.cme]}"
        return f"+CME ERROR: {e.cme}"

    def urc(self, line: str, log: bool = True) -> None:
        self._write(self._info([line]))
        self._flush()
        if log:
            self.at_log.write(urc=line)

    # ------------------------------------------------------------------
    # input state machine

    def _process_input(self) -> None:
        while self.inbuf and not self.busy and not self.hung and self.master >= 0:
            if self.prompt:
                self._consume_prompt_input()
            else:
                self._consume_command_input()

    def _consume_command_input(self) -> None:
        buf, echo = self.inbuf, bytearray()
        for i, b in enumerate(buf):
            if b == 0x0D:
                del buf[:i + 1]
                if self.echo:
                    echo.append(b)
                self._write(echo)
                line = self.line.decode("latin-1")
                overflow = self.line_overflow
                self.line.clear()
                self.line_overflow = False
                self._execute_line(line, overflow)
                return
            if b in (0x08, 0x7F):
                if self.line:
                    self.line.pop()
            elif b == 0x1B:
                self.line.clear()  # <ESC>: abandon the partial line
            elif b >= 0x20:
                if len(self.line) < MAX_LINE:
                    self.line.append(b)
                else:
                    self.line_overflow = True
                if self.echo:
                    echo.append(b)
            # LF, Ctrl-Z and other control bytes outside a prompt are ignored
        buf.clear()
        self._write(echo)

    def _execute_line(self, line: str, overflow: bool) -> None:
        t0 = time.monotonic()
        start = line.upper().find("AT")
        if start < 0:
            if line.strip():
                self.at_log.write(mono=t0, cmd=line, result=None, note="no AT prefix")
            return
        line = line[start:]
        self.stats["commands"] += 1
        out: list[str] = []
        final = "OK"
        try:
            if overflow:
                raise ATError()
            for c in parse_line(line[2:]):
                r = self._dispatch(c)
                if isinstance(r, Prompt):
                    self._begin_prompt(r, line, t0, out)
                    return
                out.append(self._info(r or []))
        except ATError as e:
            final = self._error_text(e)
        except Final as f:
            final = f.result
        self._reply(line, t0, "".join(out), final, self.reply_delay)

    def _dispatch(self, c: Cmd):
        h = COMMANDS.get(c.name)
        if h is None:
            raise ATError()
        if h.sim and c.kind != TEST and self.sim_state != "READY":
            locked = 12 if self.sim_state == "SIM PUK" else 11
            if h.sim == "cms":
                raise ATError(cms=316 if locked == 12 else 311)
            raise ATError(cme=locked)
        return h.fn(self, c)

    def _reply(self, line: str, t0: float, info: str, final: str, delay: float,
               **log_fields) -> None:
        self._reply_later(line, t0, delay, lambda: (info, final, {}), **log_fields)

    def _reply_later(self, line: str, t0: float, delay: float,
                     produce: Callable[[], tuple[str, str, dict]], **log_fields) -> None:
        """Send a reply now, or after delay (the modem is busy meanwhile).

        produce() runs when the reply goes out and returns (info text,
        final result, extra log fields): a send is accepted (and logged to
        sent.jsonl) only at that moment, not if the modem hung meanwhile.
        """
        def done() -> None:
            self.pending = None
            self.busy = False
            if self.hung:
                self.at_log.write(mono=t0, cmd=line, result=None, hung=True, **log_fields)
                return
            info, final, extra = produce()
            self._write(info + self._final(final))
            self._flush()
            if delay > 0:
                extra["done"] = time.monotonic()
            self.at_log.write(mono=t0, cmd=line, result=final, **log_fields, **extra)
            if delay > 0:  # input queued while busy; an immediate reply returns to the loop
                self._process_input()
                self._flush()

        if delay > 0:
            self.busy = True
            self.pending = self.loop.call_later(delay, done)
        else:
            done()

    # ------------------------------------------------------------------
    # prompt mode (AT+CMGS)

    def _begin_prompt(self, p: Prompt, line: str, t0: float, out: list[str]) -> None:
        p.line, p.t0 = line, t0
        self.prompt = p
        self._write("".join(out))
        if self.flood_lines:
            # real modems do emit URCs between the command and its prompt
            self._write(self._info([self._next_flood_line()]))
        self._write("\r\n> ")
        self.at_log.write(mono=t0, cmd=line, result="> ")

    def _consume_prompt_input(self) -> None:
        p, buf, out = self.prompt, self.inbuf, bytearray()
        for i, b in enumerate(buf):
            if b in (0x1A, 0x1B):  # Ctrl-Z sends, ESC cancels
                del buf[:i + 1]
                self._write(out)
                self.prompt = None
                if b == 0x1B:
                    self._reply("<ESC>", time.monotonic(), "", "OK", 0, prompt=p.line)
                else:
                    self._submit(p)
                return
            if b == 0x0D and not p.pdu_mode:
                # text mode: CR starts a new line of the message, with a new prompt
                b = 0x0A
                out += b"\r\n> "
            elif b <= 0x20 and (p.pdu_mode or b == 0x0A):
                continue  # whitespace around a PDU, LF after CR
            elif self.echo:
                out.append(b)
            if len(p.buf) < MAX_PROMPT_INPUT:
                p.buf.append(b)
            else:
                p.overflow = True
        buf.clear()
        self._write(out)

    def _submit(self, p: Prompt) -> None:
        t0 = time.monotonic()
        raw = p.buf.decode("latin-1")
        log = {"prompt": p.line, "pdu" if p.pdu_mode else "text": raw}
        try:
            if p.overflow:
                raise sms_pdu.PduError("input after the prompt too long")
            sub = self._decode_pdu(p, raw) if p.pdu_mode else self._text_mode_submit(p, raw)
        except sms_pdu.PduError as e:
            self.stats["failed_sends"] += 1
            self._reply("<PDU>" if p.pdu_mode else "<TEXT>", t0, "", "+CMS ERROR: 304",
                        self.reply_delay, reason=str(e), **log)
            return
        log.update(to=sub.to, decoded=sub.text)

        if self.hang_after == "CMGS":
            self.hang_after = None
            if self.hang_deliver:
                self._record_part(sub, self._take_mr())
            self.at_log.write(mono=t0, cmd="<PDU>" if p.pdu_mode else "<TEXT>", result=None,
                              hung=True, delivered=self.hang_deliver, **log)
            self.hang(True)
            return

        cms = self._send_outcome(sub)
        line = "<PDU>" if p.pdu_mode else "<TEXT>"

        def outcome() -> tuple[str, str, dict]:
            if cms is not None:
                self.stats["failed_sends"] += 1
                self.sent_log.write(event="fail", modem=self.name, to=sub.to, text=sub.text,
                                    cms=cms)
                return "", f"+CMS ERROR: {cms}", {}
            mr = self._take_mr()
            self._record_part(sub, mr)
            if sub.srr and self.sr_enabled:
                submitted = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0)
                self.loop.call_later(self.sr_delay,
                                     lambda: self._status_report(mr, sub.to, submitted))
            return self._info([f"+CMGS: {mr}"]), "OK", {"mr": mr}

        self._reply_later(line, t0, self.send_delay, outcome, **log)

    def _decode_pdu(self, p: Prompt, raw: str) -> sms_pdu.Submit:
        try:
            data = bytes.fromhex(raw)
        except ValueError:
            raise sms_pdu.PduError("PDU is not hexadecimal") from None
        sub = sms_pdu.decode_submit(data)
        if sub.tpdu_len != p.length:
            raise sms_pdu.PduError(f"AT+CMGS={p.length} but the TPDU has {sub.tpdu_len} octets")
        return sub

    def _text_mode_submit(self, p: Prompt, raw: str) -> sms_pdu.Submit:
        dcs = self.csmp[3]  # +CSMP: <fo>,<vp>,<pid>,<dcs>
        alphabet = sms_pdu.dcs_alphabet(dcs)
        if self.cscs == "UCS2" or self.cscs == "HEX":
            try:
                data = bytes.fromhex(raw.replace("\n", ""))
            except ValueError:
                raise sms_pdu.PduError("text is not hexadecimal") from None
            text = data.decode("utf-16-be", "replace") if self.cscs == "UCS2" else data.decode("latin-1")
        elif self.cscs == "GSM":
            text = "".join(sms_pdu.GSM7_BASIC[b & 0x7F] for b in raw.encode("latin-1"))
        else:
            text = raw
        if alphabet == "gsm7":
            septets = sms_pdu.gsm7_septets(text)
            if septets is None or len(septets) > 160:
                raise sms_pdu.PduError("text does not fit one GSM 7-bit message")
        elif alphabet == "ucs2" and len(text.encode("utf-16-be")) > 140:
            raise sms_pdu.PduError("text does not fit one UCS-2 message")
        vp = {"format": "relative", "raw": f"{self.csmp[1]:02X}"}
        return sms_pdu.Submit(smsc=self.smsc, first_octet=self.csmp[0], mr=0, to=p.to,
                              toa=p.toa, pid=self.csmp[2],
                              dcs=dcs, alphabet=alphabet, vp=vp, udl=len(text), text=text)

    def _network_ok(self) -> bool:
        return (self.registered and self.fun == 1 and self.cops_mode != 2
                and self.creg_override in (None, 1, 5))

    def _send_outcome(self, sub: sms_pdu.Submit) -> int | None:
        if not self._network_ok():
            return 331  # no network service
        wanted = sub.to.lstrip("+")
        for number, cms in self.fail_numbers.items():
            if number.lstrip("+") == wanted:
                return cms
        if self.fail_count != 0:
            if self.fail_count > 0:
                self.fail_count -= 1
            return self.fail_cms
        return None

    def _take_mr(self) -> int:
        mr = self.next_mr
        self.next_mr = (self.next_mr + 1) & 0xFF
        return mr

    def _record_part(self, sub: sms_pdu.Submit, mr: int) -> None:
        c = sub.concat
        part, parts = (c.seq, c.total) if c else (1, 1)
        self.stats["parts"] += 1
        self.sent_log.write(event="part", modem=self.name, to=sub.to, text=sub.text,
                            part=part, parts=parts, ref=c.ref if c else None,
                            ref_bits=c.ref_bits if c else None, mr=mr, tp_mr=sub.mr,
                            dcs=sub.alphabet, dcs_octet=sub.dcs, toa=sub.toa, pid=sub.pid,
                            vp=sub.vp, smsc=sub.smsc, srr=sub.srr,
                            udh=[f"{iei:02X}:{d.hex().upper()}" for iei, d in sub.udh],
                            **({"warnings": sub.warnings} if sub.warnings else {}))
        if parts == 1:
            self._complete_sms(sub.to, [sub.text], None, None, sub.alphabet, [mr])
            return
        key = (sub.to, c.ref_bits, c.ref, parts)
        got = self.assemblies.setdefault(key, {})
        got[part] = {"text": sub.text, "mr": mr, "dcs": sub.alphabet}
        if len(got) == parts:
            del self.assemblies[key]
            ordered = [got[i] for i in range(1, parts + 1)]
            self._complete_sms(sub.to, [x["text"] for x in ordered], c.ref, c.ref_bits,
                               ordered[0]["dcs"], [x["mr"] for x in ordered])
        elif len(self.assemblies) > MAX_ASSEMBLIES:
            old_key = next(iter(self.assemblies))
            old = self.assemblies.pop(old_key)
            self.sent_log.write(event="incomplete_dropped", modem=self.name, to=old_key[0],
                                ref=old_key[2], parts=old_key[3], have=sorted(old))

    def _status_report(self, mr: int, to: str, submitted: _dt.datetime) -> None:
        """The network's answer to TP-SRR, routed per AT+CNMI <ds>: 1 -> +CDS, 2 -> stored and
        announced with +CDSI, 0 -> stored silently (read with AT+CMGL)."""
        if self.master < 0:
            return  # unplugged meanwhile: the report is lost, as on a real line
        now = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0)
        rep = sms_pdu.encode_status_report(self.smsc, mr, to, self.sr_status, submitted, now)
        self.stats["status_reports"] += 1
        ds = self.cnmi[3]
        log = {"event": "status_report", "modem": self.name, "to": to, "mr": mr,
               "status": self.sr_status}
        if ds == 1:
            if self.cmgf == 0:
                self.urc(f"+CDS: {rep.tpdu_len}\r\n{rep.pdu.hex().upper()}")
            else:
                self.urc(self._report_text("+CDS", None, rep))
            self.sent_log.write(**log, routed="cds")
            return
        mem_name = self.cpms[2]
        mem = self.storages[mem_name]
        index = mem.free_index()
        if index is None:
            self.sent_log.write(**log, routed="dropped", reason=f"storage {mem_name} full")
            return
        mem.slots[index] = Stored(rep.pdu, rep.tpdu_len, 0, to, "", f"{now:%y/%m/%d,%H:%M:%S}+00",
                                  report=rep)
        if ds == 2:
            self.urc(f'+CDSI: "{mem_name}",{index}')
        self.sent_log.write(**log, routed="stored", mem=mem_name, index=index)

    def _report_text(self, tag: str, index: int | None, rep: sms_pdu.StatusReport,
                     stat: int | None = None) -> str:
        """Text mode: <fo>,<mr>,<ra>,<tora>,<scts>,<dt>,<st> (27.005 3.4.1, 3.4.3)."""
        where = f"{index}," if index is not None else ""
        state = f'"{TEXT_STAT[stat]}",' if stat is not None else ""
        toa = 145 if rep.recipient.startswith("+") else 129
        return (f'{tag}: {where}{state}6,{rep.mr},"{rep.recipient}",{toa},'
                f'"{rep.scts:%y/%m/%d,%H:%M:%S}+00","{rep.dt:%y/%m/%d,%H:%M:%S}+00",{rep.status}')

    def _complete_sms(self, to, texts, ref, ref_bits, dcs, mrs) -> None:
        self.stats["sms"] += 1
        self.sent_log.write(event="sms", modem=self.name, to=to, text="".join(texts),
                            parts=len(texts), ref=ref, dcs=dcs, mrs=mrs)
        if self.network:  # another simulated SIM has that number: the network delivers it
            self.network.submit(self, to, texts, dcs, ref, ref_bits)

    # ------------------------------------------------------------------
    # registration helpers

    def _creg_stat(self) -> int:
        if self.creg_override is not None and self.registered and self.fun == 1:
            return self.creg_override
        if not self._network_ok():
            return 0
        return 5 if self.roaming else 1

    def _reg_urcs(self) -> None:
        stat = self._creg_stat()
        for n, name in ((self.creg_n, "+CREG"), (self.cgreg_n, "+CGREG")):
            if n == 1 or (n == 2 and stat == 0):
                self.urc(f"{name}: {stat}")
            elif n == 2:
                self.urc(f'{name}: {stat},"1A2B","3C4D"')
        self._release_held()

    def mt_unreachable(self) -> str | None:
        """Why the network cannot deliver an SMS to this modem now, or None."""
        if self.master < 0:
            return "unplugged"
        if self.sim_state != "READY":
            return "SIM locked"
        if not self._network_ok():
            return "not registered"
        return None

    def _release_held(self) -> None:
        if self.network:
            self.network.release(self)

    # ------------------------------------------------------------------
    # AT commands: basic

    @command("E")
    def at_echo(self, c):
        self.echo = bool(_int(c.args, 0, 0, 1, 0))

    @command("V")
    def at_verbose(self, c):
        self.verbose = bool(_int(c.args, 0, 0, 1, 0))

    @command("Q")
    def at_quiet(self, c):
        self.quiet = bool(_int(c.args, 0, 0, 1, 0))

    @command("Z", "&F")
    def at_reset(self, c):
        _int(c.args, 0, 0, 0, 0)
        self.reset_settings()

    @command("&W", "&D", "&C", "&K", "&S", "X", "L", "M")
    def at_accepted(self, c):
        _int(c.args, 0, 0, 9, 0)

    @command("I")
    def at_info(self, c):
        _int(c.args, 0, 0, 9, 0)
        return [self.ATI]

    @command("S")
    def at_sreg(self, c):
        reg = int(c.args[0])
        if reg > 30:
            raise ATError()
        if c.kind == READ:
            return [f"{self.sregs.get(reg, 0):03d}"]
        self.sregs[reg] = _int(c.args, 1, 0, 255, 0)

    @command("H", "+CHUP")
    def at_hangup(self, c):
        if c.kind == TEST:
            return None
        if c.kind not in (EXEC, SET) or (c.args and c.args != ["0"]):
            raise ATError()
        self._hangup_local()

    @command("A")
    def at_answer(self, c):
        raise Final("NO CARRIER")  # no incoming calls are simulated

    @command("D", sim="cme")
    def at_dial(self, c):
        dial = c.text
        if dial.startswith(">"):
            raise ATError(cme=4)  # dialling from phonebook memory
        voice = dial.endswith(";")
        digits = "".join(ch for ch in dial if ch in "0123456789+*#")
        if not voice:
            raise Final("NO CARRIER")  # data/fax calls are not simulated
        if not digits or "+" in digits[1:]:
            raise ATError()
        if self.call:
            raise ATError(cme=3)
        if not self._network_ok():
            self.calls_log.write(event="dial", modem=self.name, number=digits,
                                 outcome="no_network")
            raise Final("NO CARRIER")
        plan = self.next_plan or self.default_plan
        if not plan.persist:
            self.next_plan = None
        self._start_call(digits, plan)

    # ------------------------------------------------------------------
    # AT commands: identification and general

    def _ident(self, c, value: str):
        if c.kind == TEST:
            return None
        if c.kind != EXEC:
            raise ATError()
        return [value]

    @command("+CGMI", "+GMI")
    def at_cgmi(self, c):
        return self._ident(c, self.MANUFACTURER)

    @command("+CGMM", "+GMM")
    def at_cgmm(self, c):
        return self._ident(c, self.MODEL)

    @command("+CGMR", "+GMR")
    def at_cgmr(self, c):
        return self._ident(c, self.REVISION)

    @command("+CGSN", "+GSN")
    def at_cgsn(self, c):
        return self._ident(c, self.imei)

    @command("+CIMI", sim="cme")
    def at_cimi(self, c):
        return self._ident(c, self.imsi)

    @command("+CNUM", sim="cme")
    def at_cnum(self, c):
        """27.007 7.1: +CNUM: <alpha>,<number>,<type>; no line when the SIM has none."""
        if c.kind == TEST:
            return None
        if c.kind != EXEC:
            raise ATError()
        if not self.number:
            return []
        return [f'+CNUM: "","{self.number}",{145 if self.number.startswith("+") else 129}']

    @command("+CCID", "+ICCID")
    def at_ccid(self, c):
        return self._ident(c, self.iccid)

    @command("+GCAP")
    def at_gcap(self, c):
        return self._ident(c, "+GCAP: +CGSM")

    @command("+CMEE")
    def at_cmee(self, c):
        if c.kind == READ:
            return [f"+CMEE: {self.cmee}"]
        if c.kind == TEST:
            return ["+CMEE: (0-2)"]
        self.cmee = _int(c.args, 0, 0, 2, 0)

    @command("+CSCS")
    def at_cscs(self, c):
        charsets = ("IRA", "GSM", "UCS2", "HEX", "PCCP936")
        if c.kind == READ:
            return [f'+CSCS: "{self.cscs}"']
        if c.kind == TEST:
            return ["+CSCS: (" + ",".join(f'"{x}"' for x in charsets) + ")"]
        if c.kind != SET or c.args[0].upper() not in charsets:
            raise ATError()
        self.cscs = c.args[0].upper()

    @command("+CFUN")
    def at_cfun(self, c):
        if c.kind == READ:
            return [f"+CFUN: {self.fun}"]
        if c.kind == TEST:
            return ["+CFUN: (0,1,4),(0,1)"]
        if c.kind != SET:
            raise ATError()
        fun = _int(c.args, 0, 0, 4)
        if fun not in (0, 1, 4):
            raise ATError(cme=4)
        _int(c.args, 1, 0, 1, 0)
        changed = fun != self.fun
        self.fun = fun
        if changed:
            self._reg_urcs()

    @command("+CPAS")
    def at_cpas(self, c):
        if c.kind == TEST:
            return ["+CPAS: (0,2,3,4)"]
        return [f"+CPAS: {4 if self.call else 0}"]

    @command("+CBC")
    def at_cbc(self, c):
        if c.kind == TEST:
            return ["+CBC: (0-2),(1-100),(voltage)"]
        return ["+CBC: 0,95,4123"]

    @command("+CCLK")
    def at_cclk(self, c):
        if c.kind == READ:
            return [f'+CCLK: "{_dt.datetime.now(_dt.timezone.utc):%y/%m/%d,%H:%M:%S}+00"']
        if c.kind in (SET, TEST):
            return None
        raise ATError()

    @command("+IPR")
    def at_ipr(self, c):
        if c.kind == READ:
            return ["+IPR: 115200"]
        if c.kind == TEST:
            return ["+IPR: (),(0,1200,2400,4800,9600,19200,38400,57600,115200)"]
        _int(c.args, 0, 0, 460800, 0)

    @command("+IFC", "+ICF")
    def at_ifc(self, c):
        if c.kind == READ:
            return [f"{c.name}: 0,0" if c.name == "+IFC" else "+ICF: 3,3"]
        return None

    @command("+CLIP", "+COLP", "+CRC")
    def at_flag(self, c):
        attr = c.name[1:].lower()
        if c.kind == READ:
            return [f"{c.name}: {getattr(self, attr)}" + (",2" if c.name != "+CRC" else "")]
        if c.kind == TEST:
            return [f"{c.name}: (0,1)"]
        if c.kind != SET:
            raise ATError()
        setattr(self, attr, _int(c.args, 0, 0, 1))

    # ------------------------------------------------------------------
    # AT commands: SIM and network

    @command("+CPIN")
    def at_cpin(self, c):
        if c.kind == READ:
            return [f"+CPIN: {self.sim_state}"]
        if c.kind == TEST:
            return None
        if c.kind != SET or not c.args[0]:
            raise ATError()
        if self.sim_state == "READY":
            raise ATError(cme=3)
        if self.sim_state == "SIM PIN":
            if c.args[0] == self.pin:
                self.sim_state, self.pin_attempts = "READY", 3
                self._release_held()
                return None
        else:  # SIM PUK: AT+CPIN="<puk>","<new pin>"
            if c.args[0] == self.puk and len(c.args) > 1 and c.args[1]:
                self.pin = c.args[1]
                self.sim_state, self.pin_attempts = "READY", 3
                self._release_held()
                return None
        self.pin_attempts -= 1
        if self.pin_attempts <= 0 and self.sim_state == "SIM PIN":
            self.sim_state, self.pin_attempts = "SIM PUK", 10
        raise ATError(cme=16)

    @command("+CSQ")
    def at_csq(self, c):
        if c.kind == TEST:
            return ["+CSQ: (0-31,99),(0-7,99)"]
        if c.kind != EXEC:
            raise ATError()
        return [f"+CSQ: {self.signal if self.fun == 1 else 99},{self.ber}"]

    @command("+CREG", "+CGREG")
    def at_creg(self, c):
        attr = "creg_n" if c.name == "+CREG" else "cgreg_n"
        if c.kind == TEST:
            return [f"{c.name}: (0-2)"]
        if c.kind == READ:
            n, stat = getattr(self, attr), self._creg_stat()
            loc = ',"1A2B","3C4D"' if n == 2 and stat else ""
            return [f"{c.name}: {n},{stat}{loc}"]
        if c.kind != SET:
            raise ATError()
        setattr(self, attr, _int(c.args, 0, 0, 2))

    @command("+CGATT")
    def at_cgatt(self, c):
        if c.kind == READ:
            return [f"+CGATT: {1 if self._network_ok() else 0}"]
        if c.kind == TEST:
            return ["+CGATT: (0,1)"]
        _int(c.args, 0, 0, 1)

    @command("+COPS")
    def at_cops(self, c):
        if c.kind == TEST:
            return [f'+COPS: (2,"{self.operator}","{self.operator_short}","{self.operator_numeric}"),'
                    '(3,"Other Net","Other","20610"),,(0-4),(0-2)']
        if c.kind == READ:
            if not self._network_ok():
                return [f"+COPS: {self.cops_mode}"]
            name = (self.operator, self.operator_short, self.operator_numeric)[self.cops_format]
            return [f'+COPS: {self.cops_mode},{self.cops_format},"{name}"']
        if c.kind != SET:
            raise ATError()
        mode = _int(c.args, 0, 0, 4)
        if mode == 3:
            self.cops_format = _int(c.args, 1, 0, 2)
            return None
        if len(c.args) > 1:
            self.cops_format = _int(c.args, 1, 0, 2)
        if mode in (1, 4) and len(c.args) > 2 and c.args[2] not in (
                self.operator, self.operator_short, self.operator_numeric):
            raise ATError(cme=30)
        was = self._creg_stat()
        self.cops_mode = 0 if mode == 4 else mode
        if self._creg_stat() != was:
            self._reg_urcs()

    @command("+CUSD", sim="cme")
    def at_cusd(self, c):
        if c.kind == READ:
            return [f"+CUSD: {self.cusd_n}"]
        if c.kind == TEST:
            return ["+CUSD: (0,1,2)"]
        if c.kind != SET:
            raise ATError()
        self.cusd_n = _int(c.args, 0, 0, 2, 0)
        if len(c.args) > 1 and c.args[1]:
            if not self._network_ok():
                raise ATError(cme=30)
            self.loop.call_later(0.05, lambda: self.urc('+CUSD: 0,"Balance: 10.00 EUR",15'))

    # ------------------------------------------------------------------
    # AT commands: SMS (27.005)

    @command("+CMGF")
    def at_cmgf(self, c):
        if c.kind == READ:
            return [f"+CMGF: {self.cmgf}"]
        if c.kind == TEST:
            return ["+CMGF: (0,1)" if self.pdu_supported else "+CMGF: (1)"]
        mode = _int(c.args, 0, 0, 1, 0)
        if mode == 0 and not self.pdu_supported:
            raise ATError()  # as on the odd modem that speaks text mode only
        self.cmgf = mode

    @command("+CSMS")
    def at_csms(self, c):
        if c.kind == READ:
            return ["+CSMS: 0,1,1,1"]
        if c.kind == TEST:
            return ["+CSMS: (0,1)"]
        _int(c.args, 0, 0, 1)
        return ["+CSMS: 1,1,1"]

    @command("+CSMP")
    def at_csmp(self, c):
        if c.kind == READ:
            return ["+CSMP: " + ",".join(map(str, self.csmp))]
        if c.kind == TEST:
            return None
        if c.kind != SET:
            raise ATError()
        for i in range(min(4, len(c.args))):
            if c.args[i] != "":
                self.csmp[i] = _int(c.args, i, 0, 255)

    @command("+CSDH")
    def at_csdh(self, c):
        if c.kind == READ:
            return [f"+CSDH: {self.csdh}"]
        if c.kind == TEST:
            return ["+CSDH: (0,1)"]
        self.csdh = _int(c.args, 0, 0, 1, 0)

    @command("+CMMS")
    def at_cmms(self, c):
        if c.kind == READ:
            return [f"+CMMS: {self.cmms}"]
        if c.kind == TEST:
            return ["+CMMS: (0-2)"]
        self.cmms = _int(c.args, 0, 0, 2, 0)

    @command("+CSCA", sim="cms")
    def at_csca(self, c):
        if c.kind == READ:
            return [f'+CSCA: "{self.smsc}",{145 if self.smsc.startswith("+") else 129}']
        if c.kind == TEST:
            return None
        if c.kind != SET or not c.args[0]:
            raise ATError()
        self.smsc = c.args[0]

    @command("+CNMI", sim="cms")
    def at_cnmi(self, c):
        if not self.cnmi_supported:
            raise ATError()  # as on modems without new-message indications
        if c.kind == READ:
            return ["+CNMI: " + ",".join(map(str, self.cnmi))]
        if c.kind == TEST:
            return ["+CNMI: (0-3),(0-3),(0-3),(0-2),(0,1)"]
        if c.kind != SET:
            raise ATError()
        limits = (3, 3, 3, 2, 1)
        new = list(self.cnmi)
        for i in range(min(5, len(c.args))):
            if c.args[i] != "":
                try:
                    new[i] = _int(c.args, i, 0, limits[i])
                except ATError:
                    raise ATError(cms=303) from None
        self.cnmi = new

    @command("+CPMS", sim="cms")
    def at_cpms(self, c):
        names = tuple(self.storages)
        if c.kind == TEST:
            one = "(" + ",".join(f'"{n}"' for n in names) + ")"
            return [f"+CPMS: {one},{one},{one}"]
        if c.kind == READ:
            fields = []
            for n in self.cpms:
                s = self.storages[n]
                fields.append(f'"{n}",{len(s.slots)},{s.capacity}')
            return ["+CPMS: " + ",".join(fields)]
        if c.kind != SET or not 1 <= len(c.args) <= 3:
            raise ATError()
        wanted = [a.upper() for a in c.args]
        if any(w not in self.storages for w in wanted):
            raise ATError(cms=302)
        for i, w in enumerate(wanted):
            self.cpms[i] = w
        counts = []
        for n in self.cpms:
            s = self.storages[n]
            counts += [str(len(s.slots)), str(s.capacity)]
        return ["+CPMS: " + ",".join(counts)]

    @command("+CMGS", sim="cms")
    def at_cmgs(self, c):
        if c.kind == TEST:
            return None
        if c.kind != SET:
            raise ATError()
        if self.cmgf == 0:
            length = _int(c.args, 0, 1, 175)
            return Prompt(pdu_mode=True, length=length)
        to = c.args[0]
        if not to:
            raise ATError()
        toa = _int(c.args, 1, 128, 255, 145 if to.startswith("+") else 129)
        if toa == 145 and not to.startswith("+"):
            to = "+" + to
        return Prompt(pdu_mode=False, to=to, toa=toa)

    def _mem1(self) -> Storage:
        return self.storages[self.cpms[0]]

    def _scts_text(self, m: Stored) -> str:
        return f'"{m.sender}","","{m.scts}"'

    def _te_text(self, text: str) -> str:
        """Message text in the TE character set chosen with AT+CSCS."""
        if self.cscs == "UCS2":
            return text.encode("utf-16-be").hex().upper()
        if self.cscs == "HEX":
            return text.encode("latin-1", "replace").hex().upper()
        return text.encode("latin-1", "replace").decode("latin-1")

    def _entry_lines(self, tag: str, index: int | None, m: Stored) -> list[str]:
        where = f"{index}," if index is not None else ""
        if self.cmgf == 0:
            return [f"{tag}: {where}{m.stat},,{m.tpdu_len}", m.pdu.hex().upper()]
        if m.report:
            return [self._report_text(tag, index, m.report, m.stat)]
        return [f'{tag}: {where}"{TEXT_STAT[m.stat]}",{self._scts_text(m)}',
                self._te_text(m.text)]

    @command("+CMGL", sim="cms")
    def at_cmgl(self, c):
        if c.kind == TEST:
            if self.cmgf == 0:
                return ["+CMGL: (0-4)"]
            return ["+CMGL: (" + ",".join(f'"{s}"' for s in TEXT_STAT) + ")"]
        if self.cmgf == 0:
            stat = _int(c.args, 0, 0, 4, 0) if c.kind == SET else 0
        else:
            want = c.args[0].upper() if c.kind == SET else "REC UNREAD"
            if want not in TEXT_STAT:
                raise ATError(cms=302)
            stat = TEXT_STAT.index(want)
        keep = c.kind == SET and len(c.args) > 1 and c.args[1] == "1"
        lines: list[str] = []
        for index in sorted(self._mem1().slots):
            m = self._mem1().slots[index]
            if stat == 4 or m.stat == stat:
                lines += self._entry_lines("+CMGL", index, m)
                if m.stat == 0 and not keep:
                    m.stat = 1
        return lines

    @command("+CMGR", sim="cms")
    def at_cmgr(self, c):
        if c.kind == TEST:
            return None
        if c.kind != SET:
            raise ATError()
        mem = self._mem1()
        try:
            index = _int(c.args, 0, 1, mem.capacity)
        except ATError:
            raise ATError(cms=321) from None
        m = mem.slots.get(index)
        if m is None:
            return None  # SIM800 answers a bare OK for an empty slot
        lines = self._entry_lines("+CMGR", None, m)
        if m.stat == 0 and not (len(c.args) > 1 and c.args[1] == "1"):
            m.stat = 1
        return lines

    @command("+CMGD", sim="cms")
    def at_cmgd(self, c):
        mem = self._mem1()
        if c.kind == TEST:
            used = ",".join(str(i) for i in sorted(mem.slots))
            return [f"+CMGD: ({used}),(0-4)"]
        if c.kind != SET:
            raise ATError()
        flag = _int(c.args, 1, 0, 4, 0)
        if flag == 0:
            try:
                index = _int(c.args, 0, 1, mem.capacity)
            except ATError:
                raise ATError(cms=321) from None
            mem.slots.pop(index, None)
            return None
        doomed = {1: (1,), 2: (1, 3), 3: (1, 2, 3), 4: (0, 1, 2, 3)}[flag]
        for index in [i for i, m in mem.slots.items() if m.stat in doomed]:
            del mem.slots[index]

    # ------------------------------------------------------------------
    # AT commands: voice

    @command("+CLCC")
    def at_clcc(self, c):
        if c.kind == TEST:
            return None
        if c.kind == READ:
            return [f"+CLCC: {self.clcc_urc}"]
        if c.kind == SET:
            self.clcc_urc = _int(c.args, 0, 0, 1)
            return None
        return [self._clcc_line()] if self.call else []

    @command("+DDET")
    def at_ddet(self, c):
        if c.kind == READ:
            return [f"+DDET: {self.ddet},0,0,0"]
        if c.kind == TEST:
            return ["+DDET: (0,1),(0-10000),(0,1),(0,1)"]
        if c.kind != SET:
            raise ATError()
        self.ddet = _int(c.args, 0, 0, 1)

    @command("+VTS")
    def at_vts(self, c):
        if c.kind == TEST:
            return ["+VTS: (0-9,*,#,A,B,C,D)"]
        if c.kind != SET or not self.call or self.call.stat != 0:
            raise ATError()
        self.calls_log.write(event="dtmf", modem=self.name, number=self.call.number,
                             direction="local", digits=c.args[0])

    def _clcc_line(self, stat: int | None = None) -> str:
        call = self.call
        return (f'+CLCC: 1,0,{call.stat if stat is None else stat},0,0,'
                f'"{call.number}",{call.toa}')

    def _start_call(self, number: str, plan: CallPlan) -> None:
        self.stats["calls"] += 1
        call = Call(number=number, toa=145 if number.startswith("+") else 129, plan=plan,
                    started=time.monotonic())
        self.call = call
        self.calls_log.write(event="dial", modem=self.name, number=number,
                             planned=plan.outcome, after=plan.after)

        def later(delay, fn):
            call.timers.append(self.loop.call_later(delay, fn))

        self._call_state(2, announce=False)  # the OK to ATD comes first
        after = plan.after
        if plan.outcome in ("answer", "reject", "no_answer"):
            later(min(0.2, after / 2), lambda: self._call_state(3))
        if plan.outcome == "answer":
            later(after, self._call_answered)
        elif plan.outcome == "busy":
            later(after, lambda: self._call_end("BUSY", "busy", "remote"))
        elif plan.outcome == "reject":
            later(after, lambda: self._call_end("NO CARRIER", "rejected", "remote"))
        elif plan.outcome == "no_carrier":
            later(after, lambda: self._call_end("NO CARRIER", "no_carrier", "network"))
        # no_answer: alerting until the caller hangs up

    def _call_state(self, stat: int, announce: bool = True) -> None:
        self.call.stat = stat
        if announce:
            self.calls_log.write(event="state", modem=self.name, number=self.call.number,
                                 state=CALL_STATES[stat])
        if self.clcc_urc:
            if announce:
                self.urc(self._clcc_line())
            else:
                self.loop.call_later(0, lambda c=self.call: c is self.call and
                                     self.urc(self._clcc_line()))

    def _call_answered(self) -> None:
        call = self.call
        call.answered = time.monotonic()
        self._call_state(0)
        self.calls_log.write(event="outcome", modem=self.name, number=call.number,
                             outcome="answered")
        for k, digit in enumerate(call.plan.dtmf):
            call.timers.append(self.loop.call_later(0.5 + 0.3 * k,
                                                    lambda d=digit: self._remote_dtmf(d)))
        if call.plan.duration is not None:
            call.timers.append(self.loop.call_later(
                call.plan.duration, lambda: self._call_end("NO CARRIER", None, "remote")))

    def _remote_dtmf(self, digit: str) -> None:
        self.calls_log.write(event="dtmf", modem=self.name, number=self.call.number,
                             direction="remote", digits=digit, reported=bool(self.ddet))
        if self.ddet:
            self.urc(f"+DTMF: {digit}")

    def _call_end(self, result: str | None, outcome: str | None, by: str) -> None:
        call = self.call
        if call is None:
            return
        for t in call.timers:
            t.cancel()
        now = time.monotonic()
        if outcome:
            self.calls_log.write(event="outcome", modem=self.name, number=call.number,
                                 outcome=outcome)
        self.calls_log.write(event="hangup", modem=self.name, number=call.number, by=by,
                             state=CALL_STATES[call.stat],
                             duration=round(now - call.answered, 3) if call.answered else 0,
                             elapsed=round(now - call.started, 3))
        if self.clcc_urc:
            self.urc(self._clcc_line(6))
        self.call = None
        if result:
            self._write(self._final(result))
            self._flush()
            self.at_log.write(urc=result)

    def _hangup_local(self) -> None:
        if self.call is None:
            return
        outcome = "no_answer" if self.call.stat in (2, 3) else None
        self._call_end(None, outcome, "local")

    # ------------------------------------------------------------------
    # URC flood

    def _next_flood_line(self) -> str:
        line = self.flood_lines[self.flood_index % len(self.flood_lines)]
        self.flood_index += 1
        return line

    def _flood_tick(self) -> None:
        self.flood_timer = None
        if not self.flood_lines or self.flood_interval <= 0:
            return
        # A real modem holds URCs while it executes a command, and while a command line is being
        # typed: a URC inside the echo ("A\r\n+CREG: 1\r\nT+CSCS=?") leaves gammu waiting for
        # a reply it has already received.
        if not self.busy and not self.line and not self.prompt:
            self.urc(self._next_flood_line(), log=False)
        self.flood_timer = self.loop.call_later(self.flood_interval, self._flood_tick)

    # ------------------------------------------------------------------
    # control interface (called by modemsim.ControlServer)

    def set_params(self, p: dict) -> dict:
        if "number" in p:  # checked first: a refused number changes nothing
            number = check_number(p["number"])
            if number is not None and self.network:
                self.network.check_free(self, number)
        was = self._creg_stat()
        if "send_delay" in p:
            self.send_delay = max(0.0, float(p["send_delay"]))
        if "reply_delay" in p:
            self.reply_delay = max(0.0, float(p["reply_delay"]))
        if "signal" in p:
            v = int(p["signal"])
            if not (0 <= v <= 31 or v == 99):
                raise ValueError("signal must be 0-31 or 99")
            self.signal = v
        if "registered" in p:
            self.registered = bool(p["registered"])
        if "roaming" in p:
            self.roaming = bool(p["roaming"])
        if "operator" in p:
            self.operator = str(p["operator"])
            self.operator_short = self.operator.replace(" ", "")[:16]
        if "operator_numeric" in p:
            self.operator_numeric = str(p["operator_numeric"])
        if "smsc" in p:
            self.smsc = str(p["smsc"])
        if "call_duration" in p:
            d = p["call_duration"]
            self.default_plan.duration = None if d is None else float(d)
        if "pdu" in p:
            self.pdu_supported = bool(p["pdu"])
            if not self.pdu_supported:
                self.cmgf = 1
        if "cnmi" in p:
            self.cnmi_supported = bool(p["cnmi"])
            if not self.cnmi_supported:
                self.cnmi = [0, 0, 0, 0, 0]
        if "creg" in p:
            v = p["creg"]
            if v is not None and int(v) not in range(0, 6):
                raise ValueError("creg must be 0-5 or null")
            self.creg_override = None if v is None else int(v)
        if "number" in p:
            self.number = number
        if "route_delay" in p:
            self.route_delay = max(0.0, float(p["route_delay"]))
        if "route_drop" in p:
            self.route_drop = bool(p["route_drop"])
        if self._creg_stat() != was:
            self._reg_urcs()
        self._release_held()
        return {}

    def fail_sends(self, count: int, cms: int) -> dict:
        self.fail_count = int(count)
        self.fail_cms = int(cms)
        return {}

    def fail_number(self, number: str, cms) -> dict:
        if cms is None:
            self.fail_numbers.pop(number, None)
        else:
            self.fail_numbers[number] = int(cms)
        return {"fail_numbers": dict(self.fail_numbers)}

    def hang(self, on: bool, after: str | None = None, deliver: bool = False) -> dict:
        if on and after:
            if after.upper() != "CMGS":
                raise ValueError("after must be CMGS")
            self.hang_after, self.hang_deliver = "CMGS", bool(deliver)
            return {}
        self.hang_after = None
        self.hung = bool(on)
        if self.pending:
            self.pending.cancel()
        self._reset_port_state()  # hung: input discarded; unhung: fresh start
        if self.master >= 0:
            self.loop.set_writer(self.master, None)
        self.at_log.write(event="hang", on=self.hung)
        return {}

    def urc_flood(self, interval: float, lines: list[str]) -> dict:
        interval = float(interval)
        if self.flood_timer:
            self.flood_timer.cancel()
            self.flood_timer = None
        if interval <= 0 or not lines:
            self.flood_lines, self.flood_interval = [], 0.0
            return {}
        self.flood_lines = [str(x) for x in lines]
        self.flood_interval = max(MIN_FLOOD_INTERVAL, interval)
        self.flood_timer = self.loop.call_later(self.flood_interval, self._flood_tick)
        return {}

    def unplug(self) -> dict:
        if self.master < 0:
            raise ValueError("already unplugged")
        if self.call:
            self._call_end(None, None, "unplug")
        if self.pending:
            self.pending.cancel()
        self.close_pty()
        self._reset_port_state()
        self.stats["unplugs"] += 1
        self.at_log.write(event="unplug")
        return {}

    def replug(self, path: str | None = None) -> dict:
        if self.master >= 0:
            raise ValueError("not unplugged")
        if path:
            if "/" in path or path in (".", ".."):
                raise ValueError("path must be a plain name inside the directory")
            self.link_name = path
        # a power cycle: settings back to defaults, the SIM locks again
        self.reset_settings()
        self.hung, self.hang_after = False, None
        self.sim_state = "SIM PIN" if self.pin_required else "READY"
        self.open_pty()
        self.at_log.write(event="replug", device=self.device, link=self.link_path)
        self._release_held()
        return {"device": self.device, "link": self.link_path}

    def set_pin(self, required: bool, pin: str | None) -> dict:
        if pin:
            self.pin = str(pin)
        self.pin_required = bool(required)
        self.sim_state = "SIM PIN" if required else "READY"
        self.pin_attempts = 3
        self._release_held()
        return {}

    def call_outcome(self, outcome: str, after: float = 2.0, dtmf: str = "",
                     duration=None, persist: bool = False) -> dict:
        if outcome not in CALL_OUTCOMES:
            raise ValueError(f"outcome must be one of {', '.join(CALL_OUTCOMES)}")
        plan = CallPlan(outcome=outcome, after=max(0.0, float(after)), dtmf=str(dtmf or ""),
                        duration=None if duration is None else float(duration),
                        persist=bool(persist))
        if plan.persist:
            self.default_plan = plan
            self.next_plan = None
        else:
            self.next_plan = plan
        return {}

    def status_reports(self, enabled: bool = True, status="delivered", delay: float = 0.2) -> dict:
        if isinstance(status, str):
            if status not in sms_pdu.REPORT_STATUS:
                raise ValueError(f"status must be one of {', '.join(sms_pdu.REPORT_STATUS)} "
                                 "or a TP-ST number")
            status = sms_pdu.REPORT_STATUS[status]
        status = int(status)
        if not 0 <= status <= 255:
            raise ValueError("TP-ST must be 0-255")
        self.sr_enabled, self.sr_status, self.sr_delay = bool(enabled), status, max(0.0, float(delay))
        return {"status": self.sr_status}

    def inject_sms(self, sender: str, text: str, unicode: bool = False, ref: int | None = None,
                   ref16: bool = False, only_parts=None) -> dict:
        if ref is None:
            ref = self.next_inbound_ref
            self.next_inbound_ref = (ref + 1) & 0xFF
        parts = sms_pdu.encode_deliver(sender, text, self.smsc, int(ref), force_ucs2=unicode,
                                       ref16=ref16)
        if only_parts is not None:
            wanted = {int(i) for i in only_parts}
            if not wanted or not wanted <= set(range(1, len(parts) + 1)):
                raise ValueError(f"parts must be numbers 1-{len(parts)}")
            parts = [p for p in parts if p.part in wanted]
        res = self._deliver_parts(sender, parts)
        self.stats["injected"] += 1
        self.at_log.write(event="inject", sender=sender, text=text, parts=len(parts),
                          indexes=res["indexes"], alphabet=parts[0].alphabet)
        return {"parts": len(parts), "indexes": res["indexes"], "alphabet": parts[0].alphabet,
                "ref": int(ref)}

    def inject_pdu(self, pdu_hex: str) -> dict:
        """Stores a PDU exactly as given (SMSC address first, as +CMGL prints it) in mem3, with
        +CMTI if CNMI asks: a message the network would never build, to test how a client
        copes with what a hostile or broken sender can still put on the SIM."""
        try:
            pdu = bytes.fromhex(pdu_hex)
        except ValueError:
            raise ValueError("pdu must be hex digits") from None
        if not pdu or len(pdu) > 255:
            raise ValueError("pdu must be 1-255 octets")
        now = _dt.datetime.now(_dt.timezone.utc)
        mem_name = self.cpms[2]
        mem = self.storages[mem_name]
        index = mem.free_index()
        if index is None:
            raise ValueError(f"storage {mem_name} full")
        tpdu_len = max(0, len(pdu) - 1 - pdu[0])
        mem.slots[index] = Stored(pdu, tpdu_len, 0, "", "", f"{now:%y/%m/%d,%H:%M:%S}+00")
        if self.cnmi[1] == 1:
            self.urc(f'+CMTI: "{mem_name}",{index}')
        self.stats["injected"] += 1
        self.at_log.write(event="inject_pdu", pdu=pdu_hex.upper(), mem=mem_name, index=index)
        return {"mem": mem_name, "index": index}

    def _deliver_parts(self, sender: str, parts: list[sms_pdu.DeliverPart]) -> dict:
        """An incoming SMS (injected or routed from another modem): +CMT when AT+CNMI <mt>
        is 2/3, else stored in mem3 (+CMTI if <mt> is 1).  ValueError if mem3 is full."""
        now = _dt.datetime.now(_dt.timezone.utc)
        scts = f"{now:%y/%m/%d,%H:%M:%S}+00"
        mt = self.cnmi[1]
        indexes: list[int] = []
        if mt in (2, 3):  # routed to the terminal, not stored
            for part in parts:
                if self.cmgf == 0:
                    self.urc(f"+CMT: ,{part.tpdu_len}\r\n{part.pdu.hex().upper()}")
                else:
                    self.urc(f'+CMT: "{sender}","","{scts}"\r\n{self._te_text(part.text)}')
            return {"mem": None, "indexes": indexes, "cmt": True}
        mem_name = self.cpms[2]
        mem = self.storages[mem_name]
        if mem.capacity - len(mem.slots) < len(parts):
            raise ValueError(f"storage {mem_name} full")
        for part in parts:
            index = mem.free_index()
            mem.slots[index] = Stored(part.pdu, part.tpdu_len, 0, sender, part.text, scts)
            indexes.append(index)
            if mt == 1:
                self.urc(f'+CMTI: "{mem_name}",{index}')
        return {"mem": mem_name, "indexes": indexes, "cmt": False}

    def deliver_routed(self, msg: "RoutedSms") -> dict:
        """Called by Network: msg arrives from another modem, through _deliver_parts."""
        if msg.ref is None:
            ref = self.next_inbound_ref
            self.next_inbound_ref = (ref + 1) & 0xFF
        else:
            ref = msg.ref
        parts = sms_pdu.encode_deliver_parts(msg.sender, msg.texts, msg.alphabet, self.smsc,
                                             ref, ref16=msg.ref_bits == 16)
        res = self._deliver_parts(msg.sender, parts)
        self.stats["routed_in"] += 1
        self.at_log.write(event="routed", from_modem=msg.src, sender=msg.sender,
                          text=msg.text, parts=len(parts), indexes=res["indexes"],
                          alphabet=parts[0].alphabet)
        return {**res, "parts": len(parts), "alphabet": parts[0].alphabet,
                "ref": ref if len(parts) > 1 else None}

    def status(self) -> dict:
        return {"device": self.device, "link": self.link_path if self.master >= 0 else None,
                "imei": self.imei, "imsi": self.imsi, "hung": self.hung,
                "plugged": self.master >= 0, "sim": self.sim_state,
                "registered": self._network_ok(), "signal": self.signal,
                "send_delay": self.send_delay, "call": CALL_STATES[self.call.stat] if self.call else None,
                "stored": {n: len(s.slots) for n, s in self.storages.items()},
                "messages": [{"mem": n, "index": i, "stat": m.stat,
                              "kind": "status_report" if m.report else "deliver",
                              "sender": m.sender, "text": m.text}
                             for n, s in self.storages.items() for i, m in sorted(s.slots.items())],
                "cnmi": list(self.cnmi), "number": self.number,
                "route_delay": self.route_delay, "route_drop": self.route_drop,
                **self.stats}

    def shutdown(self) -> None:
        if self.flood_timer:
            self.flood_timer.cancel()
        if self.pending:
            self.pending.cancel()
        self.close_pty()
        self.at_log.close()


# --------------------------------------------------------------------------
# The network between the simulated modems: SMS by subscriber number

NUMBER_RE = re.compile(r"^\+?[0-9]{1,20}$")
NO_NUMBER_SENDER = "+0000"  # originating address of a modem without a number


def check_number(number) -> str | None:
    """A subscriber number ('+32470000001' or national digits), or None for none."""
    if number is None or number == "":
        return None
    number = str(number).strip()
    if not NUMBER_RE.match(number):
        raise ValueError(f"bad subscriber number {number!r} (want +E.164 or digits)")
    return number


def number_key(number: str) -> str:
    """Comparison form: '+32...', '0032...' and '32...' are the same subscriber."""
    number = number.strip()
    if number.startswith("+"):
        return number[1:]
    if number.startswith("00"):
        return number[2:]
    return number


@dataclass
class RoutedSms:
    src: str              # sending modem
    dst: str              # receiving modem
    sender: str           # originating address the receiver sees
    to: str               # destination as the sender addressed it
    texts: list           # one text per original part
    alphabet: str         # gsm7 / 8bit / ucs2, as sent
    ref: int | None       # concatenation reference of a multipart original
    ref_bits: int | None  # 8 or 16
    queued: float
    held: bool = False

    @property
    def text(self) -> str:
        return "".join(self.texts)


class Network:
    """What the SMSC does between the simulated modems.

    A completed outgoing SMS (Modem._complete_sms) whose destination is the
    subscriber number of a simulated modem (itself included, as on a real
    network) is delivered to that modem's inbox after its route_delay,
    through the same code as inject_sms, with the sender's number (or
    NO_NUMBER_SENDER) as originating address and the original part split and
    concatenation reference.  The receiver's route_drop loses it; an
    unreachable receiver (unplugged, SIM locked, not registered) has it held
    until it becomes reachable.  Every step goes to sent.jsonl: route_queued,
    then routed, route_held or route_dropped.
    """

    def __init__(self, loop: Loop, sent_log: JsonLog):
        self.loop = loop
        self.sent_log = sent_log
        self.modems: dict[str, Modem] = {}
        self.held: dict[str, list[RoutedSms]] = {}

    def add(self, modem: Modem) -> None:
        if modem.number:
            self.check_free(modem, modem.number)
        self.modems[modem.name] = modem

    def owner(self, number: str) -> Modem | None:
        key = number_key(number)
        for m in self.modems.values():
            if m.number and number_key(m.number) == key:
                return m
        return None

    def check_free(self, modem: Modem, number: str) -> None:
        other = self.owner(number)
        if other is not None and other is not modem:
            raise ValueError(f"number {number} already belongs to modem {other.name}")

    def _log(self, event: str, msg: RoutedSms, **fields) -> None:
        self.sent_log.write(event=event, from_modem=msg.src, to_modem=msg.dst,
                            **{"from": msg.sender}, to=msg.to, text=msg.text,
                            parts=len(msg.texts), **fields)

    def submit(self, src: Modem, to: str, texts: list, alphabet: str, ref: int | None,
               ref_bits: int | None) -> None:
        dst = self.owner(to)
        if dst is None:
            return
        msg = RoutedSms(src.name, dst.name, src.number or NO_NUMBER_SENDER, to, list(texts),
                        alphabet, ref, ref_bits, time.monotonic())
        delay = dst.route_delay
        self._log("route_queued", msg, delay=delay)
        # never synchronous: the sender's +CMGS answer goes out first
        self.loop.call_later(delay, lambda: self._arrive(msg))

    def _arrive(self, msg: RoutedSms) -> None:
        dst = self.modems[msg.dst]
        if dst.route_drop:
            self._log("route_dropped", msg, reason="route_drop")
            return
        why = dst.mt_unreachable()
        if why:
            if not msg.held:
                msg.held = True
                self._log("route_held", msg, reason=why)
            self.held.setdefault(dst.name, []).append(msg)
            return
        try:
            res = dst.deliver_routed(msg)
        except ValueError as e:
            self._log("route_dropped", msg, reason=str(e))
            return
        self._log("routed", msg, delivered_parts=res["parts"], alphabet=res["alphabet"],
                  ref=res["ref"], mem=res["mem"], indexes=res["indexes"], cmt=res["cmt"],
                  held=msg.held, delay=round(time.monotonic() - msg.queued, 3))

    def release(self, dst: Modem) -> None:
        """dst may have become reachable: deliver what was held for it, in order."""
        if not self.held.get(dst.name) or dst.mt_unreachable():
            return
        msgs = self.held.pop(dst.name)

        def deliver() -> None:
            for msg in msgs:
                self._arrive(msg)
        self.loop.call_later(0, deliver)
