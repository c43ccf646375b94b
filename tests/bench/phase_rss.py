"""bench.py phase "rss": the memory of a gatewayd with many alerts queued and no modem.

Method (the numbers are those of bench.py's list of phases):

4. rss: gatewayd with no modem, 100,000 alerts (ttl 7 d) submitted as in 2; VmRSS and VmHWM
   from /proc/PID/status afterwards.
"""

from __future__ import annotations

import os
import time

import sysproc
from shared import Gatewayd, accept_run, goal, log, table


def run(ctx, work: str, args) -> dict:
    total = 20000 if args.quick else 100000
    log(f"rss: {total} alerts queued, no modem")
    gw = Gatewayd(ctx, work, "gw-rss", {}).start()
    base = sysproc.vm_status(gw.daemon.pid)
    gw.stop()
    res, gw = accept_run(ctx, work, "gw-rss2", total, 8, 8, ttl=604800)
    try:
        time.sleep(1)
        vm = sysproc.vm_status(gw.daemon.pid)
        db = sum(os.path.getsize(os.path.join(dp, f))
                 for dp, _, fs in os.walk(gw.state_dir) for f in fs)
    finally:
        gw.stop()
    out = {"total": total, "queued": res["queued"], "status_queued": res["status_queued"],
           "rss_kb": vm["VmRSS"], "hwm_kb": vm["VmHWM"], "base_kb": base["VmRSS"],
           "db_bytes": db, "rate": res["rate"], "errors": res["errors"]}
    table("Memory: gatewayd with alerts queued and no modem to send them",
          ["alerts queued (status)", "VmRSS at start", "VmRSS after", "VmHWM (peak)",
           "store on disk", "submit rate"],
          [[f"{out['status_queued']:,}", f"{out['base_kb'] / 1024:.1f} MB",
            f"{out['rss_kb'] / 1024:.1f} MB", f"{out['hwm_kb'] / 1024:.1f} MB",
            f"{db / 1e6:.0f} MB", f"{res['rate']:,.0f}/s"]])
    return out


def summary_rows(rss) -> list[list]:
    """The summary's line of this phase."""
    rows = []
    rows.append([f"RSS with {rss['status_queued']:,} alerts queued",
                 f"{rss['rss_kb'] / 1024:.1f} MB", "< 32 MB",
                 goal(rss["rss_kb"] < 32 * 1024 and rss["total"] >= 100000)
                 if rss["total"] >= 100000 else "(quick: fewer alerts)", "", ""])
    return rows
