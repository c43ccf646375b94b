"""bench.py phase "cluster": two gatewayd on two real corosync nodes (tests/lib/gwcluster.py
through cluster_rig.py), root only: replicated acceptance and latency, takeover, catch-up.

Method (the numbers are those of bench.py's list of phases):

5. cluster: two gatewayd on two real corosync nodes (tests/lib/gwcluster.py through
   cluster_rig.py: network namespaces, token 1000 ms, ipc:// endpoints), root only.
   a. acceptance: both daemons without a [modem] section (alerts wait, queued); 20,000
      alerts with distinct keys, 8 clients x 8 in flight (DEALER), 4 clients on node a and 4
      on node b, from zload (tests/bench/zload.c: the 8 clients in one C thread, so that
      they take little of the cores the daemons are measured on); then 32 in flight; then
      8 x 8 again from 8 Python client processes (clients.load(), as measured before
      zload). "queued" = committed on both nodes. Rate as in 2. Then 8 x 8 from zload on
      one modem-less solo gatewayd, for comparison.
   b. latency: open loop at 1,000 alerts/s (500/s to each node) from zload, 20 s; each
      request on a DEALER of its own from a pool (replies may come out of order), latency =
      reply - scheduled send time; then the same from the Python clients (one process per
      node). The same at 1,000/s on the solo gatewayd, from zload.
   c. diagnostic: a and b again after every corosync thread was moved from SCHED_RR 99 to
      SCHED_OTHER (both nodes share this machine's cores; see README).
   d. takeover: modems on both nodes; a's modem 3 s per send (simulator send_delay), b's
      instant. Alerts go to node a until a owns 5 of them (ownership computed by the
      daemon's rule, members.c); once b has sent its own and a's modem is mid-send, a
      random pause in [0, 3 s], then Cluster.kill9("a") (daemon and corosync, SIGKILL).
      Figures: from the kill to the first AT+CMGS on b's modem carrying an alert a owned
      and had not completed, and to that SMS completed (simulator records, as in 1);
      also when b's log first showed "left the cluster" (polled). 5 rounds, a restarted
      between them.
   e. catch-up: no modems; b's daemon stopped (SIGTERM; its corosync stays), 100,000
      alerts (ttl 7 d) accepted by a alone as in 2, then b started with an empty state dir.
      Time from that start until b's status queue counts equal a's, neither reports
      cluster.syncing and both list a and b online (status polled every 0.2 s). Then
      (4b) b, in step for 12 s (more than [cluster] rejoin_margin, 10 s here), stopped again;
      1,000 alerts accepted by a alone; b started on its own disk: time until the same
      condition, and the records a sent (its log).
   f. SMS across nodes: modems on every node (simulator), alerts burst to node a alone
      (ownership spreads them by the daemons' hash), rate = N / (first AT+CMGS .. last
      completed SMS) over every node's modems, as in 3: two nodes with one modem each, two
      nodes with two each, three nodes with one each; instant modems (N = 200) and 3 s per
      send (4 alerts per modem).
   g. three nodes: a, b, c on a bridge (votequorum without two_node), no modems; the load of
      a. (8 clients x 8 in flight, spread a, b, c, a, ...: "queued" = committed on all three)
      and of b. (1,000/s, a third to each node), from zload.
   h. history (only with --parts history): a's store filled with 1,000,000 finished alerts
      by SQL while it is stopped (phase_history.fill(), final a day ago, within retention),
      b started with an empty state dir: time until both are in step, the longest status
      wait of each meanwhile, the alerts each store then holds, and both corosyncs' peak
      memory (VmHWM), as part 5 also reports.
   --quick: 5,000 alerts, 5 s paced, 1 takeover round, 10,000 alerts to catch up; f. with
   N = 30 and 1 alert per modem at 3 s; h. with 100,000.
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import statistics
import threading
import time

import clients
from shared import (GATEWAYD, NUMBER, Gatewayd, Tracker, accept_run, goal, log, ms, pct, table,
                    token)


TAKEOVER_DELAY = 3.0  # simulator send delay of a's modem while alerts pile up behind it
TAKEOVER_GOAL = 2.7   # token 1000 + consensus 1200 + 0.5 s
REJOIN_MARGIN = 10    # [cluster] rejoin_margin here (default 60): in step this long, a node has it all


class LogWatch:
    """When a line containing `needle` first appeared in a log file (the daemon's stderr lines
    carry no time of their own): polled, so to within the poll interval."""

    def __init__(self, path: str, needles: list[str]):
        self.path, self.needles = path, needles
        try:
            self.pos = os.path.getsize(path)
        except FileNotFoundError:
            self.pos = 0
        self.seen: dict[str, float] = {}
        self.lines: dict[str, str] = {}

    def poll(self) -> None:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.pos)
                data = f.read()
        except FileNotFoundError:
            return
        cut = data.rfind(b"\n") + 1
        self.pos += cut
        now = time.monotonic()
        for line in data[:cut].decode(errors="replace").splitlines():
            for n in self.needles:
                if n in line and n not in self.seen:
                    self.seen[n], self.lines[n] = now, line.strip()


def cluster_rig():
    """The rig module, or a reason why the lab cannot run here."""
    import cluster_rig as cr
    import gwcluster
    reason = gwcluster.can_run()
    return cr, reason


def close_cluster(c, args) -> None:
    c.close()
    if args.keep:
        print(f"kept {c.dir}")
    else:
        c.remove_dir()


def cluster_accept(ctx, work: str, args, cr) -> dict:
    """1 and 2: acceptance with 8 clients x 8 in flight, half on each node, then the paced
    open-loop latency at 1,000 alerts/s, both on one pair of modem-less nodes; then the same
    two loads on one modem-less solo gatewayd for comparison."""
    total = 5000 if args.quick else 20000
    paced_n = 1000 * (5 if args.quick else 20)
    out = {"total": total, "paced_n": paced_n}
    c = cr.BenchCluster("bench-accept", GATEWAYD, modems=False)
    c.up()
    try:
        c.start_both_nomodem()
        c.wait_members()
        eps = [c.node("a").endpoint, c.node("b").endpoint]
        mark = {}

        def on_start():
            mark["d"], mark["c"], mark["w"] = c.cpu(), c.cpu(corosync=True), c.runqueue_wait()
            mark["t"] = time.monotonic()

        # 8 in flight per client, as the single-node figure; then 32, where the round trip
        # through both nodes (two CPG deliveries, two fsyncs) is hidden behind more pipelining.
        # From zload (C, one thread); then 8 x 8 again from the Python clients, as measured
        # before zload existed, for comparison.
        for key, depth, prefix, load in (("accept", 8, "cl", clients.load_native),
                                         ("accept_deep", 32, "cldeep", clients.load_native),
                                         ("accept_py", 8, "clpy", clients.load)):
            payloads = [json.dumps({"to": [NUMBER], "text": f"bench cluster alert {i}",
                                    "key": f"{prefix}-{i}"}).encode() for i in range(total)]
            log(f"cluster: {total} alerts, 8 clients x {depth} in flight, 4 on each node"
                f"{' (Python clients)' if load is clients.load else ''}")
            res = load(eps, payloads, 8, depth, on_start=on_start)
            wall = time.monotonic() - mark["t"]
            d_cpu, all_cpu = c.cpu() - mark["d"], c.cpu(corosync=True) - mark["c"]
            res["daemons_cpu"] = d_cpu / wall * 100
            res["corosync_cpu"] = (all_cpu - d_cpu) / wall * 100
            res["client_cpu_pct"] = res["client_cpu"] / wall * 100
            res["daemons_wait"] = (c.runqueue_wait() - mark["w"]) / wall * 100
            res["status"] = {n: c.status(n)["queue"]["queued"] for n in ("a", "b")}
            out[key] = res

        log(f"cluster: paced {paced_n} alerts at 1,000/s, open loop, 500/s to each node")
        payloads = [json.dumps({"to": [NUMBER], "text": f"bench cluster paced {i}",
                                "key": f"clp-{i}"}).encode() for i in range(paced_n)]
        d0, a0, w0, t0 = c.cpu(), c.cpu(corosync=True), c.runqueue_wait(), time.monotonic()
        res = clients.paced_native(eps, payloads, 1000.0)
        wall = time.monotonic() - t0
        res["daemons_cpu"] = (c.cpu() - d0) / wall * 100
        res["daemons_wait"] = (c.runqueue_wait() - w0) / wall * 100
        res["corosync_cpu"] = (c.cpu(corosync=True) - a0) / wall * 100 - res["daemons_cpu"]
        out["paced"] = res
        log(f"cluster: paced {paced_n} alerts at 1,000/s again, from the Python clients")
        payloads = [json.dumps({"to": [NUMBER], "text": f"bench cluster paced py {i}",
                                "key": f"clpp-{i}"}).encode() for i in range(paced_n)]
        out["paced_py"] = clients.paced(eps, payloads, 1000.0)
        for n in ("a", "b"):
            c.node(n).check_alive()

        # Diagnostic: the same two loads with both corosyncs demoted from SCHED_RR 99.
        out["policy"] = c.corosync_policy("a")
        threads = c.demote_corosync()
        log(f"cluster: diagnostic: {threads} corosync threads from {out['policy']} to "
            f"SCHED_OTHER; the same two loads again")
        payloads = [json.dumps({"to": [NUMBER], "text": f"bench cluster diag alert {i}",
                                "key": f"cld-{i}"}).encode() for i in range(total)]
        mark.clear()
        res = clients.load_native(eps, payloads, 8, 8, on_start=on_start)
        wall = time.monotonic() - mark["t"]
        d_cpu, all_cpu = c.cpu() - mark["d"], c.cpu(corosync=True) - mark["c"]
        res["daemons_cpu"] = d_cpu / wall * 100
        res["corosync_cpu"] = (all_cpu - d_cpu) / wall * 100
        res["client_cpu_pct"] = res["client_cpu"] / wall * 100
        res["daemons_wait"] = (c.runqueue_wait() - mark["w"]) / wall * 100
        out["diag_accept"] = res
        payloads = [json.dumps({"to": [NUMBER], "text": f"bench cluster diag paced {i}",
                                "key": f"cldp-{i}"}).encode() for i in range(paced_n)]
        d0, a0, w0, t0 = c.cpu(), c.cpu(corosync=True), c.runqueue_wait(), time.monotonic()
        res = clients.paced_native(eps, payloads, 1000.0)
        wall = time.monotonic() - t0
        res["daemons_cpu"] = (c.cpu() - d0) / wall * 100
        res["daemons_wait"] = (c.runqueue_wait() - w0) / wall * 100
        res["corosync_cpu"] = (c.cpu(corosync=True) - a0) / wall * 100 - res["daemons_cpu"]
        out["diag_paced"] = res
        out["diag_members"] = {n: sorted(c.online_members(c.status(n))) for n in ("a", "b")}
    finally:
        close_cluster(c, args)

    log(f"cluster: single-node comparison, {total} alerts 8 x 8, then paced at 1,000/s")
    res, gw = accept_run(ctx, work, "gw-solo-accept", total, 8, 8, native=True)
    gw.stop()
    out["solo_accept"] = res
    gw = Gatewayd(ctx, work, "gw-solo-paced", {}).start()
    try:
        payloads = [json.dumps({"to": [NUMBER], "text": f"bench solo paced {i}",
                                "key": f"sp-{i}"}).encode() for i in range(paced_n)]
        out["solo_paced"] = clients.paced_native([gw.endpoint], payloads, 1000.0)
        gw.daemon.check()
    finally:
        gw.stop()
    return out


def cluster_takeover(args, cr, seed: int) -> dict:
    """3: kill -9 of node a (daemon and corosync) while alerts a owns are pending; time to the
    first AT+CMGS (and completed SMS) on b's modem of an alert a owned."""
    rounds = 1 if args.quick else 5
    rng = random.Random(seed)
    out = {"rounds": [], "mispredicted": 0}
    c = cr.BenchCluster("bench-takeover", GATEWAYD, modems=True, send_delay=0)
    c.up()
    try:
        c.start_both()
        for r in range(rounds):
            if r:
                c.sim.control({"cmd": "set", "modem": "a0", "send_delay": 0})
                c.start("a")
            c.wait_members(timeout=30)

            def settled():
                for n in ("a", "b"):
                    st = c.node(n).try_request({"op": "status"}, timeout=2)
                    if not st or st["cluster"].get("syncing"):
                        return False
                    ok = {(m["node"], m["state"]) for m in st.get("modems", [])}
                    if not {("a", "ok"), ("b", "ok")} <= ok:
                        return False
                return True

            cr.wait_until(settled, 30, "both nodes settled with both modems ok", interval=0.2)
            c.sim.control({"cmd": "set", "modem": "a0", "send_delay": TAKEOVER_DELAY})
            c.sim.control({"cmd": "set", "modem": "b0", "send_delay": 0})
            tb = Tracker(c.sim, ["b0"])
            tall = Tracker(c.sim, ["a0", "b0"])
            owned = {"a": [], "b": []}
            i = 0
            while len(owned["a"]) < 5 and i < 40:
                tok = token()
                number = f"+32479{r:02d}{i:04d}"
                rep = c.send("a", [number], f"bench takeover {r} {i} {tok}",
                             key=f"takeover-{r}-{i}-{tok}")
                if rep.get("status") != "queued":
                    raise RuntimeError(f"node a answered {rep}")
                owned[cr.owner(rep["id"], number)].append(tok)
                i += 1
            log(f"cluster: takeover round {r + 1}/{rounds}: {i} alerts to a, "
                f"{len(owned['a'])} owned by a, {len(owned['b'])} by b")
            tall.wait(owned["b"], 60, c.node("b").check_alive)  # b's modem idle again
            # a's modem is busy with one of its alerts (3 s each): kill at a random phase
            deadline = time.monotonic() + 30
            while not any(tall.seen.get(t, {}).get("cmgs") for t in owned["a"]):
                tall.poll()
                if time.monotonic() > deadline:
                    raise RuntimeError("a's modem never started sending")
                time.sleep(0.02)
            time.sleep(rng.uniform(0, TAKEOVER_DELAY))
            tall.poll()
            tb.poll()
            pending = [t for t in owned["a"] if "done" not in tall.seen.get(t, {})]
            early = [t for t in owned["a"] if t in tb.seen]
            out["mispredicted"] += len(early)
            watch = LogWatch(c.node("b").log_path, ["left the cluster", "Taking over"])
            t_kill = c.kill9("a")
            first = None
            deadline = t_kill + 60
            while time.monotonic() < deadline:
                tb.poll()
                watch.poll()
                # Both records: the completion can be read before the AT log line with the PDU.
                got = [tb.seen[t] for t in pending
                       if "done" in tb.seen.get(t, {}) and tb.seen[t].get("cmgs")]
                if got and first is None:
                    first = min(got, key=lambda s: s["cmgs"])
                if len(got) == len(pending):
                    break
                time.sleep(0.01)
            if first is None:
                raise RuntimeError(f"b's modem sent none of a's {len(pending)} pending alerts "
                                   f"within 60 s\n{c.node('b').log_tail(10)}")
            done = [tb.seen[t]["done"] for t in pending if "done" in tb.seen.get(t, {})]
            rec = {"cmgs": first["cmgs"] - t_kill, "done": first["done"] - t_kill,
                   "pending": len(pending), "all": max(done) - t_kill, "sent": len(done),
                   "left": watch.seen.get("left the cluster", float("nan")) - t_kill,
                   "left_line": watch.lines.get("left the cluster", "")}
            out["rounds"].append(rec)
            log(f"  kill -> b0 AT+CMGS {ms(rec['cmgs'])}, sent {ms(rec['done'])}; b logged "
                f"'left the cluster' after {ms(rec['left'])}; {len(done)}/{len(pending)} of "
                f"a's pending sent by b0 after {ms(rec['all'])}")
    finally:
        close_cluster(c, args)
    return out


