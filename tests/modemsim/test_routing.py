#!/usr/bin/python3
"""Simulated modems reaching each other by subscriber number (path self-tests).

Raw AT on the ptys (no gammu): AT+CNUM with and without a number, --number
and control `set number` (duplicates and bad numbers refused, CLI errors),
an SMS from one modem to another's number arriving as +CMTI / stored / read
back in text and PDU mode with the sender's number as originating address,
the sender fallback +0000, '0032...' addressing, a message to itself, a number
nobody has (not routed), 3-part GSM 7-bit and 16-bit-reference concatenation
kept as parts with the same reference, UCS-2 and 8-bit data kept, +CMT
routing, route_delay, route_drop, a receiver that is unplugged (held, then
delivered on replug), a full SIM (dropped).
Then, if the gammu CLI is installed: gammu sendsms from one modem to the
other's number, gammu getallsms on the other shows it (single and 3-part).

Exit 0 pass, 1 fail (no skip: without gammu only its part is left out).
About 3 s, plus ~15 s with gammu.
Run: /usr/bin/python3 tests/modemsim/test_routing.py [--keep]
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

from _testutil import Checker, Sim, cleanup, gammu_binary, run_gammu, temp_dir, \
    write_gammurc
from test_at_raw import Port

import sms_pdu

A0, A1, A3 = "+32470000001", "+32470000002", "+32470000003"
SIMULATOR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "modemsim.py")
LONG = ("Path self-test [a0->a1] " + "".join(f"chunk {i:02d} of the long test message; "
                                              for i in range(12)))[:420]


def submit(port: Port, to: str, text: str, ucs2: bool = False, ref: int = 0) -> list[str]:
    """Send text as PDU-mode SMS-SUBMIT part(s); the modem's answers."""
    answers = []
    for pdu, n in sms_pdu.encode_submit(to, text, ref=ref, force_ucs2=ucs2):
        answers.append(port.cmd(f"AT+CMGS={n}") + port.cmd(pdu.hex().upper() + "\x1a"))
    return answers


def submit_raw(port: Port, tpdu: bytes) -> str:
    port.cmd(f"AT+CMGS={len(tpdu)}")
    return port.cmd("00" + tpdu.hex().upper() + "\x1a")


def eight_bit_submit(to: str, data: bytes) -> bytes:
    toa, digits = sms_pdu.encode_address(to)
    return (bytes([0x01, 0, len(to.lstrip("+")), toa]) + digits
            + bytes([0x00, 0x04, len(data)]) + data)


def ref16_submits(to: str, text: str, ref: int) -> list[bytes]:
    septets = sms_pdu.gsm7_septets(text)
    chunks = [septets[i:i + 152] for i in range(0, len(septets), 152)]
    toa, digits = sms_pdu.encode_address(to)
    out = []
    for i, chunk in enumerate(chunks, 1):
        udh = bytes([6, 0x08, 4, ref >> 8, ref & 0xFF, len(chunks), i])
        skip = (len(udh) * 8 + 6) // 7
        ud = bytearray(sms_pdu.pack_septets([0] * skip + chunk))
        ud[:len(udh)] = udh
        out.append(bytes([0x41, 0, len(to) - 1, toa]) + digits
                   + bytes([0, 0, skip + len(chunk)]) + ud)
    return out


def read_pdus(port: Port, indexes: list[int]) -> list[dict]:
    out = []
    for i in indexes:
        r = port.cmd(f"AT+CMGR={i},1")
        lines = [x for x in r.split("\r\n") if x and not x.startswith(("+CMGR", "OK"))]
        out.append(sms_pdu.decode_deliver(bytes.fromhex(lines[-1])))
    return out


