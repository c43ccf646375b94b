#!/usr/bin/python3
"""The simulator's AT behaviour, checked byte by byte on the pty (no gammu).

Covers: echo and ATE0, chained commands, junk/ESC handling, identity of two
modems, PIN lock, PDU send with length check / ESC cancel / send delay and
command ordering, concatenated 16-bit-reference reassembly out of order,
URC between AT+CMGS and the prompt, incoming SMS (CMTI, CMGR, CMGL, CMGD),
injected UCS-2 and partial concatenated SMS, status reports for TP-SRR (+CDS,
stored with +CDSI, text mode), a refused AT+CNMI, a forced +CREG state,
registration loss, voice outcomes with +CLCC reports, unplug/replug, and
reply latency.  Exit 0 pass, 1 fail.  About 10 s.
Run: /usr/bin/python3 tests/modemsim/test_at_raw.py [--keep]
"""

from __future__ import annotations

import errno
import os
import re
import select
import statistics
import sys
import time
import tty

from _testutil import Checker, Sim, cleanup, temp_dir

import sms_pdu

FINAL = re.compile(rb"\r\n(OK|ERROR|\+CM[ES] ERROR: [^\r]*|NO CARRIER|BUSY|NO ANSWER)\r\n$"
                   rb"|\r\n> $|^(OK|ERROR)\r\n$")


class Port:
    """A raw client end of the pty, like a serial port opened by a daemon."""

    def __init__(self, path: str):
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        tty.setraw(self.fd)

    def read_for(self, seconds: float, until=None) -> bytes:
        out = b""
        deadline = time.monotonic() + seconds
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or (until is not None and until(out)):
                return out
            r, _, _ = select.select([self.fd], [], [], left)
            if r:
                try:
                    chunk = os.read(self.fd, 4096)
                except BlockingIOError:
                    continue
                if not chunk:
                    return out
                out += chunk

    def cmd(self, line: str | bytes, timeout: float = 2.0) -> str:
        data = line.encode("latin-1") if isinstance(line, str) else line
        os.write(self.fd, data + (b"" if data.endswith((b"\r", b"\x1a", b"\x1b")) else b"\r"))
        return self.read_for(timeout, lambda b: FINAL.search(b) is not None).decode("latin-1")

    def dial(self, number: str, until: bytes, timeout: float = 2.0) -> str:
        os.write(self.fd, f"ATD{number};\r".encode())
        return self.read_for(timeout, lambda b: until in b).decode("latin-1")

    def close(self) -> None:
        os.close(self.fd)


def luhn_ok(number: str) -> bool:
    total = 0
    for i, d in enumerate(reversed(number)):
        v = int(d) * (2 if i % 2 else 1)
        total += v - 9 if v > 9 else v
    return total % 10 == 0