def cluster_catchup(args, cr) -> dict:
    """4: b's daemon stopped, `total` alerts accepted by a alone, b started with an empty state
    dir; time until b's queue counts equal a's and neither is syncing."""
    total = 10000 if args.quick else 100000
    out = {"total": total}
    c = cr.BenchCluster("bench-catchup", GATEWAYD, modems=False, rejoin_margin=REJOIN_MARGIN)
    c.up()
    try:
        c.start_both_nomodem()
        c.wait_members()
        c.stop("b")  # the daemon only: b's corosync keeps running
        c.wait_members(names=("a",), want=("a",))
        log(f"cluster: catch-up: {total} alerts accepted by a alone (ttl 7 d, no modem)")
        payloads = [json.dumps({"to": [NUMBER], "text": f"bench catch-up alert {i}",
                                "key": f"cu-{i}", "ttl": 604800}).encode()
                    for i in range(total)]
        res = clients.load_native(c.node("a").endpoint, payloads, 8, 8)
        out["accept_rate"], out["queued"] = res["rate"], res["queued"]
        target = c.status("a")["queue"]
        out["target"] = target
        db = sum(os.path.getsize(os.path.join(dp, f))
                 for dp, _, fs in os.walk(c.node("a").state_dir) for f in fs)
        out["db_bytes"] = db
        log(f"cluster: catch-up: starting b with an empty state dir (a holds "
            f"{target['queued']:,} queued, store {db / 1e6:.0f} MB)")
        watch = LogWatch(c.node("b").log_path, ["exchanging state", "In step with the cluster",
                                                "Ending the state exchange"])
        watch_a = LogWatch(c.node("a").log_path, ["In step with the cluster",
                                                  "Ending the state exchange"])
        cpu0 = c.cpu(("a",), corosync=True)
        # Meanwhile an upstream system keeps submitting to a: one alert every 0.25 s, each
        # waiting for its reply (at most 60 s); how long a keeps it waiting is the stall
        # that a user of the cluster sees while b catches up.
        probes: list[tuple[float, float]] = []
        stop = threading.Event()

        def probe():
            i = 0
            while not stop.is_set():
                ts = time.monotonic()
                try:
                    rep = c.node("a").send([NUMBER], f"bench catch-up probe {i}",
                                           timeout=60, key=f"cu-probe-{i}")
                    if rep.get("status") == "queued":
                        probes.append((ts - t0, time.monotonic() - ts))
                except AssertionError:
                    probes.append((ts - t0, float("inf")))
                i += 1
                stop.wait(0.25)

        t0 = time.monotonic()
        c.start("b", wipe_state=True, wait=False)
        prober = threading.Thread(target=probe, daemon=True)
        prober.start()
        marks: dict[str, float] = {}
        waits = {"a": (0.0, 0.0), "b": (0.0, 0.0)}  # longest status wait: (at, seconds)
        last = {}
        limit = 120 if args.quick else 900
        try:
            while True:
                watch.poll()
                watch_a.poll()
                st = {}
                for n in ("a", "b"):
                    ts = time.monotonic()
                    st[n] = c.node(n).try_request({"op": "status"}, timeout=60)
                    w = time.monotonic() - ts
                    if st[n] is not None and w > waits[n][1]:
                        waits[n] = (ts - t0, w)
                sa, sb = st["a"], st["b"]
                now = time.monotonic() - t0
                if sb and "answer" not in marks:
                    marks["answer"] = now
                if sa and sb:
                    last = {"a": (sa["queue"], sa["cluster"]["syncing"]),
                            "b": (sb["queue"], sb["cluster"]["syncing"])}
                    if sb["queue"] == sa["queue"] and "counts" not in marks:
                        marks["counts"] = now
                    if (sb["queue"] == sa["queue"] and not sa["cluster"]["syncing"]
                            and not sb["cluster"]["syncing"]
                            and cr.Cluster.online_members(sb) == {"a", "b"}
                            and cr.Cluster.online_members(sa) == {"a", "b"}):
                        marks["done"] = now
                        break
                if now > limit:
                    raise RuntimeError(f"b not caught up after {limit} s; last seen {last}\n"
                                       f"{c.node('b').log_tail(10)}")
                time.sleep(0.2)
        finally:
            stop.set()
            prober.join(70)
        out["cpu_a"] = c.cpu(("a",), corosync=True) - cpu0
        watch.poll()
        watch_a.poll()
        worst = max(probes, key=lambda x: x[1], default=(float("nan"), float("nan")))
        out.update(marks=marks, seconds=marks["done"], status_waits=waits,
                   probes=len(probes), probe_worst=worst,
                   probe_p50=pct([x[1] for x in probes], 50),
                   logs={**{f"b: {k}": (v - t0, watch.lines[k]) for k, v in watch.seen.items()},
                         **{f"a: {k}": (v - t0, watch_a.lines[k])
                            for k, v in watch_a.seen.items()}})
        out["corosync_peak"] = {n: c.corosync_peak_mb(n) for n in ("a", "b")}
        log(f"  caught up in {marks['done']:.1f} s")
        out["rejoin"] = rejoin_on_disk(c, cr, 200 if args.quick else 1000)
    finally:
        close_cluster(c, args)
    return out


