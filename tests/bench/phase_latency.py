"""bench.py phase "latency": alert submitted -> AT+CMGS at the modem, gatewayd alone and then
the peers concurrently, and the idle CPU of each.

Method (the numbers are those of bench.py's list of phases):

1. latency: t0 = time.monotonic() just before the submission (gatewayd: the REQ send on an
   already connected socket; peers: the rename() of a file staged in a directory of the same
   file system into the spool directory they poll); end = simulator mono of the AT+CMGS that
   carried the message. One message at a time on an idle modem with zero send delay, each
   after a random pause uniform in [0, P] so injections land at a random phase of any polling
   loop (P = 1 s for gatewayd and the aggressive peer settings, the poll period otherwise:
   10 s smstools3 default, 30 s gammu-smsd default), plus 0.5 s after the previous message
   completed, so that its sender has finished too. A warm-up message first (not counted).
   Idle CPU = utime+stime of the daemon and its children over a 10 s window with nothing to
   do, as % of one core. gatewayd runs alone; the peer configurations then run concurrently,
   each its own daemon on its own simulated modem (they sleep between polls: <1 % CPU each),
   which keeps the default-settings peers (10-30 s polls) within the time budget.
"""

from __future__ import annotations

import os
import random
import threading
import time

import sysproc
from modemsim_client import Sim
from peers import GammuSmsd, Smstools
from shared import (IDLE_WINDOW, NUMBER, SETTLE, Gatewayd, Tracker, goal, idle_cpu, log, ms,
                    pct, table, token)


def latency_run(label: str, inject, tracker: Tracker, n: int, period: float, seed: int,
                timeout: float, check, prefix: str) -> dict:
    """Warm-up, then n messages one by one at random phases; latency to AT+CMGS and Ctrl-Z."""
    rng = random.Random(seed)
    tok = token()
    inject(f"bench {prefix} warmup {tok}")
    tracker.wait([tok], timeout + period, check)
    to_cmgs, to_ctrlz, lost = [], [], 0
    for i in range(n):
        # the modem answered the last send, but its sender may still be finishing (libgammu
        # reads the reply ~0.1 s later): settle, so that every message finds an idle daemon
        time.sleep(SETTLE + rng.uniform(0, period))
        tok = token()
        t0 = inject(f"bench {prefix} {i} {tok}")
        try:
            rec = tracker.wait([tok], timeout, check)[tok]
        except TimeoutError:
            lost += 1
            continue
        to_cmgs.append(rec["cmgs"] - t0)
        to_ctrlz.append(rec["ctrlz"] - t0)
        log(f"  {label}: {i + 1}/{n} {ms(to_cmgs[-1])}")
    return {"label": label, "n": n, "period": period, "cmgs": to_cmgs, "ctrlz": to_ctrlz,
            "lost": lost}


def latency_gatewayd(ctx, sim: Sim, work: str, n: int, seed: int, idle_window: float) -> dict:
    gw = Gatewayd(ctx, work, "gw-latency", {"gw0": sim.device("gw0")}).start()
    try:
        replies = []

        def inject(text):
            t0 = gw.send(text)
            replies.append(gw.last_reply)
            return t0

        res = latency_run("gatewayd", inject, Tracker(sim, ["gw0"]), n, 1.0, seed, 30,
                          gw.daemon.check, "gw")
        res["replies"] = replies[1:]  # without the warm-up
        time.sleep(1)
        res["idle_cpu"] = idle_cpu(gw.daemon, idle_window)
        res["rss_kb"] = sysproc.vm_status(gw.daemon.pid)["VmRSS"]
        return res
    finally:
        gw.stop()


def latency_peer(peer, sim: Sim, n: int, seed: int, idle_window: float, out: dict) -> None:
    """Thread body: start the peer, measure it, stop it; result or error into out."""
    try:
        d = peer.start()
        res = latency_run(peer.label, lambda text: peer.inject(NUMBER, text),
                          Tracker(sim, [peer.modem]), n, peer.poll, seed,
                          peer.poll * 1.5 + 40, d.check, peer.modem)
        time.sleep(1)
        res["idle_cpu"] = idle_cpu(d, idle_window)
        out.update(res)
    except Exception as e:
        out.update({"label": peer.label, "error": f"{type(e).__name__}: {e}"})
        if peer.daemon:
            out["error"] += "\n" + peer.daemon.log_tail(8)
    finally:
        peer.stop()