def main() -> int:
    keep = "--keep" in sys.argv
    check = Checker("test_at_raw")
    tmp = temp_dir("modemsim-raw-")
    sim = Sim.start(tmp, modems=["gsm0", "gsm1"])
    ctl = lambda name="gsm0", **kw: sim.control({"modem": name, **kw})  # noqa: E731
    port = Port(sim.device("gsm0"))
    try:
        check.section("echo, chaining, junk, ESC")
        r = port.cmd("AT")
        check(r == "AT\r\r\nOK\r\n", "echo on by default: 'AT\\r' + OK", r)
        r = port.cmd("AT+CMEE=1;+CREG=2")
        check(r.endswith("\r\nOK\r\n"), "AT+CMEE=1;+CREG=2 -> OK", r)
        r = port.cmd("ATE0")
        r = port.cmd("AT+CREG?;+CSQ")
        check(r == '\r\n+CREG: 2,1,"1A2B","3C4D"\r\n\r\n+CSQ: 20,0\r\n\r\nOK\r\n',
              "ATE0 stops echo; chained read commands each framed", r)
        check(port.cmd("AT+NOSUCH") == "\r\nERROR\r\n", "unknown command -> ERROR")
        check(port.cmd("\x00\xffgarbageAT+CSQ").endswith("+CSQ: 20,0\r\n\r\nOK\r\n"),
              "stray bytes before AT are ignored")
        r = port.cmd(b"AT+CGM\x1bAT+CGMI\r")
        check(r == "\r\nSIMCOM_Ltd\r\n\r\nOK\r\n", "ESC abandons a partial line", r)
        check(port.cmd("AT+CMGF=?") == "\r\n+CMGF: (0,1)\r\n\r\nOK\r\n", "test form answers")

        check.section("identity of two modems")
        p1 = Port(sim.device("gsm1"))
        p1.cmd("ATE0")
        imeis = [re.search(r"\d{15}", p.cmd("AT+CGSN")).group(0) for p in (port, p1)]
        imsis = [re.search(r"\d{15}", p.cmd("AT+CIMI")).group(0) for p in (port, p1)]
        check(imeis[0] != imeis[1] and all(luhn_ok(i) for i in imeis),
              f"distinct 15-digit IMEIs with a valid check digit {imeis}")
        check(imsis[0] != imsis[1], f"distinct IMSIs {imsis}")
        check("SIMCOM_SIM800" in p1.cmd("AT+CGMM") and '"Sim Net"' in p1.cmd("AT+COPS?"),
              "model SIMCOM_SIM800, operator 'Sim Net'")
        check('"20601"' in p1.cmd("AT+COPS=3,2;+COPS?"), "AT+COPS=3,2 gives the numeric name")

        check.section("SIM PIN")
        ctl("gsm1", cmd="pin", required=True, pin="4321")
        p1.cmd("AT+CMEE=1")
        check("+CPIN: SIM PIN" in p1.cmd("AT+CPIN?"), "AT+CPIN? -> SIM PIN")
        check("+CME ERROR: 11" in p1.cmd("AT+CIMI"), "AT+CIMI while locked -> +CME ERROR: 11")
        check("+CMS ERROR: 311" in p1.cmd("AT+CMGS=10"), "AT+CMGS while locked -> +CMS ERROR: 311")
        check("+CME ERROR: 16" in p1.cmd('AT+CPIN="0000"'), "wrong PIN -> +CME ERROR: 16")
        check(p1.cmd('AT+CPIN="4321"').endswith("OK\r\n") and "READY" in p1.cmd("AT+CPIN?"),
              "right PIN -> READY")
        p1.close()

        check.section("SMS-SUBMIT in PDU mode")
        pdu, n = sms_pdu.encode_submit("+32470000001", "raw one")[0]
        check(port.cmd(f"AT+CMGS={n + 1}") == "\r\n> ", "AT+CMGS=<n> -> prompt '\\r\\n> '")
        r = port.cmd(pdu.hex().upper() + "\x1a")
        check(r == "\r\n+CMS ERROR: 304\r\n", "length that does not match the TPDU -> 304", r)
        port.cmd(f"AT+CMGS={n}")
        r = port.cmd(pdu.hex()[:10] + "\x1b")
        check(r == "\r\nOK\r\n" and not sim.sms(), "ESC cancels the send", r)
        ctl(cmd="set", send_delay=0.4)
        port.cmd(f"AT+CMGS={n}")
        t0 = time.monotonic()
        os.write(port.fd, pdu.hex().encode() + b"\x1aAT+CSQ\r")
        r = port.read_for(2.0, lambda b: b.endswith(b"+CSQ: 20,0\r\n\r\nOK\r\n")).decode()
        took = time.monotonic() - t0
        check(r == "\r\n+CMGS: 0\r\n\r\nOK\r\n\r\n+CSQ: 20,0\r\n\r\nOK\r\n" and took >= 0.4,
              f"+CMGS after the send delay ({took:.2f} s), the queued AT+CSQ answered after", r)
        check(sim.sms()[-1]["text"] == "raw one", "decoded text 'raw one'")
        ctl(cmd="set", send_delay=0)

        check.section("concatenated, 16-bit reference, parts out of order")
        text = "sixteen-bit reference " * 10
        msgs = gammu_free_16bit_parts("+32470000002", text, ref=0x1234)
        for hexpdu, n in reversed(msgs):
            port.cmd(f"AT+CMGS={n}")
            r = port.cmd(hexpdu + "\x1a")
        done = [s for s in sim.sms() if s["to"] == "+32470000002"]
        check(len(done) == 1 and done[0]["text"] == text and done[0]["parts"] == len(msgs)
              and done[0]["ref"] == 0x1234, f"reassembled from {len(msgs)} parts", done)

        check.section("URC between AT+CMGS and the prompt")
        ctl(cmd="urc_flood", interval=5, lines=["^RSSI: 20"])
        r = port.cmd(f"AT+CMGS={n}")
        check(r == "\r\n^RSSI: 20\r\n\r\n> ", "the URC precedes the prompt", r)
        port.cmd("\x1b")
        ctl(cmd="urc_flood", interval=0)

        check.section("incoming SMS")
        port.cmd("AT+CNMI=2,1,0,0,0")
        os.write(port.fd, b"")
        ctl(cmd="inject_sms", **{"from": "+32470100001", "text": "ACK 77"})
        r = port.read_for(1.0, lambda b: b.endswith(b"\r\n")).decode()
        check(r == '\r\n+CMTI: "SM",1\r\n', "+CMTI announces index 1", r)
        r = port.cmd("AT+CMGR=1")
        m = re.search(r"\+CMGR: 0,,(\d+)\r\n([0-9A-F]+)\r\n", r)
        check(m is not None, "AT+CMGR=1 gives an unread PDU", r)
        if m:
            raw = bytes.fromhex(m.group(2))
            check(len(raw) - 1 - raw[0] == int(m.group(1)), "the length counts the TPDU only")
        check("+CMGL: 1,1,," in port.cmd("AT+CMGL=4"), "now listed as read")
        port.cmd("AT+CMGF=1")
        r = port.cmd('AT+CMGL="ALL"')
        check('"REC READ","+32470100001"' in r and "\r\nACK 77\r\n" in r, "text mode listing", r)
        ctl(cmd="inject_sms", **{"from": "+32470100002", "text": "Ωμέγα"})
        port.read_for(0.3)
        r = port.cmd('AT+CSCS="UCS2";+CMGR=2')
        check("\r\n03A903BC03AD03B303B1\r\n" in r, "text mode with CSCS=UCS2 gives hex UCS-2", r)
        port.cmd('AT+CSCS="IRA";+CMGD=2')
        port.cmd("AT+CMGF=0;+CMGD=1")
        check(port.cmd("AT+CMGL=4") == "\r\nOK\r\n", "deleted")
        check(port.cmd("AT+CMGR=99") == "\r\n+CMS ERROR: 321\r\n", "bad index -> 321")

        check.section("injected SMS: UCS-2, 16-bit reference, some parts only")
        r = ctl(cmd="inject_sms", **{"from": "MyBank", "text": "x" * 200, "unicode": True,
                                     "ref": 0x1234, "ref16": True, "parts": [2]})
        check(r["parts"] == 1 and r["alphabet"] == "ucs2" and r["ref"] == 0x1234,
              "one UCS-2 part of a 16-bit-reference set stored", r)
        port.read_for(0.2)
        stored = sim.stats("gsm0")["messages"]
        check(len(stored) == 1 and stored[0]["kind"] == "deliver"
              and stored[0]["sender"] == "MyBank", "stats lists the stored message", stored)
        m = re.search(r"\+CMGR: 0,,\d+\r\n([0-9A-F]+)", port.cmd(f"AT+CMGR={r['indexes'][0]}"))
        raw = bytes.fromhex(m.group(1)) if m else b""
        check(b"\x06\x08\x04\x12\x34\x04\x02" in raw, "its UDH: 16-bit ref 0x1234, part 2 of 4",
              raw.hex())
        port.cmd(f"AT+CMGD={r['indexes'][0]}")

        check.section("status reports (TP-SRR)")
        ctl(cmd="status_reports", status="delivered", delay=0.05)
        srr_pdu, srr_n = sms_pdu.encode_submit("+32470000003", "report me")[0]
        srr_pdu = bytearray(srr_pdu)
        srr_pdu[1] |= 0x20  # TP-SRR (the SMSC field is the single octet 00)
        port.cmd("AT+CNMI=2,1,0,1,0")
        port.cmd(f"AT+CMGS={srr_n}")
        r = port.cmd(srr_pdu.hex().upper() + "\x1a")
        mr = int(re.search(r"\+CMGS: (\d+)", r).group(1)) if "+CMGS" in r else -1
        r = port.read_for(1.0, lambda b: re.search(rb"\+CDS: \d+\r\n[0-9A-F]+\r\n", b)
                          is not None).decode()
        m = re.search(r"\+CDS: (\d+)\r\n([0-9A-F]+)\r\n", r)
        rep = sms_pdu.decode_status_report(bytes.fromhex(m.group(2))) if m else {}
        check(rep.get("mr") == mr and rep.get("recipient") == "+32470000003"
              and rep.get("status") == 0 and int(m.group(1)) == len(bytes.fromhex(m.group(2)))
              - 1 - bytes.fromhex(m.group(2))[0], "<ds> 1: +CDS with the report, TP-MR and TP-ST 0",
              (r, rep, mr))
        ctl(cmd="status_reports", status="failed", delay=0.05)
        port.cmd("AT+CNMI=2,1,0,2,0")
        port.cmd(f"AT+CMGS={srr_n}")
        r = port.cmd(srr_pdu.hex().upper() + "\x1a")
        mr = int(re.search(r"\+CMGS: (\d+)", r).group(1)) if "+CMGS" in r else -1
        r = port.read_for(1.0, lambda b: b.endswith(b"\r\n") and b"+CDSI" in b).decode()
        m = re.search(r'\+CDSI: "SM",(\d+)', r)
        check(m is not None, "<ds> 2: stored, announced with +CDSI", r)
        idx = int(m.group(1)) if m else 1
        r = port.cmd(f"AT+CMGR={idx}")
        m = re.search(r"\+CMGR: 0,,\d+\r\n([0-9A-F]+)", r)
        rep = sms_pdu.decode_status_report(bytes.fromhex(m.group(1))) if m else {}
        check(rep.get("mr") == mr and rep.get("status") == 0x43,
              "AT+CMGR reads the stored report: TP-ST 0x43 (failed)", (r, rep))
        port.cmd("AT+CMGF=1")
        r = port.cmd("AT+CMGL=\"ALL\"")
        check(f',6,{mr},"+32470000003",145,' in r and r.rstrip().endswith("OK")
              and ",67\r\n" in r, "text mode lists it as <fo>,<mr>,<ra>,<tora>,...,<st>", r)
        port.cmd(f"AT+CMGF=0;+CMGD={idx}")
        check(sim.stats("gsm0")["status_reports"] == 2, "stats count 2 status reports")
        ctl(cmd="status_reports", enabled=False)

        check.section("refused AT+CNMI, forced +CREG")
        ctl(cmd="set", cnmi=False)
        check(port.cmd("AT+CNMI=?") == "\r\nERROR\r\n", "AT+CNMI=? -> ERROR when refused")
        ctl(cmd="set", cnmi=True)
        ctl(cmd="set", creg=3)
        check("+CREG: 2,3" in port.cmd("AT+CREG?"), "creg 3: registration denied")
        port.cmd(f"AT+CMGS={srr_n}")
        check("+CMS ERROR: 331" in port.cmd(msgs_submit_hex(srr_n) + "\x1a"),
              "no sending while denied")
        ctl(cmd="set", creg=None)
        check("+CREG: 2,1" in port.cmd("AT+CREG?"), "creg null: home again")

        check.section("registration loss")
        port.cmd("AT+CREG=1")
        ctl(cmd="set", registered=False)
        r = port.read_for(1.0, lambda b: b.endswith(b"\r\n")).decode()
        check(r == "\r\n+CREG: 0\r\n", "+CREG: 0 URC", r)
        port.cmd(f"AT+CMGS={n}")
        check(port.cmd(msgs[0][0] + "\x1a") == "\r\n+CMS ERROR: 331\r\n",
              "sending without network -> +CMS ERROR: 331")
        ctl(cmd="set", registered=True, signal=7)
        port.read_for(0.2)
        check("+CSQ: 7,0" in port.cmd("AT+CSQ"), "signal set to 7")

        check.section("voice calls")
        port.cmd("AT+CLCC=1")
        ctl(cmd="call_outcome", outcome="busy", after=0.2)
        r = port.dial("+32470000009", until=b"BUSY\r\n")
        check(r.startswith("\r\nOK\r\n") and ",6,0,0," in r and r.endswith("BUSY\r\n"),
              "busy -> OK, then +CLCC dialing, disconnected, BUSY", r)
        ctl(cmd="call_outcome", outcome="reject", after=0.4)
        r = port.dial("+32470000009", until=b"NO CARRIER\r\n")
        check(",2,0,0," in r and ",3,0,0," in r and r.endswith("NO CARRIER\r\n"),
              "reject -> dialing, alerting, then NO CARRIER", r)
        ctl(cmd="call_outcome", outcome="no_answer", after=0.1)
        r = port.dial("+32470000009", until=b",3,0,0,\"+32470000009\",145\r\n")
        r = port.cmd("ATH")
        check(",6,0,0," in r and r.endswith("\r\nOK\r\n"), "ATH ends an alerting call", r)
        outcomes = [c["outcome"] for c in sim.calls() if c["event"] == "outcome"]
        check(outcomes == ["busy", "rejected", "no_answer"], f"outcomes logged {outcomes}")

        check.section("latency")
        port.cmd("AT+CLCC=0")
        samples = []
        for _ in range(50):
            t0 = time.monotonic()
            port.cmd("AT")
            samples.append(time.monotonic() - t0)
        med = statistics.median(samples)
        check(med < 0.005, f"median AT round trip {med * 1000:.2f} ms")

        check.section("unplug / replug")
        ctl(cmd="unplug")
        r, _, _ = select.select([port.fd], [], [], 1.0)
        eof = os.read(port.fd, 10) == b""  # a hung-up tty reads as end of file
        try:
            os.write(port.fd, b"AT\r")
            err = None
        except OSError as e:
            err = e.errno
        check(r and eof and err == errno.EIO, "the open client fd sees HUP/EOF, writes get EIO",
              (r, eof, err))
        port.close()
        ctl(cmd="replug")
        port = Port(sim.device("gsm0"))
        r = port.cmd("AT+CSQ")
        check(r.startswith("AT+CSQ\r") and "+CSQ: 7,0" in r,
              "replugged: works, settings back to defaults (echo on), network state kept", r)
        bad = sim.control({"cmd": "stats", "modem": "nope"}, check=False)
        check(not bad["ok"] and "unknown modem" in bad["error"], "control errors are replies")
        st = sim.stats("gsm0")
        check(st["sms"] == 4 and st["parts"] == 3 + len(msgs) and st["calls"] == 3,
              f"stats: {st['sms']} sms, {st['parts']} parts, {st['calls']} calls")
    finally:
        port.close()
        code = sim.stop()
        check(code == 0 and not os.path.lexists(os.path.join(tmp, "gsm0"))
              and not os.path.exists(os.path.join(tmp, "control.sock")),
              "SIGTERM: exit 0, symlinks and control socket removed")
        cleanup(tmp, keep or check.failed)
    return check.result()


def msgs_submit_hex(n: int) -> str:
    pdu, m = sms_pdu.encode_submit("+32470000003", "report me")[0]
    assert m == n
    return pdu.hex().upper()


def gammu_free_16bit_parts(to: str, text: str, ref: int) -> list[tuple[str, int]]:
    """SMS-SUBMIT parts with a 16-bit concatenation IE, built by hand."""
    septets = sms_pdu.gsm7_septets(text)
    chunks = [septets[i:i + 152] for i in range(0, len(septets), 152)]
    out = []
    for i, chunk in enumerate(chunks, 1):
        udh = bytes([6, 0x08, 4, ref >> 8, ref & 0xFF, len(chunks), i])
        skip = (len(udh) * 8 + 6) // 7
        ud = bytearray(sms_pdu.pack_septets([0] * skip + chunk))
        ud[:len(udh)] = udh
        toa, digits = sms_pdu.encode_address(to)
        tpdu = bytes([0x41, 0, len(to) - 1, toa]) + digits + bytes([0, 0, skip + len(chunk)]) + ud
        out.append(("00" + tpdu.hex().upper(), len(tpdu)))
    return out


if __name__ == "__main__":
    sys.exit(main())