def cluster_history(args, cr) -> dict:
    """h (not part of the default run): node a's store holds 1,000,000 finished alerts
    (written with SQL while it is stopped, as the history phase does, final a day ago: within
    the retention, so they are part of the history b must receive); b starts with an empty
    state dir. Time until neither reports cluster.syncing and both list a and b online, and
    the longest status wait of each node meanwhile."""
    import phase_history
    total = 100000 if args.quick else 1000000
    out = {"total": total}
    c = cr.BenchCluster("bench-history", GATEWAYD, modems=False)
    c.up()
    try:
        c.start_both_nomodem()
        c.wait_members()
        c.stop("b")
        c.stop("a")
        db = os.path.join(c.node("a").state_dir, "gatewayd.db")
        log(f"cluster: history: writing {total:,} finished alerts into a's store")
        out["fill_seconds"] = phase_history.fill(db, total, age_days=1)
        out["db_bytes"] = os.path.getsize(db)
        t_a = time.monotonic()
        c.start_nomodem("a", timeout=600)
        out["a_start"] = time.monotonic() - t_a
        log(f"cluster: history: a up in {out['a_start']:.1f} s (store "
            f"{out['db_bytes'] / 1e6:.0f} MB); starting b with an empty state dir")
        watch = LogWatch(c.node("a").log_path, ["Sending the cluster"])
        t0 = time.monotonic()
        c.start("b", wipe_state=True, wait=False)
        waits = {"a": 0.0, "b": 0.0}
        limit = 300 if args.quick else 1800
        while True:
            watch.poll()
            st = {}
            for n in ("a", "b"):
                ts = time.monotonic()
                st[n] = c.node(n).try_request({"op": "status"}, timeout=120)
                if st[n] is not None:
                    waits[n] = max(waits[n], time.monotonic() - ts)
            sa, sb = st["a"], st["b"]
            if (sa and sb and not sa["cluster"]["syncing"] and not sb["cluster"]["syncing"]
                    and cr.Cluster.online_members(sa) == {"a", "b"}
                    and cr.Cluster.online_members(sb) == {"a", "b"}):
                break
            if time.monotonic() - t0 > limit:
                raise RuntimeError(f"b not caught up after {limit} s\n"
                                   f"{c.node('b').log_tail(10)}")
            time.sleep(0.5)
        out["seconds"] = time.monotonic() - t0
        out["waits"] = waits
        out["corosync_peak"] = {n: c.corosync_peak_mb(n) for n in ("a", "b")}
        out["sent_line"] = watch.lines.get("Sending the cluster", "")
        out["b_bytes"] = sum(os.path.getsize(os.path.join(dp, f))
                             for dp, _, fs in os.walk(c.node("b").state_dir) for f in fs)
        out["held"] = {}
        for n in ("a", "b"):  # what each store holds, read beside the running daemon (WAL)
            uri = f"file:{os.path.join(c.node(n).state_dir, 'gatewayd.db')}?mode=ro"
            with sqlite3.connect(uri, uri=True) as con:
                out["held"][n] = con.execute("SELECT count(*) FROM alerts").fetchone()[0]
        log(f"  caught up in {out['seconds']:.1f} s")
    finally:
        close_cluster(c, args)
    return out


