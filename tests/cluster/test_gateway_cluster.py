#!/usr/bin/python3
"""Two gatewayd nodes on two real corosync nodes (tests/lib/gwcluster.py): what a user sees.

Each test asserts on what the phones got (the simulator's records: which modem sent which
text, how many times) and on what both nodes answer (send, get, queue, status):
  a. both nodes see each other: a and b online on each, the modems of both nodes listed;
  b. alerts sent alternately to both nodes are each delivered exactly once, and both nodes
     agree on every alert's final state;
  c. the same key raced to both nodes at the same instant: one queued, one duplicate with the
     same id, one SMS;
  d. node a's modem hangs: alerts submitted to a go out through b's modem;
  e. kill -9 of node a (daemon and corosync) during a paced burst to a: every alert a answered
     queued is delivered (by b); a restarted on its disk agrees and records no stale attempts;
  f. node b restarted with an empty state dir catches up fully (get, queue, status) and
     nothing is sent again;
  g. a's corosync restarted under its running daemon: nothing accepted while both were
     connected is sent twice, everything is delivered;
  h. a 30 s partition: both halves accept and deliver; after the heal both agree on every
     alert and no text is sent again;
  i. a member speaking another protocol version is refused with a log line naming it, and
     the node keeps accepting without waiting for it;
  j. the path self-test: test SMS between the nodes' SIMs pass; when b's SIM stops receiving,
     a's modem shows degraded with the reason on both nodes, path_down is published and
     [health] pages once; when it receives again the next round clears it (and the page's
     all-clear follows); no test SMS reaches an inbox;
  k. the nodes' shared settings differ (another dedupe window on b): status on both warns; and
     once b is stopped, a's status shows it offline with its last sighting;
  l. every SMS path of both nodes fails for a critical alert: one node, and only one, calls
     the recipient and then the contact center; both nodes record the same two calls;
  m. a peer announces a clock 5 s ahead and other shared settings: status warns of both;
  n. the node that owns a critical alert's escalation is killed before the step deadline: the
     other pages the secondary on time; the secondary's SMS "ACK <code>" stops it; the dead
     node, back, agrees;
  o. a hostile PDU is quarantined and replicated, also through a rejoin;
  p. a critical alert accepted on a is resolved on b by its key: both nodes show it resolved,
     the primary gets exactly one all-clear, and nobody further up the chain is paged;
  q. a silence made on a holds on b after a is killed (its alerts silenced, nothing sent), and
     a, restarted with an empty disk, learns it in the rejoin exchange;
  r. critical alerts to one person submitted to both nodes at once, [limits] sms 3 per 20 s:
     never more than three SMS in a window from the two nodes together, every alert sent once,
     what was over grouped into one message;
  s. a dead-man monitor pinged on a fires from b on time once a is killed, once, and the next
     ping, on b, resolves it (the all-clear to whom it paged);
  t. [health]: node b killed, a pages that b is offline, once, through its own modem; b back,
     the alert resolves with an all-clear;
  u. b back on its disk after a accepted 5 alerts alone: a sends those, not the 30 b had; b
     back with an empty disk: a sends everything (its hello names another store);
  v. 40,000 finished alerts of a sent to an empty b for longer than [cluster]
     exchange_timeout (2 s) while b sends nothing back: the exchange goes on, b gets them all.
Each test prints a one-line summary of what it measured. Exit 77 when the lab cannot run here
(not root, no corosync, no network namespaces).
"""

from __future__ import annotations

import collections
import json
import os
import sqlite3
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from gwcluster import (FINAL, NODE_IDS, SIM_MODEM, NodeDown, WaitTimeout, main, owner,  # noqa: E402
                       health_cluster, summary, wait_until)
from oncall_fixture import ALICE, BOB, DAVE, oncall_config  # noqa: E402
import storefill  # noqa: E402

# The replication protocol version of this build (gatewayd/gateway-internal.h).
PROTOCOL_VERSION = 4
SETTLE = 2.0  # seconds to let an extra (duplicate) text show up before counting


def queued(r: dict, what: str) -> str:
    assert r.get("ok") is True and r.get("status") == "queued", f"{what}: {r}"
    assert len(r.get("id", "")) == 32, f"{what}: {r}"
    return r["id"]


def dups(counter, texts) -> dict:
    return {t: counter[t] for t in texts if counter[t] > 1}


def sent_by(alert: dict) -> list[tuple[str, str]]:
    """(node, modem) of every attempt that reports the text sent."""
    return [(x.get("node"), x.get("modem")) for d in alert.get("deliveries") or []
            for x in d.get("attempts") or [] if x.get("result") == "sent"]


def send_alternately(c, prefix: str, n: int, start: int = 0, nodes="ab") -> dict:
    """n alerts with distinct keys and texts, to nodes in turn; {id: (node, text)}."""
    out = {}
    for i in range(start, start + n):
        node = nodes[i % len(nodes)]
        text = f"{prefix} {i:03d}"
        r = c.send(node, [f"+3247{sum(map(ord, prefix)) % 100:02d}{i:05d}"], text,
                   key=f"{prefix}/{i}")
        out[queued(r, f"{text} to {node}")] = (node, text)
    return out


def test_a_both_nodes_see_each_other(rig):
    c = rig.cluster()
    t0 = time.monotonic()
    c.start_both()
    c.wait_members()
    seen = time.monotonic() - t0

    def both_modems(n):
        st = c.status(n)
        mods = {(m.get("node"), m.get("name")): m.get("state") for m in st.get("modems", [])}
        return st if all(mods.get((x, "gsm0")) in ("ok", "degraded") for x in "ab") else None

    for n in "ab":
        wait_until(lambda: both_modems(n), 15, f"node {n} to list the modems of a and b as up")
        st = wait_until(lambda: (lambda s: s if s["cluster"].get("syncing") is False else None)(
            c.status(n)), 10, f"node {n} to report syncing: false")
        assert st["node"].get("name") == n and st["node"].get("id") == NODE_IDS[n], st["node"]
        cl = st["cluster"]
        assert cl.get("enabled") is True, f"node {n}: cluster {cl}"
        assert cl.get("connected") is True, f"node {n}: not connected: {cl}"
        assert cl.get("quorate") is True, f"node {n}: not quorate: {cl}"
        members = {m["name"]: m for m in cl.get("members", [])}
        assert set(members) == {"a", "b"}, f"node {n}: members {cl.get('members')}"
        for m in members.values():
            assert m.get("online") is True and m.get("id") == NODE_IDS[m["name"]], \
                f"node {n}: member {m}"
            assert m.get("last_seen"), f"node {n}: member without last_seen: {m}"
        assert cl.get("warnings") == [], f"node {n}: warnings in a healthy cluster: {cl}"
    summary(f"both nodes list a and b online {seen:.1f} s after the daemons started "
            f"(modem set-up included), each lists both nodes' modems up")


