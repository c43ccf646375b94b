"""bench.py phase "history": what a long history of finished alerts costs.

Method (the numbers are those of bench.py's list of phases):

6. history: gatewayd with no modem; `status` (200 requests, one at a time) and `send`
   (500 alerts, one at a time, left queued) timed on an empty store; then the store is filled,
   gatewayd stopped, with 1,000,000 finished alerts (each with its delivery and its send
   attempt, written with SQL straight into the store; `--quick`: 100,000) that became final
   40 days ago, beyond the 30-day [store] retention, and 100,000 alerts still queued
   (`--quick`: 10,000; accepted an hour ago, ttl 7 d; there is no modem to send them);
   gatewayd started again, its VmRSS and VmHWM read from /proc once it answers, and the same
   `status` and `send` timed before the purge begins (60 s after start); then `status` polled
   every 0.2 s while the purge removes them in steps, until none is left: the purge's duration
   and the slowest `status` answer during it (the loop's longest wait on the purge).
"""

from __future__ import annotations

import os
import sqlite3
import time

import storefill
import sysproc
from shared import Gatewayd, goal, log, ms, pct, table

RETENTION_DAYS = 30
AGE_DAYS = 40


def timed_status(gw: Gatewayd, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.monotonic()
        gw.status()
        out.append(time.monotonic() - t0)
    return out


def timed_sends(gw: Gatewayd, n: int, prefix: str) -> list[float]:
    out = []
    for i in range(n):
        gw.send(f"{prefix} {i}")
        out.append(gw.last_reply)
    return out


def fill_queued(db: sqlite3.Connection, total: int, now: int) -> None:
    """total alerts accepted an hour ago, still queued (ttl 7 d), one delivery each."""
    accepted = now - 3600 * 10**6
    batch = 10000
    for start in range(0, total, batch):
        ids = [f"{0xc0000000 + i:08x}{i:024d}" for i in range(start, min(total, start + batch))]
        db.executemany(
            "INSERT INTO alerts(id, key, text, priority, source, node, accepted_at, expires_at,"
            " state, final) VALUES (?, ?, 'queued disk full', 0, 'bench', 'bench', ?, ?,"
            " 'queued', 0)",
            [(i, i, accepted, accepted + 7 * 86400 * 10**6) for i in ids])
        db.executemany(
            "INSERT INTO deliveries(alert_id, number, kind, seq, state, priority, accepted_at,"
            " next_try_at) VALUES (?, '+32470000001', 'to', 0, 'queued', 0, ?, ?)",
            [(i, accepted, accepted) for i in ids])


def fill(db_path: str, total: int, queued: int = 0, age_days: float = AGE_DAYS) -> float:
    """total finished alerts, final age_days ago, each with one delivery and one attempt; and
    queued alerts still waiting (fill_queued())."""
    t0 = time.monotonic()
    now = int(time.time() * 1e6)
    final_at = now - int(age_days * 86400 * 10**6)
    db = sqlite3.connect(db_path, isolation_level=None)
    db.execute("PRAGMA synchronous = OFF")
    db.execute("BEGIN")
    batch = 10000
    for start in range(0, total, batch):
        ids = [f"{0xb0000000 + i:08x}{i:024d}" for i in range(start, min(total, start + batch))]
        storefill.finished(db, ids, final_at, "bench")
    fill_queued(db, queued, now)
    db.execute("COMMIT")
    db.close()
    return time.monotonic() - t0


def run(ctx, work: str, args) -> dict:
    total = 100000 if args.quick else 1000000
    queued = total // 10
    log(f"history: status and send on an empty store, then with {total:,} finished alerts "
        f"and {queued:,} queued")
    gw = Gatewayd(ctx, work, "gw-history", {}).start()
    try:
        empty_status = timed_status(gw, 200)
        empty_send = timed_sends(gw, 500, "empty store")
    finally:
        gw.stop()
    took = fill(os.path.join(gw.state_dir, "gatewayd.db"), total, queued)
    log(f"history: {total:,} finished and {queued:,} queued alerts written in {took:.0f} s")
    gw.start()
    try:
        started = time.monotonic()
        gw.status()
        vm = sysproc.vm_status(gw.daemon.pid)
        full_status = timed_status(gw, 200)
        full_send = timed_sends(gw, 500, "long history")
        assert time.monotonic() - started < 55, "the purge may have begun: measure faster"
        assert gw.status()["queue"]["sent"] >= total, "the finished alerts are not counted"
        assert gw.status()["queue"]["queued"] >= queued, "the queued alerts are not counted"
        during, purge_from, purge_to = [], None, None
        deadline = time.monotonic() + 1800
        while time.monotonic() < deadline:
            t0 = time.monotonic()
            left = gw.status()["queue"]["sent"]
            lat = time.monotonic() - t0
            if left < total and purge_from is None:
                purge_from = t0
            if purge_from is not None:
                during.append(lat)
            if left == 0:
                purge_to = t0
                break
            time.sleep(0.2)
    finally:
        gw.stop()
    purge_s = purge_to - purge_from if purge_from and purge_to else None
    out = {"total": total, "queued": queued, "rss_kb": vm.get("VmRSS"), "hwm_kb": vm.get("VmHWM"),
           "empty_status_p50": pct(empty_status, 50),
           "empty_status_max": max(empty_status), "status_p50": pct(full_status, 50),
           "status_p99": pct(full_status, 99), "status_max": max(full_status),
           "empty_send_p50": pct(empty_send, 50), "send_p50": pct(full_send, 50),
           "send_p99": pct(full_send, 99), "purge_s": purge_s,
           "purge_rate": total / purge_s if purge_s else None,
           "during_p50": pct(during, 50) if during else None,
           "during_max": max(during) if during else None}
    table(f"History: {total:,} finished alerts and {queued:,} queued in the store",
          ["", "empty store", f"{total:,} finished + {queued:,} queued alerts"],
          [["status p50 / max", f"{ms(out['empty_status_p50'])} / {ms(out['empty_status_max'])}",
            f"{ms(out['status_p50'])} / {ms(out['status_max'])} (p99 {ms(out['status_p99'])})"],
           ["send → queued p50", ms(out["empty_send_p50"]),
            f"{ms(out['send_p50'])} (p99 {ms(out['send_p99'])})"],
           ["VmRSS / VmHWM once started", "",
            f"{out['rss_kb'] / 1024:.1f} MB / {out['hwm_kb'] / 1024:.1f} MB"]])
    table(f"Retention purge of {total:,} finished alerts (steps of ~5 ms, as far apart)",
          ["took", "alerts/s", "status p50 during it", "slowest status during it"],
          [[f"{purge_s:.0f} s" if purge_s else "did not finish",
            f"{out['purge_rate']:,.0f}" if out["purge_rate"] else "-",
            ms(out["during_p50"]) if during else "-",
            ms(out["during_max"]) if during else "-"]])
    return out


def summary_rows(h) -> list[list]:
    """The summary's lines of this phase."""
    full = h["total"] >= 1000000
    return [
        [f"status with {h['total']:,} finished alerts (p99)", ms(h["status_p99"]), "< 5 ms",
         goal(h["status_p99"] < 0.005) if full else "(quick: fewer alerts)", "", ""],
        [f"RSS with {h['total']:,} finished + {h['queued']:,} queued alerts",
         f"{h['rss_kb'] / 1024:.1f} MB", "", "", "", ""],
        ["slowest status during the retention purge",
         ms(h["during_max"]) if h["during_max"] else "-", "", "", "", ""],
    ]
