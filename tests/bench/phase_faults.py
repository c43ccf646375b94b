"""bench.py phase "faults": a modem hanging mid-send and a modem replugged, timed on the
simulator (method in run()'s comment).
"""

from __future__ import annotations

import os
import statistics
import time

from modemsim_client import Sim
from shared import Gatewayd, Tracker, log, table, token


def run(ctx, work: str, args) -> dict:
    """Time from a modem hanging mid-send to its queued work leaving through the other modem
    (send_timeout 5 s), and from a replug to the first successful send on that modem."""
    rounds = 2 if args.quick else 5
    sim = Sim.start(os.path.join(work, "sim-faults"), modems=["f0", "f1"], send_delay=0)
    out = {"hang": [], "replug": []}
    try:
        for i in range(rounds):
            log(f"faults: hang round {i + 1}/{rounds}")
            gw = Gatewayd(ctx, work, f"gw-hang-{i}", {m: sim.device(m) for m in ("f0", "f1")},
                          "send_timeout = 5\n").start()
            try:
                tracker = Tracker(sim, ["f0", "f1"])
                sim.control({"cmd": "hang", "modem": "f1", "on": True, "after": "CMGS"})
                sim.control({"cmd": "hang", "modem": "f0", "on": True, "after": "CMGS"})
                # Whichever modem takes the first alert hangs; the other is released at once.
                t0 = gw.send(f"bench hang {token()}")
                deadline = time.monotonic() + 10
                hung = None
                while hung is None and time.monotonic() < deadline:
                    for m in ("f0", "f1"):
                        if sim.stats(m).get("hung"):
                            hung = m
                    time.sleep(0.01)
                other = "f1" if hung == "f0" else "f0"
                sim.control({"cmd": "hang", "modem": other, "on": False})
                t_hang = time.monotonic()
                toks = [token() for _ in range(3)]
                for t in toks:
                    gw.send(f"bench after hang {t}")
                done = tracker.wait(toks, 60, gw.daemon.check)
                out["hang"].append(max(d["done"] for d in done.values()) - t_hang)
                del t0
            finally:
                sim.control({"cmd": "hang", "modem": "f0", "on": False})
                sim.control({"cmd": "hang", "modem": "f1", "on": False})
                gw.stop()
        for i in range(rounds):
            log(f"faults: replug round {i + 1}/{rounds}")
            gw = Gatewayd(ctx, work, f"gw-replug-{i}", {"f0": sim.device("f0")}).start()
            try:
                tracker = Tracker(sim, ["f0"])
                sim.control({"cmd": "unplug", "modem": "f0"})
                time.sleep(2)
                tok = token()
                gw.send(f"bench replug {tok}")
                t_replug = time.monotonic()
                sim.control({"cmd": "replug", "modem": "f0"})
                done = tracker.wait([tok], 60, gw.daemon.check)
                out["replug"].append(done[tok]["done"] - t_replug)
            finally:
                gw.stop()
    finally:
        sim.stop()
    table("Modem faults (2 modems for the hang, send_timeout 5 s; 1 modem for the replug)",
          ["figure", "n", "median", "max"],
          [["modem hangs mid-send -> 3 queued alerts sent by the other modem",
            len(out["hang"]), f"{statistics.median(out['hang']):.2f} s",
            f"{max(out['hang']):.2f} s"],
           ["replug -> first successful send on that modem", len(out["replug"]),
            f"{statistics.median(out['replug']):.2f} s", f"{max(out['replug']):.2f} s"]])
    print("The hung send itself is abandoned at its deadline (send_timeout) and retried on the"
          " other modem; work queued behind it moves at once. A replugged modem is noticed by"
          " inotify at once; libgammu's own init takes ~4.5 s of the figure.")
    return out
