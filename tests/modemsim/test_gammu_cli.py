#!/usr/bin/python3
"""Proof that the simulator speaks AT like a real modem: drive it with gammu.

Runs the real gammu 1.42 CLI (libgammu, `connection = at`) against one
simulated modem and asserts on what the simulator decoded:
  identify (IMEI, manufacturer), sendsms GSM 7-bit, sendsms -unicode (UCS-2),
  sendsms -len 400 (three concatenated parts, extension characters),
  getallsms after inject_sms (GSM 7-bit and concatenated UCS-2 SMS-DELIVER),
  dialvoice (call reaches "answered" in the simulator).

Exit 0 pass, 1 fail, 77 skip (no gammu binary).  About 30 s: every gammu
call spends ~4 s in libgammu's own init dialogue.
Run: /usr/bin/python3 tests/modemsim/test_gammu_cli.py [--keep]
"""

from __future__ import annotations

import os
import sys

from _testutil import SKIP, Checker, Sim, cleanup, gammu_binary, run_gammu, temp_dir, \
    write_gammurc

TO = "+32470000001"
UNICODE_TEXT = "Ωμέγα ✓ 日本"
# 400 characters including three extension-table characters (2 septets each):
# 403 septets, so gammu must split it into 3 parts of <= 153 septets.
LONG_TEXT = ("Long alert [db01] {disk} 95€ full; " + "".join(
    f"line {i:03d} of the long message. " for i in range(14)))[:400]
assert len(LONG_TEXT) == 400


def main() -> int:
    if not gammu_binary():
        print("SKIP: gammu binary not found (apt-get install gammu)")
        return SKIP
    keep = "--keep" in sys.argv
    check = Checker("test_gammu_cli")
    tmp = temp_dir("modemsim-gammu-")
    sim = Sim.start(tmp, modems=["gsm0"], send_delay=0.2)
    try:
        rc = write_gammurc(os.path.join(tmp, "gammurc"), sim.device("gsm0"))
        imei = sim.stats("gsm0")["imei"]

        check.section("gammu --identify")
        code, out, secs = run_gammu(rc, "--identify")
        print("    " + out.strip().replace("\n", "\n    "))
        check(code == 0, f"identify exits 0 ({secs:.1f} s)", out)
        check(imei in out, f"identify shows the simulator's IMEI {imei}")
        check("SIMCOM_Ltd" in out, "identify shows manufacturer SIMCOM_Ltd")

        check.section("gammu sendsms TEXT (GSM 7-bit)")
        code, out, secs = run_gammu(rc, "sendsms", "TEXT", TO, "-text", "hello")
        check(code == 0, f"sendsms exits 0 ({secs:.1f} s)", out)
        got = sim.wait_sms(1, timeout=5)
        check(got[-1]["to"] == TO and got[-1]["text"] == "hello",
              "simulator decoded to=+32470000001 text='hello'", got[-1])
        check(got[-1]["dcs"] == "gsm7" and got[-1]["parts"] == 1, "one GSM 7-bit part")

        check.section("gammu sendsms TEXT -unicode")
        code, out, secs = run_gammu(rc, "sendsms", "TEXT", TO, "-unicode", "-text", UNICODE_TEXT)
        check(code == 0, f"sendsms -unicode exits 0 ({secs:.1f} s)", out)
        got = sim.wait_sms(2, timeout=5)
        check(got[-1]["text"] == UNICODE_TEXT, f"decoded text is exactly {UNICODE_TEXT!r}",
              got[-1]["text"])
        check(got[-1]["dcs"] == "ucs2", "sent as UCS-2", got[-1]["dcs"])

        check.section("gammu sendsms TEXT -len 400 (concatenated)")
        code, out, secs = run_gammu(rc, "sendsms", "TEXT", TO, "-len", "400", "-text", LONG_TEXT)
        check(code == 0, f"multipart sendsms exits 0 ({secs:.1f} s)", out)
        got = sim.wait_sms(3, timeout=5)
        check(got[-1]["text"] == LONG_TEXT, "reassembled text equals the 400 characters sent",
              got[-1]["text"])
        check(got[-1]["parts"] == 3, "3 parts", got[-1]["parts"])
        parts = [p for p in sim.parts() if p["ref"] == got[-1]["ref"] and p["parts"] == 3]
        check(sorted(p["part"] for p in parts) == [1, 2, 3] and
              all(p["ref_bits"] == 8 for p in parts),
              "parts 1..3 carry one 8-bit concatenation reference")

        check.section("inject_sms + gammu getallsms")
        sim.control({"cmd": "inject_sms", "modem": "gsm0", "from": "+32470100001",
                     "text": "ACK 1234"})
        reply = sim.control({"cmd": "inject_sms", "modem": "gsm0", "from": "+32470100002",
                             "text": "Ωμέγα ACK " * 10})
        check(reply["parts"] == 2 and reply["alphabet"] == "ucs2",
              "a 100-character Greek reply is stored as 2 UCS-2 parts", reply)
        code, out, secs = run_gammu(rc, "getallsms")
        check(code == 0, f"getallsms exits 0 ({secs:.1f} s)", out)
        check("ACK 1234" in out and "+32470100001" in out, "getallsms shows 'ACK 1234' from "
              "+32470100001", out)
        check("Ωμέγα ACK" in out and "part 2 of 2" in out,
              "getallsms shows the UCS-2 concatenated message", out)

        check.section("gammu dialvoice")
        sim.control({"cmd": "call_outcome", "modem": "gsm0", "outcome": "answer", "after": 0.5})
        code, out, secs = run_gammu(rc, "dialvoice", "+32470000009")
        check(code == 0, f"dialvoice exits 0 ({secs:.1f} s)", out)
        try:
            sim.wait_calls(lambda r: r.get("outcome") == "answered", timeout=5)
            answered = True
        except TimeoutError:
            answered = False
        dials = [r for r in sim.calls() if r["event"] == "dial"]
        check(dials and dials[-1]["number"] == "+32470000009", "simulator saw ATD+32470000009;")
        check(answered, "the call went dialing -> alerting -> active (answered)", sim.calls())

        log = sim.at_log("gsm0")
        check(all(r.get("result") is not None for r in log if "cmd" in r),
              "every command line got a final result")
    finally:
        sim.stop()
        cleanup(tmp, keep or check.failed)
    return check.result()


if __name__ == "__main__":
    sys.exit(main())