def test_b_alternating_alerts_delivered_once(rig):
    c = rig.cluster()
    c.start_both()
    c.wait_members()
    t0 = time.monotonic()
    alerts = send_alternately(c, "alt", 40)
    t_sent = time.monotonic() - t0
    texts = [t for _, t in alerts.values()]
    c.wait_texts(texts, timeout=60)
    t_all = time.monotonic() - t0
    time.sleep(SETTLE)
    got = c.texts()
    assert not dups(got, texts), f"texts received more than once: {dups(got, texts)}"
    assert sum(got.values()) == len(texts), f"unexpected texts: {got}"
    res = c.wait_agree(alerts, timeout=30)
    modem_of = {m["text"]: m["modem"] for m in c.sms()}
    for i, (node, text) in alerts.items():
        a = res[i]["a"]
        assert a["state"] in ("sent", "delivered"), a
        by = sent_by(a)
        assert len(by) == 1, f"{text}: sent attempts {by}"
        assert {"a": "a0", "b": "b0"}.get(by[0][0]) == modem_of[text], \
            f"{text}: get says sent by {by[0]}, the simulator got it from {modem_of[text]}"
    summary(f"40 alerts accepted in {t_sent:.1f} s, all delivered once in {t_all:.1f} s "
            f"(a0 {len(c.sms('a0'))}, b0 {len(c.sms('b0'))}); both nodes agree on all 40")


def test_c_same_key_raced_to_both_nodes(rig):
    c = rig.cluster()
    c.start_both()
    c.wait_members()
    rounds = 20
    results: dict[int, dict] = {}
    errors = []
    latency = []

    def submit(i, node, barrier):
        try:
            barrier.wait(timeout=10)
            t = time.monotonic()
            r = c.send(node, ["+32478000001"], f"race {i:02d}", key=f"race/{i}")
            latency.append(time.monotonic() - t)
            results.setdefault(i, {})[node] = r
        except Exception as e:  # reported by the main thread
            errors.append(f"round {i} node {node}: {e}")

    t0 = time.monotonic()
    for i in range(rounds):
        barrier = threading.Barrier(2)
        threads = [threading.Thread(target=submit, args=(i, n, barrier), daemon=True)
                   for n in "ab"]
        for t in threads:
            t.start()
        for t in threads:
            t.join(15)
        assert not any(t.is_alive() for t in threads), f"round {i}: a request hangs"
        assert not errors, errors
    first_on = {"a": 0, "b": 0}
    for i in range(rounds):
        ra, rb = results[i]["a"], results[i]["b"]
        statuses = sorted([ra.get("status"), rb.get("status")])
        assert ra.get("ok") and rb.get("ok") and statuses == ["duplicate", "queued"], \
            f"key race/{i}: a {ra}, b {rb}"
        assert ra["id"] == rb["id"], f"key race/{i}: different ids: a {ra}, b {rb}"
        first_on["a" if ra["status"] == "queued" else "b"] += 1
    texts = [f"race {i:02d}" for i in range(rounds)]
    c.wait_texts(texts, timeout=60)
    t_all = time.monotonic() - t0
    time.sleep(SETTLE)
    got = c.texts()
    assert not dups(got, texts), f"one key, several SMS: {dups(got, texts)}"
    summary(f"{rounds} keys raced to both nodes: one queued + one duplicate with the same id "
            f"each (queued on a {first_on['a']}, on b {first_on['b']}; replies in "
            f"{min(latency):.3f}-{max(latency):.3f} s); one SMS per key, all {rounds} within "
            f"{t_all:.1f} s")


def test_d_hung_modem_work_goes_to_peer(rig):
    c = rig.cluster()
    c.start_both()
    c.wait_members()
    c.sim.control({"cmd": "hang", "modem": "a0", "on": True})
    t0 = time.monotonic()
    alerts = send_alternately(c, "hung", 6, nodes="a")
    texts = [t for _, t in alerts.values()]
    c.wait_sms_count(1, timeout=60)
    t_first = time.monotonic() - t0
    c.wait_texts(texts, timeout=60)
    t_all = time.monotonic() - t0
    time.sleep(SETTLE)
    got = c.texts()
    assert not dups(got, texts), f"texts received more than once: {dups(got, texts)}"
    on_a0 = [m["text"] for m in c.sms("a0")]
    assert not on_a0, f"a0 is hung, yet it sent {on_a0}"
    for i, (_, text) in alerts.items():
        a = c.wait_state("a", i, ("sent", "delivered"), timeout=20)
        assert sent_by(a) == [("b", "gsm0")], f"{text}: sent attempts {sent_by(a)}"
    st = c.status("a")
    a_modem = [m for m in st["modems"] if m.get("node") == "a" and m.get("name") == "gsm0"]
    summary(f"a0 hung: 6 alerts to a went out through b0, first after {t_first:.1f} s, all "
            f"after {t_all:.1f} s; a's gsm0 now {a_modem[0].get('state') if a_modem else '?'}")


