#!/usr/bin/python3
"""Three gatewayd nodes on three real corosync nodes (tests/lib/gwcluster.py, nodes a, b, c on
a bridge): what a site that added a third box sees.

  a. all three see one another; alerts sent to the three in turn are each delivered exactly
     once, through the modems of all three nodes, and every node agrees on every alert; the
     same key raced to all three at once is one alert, one SMS;
  b. kill -9 of node c (daemon and corosync) during bursts to all three: every alert any node
     answered queued is delivered (only c's send in flight may repeat), a and b agree; c back
     on its disk agrees with them;
  c. node b restarted with an empty disk catches up from the two others (two senders in one
     exchange) and nothing is sent again.
Each test prints a one-line summary. Exit 77 when the lab cannot run here.
"""

from __future__ import annotations

import collections
import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from gwcluster import FINAL, SIM_MODEM, NodeDown, main, summary, wait_until  # noqa: E402

THREE = ("a", "b", "c")
SETTLE = 2.0  # seconds to let an extra (duplicate) text show up before counting


def queued(r: dict, what: str) -> str:
    assert r.get("ok") is True and r.get("status") == "queued", f"{what}: {r}"
    return r["id"]


def dups(counter, texts) -> dict:
    return {t: counter[t] for t in texts if counter[t] > 1}


def send_in_turn(c, prefix: str, n: int, nodes=THREE) -> dict:
    """n alerts with distinct keys, numbers and texts, to nodes in turn; {id: (node, text)}."""
    out = {}
    for i in range(n):
        node = nodes[i % len(nodes)]
        text = f"{prefix} {i:03d}"
        r = c.send(node, [f"+3247{sum(map(ord, prefix)) % 100:02d}{i:05d}"], text,
                   key=f"{prefix}/{i}")
        out[queued(r, f"{text} to {node}")] = (node, text)
    return out


def three(rig, **kw):
    c = rig.cluster(nodes=THREE, **kw)
    c.start_all()
    c.wait_members(timeout=30)
    return c


def test_a_three_nodes_deliver_once_and_agree(rig):
    c = three(rig)
    for n in THREE:
        st = c.status(n)
        nodes = {m.get("node") for m in st.get("modems") or []}
        assert nodes == set(THREE), f"node {n} lists modems of {sorted(nodes)}, not a, b and c"
    alerts = send_in_turn(c, "tri", 45)
    texts = [t for _, t in alerts.values()]
    c.wait_texts(texts, timeout=60)
    c.wait_agree(alerts, timeout=30, full=True)
    time.sleep(SETTLE)
    got = c.texts()
    assert not dups(got, texts), f"sent more than once: {dups(got, texts)}"
    by_modem = {SIM_MODEM[n]: len(c.sms(SIM_MODEM[n])) for n in THREE}
    # Ownership hashes over the three eligible nodes: 45 alerts leave none of them idle
    # (the chance that a random id set does is about 3 * (2/3)^45, 3e-8).
    assert all(by_modem.values()), f"not every node's modem sent: {by_modem}"

    # One key, raced to all three at the same instant: one alert, one SMS.
    results = {}
    go = threading.Event()

    def race(n):
        go.wait(5)
        results[n] = c.send(n, ["+32470999001"], "raced to three", key="race/three")

    threads = [threading.Thread(target=race, args=(n,)) for n in THREE]
    for t in threads:
        t.start()
    go.set()
    for t in threads:
        t.join(15)
    ids = {r.get("id") for r in results.values()}
    statuses = collections.Counter(r.get("status") for r in results.values())
    assert len(results) == 3 and len(ids) == 1, f"one key gave several alerts: {results}"
    assert statuses == {"queued": 1, "duplicate": 2}, f"answers: {results}"
    c.wait_texts(["raced to three"], timeout=30)
    c.wait_agree(ids, timeout=30, full=True)
    time.sleep(SETTLE)
    assert c.texts()["raced to three"] == 1, "the raced key was sent more than once"
    summary(f"45 alerts to a, b, c in turn: each sent once, by modems {by_modem}; all three "
            f"agree; one key raced to three: {dict(statuses)}, one SMS")


