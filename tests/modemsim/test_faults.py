#!/usr/bin/python3
"""Fault injection seen through the real gammu CLI.

  fail_sends   -> gammu sendsms fails with +CMS ERROR 500, the next send works
  fail_number  -> sends to one number fail with +CMS ERROR 21
  hang CMGS    -> the modem goes silent after the PDU: gammu never gets an
                  answer (it would wait well over a minute; killed after 8 s)
  unplug       -> the device disappears, gammu cannot open it
  replug path  -> a new device name, same modem (same IMEI)
  pin          -> a locked SIM makes sendsms fail; gammu entersecuritycode unlocks
  urc_flood    -> sendsms still works with +CREG/^RSSI URCs every 0.5 s

Exit 0 pass, 1 fail, 77 skip (no gammu binary).  About 40 s.
Run: /usr/bin/python3 tests/modemsim/test_faults.py [--keep]
"""

from __future__ import annotations

import os
import sys

from _testutil import SKIP, Checker, Sim, cleanup, gammu_binary, run_gammu, temp_dir, \
    write_gammurc

HANG_KILL_AFTER = 8.0


def main() -> int:
    if not gammu_binary():
        print("SKIP: gammu binary not found (apt-get install gammu)")
        return SKIP
    keep = "--keep" in sys.argv
    check = Checker("test_faults")
    tmp = temp_dir("modemsim-faults-")
    sim = Sim.start(tmp, modems=["gsm0"], send_delay=0.1)
    ctl = lambda **kw: sim.control({"modem": "gsm0", **kw})  # noqa: E731
    try:
        rc = write_gammurc(os.path.join(tmp, "gammurc"), sim.device("gsm0"))

        check.section("fail_sends count=1 cms=500")
        ctl(cmd="fail_sends", count=1, cms=500)
        code, out, secs = run_gammu(rc, "sendsms", "TEXT", "+32470000001", "-text", "fail me")
        check(code not in (0, None) and "500" in out,
              f"gammu sendsms fails and reports error 500 (exit {code}, {secs:.1f} s)", out)
        fails = sim.sent_events("fail")
        check(fails and fails[-1]["cms"] == 500 and fails[-1]["text"] == "fail me",
              "sent.jsonl records the refused send", fails)
        code, out, _ = run_gammu(rc, "sendsms", "TEXT", "+32470000001", "-text", "after fail")
        check(code == 0 and sim.sms()[-1]["text"] == "after fail",
              "the next send goes through", out)

        check.section("fail_number +32470000066 cms=21")
        ctl(cmd="fail_number", number="+32470000066", cms=21)
        code, out, _ = run_gammu(rc, "sendsms", "TEXT", "+32470000066", "-text", "rejected")
        check(code not in (0, None) and "21" in out, f"send to the number fails (exit {code})",
              out)
        ctl(cmd="fail_number", number="+32470000066", cms=None)

        check.section("hang after CMGS (mid-send)")
        ctl(cmd="hang", on=True, after="CMGS")
        before = len(sim.sms())
        code, out, secs = run_gammu(rc, "sendsms", "TEXT", "+32470000001", "-text", "lost",
                                    timeout=HANG_KILL_AFTER)
        check(code is None, f"gammu gets no answer (still waiting after {secs:.1f} s)", out)
        hung = [r for r in sim.at_log("gsm0") if r.get("hung") and r.get("decoded") == "lost"]
        check(hung, "the simulator received the PDU ('lost') and stayed silent")
        check(len(sim.sms()) == before, "nothing was delivered")
        check(sim.stats("gsm0")["hung"], "stats reports hung")
        ctl(cmd="hang", on=False)

        check.section("unplug / replug under a new name")
        old = sim.device("gsm0")
        imei = sim.stats("gsm0")["imei"]
        ctl(cmd="unplug")
        check(not os.path.lexists(old), "the device symlink is gone")
        code, out, secs = run_gammu(rc, "--identify", timeout=20)
        check(code not in (0, None), f"gammu cannot open the unplugged device (exit {code})", out)
        reply = ctl(cmd="replug", path="ttyUSB7")
        new = sim.device("gsm0")
        check(new == os.path.join(tmp, "ttyUSB7") and os.path.islink(new),
              f"replugged as {os.path.basename(new)}", reply)
        rc2 = write_gammurc(os.path.join(tmp, "gammurc2"), new)
        code, out, secs = run_gammu(rc2, "--identify")
        check(code == 0 and imei in out, "identify on the new name shows the same IMEI", out)

        check.section("SIM PIN")
        ctl(cmd="pin", required=True, pin="1234")
        code, out, _ = run_gammu(rc2, "sendsms", "TEXT", "+32470000001", "-text", "locked")
        check(code not in (0, None) and "SMSC" in out,
              f"sendsms fails on a locked SIM (exit {code})", out)
        code, out, _ = run_gammu(rc2, "entersecuritycode", "PIN", "1234")
        check(code == 0 and sim.stats("gsm0")["sim"] == "READY",
              "gammu entersecuritycode PIN 1234 unlocks it", out)

        check.section("URC flood (+CREG / ^RSSI every 0.5 s)")
        ctl(cmd="urc_flood", interval=0.5, lines=["+CREG: 1", "^RSSI: 20"])
        code, out, _ = run_gammu(rc2, "sendsms", "TEXT", "+32470000001", "-text", "noisy")
        ctl(cmd="urc_flood", interval=0)
        check(code == 0 and sim.sms()[-1]["text"] == "noisy", "sendsms works through URCs", out)
    finally:
        sim.stop()
        cleanup(tmp, keep or check.failed)
    return check.result()


if __name__ == "__main__":
    sys.exit(main())