def test_e_kill9_node_during_burst(rig):
    c = rig.cluster(send_delay=0.3)
    # a's modem is slow, so that a has a send in flight when it dies.
    c.sim.control({"cmd": "set", "modem": "a0", "send_delay": 1.0})
    c.start_both()
    c.wait_members()
    total, kill_after = 40, 15
    accepted: dict[str, str] = {}
    unanswered = []
    lock = threading.Lock()
    enough = threading.Event()
    done = threading.Event()

    stop = threading.Event()

    def burst():
        try:
            for i in range(total):
                if stop.is_set():
                    return
                text = f"burst {i:03d}"
                try:
                    r = c.node("a").send([f"+32479{i:06d}"], text, timeout=3.0,
                                         key=f"burst/{i}")
                except NodeDown:
                    return
                except AssertionError:
                    unanswered.append(text)  # in flight when a died: no promise was made
                    continue
                if r.get("ok") and r.get("status") == "queued":
                    with lock:
                        accepted[r["id"]] = text
                        if len(accepted) >= kill_after:
                            enough.set()
                time.sleep(0.1)
        finally:
            done.set()

    th = threading.Thread(target=burst, daemon=True)
    th.start()
    try:
        assert enough.wait(30), f"only {len(accepted)} alerts accepted by a within 30 s"

        def a0_mid_send():
            started = sum(1 for r in c.sim.at_log("a0")
                          if str(r.get("cmd", "")).upper().startswith("AT+CMGS"))
            return started > len(c.sim.sms("a0"))

        wait_until(a0_mid_send, 10, "a's modem to be in the middle of a send", interval=0.02)
        before_kill = c.texts()
        t_kill = c.kill9("a")
        assert done.wait(30), "the burst did not stop after a's death"
    finally:
        stop.set()
        th.join(15)
    with lock:
        acc = dict(accepted)
    texts = list(acc.values())
    c.wait_members(names=("b",), want=("b",), timeout=20)
    t_seen = time.monotonic() - t_kill
    c.wait_texts(texts, timeout=90)
    t_all = time.monotonic() - t_kill
    time.sleep(SETTLE)
    got = c.texts()
    d = dups(got, texts)
    # Only the send in flight on a (one modem: one job at a time) may be repeated.
    assert len(d) <= 1, f"more repeats than sends in flight on the dead node: {d}"
    c.wait_agree(acc, nodes=("b",), timeout=30)
    sent_before = sum(1 for t in texts if before_kill[t])

    # a comes back on its own disk: it catches up, and does not mark as interrupted (a failed
    # attempt) the sends that b finished while it was down.
    c.start("a")
    c.wait_members(timeout=30)
    c.wait_agree(acc, timeout=30, full=True)
    stale = [(i, x) for i in acc for dl in c.get("a", i)["deliveries"]
             for x in dl["attempts"] if "interrupted" in (x["error"] or "")]
    assert not stale, f"attempts recorded after a's restart for sends b had made: {stale}"
    summary(f"a killed after {len(acc)} of {total} accepted ({len(unanswered)} unanswered, "
            f"{sent_before} already sent); b saw a gone after {t_seen:.1f} s and had every "
            f"accepted alert delivered {t_all:.1f} s after the kill; repeats {len(d)} {d or ''}; "
            f"a back on its disk agrees, no stale attempts")


def test_f_empty_state_rejoin_catches_up(rig):
    c = rig.cluster()
    c.start_both()
    c.wait_members()
    alerts = send_alternately(c, "hist", 10)
    c.wait_texts([t for _, t in alerts.values()], timeout=60)
    c.wait_agree(alerts, timeout=30)
    c.kill9("b")
    # a sends slowly now, so that some alerts are still pending when b returns.
    c.sim.control({"cmd": "set", "modem": "a0", "send_delay": 1.5})
    t0 = time.monotonic()
    alone = send_alternately(c, "alone", 10, nodes="a")
    t_accept = time.monotonic() - t0
    alerts.update(alone)
    c.wait_sms_count(11, timeout=30)
    t_start = time.monotonic()
    c.start("b", wipe_state=True)
    c.wait_members(timeout=30)
    pending_at_join = sum(1 for i in alone
                          if c.get("a", i).get("state") not in FINAL)
    texts = [t for _, t in alerts.values()]
    c.wait_texts(texts, timeout=60)
    c.wait_agree(alerts, timeout=30, full=True)
    t_caught = time.monotonic() - t_start

    def same_queue():
        qa, qb = c.queue("a"), c.queue("b")
        ida = [x.get("id") for x in qa.get("alerts", [])]
        idb = [x.get("id") for x in qb.get("alerts", [])]
        sa, sb = c.status("a").get("queue"), c.status("b").get("queue")
        return (qa.get("ok") and ida == idb and sa == sb) or None

    try:
        wait_until(same_queue, 15, "")
    except WaitTimeout:
        raise AssertionError(f"queue/status differ: a {c.queue('a')} {c.status('a').get('queue')}"
                             f" / b {c.queue('b')} {c.status('b').get('queue')}") from None
    time.sleep(SETTLE)
    got = c.texts()
    assert not dups(got, texts), f"sent again after b's return: {dups(got, texts)}"
    summary(f"b back with an empty disk: caught up on 20 alerts ({pending_at_join} still pending "
            f"on a when b joined) in {t_caught:.1f} s; get/queue/status identical; nothing "
            f"sent twice (10 accepted alone in {t_accept:.1f} s)")


def test_g_local_corosync_restart_under_daemon(rig):
    c = rig.cluster()
    c.start_both()
    c.wait_members()
    before = send_alternately(c, "before", 10)
    c.wait_texts([t for _, t in before.values()], timeout=60)
    c.wait_agree(before, timeout=30)

    t_kill = c.corosync_kill("a")
    during = send_alternately(c, "during", 6)
    t_accept = time.monotonic() - t_kill
    time.sleep(max(0.0, 3.0 - (time.monotonic() - t_kill)))
    t_start = time.monotonic()
    c.corosync_start("a")
    secs = c.wait_members(timeout=30)
    after = send_alternately(c, "after", 10)
    everything = {**before, **during, **after}
    texts = [t for _, t in everything.values()]
    c.wait_texts(texts, timeout=60)
    c.wait_agree(everything, timeout=30)
    time.sleep(SETTLE)
    got = c.texts()
    strict = [t for _, t in list(before.values()) + list(after.values())]
    assert not dups(got, strict), \
        f"sent twice though accepted while both were connected: {dups(got, strict)}"
    d = dups(got, [t for _, t in during.values()])
    modem_of = collections.defaultdict(set)
    for m in c.sms():
        modem_of[m["text"]].add(m["modem"])
    by = collections.Counter((n, "/".join(sorted(modem_of[t]))) for n, t in during.values())
    during_texts = {t for _, t in during.values()}
    # The simulator stamps records with time.monotonic(), the same clock as ours.
    early = {m["text"] for m in c.sms() if m["text"] in during_texts and m["mono"] < t_start}
    summary(f"a's corosync down {t_start - t_kill:.1f} s (6 alerts accepted "
            f"meanwhile in {t_accept:.1f} s), both online again {secs:.1f} s after its restart;"
            f" 26 delivered, 20 strictly once, repeats among the 6: {len(d)} {d or ''} "
            f"(by accepting node/modem: {dict(sorted(by.items()))}; {len(early)} of them out "
            f"before a's corosync restarted)")


