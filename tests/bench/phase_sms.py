"""bench.py phase "sms": SMS per second, N alerts queued at once, gatewayd on 1, 2, 4 and 8
modems and the peers on one.

Method (the numbers are those of bench.py's list of phases):

3. sms: N alerts queued at once, rate = N / (first AT+CMGS .. last completed SMS), for one
   modem with zero send delay and with a 3 s send delay (simulator send_delay, as
   --send-delay 3), and for 2, 4 and 8 modems at zero delay and at 3 s (4 alerts per modem)
   (gatewayd). Peers on one modem, at
   their fastest: smstools3 aggressive, gammu-smsd LoopSleep 0 / CommTimeout 0 (peers.py).
   A burst starts 0.5 s after the previous message completed, on an idle daemon.
"""

from __future__ import annotations

import os
import time

import clients
from modemsim_client import Sim
from peers import GammuSmsd, Smstools
from shared import NUMBER, SETTLE, Gatewayd, Tracker, goal, log, ms, table, token

# Issue goals: smstools3's rate into an instant modem, and a little over its rate at 3 s per send.
GOALS = {(0, 1): 2.8, (3, 1): 0.32}
from sysproc import Daemon


def burst_measure(tracker: Tracker, tokens: list[str], t_queue: float, cpu0: float,
                  daemon: Daemon, timeout: float) -> dict:
    recs = tracker.wait(tokens, timeout, daemon.check)
    t_end = time.monotonic()
    first = min(r["cmgs"] for r in recs.values())
    last = max(r["done"] for r in recs.values())
    per_modem: dict[str, int] = {}
    for r in recs.values():
        per_modem[r["modem"]] = per_modem.get(r["modem"], 0) + 1
    return {"n": len(tokens), "rate": len(tokens) / (last - first), "span": last - first,
            "first_after": first - t_queue, "cpu": (daemon.cpu() - cpu0) / (t_end - t_queue) * 100,
            "per_modem": per_modem}


def set_delay(sim: Sim, modems, delay: float) -> None:
    for m in modems:
        sim.control({"cmd": "set", "modem": m, "send_delay": delay})


def sms_gatewayd(ctx, sim: Sim, work: str, modems: list[str], regimes) -> list[dict]:
    gw = Gatewayd(ctx, work, f"gw-sms-{len(modems)}", {m: sim.device(m) for m in modems}).start()
    out = []
    try:
        tracker = Tracker(sim, modems)
        tok = token()
        gw.send(f"bench sms warmup {tok}")
        tracker.wait([tok], 60, gw.daemon.check)
        for delay, n in regimes:
            set_delay(sim, modems, delay)
            time.sleep(SETTLE)  # the previous send may still be finishing in libgammu
            log(f"sms: gatewayd, {len(modems)} modem(s), delay {delay:g} s, {n} alerts")
            toks = [token() for _ in range(n)]
            cpu0 = gw.daemon.cpu()
            t_queue, replies = clients.burst(
                ctx, gw.endpoint, [{"to": [NUMBER], "text": f"bench sms {i} {t}"}
                                   for i, t in enumerate(toks)])
            bad = [r for r in replies if r.get("status") != "queued"]
            if bad:
                raise RuntimeError(f"gatewayd refused: {bad[0]}")
            res = burst_measure(tracker, toks, t_queue, cpu0, gw.daemon, n * (delay + 2) + 60)
            res.update(label="gatewayd", modems=len(modems), delay=delay)
            out.append(res)
    finally:
        gw.stop()
        set_delay(sim, modems, 0)
    return out


def sms_peer(sim: Sim, peer, regimes) -> list[dict]:
    d = peer.start()
    out = []
    try:
        tracker = Tracker(sim, [peer.modem])
        tok = token()
        peer.inject(NUMBER, f"bench sms warmup {tok}")
        tracker.wait([tok], 60 + peer.poll, d.check)
        for delay, n in regimes:
            set_delay(sim, [peer.modem], delay)
            time.sleep(SETTLE)
            log(f"sms: {peer.label}, delay {delay:g} s, {n} messages")
            toks = [token() for _ in range(n)]
            staged = [peer.stage(NUMBER, f"bench sms {i} {t}") for i, t in enumerate(toks)]
            cpu0 = d.cpu()
            t_queue = time.monotonic()
            for s in staged:
                peer.release(s)
            res = burst_measure(tracker, toks, t_queue, cpu0, d, n * (delay + 2) + 60)
            res.update(label=peer.label, modems=1, delay=delay)
            out.append(res)
    finally:
        peer.stop()
        set_delay(sim, [peer.modem], 0)
    return out