def rejoin_on_disk(c, cr, more: int) -> dict:
    """4b: b, in step with a for longer than the rejoin margin, stopped; `more` alerts accepted
    by a alone; b started again on its own disk: how long until both agree, and how many
    records a sent (its log's "In step with the cluster: sent N record(s)")."""
    time.sleep(REJOIN_MARGIN + 2)
    c.stop("b")
    c.wait_members(names=("a",), want=("a",))
    payloads = [json.dumps({"to": [NUMBER], "text": f"bench rejoin alert {i}",
                            "key": f"rj-{i}", "ttl": 604800}).encode() for i in range(more)]
    clients.load_native(c.node("a").endpoint, payloads, 4, 8)
    held = c.status("a")["queue"]["queued"]
    log(f"cluster: rejoin: b back on its disk after {more} alerts accepted by a alone "
        f"(a holds {held:,} queued)")
    watch = LogWatch(c.node("a").log_path, ["In step with the cluster", "Sending the cluster"])
    t0 = time.monotonic()
    c.start("b", wait=False)
    deadline = t0 + 300
    while True:
        watch.poll()
        sa = c.node("a").try_request({"op": "status"}, timeout=30)
        sb = c.node("b").try_request({"op": "status"}, timeout=30)
        if (sa and sb and sb["queue"] == sa["queue"] and not sa["cluster"]["syncing"]
                and not sb["cluster"]["syncing"]
                and cr.Cluster.online_members(sb) == {"a", "b"}
                and "In step with the cluster" in watch.seen):
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"b back on its disk not caught up after 300 s\n"
                               f"{c.node('b').log_tail(10)}")
        time.sleep(0.1)
    seconds = time.monotonic() - t0
    line = watch.lines["In step with the cluster"]
    sent = int(line.split("sent ")[1].split(" ")[0])
    log(f"  caught up in {seconds:.1f} s; a sent {sent:,} records "
        f"({watch.lines.get('Sending the cluster', '').split(': ', 1)[-1]})")
    return {"more": more, "held": held, "seconds": seconds, "sent": sent,
            "how": watch.lines.get("Sending the cluster", "")}