def test_h_partition_and_heal(rig):
    c = rig.cluster()
    c.start_both()
    c.wait_members()
    pre = send_alternately(c, "pre", 6)
    c.wait_texts([t for _, t in pre.values()], timeout=60)
    c.wait_agree(pre, timeout=30)

    t_cut = c.partition()
    cut = {}
    for i in range(12):  # to both halves, the first pair at once, then paced
        cut.update(send_alternately(c, "cut", 1, start=i))
        if i >= 1:
            time.sleep(1.0)
    c.wait_members(names=("a",), want=("a",), timeout=15)
    c.wait_members(names=("b",), want=("b",), timeout=15)
    cut_texts = [t for _, t in cut.values()]
    c.wait_texts(cut_texts, timeout=max(5.0, 28.0 - (time.monotonic() - t_cut)))
    t_delivered = time.monotonic() - t_cut
    modem_of = {m["text"]: m["modem"] for m in c.sms()}
    wrong = {t: modem_of[t] for n, t in cut.values() if modem_of[t] != f"{n}0"}
    assert not wrong, f"during the partition a half sent through the other's modem: {wrong}"
    time.sleep(max(0.0, 30.0 - (time.monotonic() - t_cut)))

    t_heal = c.heal()
    secs = c.wait_members(timeout=30)
    everything = {**pre, **cut}
    c.wait_agree(everything, timeout=30)
    t_agree = time.monotonic() - t_heal
    c1 = c.texts()
    time.sleep(5.0)
    c2 = c.texts()
    assert c1 == c2, f"texts sent after the heal had settled: {c2 - c1}"
    texts = [t for _, t in everything.values()]
    assert all(c2[t] for t in texts), "lost texts"
    assert not dups(c2, texts), f"sent again after the heal: {dups(c2, texts)}"
    summary(f"partition 30 s: 12 alerts to both halves all delivered within {t_delivered:.1f} s "
            f"of the cut; heal: both online after {secs:.1f} s, agree on all 18 after "
            f"{t_agree:.1f} s; nothing sent again in the 5 s after")


def test_i_foreign_protocol_version(rig):
    prog = os.environ.get("TEST_REPLICATION_CPG", "build/tests/cluster/test-replication-cpg")
    c = rig.cluster()
    c.start("a")
    # A stranger joins the group from node b's corosync and speaks protocol version 99.
    p = c.lab.popen("b", [os.path.abspath(prog), "--group", c.group, "--label", "x"],
                    stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL, text=True)
    wait_until(lambda: "A node joined the view" in c.node("a").log_tail(200), 15,
               "a to see the stranger join")
    p.stdin.write('raw {"v":99,"seq":1,"node":"zz","changes":[]}\n')
    p.stdin.flush()
    wait_until(lambda: "protocol version 99" in c.node("a").log_tail(200), 15,
               "a to refuse the stranger's payload")
    line = [ln for ln in c.node("a").log_tail(200).splitlines() if "protocol version 99" in ln]
    assert "'zz'" in line[0], line[0]
    t0 = time.monotonic()
    alert = queued(c.send("a", ["+32470009999"], "still accepting", timeout=10.0),
                   "alert to a beside the stranger")
    secs = time.monotonic() - t0
    c.wait_texts(["still accepting"], timeout=30)
    st = c.status("a")
    assert not st["cluster"]["syncing"], st["cluster"]
    c.wait_state("a", alert, FINAL)
    p.stdin.close()
    said = line[0][line[0].find("Refusing"):][:80]
    summary(f"a stranger speaking version 99 refused ('{said}...'); an alert to a "
            f"answered queued in {secs * 1000:.0f} ms and delivered")


def test_j_path_selftest(rig):
    numbers = {"a": "+32470000100", "b": "+32470000200"}
    ops = "+32470919191"  # [health] pages here about the failing path
    selftest = ("[selftest]\ninterval = 10\ntimeout = 6\n"
                f"[health]\nto = {ops}\npriority = normal\nmodem_down = 2\nclear = 3\n")
    modem = "health_interval = 2\nsend_timeout = 5\ncommand_timeout = 3\nnumber = {}\n"
    c = rig.cluster(modem_extra={n: modem.format(numbers[n]) for n in numbers},
                    extra={"a": selftest, "b": selftest})
    for n, sim_modem in (("a", "a0"), ("b", "b0")):
        c.sim.control({"cmd": "set", "modem": sim_modem, "number": numbers[n]})
    c.start_both()
    c.wait_members()
    sub = c.node("a").subscribe(["path_down"])

    def log_has(node, text):
        return text in c.node(node).log_tail(400)

    # The first round, 10 s after start: both paths pass.
    wait_until(lambda: log_has("a", "Path self-test to b/gsm0 passed")
               and log_has("b", "Path self-test to a/gsm0 passed"), 40,
               "the first self-test round to pass both ways")

    # b's SIM stops receiving (a dead SIM): a's next test SMS to it never arrives.
    c.sim.control({"cmd": "set", "modem": "b0", "route_drop": True})

    def a_modem(node):
        return next(m for m in c.status(node)["modems"]
                    if m["node"] == "a" and m["name"] == "gsm0")

    want = "self-test SMS to b/gsm0 did not arrive within 6 s"
    wait_until(lambda: a_modem("a")["state"] == "degraded" and a_modem("a")["reason"] == want,
               45, "a's gsm0 degraded by the failed self-test")
    wait_until(lambda: a_modem("b")["state"] == "degraded", 10,
               "b to see a's gsm0 degraded too")
    events = []
    deadline = time.monotonic() + 5
    while not events and time.monotonic() < deadline:
        if sub.poll(200):
            topic, body = sub.recv_multipart()
            events.append((topic.decode(), body.decode()))
    assert events and events[0][0] == "path_down" and '"to_node":"b"' in events[0][1], events
    # ... and [health] pages about it, once.
    page = f"gateway a: modem gsm0: {want}"
    wait_until(lambda: [m for m in c.sms() if m["to"] == ops and m["text"] == page], 40,
               "the page about the path")

    # The SIM works again: the next round clears it.
    c.sim.control({"cmd": "set", "modem": "b0", "route_drop": False})
    wait_until(lambda: a_modem("a")["state"] == "ok", 45, "a's gsm0 ok again after a passing round")
    wait_until(lambda: a_modem("b")["state"] == "ok", 10, "b to see a's gsm0 ok again")
    wait_until(lambda: [m for m in c.sms() if m["to"] == ops and m["text"] == "RESOLVED: " + page],
               40, "the all-clear about the path")
    assert [m["text"] for m in c.sms() if m["to"] == ops] == [page, "RESOLVED: " + page], \
        c.sms()

    # Test SMS are for the gateways only: no inbox shows one.
    for n in ("a", "b"):
        inbox = c.node(n).request({"op": "inbox"})
        assert inbox["ok"] and not [m for m in inbox["messages"]
                                    if "self-test" in m.get("text", "")], inbox
    routed = len(c.sim.routed())
    summary(f"self-test: {routed} test SMS routed between the SIMs; b0 dropping them made a's "
            f"gsm0 degraded ('{want}') on both nodes with a path_down event; cleared by the "
            f"next round; no inbox holds a test SMS")


