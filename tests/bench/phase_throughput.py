"""bench.py phase "throughput": durable acceptance, alerts answered 'queued' per second by a
gatewayd with no modem.

Method (the numbers are those of bench.py's list of phases):

2. throughput: gatewayd with no [modem] section, so only acceptance is measured: 20,000 alerts
   with distinct keys from 8 client processes (DEALER, 8 requests in flight each; then the same
   with 1 in flight each, i.e. REQ-like). Rate = replies "queued" / (first send .. last reply).
   Daemon CPU over the same window. Afterwards {"op":"status"} queue.queued must equal the
   count (printed, not asserted).
"""

from __future__ import annotations

import os

from shared import accept_run, goal, log, table


def run(ctx, work: str, args) -> list[dict]:
    total = 5000 if args.quick else 20000
    runs = [(8, 8), (8, 1)]
    results = []
    for procs, window in runs:
        log(f"throughput: {total} alerts, {procs} client processes x {window} in flight")
        res, gw = accept_run(ctx, work, f"gw-accept-{window}", total, procs, window)
        gw.stop()
        results.append(res)
    rows = []
    for r in results:
        rows.append([f"{r['procs']} processes x {r['window']} in flight"
                     + (" (REQ-like)" if r["window"] == 1 else " (DEALER)"),
                     f"{r['queued']}/{r['total']}", f"{r['seconds']:.2f} s",
                     f"{r['rate']:,.0f}", f"{r['daemon_cpu']:.0f} %", f"{r['client_cpu_pct']:.0f} %",
                     f"{r['status_queued']}" + (" (= count)" if r["status_queued"] == r["queued"]
                                                 else " (MISMATCH)"),
                     "; ".join(r["errors"] + [f"{k}: {v}" for k, v in r["other"].items()])
                     or "-"])
    table("Durable acceptance: alerts answered 'queued' (fsync'd) per second, no modem",
          ["clients", "queued", "time", "alerts/s", "gatewayd CPU (1 core = 100 %)",
           "clients CPU", "status queue.queued", "errors"], rows)
    print(f"\n{os.cpu_count()} cores shared by gatewayd and the client processes; every alert "
          "has a distinct key. The peers take alerts as spool files and have no equivalent.")
    return results


def summary_rows(thr) -> list[list]:
    """The summary's lines of this phase."""
    rows = []
    r = thr[0]
    rows.append([f"accepted alerts/s ({r['procs']} clients x {r['window']} in flight)",
                 f"{r['rate']:,.0f}/s", ">= 5,000/s", goal(r["rate"] >= 5000), "n/a", "n/a"])
    if len(thr) > 1:
        r = thr[1]
        rows.append([f"accepted alerts/s ({r['procs']} REQ-like clients)",
                     f"{r['rate']:,.0f}/s", "", "", "n/a", "n/a"])
    rows.append(["gatewayd CPU while accepting", f"{thr[0]['daemon_cpu']:.0f} %", "", "",
                 "", ""])
    return rows