def test_b_kill9_one_of_three_during_bursts(rig):
    c = three(rig, send_delay=0.2)
    # c's modem is slow, so that c has work queued and a send in flight when it dies.
    c.sim.control({"cmd": "set", "modem": "c0", "send_delay": 1.0})
    per_node, kill_after = 20, 24
    accepted: dict[str, str] = {}
    unanswered = []
    lock = threading.Lock()
    enough = threading.Event()
    stop = threading.Event()

    def burst(node):
        for i in range(per_node):
            if stop.is_set():
                return
            text = f"burst {node} {i:03d}"
            try:
                r = c.node(node).send([f"+3247{ord(node) % 10}{i:06d}"], text, timeout=3.0,
                                      key=f"burst/{node}/{i}")
            except NodeDown:
                return
            except AssertionError:
                unanswered.append(text)  # in flight when c died: no promise was made
                continue
            if r.get("ok") and r.get("status") == "queued":
                with lock:
                    accepted[r["id"]] = text
                    if len(accepted) >= kill_after:
                        enough.set()
            time.sleep(0.1)

    threads = [threading.Thread(target=burst, args=(n,), daemon=True) for n in THREE]
    for t in threads:
        t.start()
    try:
        assert enough.wait(30), f"only {len(accepted)} alerts accepted within 30 s"
        before_kill = c.texts()
        t_kill = c.kill9("c")
    finally:
        for t in threads:
            t.join(60)
        stop.set()
    with lock:
        acc = dict(accepted)
    texts = list(acc.values())
    on_c = sum(1 for t in texts if t.startswith("burst c "))
    c.wait_members(names=("a", "b"), want=("a", "b"), timeout=20)
    t_seen = time.monotonic() - t_kill
    c.wait_texts(texts, timeout=90)
    t_all = time.monotonic() - t_kill
    time.sleep(SETTLE)
    got = c.texts()
    d = dups(got, texts)
    # Only the send in flight on c (one modem: one job at a time) may be repeated.
    assert len(d) <= 1, f"more repeats than sends in flight on the dead node: {d}"
    c.wait_agree(acc, nodes=("a", "b"), timeout=30)
    sent_before = sum(1 for t in texts if before_kill[t])

    c.start("c")
    c.wait_members(timeout=30)
    c.wait_agree(acc, timeout=30, full=True)
    summary(f"c killed with {len(acc)} accepted ({on_c} by c, {sent_before} already sent, "
            f"{len(unanswered)} unanswered); a and b saw it gone after {t_seen:.1f} s, every "
            f"accepted alert delivered {t_all:.1f} s after the kill; repeats {len(d)}; c back "
            f"on its disk agrees")


def test_c_empty_node_catches_up_from_two(rig):
    c = three(rig)
    alerts = send_in_turn(c, "hist", 12)
    c.wait_texts([t for _, t in alerts.values()], timeout=60)
    c.wait_agree(alerts, timeout=30)
    c.kill9("b")
    c.wait_members(names=("a", "c"), want=("a", "c"), timeout=20)
    # a and c send slowly now, so that some alerts are still pending when b returns.
    for n in ("a", "c"):
        c.sim.control({"cmd": "set", "modem": SIM_MODEM[n], "send_delay": 1.5})
    alone = send_in_turn(c, "pair", 10, nodes=("a", "c"))
    alerts.update(alone)
    c.wait_sms_count(13, timeout=30)
    t_start = time.monotonic()
    c.start("b", wipe_state=True)
    c.wait_members(timeout=30)
    pending_at_join = sum(1 for i in alone if c.get("a", i).get("state") not in FINAL)
    texts = [t for _, t in alerts.values()]
    c.wait_texts(texts, timeout=60)
    c.wait_agree(alerts, timeout=30, full=True)
    t_caught = time.monotonic() - t_start

    def same_status():
        q = {n: c.status(n).get("queue") for n in THREE}
        return len({repr(v) for v in q.values()}) == 1 or None

    wait_until(same_status, 15, "the three nodes to report the same queue counts")
    time.sleep(SETTLE)
    got = c.texts()
    assert not dups(got, texts), f"sent again after b's return: {dups(got, texts)}"
    summary(f"b back with an empty disk: caught up on {len(alerts)} alerts from a and c "
            f"({pending_at_join} still pending when it joined) in {t_caught:.1f} s; nothing "
            f"sent twice")


if __name__ == "__main__":
    main(globals())