def test_k_settings_drift_and_offline_peer(rig):
    c = rig.cluster(extra={"b": "[dedupe]\nwindow = 300\n"})
    c.start_both()
    c.wait_members()
    for me, other in (("a", "b"), ("b", "a")):
        warnings = c.status(me)["cluster"]["warnings"]
        assert any(w.startswith(f"node {other} runs with other contacts") for w in warnings), \
            (me, warnings)
    c.stop("b")
    c.wait_members(names=("a",), want=("a",), timeout=15)
    st = c.status("a")
    b = next(m for m in st["cluster"]["members"] if m["name"] == "b")
    assert b["online"] is False and b["last_seen"], b
    assert "node b is offline" in st["cluster"]["warnings"], st["cluster"]["warnings"]
    b_modems = [m for m in st["modems"] if m["node"] == "b"]
    assert b_modems and all(m["state"] == "absent" for m in b_modems), b_modems
    summary(f"another dedupe window on b: both nodes warn; b stopped: a shows it offline (last "
            f"seen {b['last_seen']}) and its modem absent")


def test_l_only_one_node_dials(rig):
    center = "+3222000000"
    voice = f"[voice]\nmodem = gsm0\ncontact_center = {center}\nring_timeout = 5\nhold = 1\n" \
            "retries = 0\n"
    c = rig.cluster(extra={"a": voice, "b": voice})
    for m in ("a0", "b0"):
        c.sim.control({"cmd": "call_outcome", "modem": m, "outcome": "answer", "after": 1.0,
                       "persist": True})
    c.start_both()
    c.wait_members()
    for m in ("a0", "b0"):
        c.sim.control({"cmd": "fail_sends", "modem": m, "count": -1, "cms": 500})

    def dials():
        return [(x["modem"], x["number"]) for x in c.sim.calls() if x.get("event") == "dial"]

    alert = queued(c.send("a", ["+32470000001"], "db01 DOWN", priority="critical"), "critical")
    wait_until(lambda: len(dials()) >= 2, 60, "the recipient's and the contact center's calls")
    time.sleep(5.0)  # a second node dialing would show by now
    got = dials()
    assert [n for _, n in got] == ["+32470000001", center], f"calls made: {got}"
    assert got[0][0] == got[1][0], f"both calls should come from one node's line: {got}"
    for node in ("a", "b"):
        calls = wait_until(lambda: (lambda a: a["calls"] if len(a["calls"]) >= 2 else None)(
            c.get(node, alert)), 20, f"node {node} to record both calls")
        assert [x["number"] for x in calls] == ["+32470000001", center], (node, calls)
    dialer = calls[0]["node"]
    attempts = {(x["node"], x["modem"]) for d in c.get("a", alert)["deliveries"]
                for x in d["attempts"]}
    assert {("a", "gsm0"), ("b", "gsm0")} <= attempts, attempts
    summary(f"SMS failed on both nodes' modems: node {dialer} alone called the recipient and "
            f"the contact center ({got[0][0]}); both nodes record the two calls")


def test_m_clock_apart_and_settings_of_a_peer(rig):
    """A peer that announces itself with a clock 5 s ahead and other shared settings: a
    stranger speaking the protocol from node b's corosync (it only says hello, then synced)."""
    prog = os.environ.get("TEST_REPLICATION_CPG", "build/tests/cluster/test-replication-cpg")
    c = rig.cluster()
    c.start("a")
    p = c.lab.popen("b", [os.path.abspath(prog), "--group", c.group, "--label", "x"],
                    stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL, text=True)
    wait_until(lambda: "A node joined the view" in c.node("a").log_tail(200), 15,
               "a to see the peer join")
    ahead = int(time.time() * 1e6) + 5_000_000
    hello = {"t": "hello", "node": "zz", "nodeid": 2, "at": ahead, "fingerprint": "0" * 32,
             "version": PROTOCOL_VERSION, "voice": False, "modems": []}
    for changes in ([hello], [{"t": "synced", "node": "zz", "round": 1, "records": 0}]):
        p.stdin.write("raw " + json.dumps({"v": PROTOCOL_VERSION, "seq": 0, "node": "zz",
                                           "changes": changes}) + "\n")
    p.stdin.flush()

    def warnings():
        st = c.status("a")["cluster"]
        return st["warnings"] if not st["syncing"] else None

    w = wait_until(warnings, 20, "a to finish the exchange with the peer")
    clock = [x for x in w if x.startswith("the clock of node zz is +")]
    assert clock and ("+4." in clock[0] or "+5.0" in clock[0]), w
    assert "node zz runs with other contacts, roles, escalation, dedupe or delivery settings" \
        in w, w
    zz = next(m for m in c.status("a")["cluster"]["members"] if m["name"] == "zz")
    assert zz["online"] is True and zz["id"] == 2, zz
    p.stdin.close()
    c.lab.stop_process(p)
    wait_until(lambda: "Node 'zz' left the cluster" in c.node("a").log_tail(200), 15,
               "a to see the peer leave")
    zz = next(m for m in c.status("a")["cluster"]["members"] if m["name"] == "zz")
    assert zz["online"] is False and zz["last_seen"], zz
    summary(f"a peer announcing a clock 5 s ahead and other settings: a warns '{clock[0]}' and "
            f"of the settings; it shows offline once gone")