def run(ctx, work: str, args) -> list[dict]:
    if args.quick:
        n0, n3, p0, p3, per3 = 10, 2, 6, 2, 1
    else:
        n0, n3, p0, p3, per3 = 300, 12, 30, 8, 4
    gwm = [f"gw{i}" for i in range(8)]
    sim = Sim.start(os.path.join(work, "sim-sms"), modems=gwm + ["st0", "gm0"], send_delay=0)
    results = []
    try:
        for label, fn in [
            ("gatewayd 1 modem", lambda: sms_gatewayd(ctx, sim, work, gwm[:1], [(0, n0), (3, n3)])),
            ("gatewayd 2 modems", lambda: sms_gatewayd(ctx, sim, work, gwm[:2],
                                                       [(0, n0), (3, 2 * per3)])),
            ("gatewayd 4 modems", lambda: sms_gatewayd(ctx, sim, work, gwm[:4],
                                                       [(0, n0), (3, 4 * per3)])),
            ("gatewayd 8 modems", lambda: sms_gatewayd(ctx, sim, work, gwm[:8],
                                                       [(0, n0), (3, 8 * per3)])),
            ("smstools3", lambda: sms_peer(sim, Smstools(work, "st0", sim.device("st0"),
                                                         "aggressive"), [(0, p0), (3, p3)])),
            ("gammu-smsd", lambda: sms_peer(sim, GammuSmsd(work, "gm0", sim.device("gm0"),
                                                           "burst"), [(0, p0), (3, p3)])),
        ]:
            try:
                results += fn()
            except Exception as e:
                log(f"sms: {label} failed: {e}")
                results.append({"label": label, "error": f"{type(e).__name__}: {e}"})
    finally:
        sim.stop()

    rows = []
    for r in results:
        if "error" in r:
            rows.append([r["label"], "failed: " + r["error"].splitlines()[0]] + [""] * 7)
            continue
        label = r["label"] if r["label"] == "gatewayd" else r["label"].split(",")[0] + \
            (" (aggressive)" if "smstools" in r["label"] else " (LoopSleep 0/CommTimeout 0)")
        spread = "/".join(str(r["per_modem"][m]) for m in sorted(r["per_modem"]))
        rows.append([label, r["modems"], f"{r['delay']:g} s", r["n"], ms(r["first_after"]),
                     f"{r['span']:.2f} s", f"{r['rate']:.2f}", f"{r['cpu']:.1f} %", spread])
    table("SMS per second: N queued at once, rate = N / (first AT+CMGS .. last completed SMS)",
          ["daemon", "modems", "send delay", "N", "queued -> first AT+CMGS", "span", "msgs/s",
           "daemon CPU", "per modem"], rows)
    print_floor_note(results)
    return results


def print_floor_note(results: list[dict]) -> None:
    def rate(label, delay, modems=1):
        for r in results:
            if "error" not in r and r["label"].startswith(label) and r["delay"] == delay \
                    and r["modems"] == modems:
                return r["rate"]
        return None
    g0, g3 = rate("gatewayd", 0), rate("gatewayd", 3)
    s0, s3 = rate("smstools3", 0), rate("smstools3", 3)
    print("\nlibgammu's send path sleeps ~0.6 s between the '> ' prompt and Ctrl-Z (fixed sleeps "
          "in ATGEN), which caps gammu-smsd near 1.4 SMS/s per modem; gatewayd encodes with "
          "libgammu and writes PDU and Ctrl-Z at the prompt itself, as smstools3 does;", end=" ")
    if g0 and g3:
        per0, per3 = 1 / g0, 1 / g3
        line = (f"measured: gatewayd {per0:.3f} s per SMS at zero delay, {per3:.2f} s per SMS "
                f"with a 3 s send delay")
        if s3:
            line += f" (smstools3 {1 / s3:.2f} s)"
        if s0:
            line += f"; at zero delay smstools3 does {s0:.2f}/s to gatewayd's {g0:.2f}/s"
        print(line + ". With a real modem (2-5 s per send) the modem dominates; more modems "
              "scale the rate (see 2, 4 and 8 modems).")
    else:
        print("(not all rates measured)")


def summary_rows(sms) -> list[list]:
    """The summary's lines of this phase."""
    rows = []
    def find(label, delay, modems=1):
        return next((r for r in sms if "error" not in r and r["label"].startswith(label)
                     and r["delay"] == delay and r["modems"] == modems), None)

    for delay, modems in [(0, 1), (3, 1), (0, 2), (0, 4), (0, 8), (3, 2), (3, 4), (3, 8)]:
        g = find("gatewayd", delay, modems)
        s = find("smstools3", delay) if modems == 1 else None
        m = find("gammu-smsd", delay) if modems == 1 else None
        want = GOALS.get((delay, modems))
        rows.append([f"SMS/s, {modems} modem{'s' if modems > 1 else ''}, {delay} s send delay",
                     f"{g['rate']:.2f} (N={g['n']})" if g else "-",
                     f">= {want}" if want else "",
                     goal(g["rate"] >= want) if g and want else "",
                     f"{s['rate']:.2f} (N={s['n']})" if s else ("" if modems > 1 else "-"),
                     f"{m['rate']:.2f} (N={m['n']})" if m else ("" if modems > 1 else "-")])
    return rows