def raw_part(check: Checker, tmp: str) -> None:
    check.section("CLI: --number errors")
    for bad, why in ((["--number", "zz=+32470000009"], "unknown modem"),
                     (["--number", "a0=+32abc"], "bad number"),
                     (["--number", "a0=+32470000009", "--number", "a1=0032470000009"],
                      "the same number twice")):
        p = subprocess.run(["/usr/bin/python3", SIMULATOR, "--dir", os.path.join(tmp, "bad"),
                            "--modem", "a0", "--modem", "a1", *bad], capture_output=True,
                           text=True, timeout=10)
        check(p.returncode == 2 and "--number" in p.stderr, f"refused: {why}", p.stderr)

    sim = Sim.start(os.path.join(tmp, "raw"), modems=["a0", "a1", "a2"],
                    numbers={"a0": A0, "a1": A1})
    ctl = lambda name, **kw: sim.control({"modem": name, **kw})  # noqa: E731
    p0, p1, p2 = (Port(sim.device(n)) for n in ("a0", "a1", "a2"))
    try:
        for p in (p0, p1, p2):
            p.cmd("ATE0")

        check.section("AT+CNUM and the number setting")
        r = p0.cmd("AT+CNUM")
        check(r == f'\r\n+CNUM: "","{A0}",145\r\n\r\nOK\r\n', "a0: +CNUM with its number", r)
        r = p2.cmd("AT+CNUM")
        check(r == "\r\nOK\r\n", "a2 (no number): bare OK", r)
        check(p2.cmd("AT+CNUM=?") == "\r\nOK\r\n", "AT+CNUM=? -> OK")
        ctl("a2", cmd="set", number=A3)
        check(f'"{A3}",145' in p2.cmd("AT+CNUM") and sim.stats("a2")["number"] == A3,
              "set number: AT+CNUM and stats follow")
        bad = sim.control({"cmd": "set", "modem": "a2", "number": A1, "signal": 3}, check=False)
        check(not bad["ok"] and "a1" in bad["error"] and sim.stats("a2")["signal"] == 20,
              "a number another modem has is refused, nothing else changed", bad)
        bad = sim.control({"cmd": "set", "modem": "a2", "number": "12-34"}, check=False)
        check(not bad["ok"], "a malformed number is refused", bad)
        ctl("a2", cmd="set", number=None)
        check(p2.cmd("AT+CNUM") == "\r\nOK\r\n", "number null clears it")
        ctl("a2", cmd="pin", required=True, pin="1111")
        p2.cmd("AT+CMEE=1")
        check("+CME ERROR: 11" in p2.cmd("AT+CNUM"), "locked SIM: +CME ERROR: 11")
        ctl("a2", cmd="pin", required=False)

        check.section("a0 -> a1 by number: +CMTI, text-mode read, sender = a0's number")
        p1.cmd("AT+CNMI=2,1,0,0,0")
        t0 = time.monotonic()
        r = submit(p0, A1, "path test 1")[0]
        check("+CMGS:" in r and r.endswith("OK\r\n"), "a0's send is accepted", r)
        urc = p1.read_for(2, lambda b: b"+CMTI" in b).decode()
        took = time.monotonic() - t0
        check(urc == '\r\n+CMTI: "SM",1\r\n', f"a1 gets +CMTI: \"SM\",1 ({took * 1000:.0f} ms)",
              urc)
        r = p1.cmd("AT+CMGF=1;+CMGR=1")
        check(f'"REC UNREAD","{A0}"' in r and "\r\npath test 1\r\n" in r,
              "a1 reads it: from +32470000001, 'path test 1'", r)
        p1.cmd("AT+CMGF=0")
        ev = sim.wait_routed(1)
        check(len(ev) == 1 and ev[0]["from_modem"] == "a0" and ev[0]["to_modem"] == "a1"
              and ev[0]["from"] == A0 and ev[0]["to"] == A1 and ev[0]["text"] == "path test 1"
              and ev[0]["indexes"] == [1] and ev[0]["mem"] == "SM" and not ev[0]["held"],
              "sent.jsonl: routed a0 -> a1 with mem SM index 1", ev)
        q = sim.routed(event="route_queued")
        check(len(q) == 1 and q[0]["delay"] == 0 and q[0]["mono"] <= ev[0]["mono"],
              "sent.jsonl: route_queued first", q)
        sms = sim.sms("a0")
        check(sms and sms[-1]["mono"] <= q[0]["mono"], "after the sender's own sms record")
        st = sim.stats("a1")
        check(st["routed_in"] == 1 and st["injected"] == 0, "a1 stats: routed_in 1")

        check.section("fallback sender, 0032 addressing, self, unknown number")
        submit(p2, "0032470000002", "from a numberless modem")
        sim.wait_routed(2)
        m = sim.inbox("a1")[-1]
        check(m["sender"] == "+0000" and m["text"] == "from a numberless modem",
              "a2 has no number: a1 sees +0000; '0032...' matches '+32...'", m)
        p0.cmd("AT+CNMI=2,1,0,0,0")
        r = submit(p0, A0, "to myself")[0]
        # the +CMTI follows the +CMGS answer at once, maybe in the same read
        urc = r if "+CMTI" in r else p0.read_for(2, lambda b: b"+CMTI" in b).decode()
        check('+CMTI: "SM",1' in urc, "a0 -> its own number arrives at a0", urc)
        sim.wait_routed(3)
        before = len(sim.sent_events())
        submit(p0, "+32470000099", "nobody")
        time.sleep(0.2)
        new = sim.sent_events()[before:]
        check([e["event"] for e in new] == ["part", "sms"],
              "a number no modem has: sent as before, no routing", new)

        check.section("multipart kept as parts")
        n_before = len(sim.inbox("a1"))
        submit(p0, A1, LONG, ref=77)
        got = sim.wait_routed(3, to_modem="a1")[-1]
        check(got["parts"] == 3 and got["delivered_parts"] == 3 and got["ref"] == 77
              and got["text"] == LONG and len(got["indexes"]) == 3,
              "3 GSM 7-bit parts routed as 3 parts with reference 77", got)
        pdus = read_pdus(p1, got["indexes"])
        check([d["concat"] for d in pdus] == [(77, 3, i, 8) for i in (1, 2, 3)]
              and all(d["sender"] == A0 and d["alphabet"] == "gsm7" for d in pdus)
              and "".join(d["text"] for d in pdus) == LONG,
              "stored SMS-DELIVERs carry UDH 00 03 4D 03 0i and join to the text",
              [d["concat"] for d in pdus])
        sent_parts = [p["text"] for p in sim.parts() if p["ref"] == 77]
        check([d["text"] for d in pdus] == sent_parts, "each part has the sent part's text")
        for tpdu in ref16_submits(A1, LONG[:300], 0xBEEF):
            submit_raw(p0, tpdu)
        got = sim.wait_routed(4, to_modem="a1")[-1]
        pdus = read_pdus(p1, got["indexes"])
        check([d["concat"] for d in pdus] == [(0xBEEF, 2, 1, 16), (0xBEEF, 2, 2, 16)],
              "16-bit reference 0xBEEF kept (UDH 08)", [d["concat"] for d in pdus])
        check(len(sim.inbox("a1")) == n_before + 5, "a1 holds 5 more entries")

        check.section("alphabets: UCS-2, 8-bit")
        uni = "Ωμέγα ✓ 日本 path"
        submit(p0, A1, uni, ucs2=True)
        got = sim.wait_routed(5, to_modem="a1")[-1]
        d = read_pdus(p1, got["indexes"])[0]
        check(d["alphabet"] == "ucs2" and d["text"] == uni and got["alphabet"] == "ucs2",
              "UCS-2 stays UCS-2", d)
        data = bytes(range(0x80, 0x90))
        submit_raw(p0, eight_bit_submit(A1, data))
        got = sim.wait_routed(6, to_modem="a1")[-1]
        d = read_pdus(p1, got["indexes"])[0]
        check(d["alphabet"] == "8bit" and d["text"].encode("latin-1") == data,
              "8-bit data stays 8-bit, same octets", d)
        p1.cmd("AT+CMGD=1,4")

        check.section("+CMT routing (AT+CNMI=2,2)")
        p1.cmd("AT+CNMI=2,2,0,0,0")
        submit(p0, A1, "direct")
        urc = p1.read_for(2, lambda b: b"+CMT:" in b and b.endswith(b"\r\n")
                          and b.count(b"\r\n") >= 3).decode()
        lines = [x for x in urc.split("\r\n") if x]
        ok = len(lines) == 2 and lines[0].startswith("+CMT: ,")
        d = sms_pdu.decode_deliver(bytes.fromhex(lines[1])) if ok else {}
        check(ok and d["text"] == "direct" and d["sender"] == A0,
              "a1 gets +CMT with the PDU, nothing stored", urc)
        # (the log line follows the URC: wait for it)
        check(sim.wait_routed(8)[-1]["cmt"] and not sim.inbox("a1"), "routed event says cmt")
        p1.cmd("AT+CNMI=2,1,0,0,0")

        check.section("route_delay")
        ctl("a1", cmd="set", route_delay=1.0)
        n = len(sim.routed())
        t0 = time.monotonic()
        submit(p0, A1, "slow path")
        time.sleep(0.5)
        check(len(sim.routed()) == n and sim.routed(event="route_queued")[-1]["delay"] == 1.0,
              "queued with delay 1.0, not there after 0.5 s")
        urc = p1.read_for(3, lambda b: b"+CMTI" in b).decode()
        took = time.monotonic() - t0
        got = sim.wait_routed(n + 1)[-1]
        check("+CMTI" in urc and 0.95 <= took < 2.0 and got["delay"] >= 1.0,
              f"arrives after {took:.2f} s (logged delay {got['delay']})", got)
        ctl("a1", cmd="set", route_delay=0)

        check.section("route_drop (dead SIM)")
        ctl("a1", cmd="set", route_drop=True)
        held = len(sim.inbox("a1"))
        r = submit(p0, A1, "into the void")[0]
        check("+CMGS:" in r, "the sender still gets +CMGS (the network accepted it)", r)
        drop = sim.wait_routed(1, event="route_dropped")[-1]
        urc = p1.read_for(0.3)
        check(drop["reason"] == "route_drop" and drop["text"] == "into the void"
              and urc == b"" and len(sim.inbox("a1")) == held,
              "route_dropped logged, no +CMTI, nothing stored", drop)
        check(sim.stats("a1")["route_drop"] is True, "stats shows route_drop")
        ctl("a1", cmd="set", route_drop=False)

        check.section("receiver unplugged: held until replug")
        p1.close()
        ctl("a1", cmd="unplug")
        n = len(sim.routed())
        submit(p0, A1, "wait for me")
        ev = sim.wait_routed(1, event="route_held")[-1]
        check(ev["reason"] == "unplugged" and len(sim.routed()) == n, "route_held: unplugged", ev)
        ctl("a1", cmd="replug")
        got = sim.wait_routed(n + 1)[-1]
        check(got["held"] and got["text"] == "wait for me" and any(
            m["text"] == "wait for me" for m in sim.inbox("a1")),
            "delivered after replug (routed, held=true)", got)
        ctl("a1", cmd="set", registered=False)
        submit(p0, A1, "no network")
        ev = sim.wait_routed(2, event="route_held")[-1]
        check(ev["reason"] == "not registered", "not registered: held too", ev)
        ctl("a1", cmd="set", registered=True)
        got = sim.wait_routed(n + 2)[-1]
        check(got["text"] == "no network", "delivered once registered again", got)

        check.section("receiver's SIM full")
        p1 = Port(sim.device("a1"))
        p1.cmd("ATE0")
        p1.cmd("AT+CMGD=1,4")
        for i in range(30):
            ctl("a1", cmd="inject_sms", **{"from": "+32470999999", "text": f"filler {i}"})
        submit(p0, A1, "no room")
        drop = sim.wait_routed(2, event="route_dropped")[-1]
        check(drop["reason"] == "storage SM full", "route_dropped: storage SM full", drop)
    finally:
        for p in (p0, p1, p2):
            try:
                p.close()
            except OSError:
                pass
        code = sim.stop()
        check(code == 0, "simulator exits 0")