def test_n_escalation_survives_the_death_of_its_node(rig):
    """A critical alert to role:primary; the node that owns its escalation is killed before the
    step deadline: the other pages the secondary on time, and the secondary's "ACK <code>"
    received there stops it; the dead node, back, agrees."""
    alice, bob = ALICE, BOB
    fast_inbox = "health_interval = 2\nsend_timeout = 5\ncommand_timeout = 3\ninbox_interval = 1\n"
    oncall = oncall_config(8)
    c = rig.cluster(extra={"a": oncall, "b": oncall},
                    modem_extra={"a": fast_inbox, "b": fast_inbox})
    c.start_both()
    c.wait_members()
    r = c.send("a", ["role:primary"], "db01 DOWN", priority="critical")
    alert = queued(r, "the page")
    t_accept = time.monotonic()
    code = str(int(alert[:16], 16) % 10_000).zfill(4)
    to = lambda n: [m for m in c.sms() if m["to"] == n]  # noqa: E731
    wait_until(lambda: to(alice), 30, "the primary's SMS")
    assert to(alice)[0]["text"] == f"db01 DOWN\nReply ACK {code} to acknowledge", to(alice)
    doomed = owner(alert, "escalation")
    survivor = "b" if doomed == "a" else "a"
    c.kill9(doomed)
    first = wait_until(lambda: to(bob), 40, "the secondary's page after the owner's death")[0]
    t_page = time.monotonic() - t_accept
    assert first["text"] == to(alice)[0]["text"], first
    assert first["modem"] == SIM_MODEM[survivor], first
    assert t_page >= 8 - 2.5, f"the secondary paged {t_page:.1f} s after acceptance"
    c.sim.control({"cmd": "inject_sms", "modem": SIM_MODEM[survivor], "from": bob,
                   "text": f"ACK {code}"})
    a = wait_until(lambda: (lambda a: a if a["ack"] else None)(c.get(survivor, alert)), 30,
                   "the acknowledgment by SMS")
    assert a["ack"]["by"] == "bob" and a["ack"]["via"] == "sms", a["ack"]
    assert a["escalation"]["active"] is False and a["escalation"]["role"] == "secondary", a
    pages = len([m for m in to(bob) if m["text"].startswith("db01 DOWN")])
    c.start(doomed)
    c.wait_members(timeout=30)
    back = wait_until(lambda: (lambda a: a if a["ack"] else None)(c.get(doomed, alert)), 30,
                      f"{doomed} to learn of the acknowledgment")
    assert back["ack"] == a["ack"] and back["escalation"] == a["escalation"], (back, a)
    time.sleep(8 + SETTLE)
    assert len([m for m in to(bob) if m["text"].startswith("db01 DOWN")]) == pages, to(bob)
    # A contact who was never paged for it, and a stranger, on the node that came back: both
    # nodes decide alike from the replicated deliveries, and queue the same one answer to the
    # contact (none to the stranger).
    stranger = "+32499999999"
    for sender in (DAVE, stranger):
        c.sim.control({"cmd": "inject_sms", "modem": SIM_MODEM[doomed], "from": sender,
                       "text": f"ACK {code}"})
    wait_until(lambda: to(DAVE), 30, "the answer to dave")
    time.sleep(SETTLE + 2)
    assert [m["text"] for m in to(DAVE)] == \
        [f"ACK {code}: no alert sent to you has this code; nothing was acknowledged."], to(DAVE)
    assert to(stranger) == [], to(stranger)
    assert c.get("a", alert)["ack"] == c.get("b", alert)["ack"] == a["ack"]
    summary(f"escalation owner {doomed} killed: {survivor} paged the secondary {t_page:.1f} s "
            f"after acceptance (step_timeout 8 s); bob's SMS ACK on {survivor} stopped it; "
            f"{doomed} back agrees")


def test_o_quarantined_sms_replicated_and_exchanged_on_rejoin(rig):
    """A hostile PDU on a's SIM (an SMSC length of 0x70, which crashed libgammu) is quarantined
    on a and replicated to b; one quarantined while b is down reaches b in the rejoin exchange,
    with its reason."""
    fast_inbox = "health_interval = 2\ncommand_timeout = 3\ninbox_interval = 1\n"
    c = rig.cluster(modem_extra={"a": fast_inbox, "b": fast_inbox})
    c.start_both()
    c.wait_members()
    quarantined = lambda n: [m for m in c.node(n).request({"op": "inbox"})["messages"]  # noqa
                             if m.get("quarantined")]
    c.sim.control({"cmd": "inject_pdu", "modem": SIM_MODEM["a"], "pdu": "70" + "91" * 136})
    wait_until(lambda: quarantined("a") and quarantined("b"), 30,
               "the quarantined message on both nodes")
    assert quarantined("b")[0]["node"] == "a" and "SMSC" in quarantined("b")[0]["quarantined"]
    c.kill9("b")
    c.sim.control({"cmd": "inject_pdu", "modem": SIM_MODEM["a"], "pdu": "70" + "92" * 136})
    wait_until(lambda: len(quarantined("a")) == 2, 30, "the second one on a")
    c.start("b")
    c.wait_members(timeout=30)
    got = wait_until(lambda: (lambda q: q if len(q) == 2 else None)(quarantined("b")), 30,
                     "b to learn of the one quarantined while it was down")
    assert sorted(m["text"][:4] for m in got) == ["7091", "7092"], got
    assert all(m["quarantined"] for m in got), got
    summary("two hostile PDUs on a's SIM: quarantined, not decoded; the first replicated to b, "
            "the second (b down) carried by the rejoin exchange")


def test_p_resolve_on_the_other_node(rig):
    """A critical alert accepted on a, resolved on b by its dedupe key (as an integration's
    recovery does): both nodes agree it is resolved, the primary hears "RESOLVED" once (both
    nodes queue the same all-clear), and the escalation never reaches the secondary."""
    oncall = oncall_config(6)
    c = rig.cluster(extra={"a": oncall, "b": oncall})
    c.start_both()
    c.wait_members()
    alert = queued(c.send("a", ["role:primary"], "db07 is DOWN", priority="critical",
                          key="db07/ping"), "the page")
    to = lambda n: [m["text"] for m in c.sms() if m["to"] == n]  # noqa: E731
    wait_until(lambda: to(ALICE), 30, "the primary's SMS")
    r = c.node("b").request({"op": "resolve", "key": "db07/ping", "by": "icinga"})
    assert r == {"ok": True, "id": alert, "status": "resolved"}, r
    for n in "ab":
        got = wait_until(lambda: (lambda a: a if a["state"] == "resolved" else None)(
            c.get(n, alert)), 20, f"{n} to show the alert resolved")
        assert got["resolved"]["by"] == "icinga", got["resolved"]
    wait_until(lambda: "RESOLVED: db07 is DOWN" in to(ALICE), 30, "the all-clear")
    time.sleep(6 + SETTLE + 2)  # past the step deadline
    assert to(ALICE).count("RESOLVED: db07 is DOWN") == 1, to(ALICE)
    assert to(BOB) == [], to(BOB)
    assert c.get("a", alert)["resolved"] == c.get("b", alert)["resolved"]
    again = c.node("a").request({"op": "resolve", "key": "db07/ping"})
    assert again["ok"] is False and again["error"] == "unknown_id", again
    summary("alert accepted on a resolved on b by key: resolved on both, one all-clear, "
            "no escalation")


def test_q_silence_across_a_takeover(rig):
    """A silence made on node a is honoured by b once a is dead, and reaches a again, wiped,
    through the rejoin exchange; a matching alert is recorded on both and sent by neither."""
    c = rig.cluster()
    c.start_both()
    c.wait_members()
    r = c.node("a").request({"op": "silence", "match": {"key_prefix": "db08/"},
                             "duration": 3600, "by": "alice", "reason": "disk swap"})
    assert r["ok"], r
    sid = r["silence"]
    wait_until(lambda: [s["silence"] for s in c.node("b").request({"op": "silences"})
                        ["silences"]] == [sid], 20, "b to hold the silence")
    c.kill9("a")
    held = c.send("b", ["+32470808080"], "db08 disk full", key="db08/disk")
    assert held.get("status") == "silenced" and held.get("silence") == sid, held
    loud = queued(c.send("b", ["+32470808080"], "web08 down", key="web08/http"), "loud")
    wait_until(lambda: [m for m in c.sms() if m["to"] == "+32470808080"], 30, "the loud SMS")
    c.start("a", wipe_state=True)
    c.wait_members(timeout=30)
    wait_until(lambda: [s["silence"] for s in c.node("a").request({"op": "silences"})
                        ["silences"]] == [sid], 30, "a, wiped, to learn the silence")
    got = wait_until(lambda: (lambda a: a if a.get("state") == "silenced" else None)(
        c.get("a", held["id"])), 30, "a to learn the silenced alert")
    assert got["silence"] == sid, got
    time.sleep(SETTLE)
    texts = [m["text"] for m in c.sms() if m["to"] == "+32470808080"]
    assert texts == ["web08 down"], texts
    assert c.get("a", loud)["state"] in FINAL
    summary("silence made on a: held on b after a's kill -9; a, wiped, learnt it on rejoin")


