#!/usr/bin/python3
"""The corosync CPG replication backend against two real corosync nodes (tests/lib/corosync_lab).

test-replication-cpg (built beside this test; $TEST_REPLICATION_CPG) runs in each node's
network namespace and prints what it sees. This driver checks, in order:
  1. both publish 1000 small payloads at once (10 per loop turn), then 300 of 3000 bytes (50 per
     turn): both receive all of them, once each, in the same (agreed) order, each sender's in
     its own order;
  2. kill -9 of b's corosync while b publishes 10000: a sees a view without b (NODEDOWN), stays
     connected and keeps delivering; b reports "disconnected", a view of itself alone, delivers
     every payload it published exactly once and in order (those in flight and after locally,
     flagged REPLICATION_DELIVERY_LOCAL), and a has a prefix of them;
  3. b's corosync started again: b's program reconnects by itself, both see 2 members again and
     agree on the order of new payloads;
  4. partition: both see 1-member views, still connected, still delivering their own; heal: both
     see 2 members again;
  5. a graceful stop of a's corosync: b sees a leave at once (PROCDOWN); a comes back.
It prints the measured times (no timing is asserted). Exit 77 when the lab cannot run here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from corosync_lab import Lab, LabError, Skip, skip_exit  # noqa: E402

PROGRAM = os.environ.get("TEST_REPLICATION_CPG", "build/tests/cluster/test-replication-cpg")
WAIT = 20.0  # seconds, for any single expected event; generous for a loaded 2-CPU machine


class Event:
    __slots__ = ("t", "kind", "words", "line")

    def __init__(self, line: str):
        self.line = line
        parts = line.split()
        self.t = int(parts[0]) / 1e6 if parts and parts[0].isdigit() else 0.0
        self.kind = parts[1] if len(parts) > 1 else ""
        self.words = parts[2:]

    def field(self, key: str) -> str | None:
        for w in self.words:
            if w.startswith(key + "="):
                return w[len(key) + 1:]
        return None

    def members(self, key: str = "members") -> list[tuple[int, int, str]]:
        v = self.field(key) or ""
        out = []
        for m in filter(None, v.split(",")):
            ids, reason = m.split(":")
            nodeid, pid = ids.split("/")
            out.append((int(nodeid), int(pid), reason))
        return out


class Client:
    """test-replication-cpg inside one node; a thread collects its stdout as Events."""

    def __init__(self, lab: Lab, node: str, group: str):
        self.node = node
        self.events: list[Event] = []
        self.cond = threading.Condition()
        self.stderr_path = lab.node(node).dir / "client.stderr"
        with open(self.stderr_path, "ab") as err:
            self.proc = lab.popen(node, [PROGRAM, "--group", group, "--label", node],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
                                  text=True, bufsize=1)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        for line in self.proc.stdout:
            ev = Event(line.rstrip("\n"))
            with self.cond:
                self.events.append(ev)
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def send(self, command: str):
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()

    def mark(self) -> int:
        with self.cond:
            return len(self.events)

    def wait(self, pred, what: str, since: int = 0, timeout: float = WAIT) -> Event:
        """The first event at index >= since for which pred holds."""
        deadline = time.monotonic() + timeout
        with self.cond:
            i = since
            while True:
                while i < len(self.events):
                    if pred(self.events[i]):
                        return self.events[i]
                    i += 1
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and i >= len(self.events)):
                    raise AssertionError(f"node {self.node}: no {what} within {timeout:.0f} s")
                self.cond.wait(min(left, 0.2))

    def wait_view(self, n: int, connected: bool = True, since: int = 0,
                  timeout: float = WAIT) -> Event:
        return self.wait(lambda e: e.kind == "view" and e.field("n") == str(n)
                         and e.field("connected") == str(int(connected)),
                         f"view of {n} member(s), connected={int(connected)}", since, timeout)

    def deliveries(self, since: int = 0) -> list[tuple[int, int, str]]:
        with self.cond:
            return [(int(e.words[0]), int(e.words[1]), e.words[2])
                    for e in self.events[since:] if e.kind == "deliver"]

    def wait_deliveries(self, count: int, since: int, timeout: float = 60.0):
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                got = sum(1 for e in self.events[since:] if e.kind == "deliver")
                if got >= count:
                    return
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise AssertionError(f"node {self.node}: {got} of {count} deliveries "
                                         f"within {timeout:.0f} s")
                self.cond.wait(min(left, 0.2))

    def stats(self) -> Event:
        since = self.mark()
        self.send("stats")
        return self.wait(lambda e: e.kind == "stats", "stats", since)

    def tail(self, n: int = 25) -> str:
        with self.cond:
            return "\n".join(f"  {self.node}| {e.line}" for e in self.events[-n:])


def check_same_order(a: Client, b: Client, since_a: int, since_b: int, expect: dict[str, int],
                     what: str) -> list:
    total = sum(expect.values())
    a.wait_deliveries(total, since_a)
    b.wait_deliveries(total, since_b)
    time.sleep(0.2)  # anything beyond the expected would show up now
    da, db = a.deliveries(since_a), b.deliveries(since_b)
    assert len(da) == total, f"{what}: a delivered {len(da)}, expected {total}"
    assert len(db) == total, f"{what}: b delivered {len(db)}, expected {total}"
    seq_a = [(frm, p) for frm, _, p in da]
    seq_b = [(frm, p) for frm, _, p in db]
    if seq_a != seq_b:
        first = next(i for i, (x, y) in enumerate(zip(seq_a, seq_b)) if x != y)
        raise AssertionError(f"{what}: orders differ at {first}: a {seq_a[first]} b {seq_b[first]}")
    assert all(flags == 0 for _, flags, _ in da + db), f"{what}: unexpected local flag"
    for label, n in expect.items():
        mine = [p for _, p in seq_a if p.split(":")[0] == label]
        nums = [int(p.split(":")[1]) for p in mine]
        assert len(nums) == n, f"{what}: {len(nums)} payloads of {label}, expected {n}"
        assert nums == sorted(nums) and len(set(nums)) == n, f"{what}: {label} out of order"
    return seq_a


def publish_both(a: Client, b: Client, n: int, per_turn: int = 10, size: int = 0):
    a.send(f"publish {n} {per_turn} {size}")
    b.send(f"publish {n} {per_turn} {size}")


def main() -> int:
    if not os.path.exists(PROGRAM):
        print(f"test-replication-cpg not found at {PROGRAM} (set TEST_REPLICATION_CPG)")
        return 1
    workdir = tempfile.mkdtemp(prefix="cluster-cpg-")
    figures: dict[str, str] = {}
    ok = False
    lab = Lab(workdir, token_ms=1000)
    try:
        lab.up()
    except Skip as e:
        shutil.rmtree(workdir, ignore_errors=True)
        skip_exit(str(e))
    figures["lab up (2 votes)"] = f"{lab.up_seconds:.2f} s"
    a = b = None
    try:
        group = f"gwtest-{lab.suffix}"
        a = Client(lab, "a", group)
        b = Client(lab, "b", group)
        va = a.wait_view(2)
        vb = b.wait_view(2)
        a.wait(lambda e: e.kind == "quorum" and e.words == ["1"], "quorum 1")
        print(f"both in the group: a {va.line}\n                   b {vb.line}", flush=True)

        # 1. Concurrent publishing, agreed order, no loss.
        t0 = time.monotonic()
        ma, mb = a.mark(), b.mark()
        publish_both(a, b, 1000)
        check_same_order(a, b, ma, mb, {"a": 1000, "b": 1000}, "1000 + 1000")
        dt = time.monotonic() - t0
        figures["2000 payloads (2 x 1000, 10 per turn)"] = \
            f"{dt:.2f} s, {2000 / dt:.0f} payloads/s delivered on both"
        ma, mb = a.mark(), b.mark()
        t0 = time.monotonic()
        publish_both(a, b, 300, 50, 3000)
        check_same_order(a, b, ma, mb, {"a": 300, "b": 300}, "300 + 300 of 3000 B")
        dt = time.monotonic() - t0
        figures["600 payloads of 3000 B (50 per turn)"] = f"{dt:.2f} s"
        sa, sb = a.stats(), b.stats()
        figures["messages sent for 1300 payloads"] = \
            f"a {sa.field('messages')}, b {sb.field('messages')} " \
            f"(TRY_AGAIN a {sa.field('try_again')}, b {sb.field('try_again')})"
        print("phase 1 ok: same order on both nodes", flush=True)

        # 2. kill -9 of b's corosync while b publishes: every payload b published is delivered
        # on b exactly once and in order (the tail locally), a has a prefix of them.
        ma, mb = a.mark(), b.mark()
        b.send("publish 10000 1 300")
        a.wait_deliveries(1000, ma)
        t_kill = lab.kill("b")
        down = b.wait(lambda e: e.kind == "connection" and e.words[0] == "down",
                      "connection down", mb)
        alone_b = b.wait_view(1, connected=False, since=mb)
        view_a = a.wait_view(1, since=ma)
        left = view_a.members("left")
        assert [(n, r) for n, _, r in left] == [(2, "nodedown")], f"a: left {left}"
        assert alone_b.members("left") and all(r == "disconnected" for *_, r in
                                               alone_b.members("left")), alone_b.line
        figures["kill -9 b -> b's program sees the loss"] = f"{down.t - t_kill:.3f} s"
        figures["kill -9 b -> a's view without b"] = f"{view_a.t - t_kill:.3f} s"
        b.wait(lambda e: e.kind == "published", "end of publishing", mb)
        b.wait_deliveries(10000, mb)
        b_seq = [f"b:{i}" for i in range(1300, 11300)]
        db = b.deliveries(mb)
        assert [p for _, _, p in db] == b_seq, "b: its own payloads, once each, in order"
        n_local = sum(1 for _, f, _ in db if f == 1)
        assert all(f == 1 for _, f, _ in db[len(db) - n_local:]), "b: local ones are the tail"
        da = [p for _, _, p in a.deliveries(ma)]
        assert da == b_seq[:len(da)], "a: a prefix of b's payloads"
        figures["kill -9 b while b publishes 10000"] = \
            f"{len(da)} reached a; b delivered {len(db) - n_local} via CPG, {n_local} locally " \
            f"({len(da) - (len(db) - n_local)} of those had reached a)"
        ma, mb = a.mark(), b.mark()
        publish_both(a, b, 100)
        a.wait_deliveries(100, ma)
        b.wait_deliveries(100, mb)
        da, db = a.deliveries(ma), b.deliveries(mb)
        assert [p for _, _, p in da] == [f"a:{i}" for i in range(1300, 1400)], "a alone"
        assert all(f == 0 and frm == 1 for frm, f, _ in da), "a: flags while b is down"
        assert [p for _, _, p in db] == [f"b:{i}" for i in range(11300, 11400)], "b alone"
        assert all(f == 1 and frm == 2 for frm, f, _ in db), "b: local flag expected"
        print("phase 2 ok: a carries on, b delivers locally", flush=True)

        # 3. b's corosync comes back; the program reconnects by itself.
        ma, mb = a.mark(), b.mark()
        t_start = time.monotonic()
        lab.start("b")
        up = b.wait(lambda e: e.kind == "connection" and e.words[0] == "up",
                    "connection up", mb, timeout=30)
        first_b = b.wait(lambda e: e.kind == "view" and e.field("connected") == "1",
                         "first view after reconnecting", mb)
        merged_b = b.wait_view(2, since=mb, timeout=30)
        merged_a = a.wait_view(2, since=ma, timeout=30)
        b.wait(lambda e: e.kind == "quorum" and e.words == ["1"], "quorum 1 again", mb)
        figures["start b -> b's program joined again"] = f"{up.t - t_start:.3f} s"
        figures["start b -> b's first view"] = \
            f"{first_b.t - t_start:.3f} s ({first_b.field('n')} member(s))"
        figures["start b -> 2-member view on b / on a"] = \
            f"{merged_b.t - t_start:.3f} s / {merged_a.t - t_start:.3f} s"
        print(f"phase 3: a {merged_a.line}\n         b {merged_b.line}", flush=True)
        ma, mb = a.mark(), b.mark()
        publish_both(a, b, 200)
        check_same_order(a, b, ma, mb, {"a": 200, "b": 200}, "after b's return")
        print("phase 3 ok: same order again", flush=True)

        # 4. Partition and heal.
        ma, mb = a.mark(), b.mark()
        t_cut = lab.partition()
        cut_a = a.wait_view(1, since=ma)
        cut_b = b.wait_view(1, since=mb)
        figures["partition -> 1-member views a / b"] = \
            f"{cut_a.t - t_cut:.3f} s / {cut_b.t - t_cut:.3f} s"
        ma2, mb2 = a.mark(), b.mark()
        publish_both(a, b, 50)
        a.wait_deliveries(50, ma2)
        b.wait_deliveries(50, mb2)
        assert all(f == 0 for _, f, _ in a.deliveries(ma2) + b.deliveries(mb2)), \
            "partitioned but connected: deliveries go through corosync"
        ma, mb = a.mark(), b.mark()
        t_heal = lab.heal()
        heal_a = a.wait_view(2, since=ma)
        heal_b = b.wait_view(2, since=mb)
        figures["heal -> 2-member views a / b"] = \
            f"{heal_a.t - t_heal:.3f} s / {heal_b.t - t_heal:.3f} s"
        ma, mb = a.mark(), b.mark()
        publish_both(a, b, 100)
        check_same_order(a, b, ma, mb, {"a": 100, "b": 100}, "after heal")
        print("phase 4 ok: partition and heal", flush=True)

        # 5. Graceful stop of a's corosync: b sees a's process leave at once (PROCDOWN).
        ma, mb = a.mark(), b.mark()
        t_stop = lab.stop("a")
        gone_b = b.wait_view(1, since=mb)
        assert [(n, r) for n, _, r in gone_b.members("left")] == [(1, "procdown")], gone_b.line
        a.wait_view(1, connected=False, since=ma)
        figures["SIGTERM a's corosync -> b's view without a"] = f"{gone_b.t - t_stop:.3f} s"
        ma, mb = a.mark(), b.mark()
        t_start = time.monotonic()
        lab.start("a")
        back_a = a.wait_view(2, since=ma, timeout=30)
        back_b = b.wait_view(2, since=mb, timeout=30)
        figures["start a -> 2-member view on a / on b"] = \
            f"{back_a.t - t_start:.3f} s / {back_b.t - t_start:.3f} s"
        ma, mb = a.mark(), b.mark()
        publish_both(a, b, 100)
        check_same_order(a, b, ma, mb, {"a": 100, "b": 100}, "after a's return")
        print("phase 5 ok: graceful stop and return", flush=True)

        for c in (a, b):
            s = c.stats()
            figures[f"stats {c.node}"] = " ".join(s.words[:7])
            c.send("quit")
        for c in (a, b):
            rc = c.proc.wait(timeout=10)
            assert rc == 0, f"node {c.node}: test-replication-cpg exited {rc}"
        ok = True
    except (AssertionError, LabError) as e:
        print(f"FAIL: {e}", flush=True)
        traceback.print_exc()
        for c in (a, b):
            if c:
                print(f"--- last events of {c.node}:\n{c.tail()}")
        print(lab.status())
    finally:
        lab.down()
        print("\nmeasured (token 1000 ms, 2 vCPUs shared by 2 corosyncs and 2 clients):")
        for k, v in figures.items():
            print(f"  {k:44} {v}")
        if ok:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"logs kept in {workdir}", flush=True)
    if ok:
        print("ok")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