def cluster_sms(ctx, args, cr) -> dict:
    """f: SMS/s over the modems of two and three nodes, alerts burst to node a."""
    n0, per3 = (30, 1) if args.quick else (200, 4)
    out = {"runs": []}
    for names, per_node in ((("a", "b"), 1), (("a", "b"), 2), (("a", "b", "c"), 1)):
        label = f"{len(names)} nodes x {per_node} modem{'s' if per_node > 1 else ''}"
        c = cr.BenchCluster(f"bench-sms-{len(names)}x{per_node}", GATEWAYD, modems=True,
                            nodes=names, modems_per_node=per_node)
        c.up()
        try:
            c.start_all()
            c.wait_members(timeout=30)
            modems = [m for n in names for m in c.node(n).sim_modems]

            def all_up():
                st = c.node("a").try_request({"op": "status"}, timeout=2)
                return st and sum(m.get("state") == "ok" for m in st.get("modems", [])) \
                    == len(modems) and not st["cluster"].get("syncing")

            cr.wait_until(all_up, 30, f"{len(modems)} modems ok on node a", interval=0.2)
            tracker = Tracker(c.sim, modems)
            tok = token()
            c.send("a", [NUMBER], f"bench cluster sms warmup {tok}")
            tracker.wait([tok], 60, c.node("a").check_alive)
            for delay, n in ((0, n0), (3, per3 * len(modems))):
                for m in modems:
                    c.sim.control({"cmd": "set", "modem": m, "send_delay": delay})
                time.sleep(0.5)
                log(f"cluster: sms: {label}, delay {delay:g} s, {n} alerts to node a")
                toks = [token() for _ in range(n)]
                t_queue, replies = clients.burst(
                    ctx, c.node("a").endpoint,
                    [{"to": [NUMBER], "text": f"bench cluster sms {i} {t}"}
                     for i, t in enumerate(toks)])
                bad = [r for r in replies if r.get("status") != "queued"]
                if bad:
                    raise RuntimeError(f"node a refused: {bad[0]}")
                recs = tracker.wait(toks, n * (delay + 2) + 60, c.node("a").check_alive)
                first = min(r["cmgs"] for r in recs.values())
                last = max(r["done"] for r in recs.values())
                per_modem: dict[str, int] = {}
                for r in recs.values():
                    per_modem[r["modem"]] = per_modem.get(r["modem"], 0) + 1
                out["runs"].append({"label": label, "nodes": len(names), "modems": len(modems),
                                    "delay": delay, "n": n, "rate": n / (last - first),
                                    "first_after": first - t_queue, "per_modem": per_modem})
                log(f"  {n / (last - first):,.2f} SMS/s, per modem {per_modem}")
        finally:
            close_cluster(c, args)
    return out


def cluster_three(args, cr) -> dict:
    """g: acceptance and paced latency on three modem-less nodes."""
    total = 5000 if args.quick else 20000
    paced_n = 1000 * (5 if args.quick else 20)
    out = {"total": total, "paced_n": paced_n}
    c = cr.BenchCluster("bench-three", GATEWAYD, modems=False, nodes=("a", "b", "c"))
    c.up()
    try:
        c.start_both_nomodem()
        c.wait_members(timeout=30)
        eps = [c.node(n).endpoint for n in ("a", "b", "c")]
        mark = {}

        def on_start():
            mark["d"], mark["c"] = c.cpu(), c.cpu(corosync=True)
            mark["t"] = time.monotonic()

        payloads = [json.dumps({"to": [NUMBER], "text": f"bench three alert {i}",
                                "key": f"c3-{i}"}).encode() for i in range(total)]
        log(f"cluster: three nodes: {total} alerts, 8 clients x 8 in flight over a, b, c")
        res = clients.load_native(eps, payloads, 8, 8, on_start=on_start)
        wall = time.monotonic() - mark["t"]
        d_cpu, all_cpu = c.cpu() - mark["d"], c.cpu(corosync=True) - mark["c"]
        res["daemons_cpu"] = d_cpu / wall * 100
        res["corosync_cpu"] = (all_cpu - d_cpu) / wall * 100
        res["status"] = {n: c.status(n)["queue"]["queued"] for n in ("a", "b", "c")}
        out["accept"] = res
        log(f"  {res['rate']:,.0f} alerts/s; queued on a, b, c: {res['status']}")
        log(f"cluster: three nodes: paced {paced_n} alerts at 1,000/s, a third to each node")
        payloads = [json.dumps({"to": [NUMBER], "text": f"bench three paced {i}",
                                "key": f"c3p-{i}"}).encode() for i in range(paced_n)]
        out["paced"] = clients.paced_native(eps, payloads, 1000.0)
        for n in ("a", "b", "c"):
            c.node(n).check_alive()
    finally:
        close_cluster(c, args)
    return out