def test_r_limits_hold_across_both_nodes(rig):
    """Both nodes count the same SMS to one person: whichever node sends, the number never gets
    more than [limits] sms per window, and what is over goes out grouped, once."""
    window = 20
    limits = f"[limits]\nsms = 3/{window}s\ncalls = off\n[submit]\nread_rate = 0\n"
    c = rig.cluster(extra={"a": limits, "b": limits})
    c.start_both()
    c.wait_members()
    ids = {}
    # Three, one at a time, through both nodes: the person has had their three.
    for i in range(3):
        node = "ab"[i % 2]
        r = c.send(node, [DAVE], f"web{i} DOWN", priority="critical", key=f"limits/web{i}")
        ids[queued(r, f"web{i} to {node}")] = f"web{i} DOWN"
        wait_until(lambda: c.get("a", r["id"]).get("state") == "sent", 30, f"web{i} sent")
    # Five more, to both nodes: held by both, sent by neither until the window has room.
    burst = []
    for i in range(5):
        node = "ab"[i % 2]
        r = c.send(node, [DAVE], f"db{i} DOWN", priority="critical", key=f"limits/db{i}")
        ids[queued(r, f"db{i} to {node}")] = f"db{i} DOWN"
        burst.append(r["id"])
    wait_until(lambda: all("held" in [e["what"] for e in c.get(n, i).get("history", [])]
                           for i in burst for n in "ab"), 20, "the burst held on both nodes")
    assert len([m for m in c.sms() if m["to"] == DAVE]) == 3, c.sms()
    wait_until(lambda: all(c.get(n, i).get("state") == "sent" for i in ids for n in "ab"),
               window * 2 + 30, "every alert sent, on both nodes")
    got = [m for m in c.sms() if m["to"] == DAVE]
    texts = [m["text"] for m in got]
    monos = [m["mono"] for m in got]
    assert all(monos[k + 3] - monos[k] >= window - 1.5 for k in range(len(monos) - 3)), \
        (texts, monos)
    groups = [t for t in texts if t.split(" ", 1)[0].isdigit()]
    singles = [t.split("\n")[0] for t in texts if t not in groups]
    assert groups, texts
    assert len(singles) == len(set(singles)), texts
    assert len(singles) + sum(int(t.split()[0]) for t in groups) == len(ids), texts
    covered = set(singles) | {text for text in ids.values() for t in groups if text in t}
    assert covered == set(ids.values()), texts
    time.sleep(SETTLE)
    assert len([m for m in c.sms() if m["to"] == DAVE]) == len(got), c.sms()
    assert len(got) == 4 and groups == [got[3]["text"]], texts
    summary(f"8 critical alerts to one person through both nodes: {len(got)} SMS "
            f"({len(singles)} alone, {len(groups)} grouped), at most 3 per {window} s")


def test_s_heartbeat_fires_on_the_survivor(rig):
    """The pings are replicated: a monitor pinged on a, whose node then dies, is judged by b, on
    time and once; the next ping, on b, resolves the alert."""
    monitor = (f"[heartbeat cron]\ninterval = 10\ngrace = 2\nto = {DAVE}\n"
               "[submit]\nread_rate = 0\n")
    c = rig.cluster(extra={"a": monitor, "b": monitor})
    c.start_both()
    c.wait_members()
    assert c.node("a").request({"op": "heartbeat", "name": "cron"})["ok"] is True
    pinged = time.monotonic()
    wait_until(lambda: c.status("b")["heartbeats"][0]["last"], 10, "b to hold the ping")
    c.kill9("a")
    got = wait_until(lambda: [m for m in c.sms() if m["to"] == DAVE], 45,
                     "the missed heartbeat's SMS")
    late = time.monotonic() - pinged
    assert late >= 10, f"paged {late:.1f} s after the ping, before interval + grace"
    assert got[0]["text"].startswith("No heartbeat from cron since "), got
    time.sleep(SETTLE + 2)
    assert len([m for m in c.sms() if m["to"] == DAVE]) == 1, c.sms()
    assert c.node("b").request({"op": "heartbeat", "name": "cron"})["ok"] is True
    wait_until(lambda: [m for m in c.sms() if m["to"] == DAVE
                        and m["text"].startswith("RESOLVED: No heartbeat from cron")], 30,
               "the all-clear")
    summary(f"monitor pinged on a, a killed: b paged {late:.1f} s after the ping (interval 10 s "
            "+ grace 2 s), once; a ping on b resolved it")


def test_t_the_gateway_pages_that_its_peer_is_offline(rig):
    """[health] on both nodes: a node that is gone is paged about by the other, once, through
    what still works; when it is back the alert resolves."""
    ops = "+32470909090"
    c = health_cluster(rig, ops, peer_offline=5, clear=3)
    c.kill9("b")
    t0 = time.monotonic()
    got = wait_until(lambda: [m for m in c.sms() if m["to"] == ops], 60, "the page about b")
    took = time.monotonic() - t0
    assert got[0]["text"] == "gateway node b is offline (seen from a)", got
    time.sleep(8)
    assert len([m for m in c.sms() if m["to"] == ops]) == 1, c.sms()
    c.start("b")
    c.wait_members(timeout=60)
    wait_until(lambda: [m for m in c.sms() if m["to"] == ops
                        and m["text"] == "RESOLVED: gateway node b is offline (seen from a)"],
               60, "the all-clear")
    summary(f"b killed: a paged 'node b is offline' {took:.1f} s later (peer_offline 5 s), "
            "once; b back: resolved with an all-clear")


def log_lines(node, start: int, needle: str) -> list[str]:
    """The lines of the node's log past byte `start` that contain needle."""
    with open(node.log_path, "rb") as f:
        f.seek(start)
        return [ln for ln in f.read().decode(errors="replace").splitlines() if needle in ln]


def sent_records(line: str) -> int:
    """N of "In step with the cluster: sent N record(s), received M"."""
    return int(line.split("sent ")[1].split(" ")[0])


