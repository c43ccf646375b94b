"""bench.py phase "voice": from the last SMS path failing to the ATD of the voice call on the
dial-out line (method in run()'s comment).
"""

from __future__ import annotations

import os
import statistics
import time

from modemsim_client import Sim
from shared import Gatewayd, log, ms, table, token


def run(ctx, work: str, args) -> list[float]:
    """Time from the last SMS path failing (the simulator refusing the AT+CMGS) to the ATD of
    the voice call on the dial-out line."""
    n = 3 if args.quick else 8
    sim = Sim.start(os.path.join(work, "sim-voice"), modems=["v0", "line0"], send_delay=0)
    out = []
    try:
        sim.control({"cmd": "call_outcome", "modem": "line0", "outcome": "busy",
                     "persist": True})
        # A modem failing every send would soon be taken out of service (then the call starts
        # at submission, there being no SMS path at all): keep it in service here.
        gw = Gatewayd(ctx, work, "gw-voice", {"v0": sim.device("v0")},
                      "max_consecutive_failures = 100\n")
        with open(gw.config, "a") as f:
            f.write(f"[voice]\ndevice = {sim.device('line0')}\nretries = 0\n")
        gw.start()
        try:
            sim.control({"cmd": "fail_sends", "modem": "v0", "count": -1, "cms": 500})
            for i in range(n):
                log(f"voice: {i + 1}/{n}")
                number = f"+3247099{i:04d}"
                gw.req.request({"to": [number], "text": f"bench voice {token()}",
                                "priority": "critical"}, timeout=10)
                deadline = time.monotonic() + 30
                dial = None
                while dial is None and time.monotonic() < deadline:
                    dial = next((c for c in sim.calls() if c.get("event") == "dial"
                                 and c.get("number") == number), None)
                    time.sleep(0.02)
                if dial is None:
                    raise RuntimeError(f"no call to {number}")
                fails = [r for r in sim.sent_events("fail") if r.get("to") == number
                         and r["mono"] <= dial["mono"]]
                out.append(dial["mono"] - fails[-1]["mono"])
                time.sleep(1.5)
        finally:
            gw.stop()
    finally:
        sim.stop()
    table("Voice fallback: last SMS path failed -> ATD on the dial-out line",
          ["n", "median", "max"],
          [[len(out), ms(statistics.median(out)), ms(max(out))]])
    return out