def run(ctx, work: str, args) -> dict | None:
    cr, reason = cluster_rig()
    if reason:
        print(f"\ncluster: not measured here: {reason}")
        return None
    out: dict = {}
    parts = set(args.parts.split(",")) if getattr(args, "parts", None) else None
    for key, fn in [("accept", lambda: cluster_accept(ctx, work, args, cr)),
                    ("takeover", lambda: cluster_takeover(args, cr, args.seed)),
                    ("catchup", lambda: cluster_catchup(args, cr)),
                    ("sms", lambda: cluster_sms(ctx, args, cr)),
                    ("three", lambda: cluster_three(args, cr)),
                    ("history", lambda: cluster_history(args, cr))]:
        if (key not in parts) if parts is not None else key == "history":
            continue
        try:
            out[key] = fn()
        except Exception as e:
            log(f"cluster: {key} failed: {type(e).__name__}: {e}")
            out[key] = {"error": f"{type(e).__name__}: {e}"}
    print_cluster(out)
    return out


def print_cluster(out: dict) -> None:
    def failed(part):
        r = out.get(part) or {}
        return r.get("error", "").splitlines()[0] if "error" in r else None

    acc = out.get("accept") or {}
    if failed("accept"):
        print(f"\ncluster acceptance/latency: could not measure: {failed('accept')}")
    elif acc.get("accept"):
        rows = []
        for label, r, cpu in [
                ("cluster: 4 clients on a + 4 on b", acc["accept"],
                 f"{acc['accept']['daemons_cpu']:.0f} % (+ corosyncs "
                 f"{acc['accept']['corosync_cpu']:.0f} %); daemons runnable, waiting for a "
                 f"core: {acc['accept']['daemons_wait']:.0f} %"),
                ("cluster: the same, 32 in flight per client", acc["accept_deep"],
                 f"{acc['accept_deep']['daemons_cpu']:.0f} % (+ corosyncs "
                 f"{acc['accept_deep']['corosync_cpu']:.0f} %); daemons runnable, waiting for a "
                 f"core: {acc['accept_deep']['daemons_wait']:.0f} %"),
                ("cluster: 8 x 8 again, from 8 Python client processes", acc["accept_py"],
                 f"{acc['accept_py']['daemons_cpu']:.0f} % (+ corosyncs "
                 f"{acc['accept_py']['corosync_cpu']:.0f} %); daemons runnable, waiting for a "
                 f"core: {acc['accept_py']['daemons_wait']:.0f} %"),
                ("single node, 8 x 8 from zload", acc["solo_accept"],
                 f"{acc['solo_accept']['daemon_cpu']:.0f} %")]:
            st = r.get("status") or {"solo": r.get("status_queued")}
            rows.append([label, f"{r['queued']}/{acc['total']}", f"{r['seconds']:.2f} s",
                         f"{r['rate']:,.0f}", cpu, f"{r['client_cpu_pct']:.0f} %",
                         ", ".join(f"{k} {v}" for k, v in st.items()),
                         "; ".join(r["errors"] + [f"{k}: {v}" for k, v in r["other"].items()])
                         or "-"])
        ratio = acc["accept"]["rate"] / acc["solo_accept"]["rate"]
        table("Cluster: durable replicated acceptance (committed on both nodes), 8 clients x 8 "
              "in flight (zload: 8 DEALER clients in one C thread), no modem", ["run", "queued", "time", "alerts/s",
                                      "daemons CPU (1 core = 100 %)", "clients CPU",
                                      "status queue.queued", "errors"], rows)
        rate = acc["accept"]["rate"]
        print(f"\nGoal >= 5,000/s at 8 x 8: {'met' if rate >= 5000 else 'NOT met'} "
              f"({rate:,.0f}/s, {ratio * 100:.0f} % of the single node's rate measured just "
              f"after it; 32 in flight: {acc['accept_deep']['rate']:,.0f}/s; the "
              f"single-node reference of the throughput phase is ~7,800/s). Both nodes, both "
              f"corosyncs and the clients share {os.cpu_count()} cores.")
        rows = []
        for label, r in [("cluster: 500/s to a + 500/s to b (zload)", acc["paced"]),
                         ("the same from the Python clients", acc["paced_py"]),
                         ("single node, 1,000/s (zload)", acc["solo_paced"])]:
            rows.append([label, f"{r['queued']}/{acc['paced_n']}", f"{r['rate']:,.0f}/s",
                         ms(pct(r["lat"], 50)), ms(pct(r["lat"], 90)), ms(pct(r["lat"], 99)),
                         ms(max(r["lat"], default=float("nan"))),
                         ms(pct(r["lag"], 99)),
                         "; ".join(r["errors"] + [f"{k}: {v}" for k, v in r["other"].items()])
                         or "-"])
        table("Cluster: submit -> 'queued' reply at a paced 1,000 alerts/s (open loop, from the "
              "scheduled send time)", ["run", "queued", "achieved", "p50", "p90", "p99", "max",
                                       "send lag p99", "errors"], rows)
        p = acc["paced"]
        print(f"\nCluster daemons' CPU at 1,000/s: {p['daemons_cpu']:.0f} % (+ corosyncs "
              f"{p['corosync_cpu']:.0f} %); the daemons' threads spent {p['daemons_wait']:.0f} % "
              "(of one core's time) runnable but waiting for a core. A reply means committed (fsync'd) on this node and "
              "confirmed committed by the other. Latency counts from the scheduled send time, "
              "so a stall also delays the requests behind it (no coordinated omission).")
        if "diag_accept" in acc:
            da, dp = acc["diag_accept"], acc["diag_paced"]
            table(f"Diagnostic, not a goal figure: the same cluster with both corosyncs demoted "
                  f"from {acc['policy']} to SCHED_OTHER",
                  ["load", "result", "daemons CPU", "daemons waiting for a core",
                   "corosyncs CPU", "errors"],
                  [["8 clients x 8 in flight, half to each node", f"{da['rate']:,.0f} alerts/s",
                    f"{da['daemons_cpu']:.0f} %", f"{da['daemons_wait']:.0f} %",
                    f"{da['corosync_cpu']:.0f} %",
                    "; ".join(da["errors"] + [f"{k}: {v}" for k, v in da["other"].items()])
                    or "-"],
                   ["paced 1,000/s", f"p50 {ms(pct(dp['lat'], 50))}, p99 "
                    f"{ms(pct(dp['lat'], 99))}, max {ms(max(dp['lat'], default=float('nan')))}",
                    f"{dp['daemons_cpu']:.0f} %", f"{dp['daemons_wait']:.0f} %",
                    f"{dp['corosync_cpu']:.0f} %",
                    "; ".join(dp["errors"] + [f"{k}: {v}" for k, v in dp["other"].items()])
                    or "-"]])
            print(f"\nBoth nodes share this machine's {os.cpu_count()} cores. corosync runs "
                  f"every thread {acc['policy']}, so under load the two corosyncs (token "
                  "circulating thousands of times a second) preempt both daemons, which then "
                  "spend most of their time runnable but waiting for a core. On two real "
                  "machines each node has its own cores. Members online afterwards: "
                  + ", ".join(f"{k}: {'+'.join(v)}" for k, v in acc["diag_members"].items())
                  + ".")

    tk = out.get("takeover") or {}
    if failed("takeover"):
        print(f"\ncluster takeover: could not measure: {failed('takeover')}")
    elif tk.get("rounds"):
        rs = tk["rounds"]
        rows = []
        for label, key in [("kill -9 of a -> b logs 'left the cluster'", "left"),
                           ("kill -9 of a -> first AT+CMGS on b's modem of an alert a owned",
                            "cmgs"),
                           ("kill -9 of a -> that SMS completed (b0 answered +CMGS)", "done"),
                           ("kill -9 of a -> all of a's pending alerts sent by b", "all")]:
            v = [r[key] for r in rs]
            rows.append([label, len(v), f"{statistics.median(v):.2f} s", f"{max(v):.2f} s"])
        table(f"Cluster: takeover after kill -9 of node a (token 1000 ms; a's modem {TAKEOVER_DELAY:g} "
              "s per send, b's instant)", ["figure", "n", "median", "max"], rows)
        cm = [r["cmgs"] for r in rs]
        dn = [r["done"] for r in rs]
        print(f"\nGoal <= token + consensus + 0.5 s = {TAKEOVER_GOAL} s: to the first AT+CMGS "
              f"{'met' if max(cm) <= TAKEOVER_GOAL else 'NOT met'} (max {max(cm):.2f} s); to "
              f"the SMS completed {'met' if max(dn) <= TAKEOVER_GOAL else 'NOT met'} (max "
              f"{max(dn):.2f} s). Pending "
              f"alerts of a at the kill: {', '.join(str(r['pending']) for r in rs)}"
              f"{'; ownership mispredicted ' + str(tk['mispredicted']) if tk['mispredicted'] else ''}"
              ". A single node has no takeover.")

    cu = out.get("catchup") or {}
    if failed("catchup"):
        print(f"\ncluster catch-up: could not measure: {failed('catchup')}")
    elif cu.get("marks"):
        m = cu["marks"]
        rows = [["b answers status", ms(m.get("answer", float("nan")))],
                ["b's queue counts = a's", ms(m.get("counts", float("nan")))],
                ["... and syncing false on both, both online (caught up)", ms(m["done"])]]
        table(f"Cluster: catch-up of node b started with an empty state dir, "
              f"{cu['total']:,} alerts accepted by a alone (no modem)",
              ["from b's start to", "time"], rows)
        q = cu["target"]
        wa, wb = cu["status_waits"]["a"], cu["status_waits"]["b"]
        pw = cu["probe_worst"]
        print(f"\na held {q['queued']:,} queued alerts (store {cu['db_bytes'] / 1e6:.0f} MB), "
              f"accepted alone at {cu['accept_rate']:,.0f}/s; caught up at "
              f"{cu['total'] / m['done']:,.0f} alerts/s. Meanwhile: the longest wait for a "
              f"status answer was {ms(wa[1])} from a (asked at {wa[0]:.1f} s) and {ms(wb[1])} "
              f"from b (at {wb[0]:.1f} s); {cu['probes']} alerts submitted to a one at a time "
              f"(every 0.25 s) waited p50 {ms(cu['probe_p50'])}, the longest {ms(pw[1])} "
              f"(submitted {pw[0]:.1f} s after b's start): new changes are held while the "
              f"nodes exchange state. {corosync_peak_text(cu)} Daemon log lines (seconds "
              "after b's start, polled):")
        for k, (t, line) in sorted(cu["logs"].items(), key=lambda kv: kv[1][0]):
            print(f"    {t:7.2f} s  {k.split(':')[0]}: {line}")
        rj = cu.get("rejoin")
        if rj:
            print(f"\nThen b, in step with a for {REJOIN_MARGIN + 2:.0f} s (rejoin_margin "
                  f"{REJOIN_MARGIN} s), stopped; a accepted "
                  f"{rj['more']:,} alerts alone (holding {rj['held']:,} queued); b started "
                  f"again on its own disk: caught up in {rj['seconds']:.1f} s, a sent "
                  f"{rj['sent']:,} records (the exchange of an empty node sends every alert "
                  "and dedupe row).")


    sm = out.get("sms") or {}
    if failed("sms"):
        print(f"\ncluster SMS/s: could not measure: {failed('sms')}")
    elif sm.get("runs"):
        rows = [[r["label"], f"{r['delay']:g} s", r["n"], f"{r['rate']:,.2f}",
                 f"{r['rate'] / r['modems']:,.2f}", ms(r["first_after"]),
                 ", ".join(f"{k} {v}" for k, v in sorted(r["per_modem"].items()))]
                for r in sm["runs"]]
        table("Cluster: SMS per second over the modems of every node, alerts burst to node a",
              ["nodes x modems", "send delay", "alerts", "SMS/s", "per modem", "first AT+CMGS",
               "SMS per simulator modem"], rows)
        print("\nAt 3 s per send the rate is the modems' (one SMS per modem per 3 s: 0.33/s "
              "each); instant modems show what the nodes themselves sustain, every attempt "
              "replicated to every node, on the same two cores.")

    th = out.get("three") or {}
    if failed("three"):
        print(f"\ncluster with three nodes: could not measure: {failed('three')}")
    elif th.get("accept"):
        r, p = th["accept"], th["paced"]
        two = (out.get("accept") or {}).get("accept") or {}
        table("Cluster of three nodes (a, b, c on a bridge), no modem",
              ["load", "result", "daemons CPU", "corosyncs CPU", "queued on a / b / c",
               "errors"],
              [["8 clients x 8 in flight over a, b, c", f"{r['rate']:,.0f} alerts/s"
                + (f" (two nodes: {two['rate']:,.0f})" if two.get("rate") else ""),
                f"{r['daemons_cpu']:.0f} %", f"{r['corosync_cpu']:.0f} %",
                " / ".join(str(v) for v in r["status"].values()),
                "; ".join(r["errors"] + [f"{k}: {v}" for k, v in r["other"].items()]) or "-"],
               ["paced 1,000/s, a third to each", f"{p['queued']}/{th['paced_n']}: p50 "
                f"{ms(pct(p['lat'], 50))}, p99 {ms(pct(p['lat'], 99))}, max "
                f"{ms(max(p['lat'], default=float('nan')))}", "", "", "",
                "; ".join(p["errors"] + [f"{k}: {v}" for k, v in p["other"].items()]) or "-"]])
        print("\n'queued' means committed on the node that answered and confirmed committed "
              "by both others; three daemons and three real-time corosyncs share the same "
              f"{os.cpu_count()} cores.")

    hi = out.get("history") or {}
    if failed("history"):
        print(f"\ncluster catch-up of a long history: could not measure: {failed('history')}")
    elif hi.get("seconds"):
        print(f"\n### Cluster: an empty node catches up on {hi['total']:,} finished alerts\n\n"
              f"a's store: {hi['db_bytes'] / 1e6:.0f} MB (written in {hi['fill_seconds']:.0f} s); "
              f"a answered status {hi['a_start']:.1f} s after its start. b, started with an empty "
              f"state dir, was in step (neither syncing, both online) after "
              f"**{hi['seconds']:.1f} s** ({hi['total'] / hi['seconds']:,.0f} alerts/s; b's store "
              f"{hi['b_bytes'] / 1e6:.0f} MB with its WAL; alerts in the stores: a "
              f"{hi['held']['a']:,}, b {hi['held']['b']:,}). Longest status wait meanwhile: a "
              f"{ms(hi['waits']['a'])}, b {ms(hi['waits']['b'])}. {corosync_peak_text(hi)} "
              f"a's log: {hi['sent_line'] or '-'}")