def run(ctx, work: str, args) -> list[dict]:
    n_gw, n_aggr, n_def = (10, 5, 0) if args.quick else (30, 15, 8)
    idle_window = IDLE_WINDOW / 2 if args.quick else IDLE_WINDOW
    modems = ["gw0", "st_aggr", "gm_fast"] + ([] if args.quick else ["st_def", "gm_def"])
    sim = Sim.start(os.path.join(work, "sim-latency"), modems=modems, send_delay=0)
    try:
        log(f"latency: gatewayd, {n_gw} alerts")
        results = [latency_gatewayd(ctx, sim, work, n_gw, args.seed, idle_window)]
        peers = [(Smstools(work, "st_aggr", sim.device("st_aggr"), "aggressive"), n_aggr),
                 (GammuSmsd(work, "gm_fast", sim.device("gm_fast"), "fast"), n_aggr)]
        if not args.quick:
            peers += [(Smstools(work, "st_def", sim.device("st_def"), "default"), n_def),
                      (GammuSmsd(work, "gm_def", sim.device("gm_def"), "default"), n_def)]
        log("latency: peers, concurrently: " + ", ".join(f"{p.label} (n={k})" for p, k in peers))
        outs = [{} for _ in peers]
        threads = [threading.Thread(target=latency_peer, daemon=True,
                                    args=(p, sim, k, args.seed + 1 + i, idle_window, outs[i]))
                   for i, (p, k) in enumerate(peers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(900)
        results += outs
    finally:
        sim.stop()

    gw_med, gw_zmed = pct(results[0]["cmgs"], 50), pct(results[0]["ctrlz"], 50)
    rows = []
    for r in results:
        if "error" in r:
            rows.append([r["label"], "failed: " + r["error"].splitlines()[0]] + [""] * 8)
            continue
        med, zmed = pct(r["cmgs"], 50), pct(r["ctrlz"], 50)
        first = r is results[0]
        rows.append([r["label"], f"{len(r['cmgs'])}/{r['n']}", f"{r['period']:g} s", ms(med),
                     ms(pct(r["cmgs"], 99)), ms(max(r["cmgs"], default=float("nan"))),
                     "1" if first else f"{med / gw_med:.0f}x", ms(zmed),
                     "1" if first else f"{zmed / gw_zmed:.1f}x", f"{r['idle_cpu']:.2f} %"])
    table("Latency: alert submitted -> AT+CMGS at the modem (zero send delay, idle modem)",
          ["daemon / settings", "n ok", "phase P", "p50", "p99", "max", "p50 / gatewayd's",
           "to Ctrl-Z p50", "Ctrl-Z p50 / gatewayd's", "idle CPU (1 core)"], rows)
    gw = results[0]
    print(f"\ngatewayd: 'queued' reply (fsync'd) p50 {ms(pct(gw['replies'], 50))}, "
          f"p99 {ms(pct(gw['replies'], 99))}; RSS idle {gw['rss_kb'] / 1024:.1f} MB.")
    print("'to Ctrl-Z' = the PDU complete at the modem: libgammu's send path (gammu-smsd) waits "
          "~0.6 s between the '> ' prompt and Ctrl-Z; gatewayd (its own AT+CMGS exchange, "
          "libgammu encoding) and smstools3 write PDU and Ctrl-Z at the prompt.")
    print("Peers ran concurrently, each on its own simulated modem, after gatewayd ran alone; "
          f"idle CPU over {idle_window:g} s. Small n for the peers: their polls take 1-30 s.")
    return results


def summary_rows(lat) -> list[list]:
    """The summary's lines of this phase."""
    rows = []
    gw = lat[0]
    by = {r["label"]: r for r in lat if "error" not in r}

    def peer(kind, setting):
        r = next((v for k, v in by.items() if k.startswith(kind) and setting in k), None)
        return r

    st, gm = peer("smstools3", "delaytime 1"), peer("gammu-smsd", "CommTimeout 1")
    p50 = pct(gw["cmgs"], 50)
    rows.append(["latency alert -> AT+CMGS, p50", ms(p50), "< 20 ms", goal(p50 < 0.020),
                 f"{ms(pct(st['cmgs'], 50))} (n={len(st['cmgs'])})" if st else "-",
                 f"{ms(pct(gm['cmgs'], 50))} (n={len(gm['cmgs'])})" if gm else "-"])
    rows.append(["latency alert -> AT+CMGS, p99", ms(pct(gw["cmgs"], 99)), "", "",
                 ms(pct(st["cmgs"], 99)) if st else "-", ms(pct(gm["cmgs"], 99)) if gm else "-"])
    rows.append(["latency alert -> Ctrl-Z (PDU complete), p50", ms(pct(gw["ctrlz"], 50)),
                 "", "", ms(pct(st["ctrlz"], 50)) if st else "-",
                 ms(pct(gm["ctrlz"], 50)) if gm else "-"])
    rows.append(["idle CPU (% of one core)", f"{gw['idle_cpu']:.2f} %", "~0 %",
                 goal(gw["idle_cpu"] < 1.0), f"{st['idle_cpu']:.2f} %" if st else "-",
                 f"{gm['idle_cpu']:.2f} %" if gm else "-"])
    std, gmd = peer("smstools3", "default"), peer("gammu-smsd", "default")
    if std or gmd:
        rows.append(["latency p50, peers' default settings", "", "", "",
                     f"{ms(pct(std['cmgs'], 50))} (n={len(std['cmgs'])})" if std else "-",
                     f"{ms(pct(gmd['cmgs'], 50))} (n={len(gmd['cmgs'])})" if gmd else "-"])
    return rows