def test_u_rejoin_sends_only_what_the_other_lacks(rig):
    c = rig.cluster(rejoin_margin=10)
    c.start_both()
    c.wait_members()
    alerts = send_alternately(c, "old", 30)
    c.wait_texts([t for _, t in alerts.values()], timeout=60)
    c.wait_agree(alerts, timeout=30)
    # b has been in step with a for longer than the rejoin margin (10 s here): a counts it as
    # holding all of this, and b a. Each learns it within a second of the margin (the revision
    # ticks every second) and, idle, keeps it on disk at most once per half margin: 16 s at
    # worst.
    time.sleep(17)
    c.kill9("b")
    c.wait_members(names=("a",), want=("a",), timeout=20)
    alone = send_alternately(c, "new", 5, nodes="a")
    alerts.update(alone)
    c.wait_texts([t for _, t in alone.values()], timeout=30)
    pos = os.path.getsize(c.node("a").log_path)
    pos_b = os.path.getsize(c.node("b").log_path)
    c.start("b")
    c.wait_members(timeout=30)
    c.wait_agree(alerts, timeout=30, full=True)
    step = wait_until(lambda: log_lines(c.node("a"), pos, "In step with the cluster"), 15,
                      "a to log the end of the exchange")
    since = log_lines(c.node("a"), pos, "Sending the cluster")
    assert since and "what changed here since revision" in since[0], since
    sent = sent_records(step[0])
    # The 5 new alerts and their dedupe rows (and the few small tables sent whole), not the 30
    # b already had.
    assert sent < 30, f"a sent {sent} records to b, which lacked 5 alerts: {step[0]}"
    # And b, back on its disk, knows that a holds everything b had: b sends a nothing old.
    # (b noted this while idle, with no payload to commit it with: it used to be lost, and b
    # sent a its whole store.)
    step_b = wait_until(lambda: log_lines(c.node("b"), pos_b, "In step with the cluster"), 15,
                        "b to log the end of the exchange")
    since_b = log_lines(c.node("b"), pos_b, "Sending the cluster")
    assert since_b and "what changed here since revision" in since_b[0], since_b
    assert sent_records(step_b[0]) < 30, f"b sent a its old alerts again: {step_b[0]}"
    time.sleep(SETTLE)
    got = c.texts()
    texts = [t for _, t in alerts.values()]
    assert not dups(got, texts), f"sent again after b's return: {dups(got, texts)}"

    # b comes back with a new, empty store: a notices by its hello and sends everything.
    time.sleep(13)
    c.kill9("b")
    c.wait_members(names=("a",), want=("a",), timeout=20)
    pos = os.path.getsize(c.node("a").log_path)
    c.start("b", wipe_state=True)
    c.wait_members(timeout=30)
    c.wait_agree(alerts, timeout=30, full=True)
    step2 = wait_until(lambda: log_lines(c.node("a"), pos, "In step with the cluster"), 15,
                       "a to log the end of the exchange")
    assert log_lines(c.node("a"), pos, "is back with another store"), \
        "a did not notice that b came back with another store"
    assert log_lines(c.node("a"), pos, "Sending the cluster all we have")
    assert sent_records(step2[0]) >= 2 * len(alerts), step2[0]
    summary(f"b back on its disk after 5 alerts accepted alone: a sent {sent} records (of "
            f"{len(alerts)} alerts); b back with an empty disk: a sent all, "
            f"{sent_records(step2[0])} records; every alert agrees, nothing sent twice")


def fill_finished(db_path: str, total: int) -> list[str]:
    """Writes `total` finished alerts (sent an hour ago, one delivery and one attempt each)
    into a stopped node's store, as a long history would have left them; their ids."""
    ids = [f"f{i:031d}" for i in range(total)]
    with sqlite3.connect(db_path) as db:
        storefill.finished(db, ids, int(time.time() * 1e6) - 3600 * 10**6, "a")
    return ids


def test_v_a_long_exchange_is_not_cut_short(rig):
    """A node with a long history sends it to an empty one for longer than [cluster]
    exchange_timeout while the empty one, done at once, sends nothing back: the exchange must
    go on as long as chunks keep coming back, and the newcomer must end up with all of it.
    (It used to end after exchange_timeout of the sender's own chunks, leaving the newcomer
    without the rest of the history and both nodes reporting that they were in step.)"""
    c = rig.cluster(exchange_timeout=2)
    c.start_both()
    c.wait_members()
    c.stop("b")
    c.stop("a")
    ids = fill_finished(os.path.join(c.node("a").state_dir, "gatewayd.db"), 40000)
    c.start("a")
    c.wait_members(names=("a",), want=("a",), timeout=30)
    pos = os.path.getsize(c.node("a").log_path)
    pos_b = os.path.getsize(c.node("b").log_path)
    t0 = time.monotonic()
    c.start("b", wipe_state=True, wait=False)
    step = wait_until(lambda: log_lines(c.node("a"), pos, "In step with the cluster") or
                      log_lines(c.node("a"), pos, "Ending the state exchange"), 180,
                      "a to end the exchange")
    took = time.monotonic() - t0
    assert "In step" in step[0], f"a cut the exchange short: {step[0]}"
    # b applies the chunks after a has sent them, and says it is in step after the last one
    # (a's "synced" comes behind them): its exchange must not be cut short either, though it
    # may apply many chunks in a row.
    # Meanwhile b answers status, and shows the records it has received so far: it applies a's
    # chunks a few at a time and serves its clients in between. (It used to apply them all in
    # one turn of its loop, answering nothing, not even the watchdog, until the end.)
    seen = []

    def b_done():
        st = c.node("b").try_request({"op": "status"}, timeout=1.0)
        ex = (st or {}).get("cluster", {}).get("exchange")
        if ex:
            seen.append(ex["received"])
        return (log_lines(c.node("b"), pos_b, "In step with the cluster") or
                log_lines(c.node("b"), pos_b, "Ending the state exchange"))

    step_b = wait_until(b_done, 180, "b to end the exchange", interval=0.05)
    assert "In step" in step_b[0], f"b cut the exchange short: {step_b[0]}"
    total = sent_records(step[0])
    assert any(0 < n < total for n in seen), \
        f"b answered no status while catching up (received counts seen: {sorted(set(seen))})"
    c.wait_members(timeout=30)
    missing = [i for i in (ids[0], ids[len(ids) // 2], ids[-1])
               if c.get("b", i).get("state") != "sent"]
    assert not missing, f"b lacks alerts of a's history after the exchange: {missing}"
    summary(f"a sent b {len(ids)} finished alerts in {took:.1f} s with exchange_timeout 2 s: "
            f"{step[0].split('gatewayd: ')[-1]}; b has the first, middle and last, and "
            f"answered status {sum(1 for n in seen if 0 < n < total)} times while catching up")


if __name__ == "__main__":
    main(globals())