def corosync_peak_text(part: dict) -> str:
    """The corosyncs' peak memory in a catch-up: a sends its history at its own pace and the
    receiving node's corosync holds what b has not applied yet."""
    pk = part.get("corosync_peak")
    if not pk:
        return ""
    return (f"Peak memory of the corosyncs (VmHWM): a {pk['a']:.0f} MB, b {pk['b']:.0f} MB (a "
            "corosync holds the messages its daemon has not taken yet; the exchange is paced by "
            "the sender only).")


def summary_rows(clu: dict) -> list[list]:
    """The summary's lines of this phase."""
    rows = []
    acc = clu.get("accept") or {}
    if "accept" in acc:
        r, solo = acc["accept"], acc["solo_accept"]
        rows.append(["cluster: accepted alerts/s, 8 x 8 in flight, half to each node",
                     f"{r['rate']:,.0f}/s (single node {solo['rate']:,.0f}/s)", ">= 5,000/s",
                     goal(r["rate"] >= 5000), "n/a", "n/a"])
        p, sp = acc["paced"], acc["solo_paced"]
        rows.append(["cluster: submit -> 'queued' at 1,000/s, p50 / p99",
                     f"{ms(pct(p['lat'], 50))} / {ms(pct(p['lat'], 99))} (single node "
                     f"{ms(pct(sp['lat'], 50))} / {ms(pct(sp['lat'], 99))})", "", "", "n/a",
                     "n/a"])
    tk = clu.get("takeover") or {}
    if tk.get("rounds"):
        cm = [x["cmgs"] for x in tk["rounds"]]
        dn = [x["done"] for x in tk["rounds"]]
        rows.append([f"cluster: kill -9 of a -> b's modem sends a's alert (AT+CMGS; SMS done), "
                     f"n={len(cm)}",
                     f"median {statistics.median(cm):.2f} s, max {max(cm):.2f} s; done median "
                     f"{statistics.median(dn):.2f} s, max {max(dn):.2f} s",
                     f"<= {TAKEOVER_GOAL} s",
                     f"AT+CMGS {goal(max(cm) <= TAKEOVER_GOAL)}, done "
                     f"{goal(max(dn) <= TAKEOVER_GOAL)}", "n/a", "n/a"])
    for r in (clu.get("sms") or {}).get("runs", []):
        if r["delay"] == 3:
            rows.append([f"cluster: SMS/s, {r['label']}, 3 s per send",
                         f"{r['rate']:,.2f}/s ({r['rate'] / r['modems']:,.2f} per modem)", "",
                         "", "n/a", "n/a"])
    th = clu.get("three") or {}
    if th.get("accept"):
        rows.append(["cluster of three: accepted alerts/s, 8 x 8 in flight over a, b, c",
                     f"{th['accept']['rate']:,.0f}/s; at 1,000/s p99 "
                     f"{ms(pct(th['paced']['lat'], 99))}", "", "", "n/a", "n/a"])
    cu = clu.get("catchup") or {}
    if cu.get("marks"):
        rows.append([f"cluster: empty node b caught up on {cu['total']:,} alerts",
                     f"{cu['marks']['done']:.1f} s (an alert sent to a meanwhile waited up to "
                     f"{ms(cu['probe_worst'][1])})", "", "", "n/a", "n/a"])
        rj = cu.get("rejoin")
        if rj:
            rows.append([f"cluster: node b back on its disk, {rj['more']:,} new of "
                         f"{rj['held']:,}", f"{rj['seconds']:.1f} s, {rj['sent']:,} records "
                         "sent", "", "", "n/a", "n/a"])
    hi = clu.get("history") or {}
    if hi.get("seconds"):
        rows.append([f"cluster: empty node b caught up on {hi['total']:,} finished alerts",
                     f"{hi['seconds']:.1f} s (status waited up to {ms(hi['waits']['a'])} on a, "
                     f"{ms(hi['waits']['b'])} on b)", "", "", "n/a", "n/a"])
    return rows