def gammu_part(check: Checker, tmp: str) -> None:
    sim = Sim.start(os.path.join(tmp, "gammu"), modems=["g0", "g1"], send_delay=0.2,
                    numbers={"g0": A0, "g1": A1})
    try:
        rc0 = write_gammurc(os.path.join(tmp, "gammurc0"), sim.device("g0"))
        rc1 = write_gammurc(os.path.join(tmp, "gammurc1"), sim.device("g1"))

        check.section("gammu sendsms on g0 to g1's number")
        code, out, secs = run_gammu(rc0, "sendsms", "TEXT", A1, "-text", "self-test 4711")
        check(code == 0, f"sendsms exits 0 ({secs:.1f} s)", out)
        got = sim.wait_routed(1, timeout=5)
        check(got[-1]["from_modem"] == "g0" and got[-1]["to_modem"] == "g1"
              and got[-1]["text"] == "self-test 4711", "routed g0 -> g1", got)
        code, out, secs = run_gammu(rc0, "sendsms", "TEXT", A1, "-len", "420", "-text", LONG)
        check(code == 0, f"sendsms -len 420 exits 0 ({secs:.1f} s)", out)
        got = sim.wait_routed(2, timeout=5)
        check(got[-1]["parts"] == 3 and got[-1]["text"] == LONG, "3 parts routed", got[-1])

        check.section("gammu getallsms on g1")
        code, out, secs = run_gammu(rc1, "getallsms")
        check(code == 0, f"getallsms exits 0 ({secs:.1f} s)", out)
        check("self-test 4711" in out and A0 in out,
              "g1 shows 'self-test 4711' from +32470000001", out)
        check("part 3 of 3" in out and LONG[:60] in out,
              "g1 shows the 3-part message with its concatenation header", out)
    finally:
        sim.stop()


def main() -> int:
    keep = "--keep" in sys.argv
    check = Checker("test_routing")
    tmp = temp_dir("modemsim-routing-")
    try:
        raw_part(check, tmp)
        if gammu_binary():
            gammu_part(check, tmp)
        else:
            print("  (gammu not installed: its part is left out)")
    finally:
        cleanup(tmp, keep or check.failed)
    return check.result()


if __name__ == "__main__":
    sys.exit(main())
