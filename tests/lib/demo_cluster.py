#!/usr/bin/python3
"""The cluster demo of ./demo.sh: two gateway nodes on real corosync, seen through gatewayctl.

    /usr/bin/python3 tests/lib/demo_cluster.py            the show (about 40 s), then clean up
    /usr/bin/python3 tests/lib/demo_cluster.py --serve    the show, then keep both nodes up
                                                          until Ctrl-C (SIGINT/SIGTERM/SIGHUP)
    /usr/bin/python3 tests/lib/demo_cluster.py --check    exit 0 if the cluster can run here,
                                                          else print why and exit 77

Built on tests/lib/gwcluster.py (Cluster: two corosync in network namespaces, one modem
simulator with a0 = node a's gsm0 and b0 = node b's gsm0, gatewayd a and b on ipc:// endpoints),
which it uses unchanged. What the user sees is the real gatewayctl binary talking to the two
daemons; the tables are built from the `get` op of the same socket.

  1. both nodes up; `gatewayctl status` on a;
  2. alerts to both nodes, one key raced to both at once (queued + duplicate, one id); where
     each went (accepted on / sent by / state) and what each simulated modem received;
  3. kill -9 of a's gatewayd and corosync while alerts a accepted are pending; b notices
     (`status` on b) and delivers them; the time from the kill to the last delivery;
  4. b alone still accepts; a restarts on its disk and catches up (`status` on a, `queue` and
     `show` identical on both); a summary.

Every wait is bounded. Everything started is stopped by pid (Cluster.close), on success, on
failure, and on SIGINT/SIGTERM/SIGHUP; the run directory is removed unless something failed.
"""

from __future__ import annotations

import importlib
import os
import secrets
import shlex
import signal
import subprocess
import sys
import time

TOP = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
os.chdir(TOP)  # gwcluster finds build/gatewayd/* relative to the working directory
sys.path.insert(0, os.path.join(TOP, "tests", "lib"))

SEND_DELAY = 1.0  # the simulated network takes this long per SMS, so alerts are seen pending
STEP = 8  # [escalation] step_timeout of the demo (part 5)
FINAL = ("sent", "delivered", "failed", "expired")
DELIVERED = ("sent", "delivered")


def out(line: str = "") -> None:
    print(line, flush=True)


def header(title: str) -> None:
    out()
    out(f"== {title}")


# ---------------------------------------------------------------------------------------------
# Can the cluster run here?

def why_not() -> str | None:
    """Why the two-node cluster cannot run on this machine, or None."""
    try:
        # gwcluster exits (77, with a SKIP line) when python3-zmq is missing
        importlib.import_module("gwcluster")
        from corosync_lab import Lab, Skip, tool
    except SystemExit:
        return "python3-zmq is not installed (apt-get install python3-zmq)"
    for p in ("build/gatewayd/gatewayd", "build/gatewayd/gatewayctl/gatewayctl"):
        if not os.access(p, os.X_OK):
            return f"{p} is not built (ninja -C build)"
    try:
        Lab("/tmp").check_can_run()
    except Skip as e:
        return str(e)
    probe = f"gw-probe-{secrets.token_hex(3)}"
    r = subprocess.run([tool("ip"), "netns", "add", probe], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        return f"cannot create a network namespace: {r.stderr.strip()}"
    subprocess.run([tool("ip"), "netns", "del", probe], stdin=subprocess.DEVNULL,
                   capture_output=True, timeout=30)
    return None


# ---------------------------------------------------------------------------------------------
# The show

class Interrupted(BaseException):
    pass


# pyzmq 24 (Debian 12) loses an exception raised by a signal handler while zmq_poll is
# interrupted (it raises InterruptedSystemCall over it and polls again). So once a stop is
# asked for, SIGALRM raises it again every 0.5 s until it lands: the show always ends promptly.
_stop = {"asked": None, "repeat": False}


def on_signal(signum, frame):
    if _stop["asked"] and not _stop["repeat"]:
        return  # a second Ctrl-C while c.up() cleans up after the first, or during clean-up
    _stop["asked"] = signal.Signals(signum).name
    if _stop["repeat"]:
        signal.setitimer(signal.ITIMER_REAL, 0.5)
    raise Interrupted(_stop["asked"])


def on_alarm(signum, frame):
    if _stop["asked"] and _stop["repeat"]:
        signal.setitimer(signal.ITIMER_REAL, 0.5)
        raise Interrupted(_stop["asked"])


def quiet_signals() -> None:
    """From here on no signal interrupts anything (the clean-up must run to its end)."""
    _stop["repeat"] = False
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGALRM):
        signal.signal(s, signal.SIG_IGN)
    signal.setitimer(signal.ITIMER_REAL, 0)


class Demo:
    def __init__(self, c):
        from gwcluster import GATEWAYCTL
        self.c = c
        self.ctl_path = GATEWAYCTL
        self.ep = {n: c.node(n).endpoint for n in "ab"}
        self.accepted: dict[str, dict] = {}  # id -> {"node", "text", "section"}
        self.raced: dict = {}
        self.t_show = time.monotonic()
        self.serving = False
        self.on_a_at_kill: set[str] = set()
        self.unexplained = False

    # ---- gatewayctl, as an operator runs it ----

    def ctl_argv(self, node: str, args) -> list[str]:
        return [self.ctl_path, "-e", self.ep[node], "-t", "5", *args]

    @staticmethod
    def shown(node: str, args) -> str:
        return f"$ gatewayctl -e ${node.upper()} " + " ".join(shlex.quote(a) for a in args)

    def ctl(self, node: str, *args: str, echo: bool = True, quiet: bool = False) -> str:
        """Runs the real gatewayctl against node's endpoint; prints the command and its output
        (unless quiet); returns stdout."""
        if echo:
            out(self.shown(node, args))
        r = subprocess.run(self.ctl_argv(node, args), stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=20)
        text = r.stdout + r.stderr
        if not quiet:
            print(text, end="" if text.endswith("\n") or not text else "\n", flush=True)
        if r.returncode != 0:
            raise AssertionError(f"gatewayctl {' '.join(args)} on {node} exited with "
                                 f"{r.returncode}: {text.strip()}")
        return r.stdout

    def send(self, node: str, number: str, text: str, section: int, *opts: str) -> str:
        line = self.ctl(node, "send", *opts, number, "-m", text)
        alert_id, status = line.split()[:2]
        assert status == "queued", f"expected queued, got: {line.strip()}"
        self.accepted[alert_id] = {"node": node, "text": text, "section": section}
        return alert_id

    # ---- what the nodes know ----

    def get(self, node: str, alert_id: str) -> dict:
        a = self.c.node(node).request({"op": "get", "id": alert_id}, timeout=5.0)
        assert a.get("ok"), f"get {alert_id} on {node}: {a}"
        return a

    @staticmethod
    def sent_by(a: dict) -> list[str]:
        return [f"{x.get('node')}/{x.get('modem')}" for d in a.get("deliveries") or []
                for x in d.get("attempts") or [] if x.get("result") == "sent"]

    def wait_final(self, ids, nodes=("a", "b"), timeout: float = 60.0) -> None:
        """Until every alert is final on every node in nodes, and every node says the same."""
        self.c.wait_agree(ids, nodes=nodes, timeout=timeout)

    @staticmethod
    def was_on_a(a: dict) -> bool:
        """Whether a send of this alert was in hand on node a when a died: b's take-over records
        it as a failed attempt of a ("its node left the cluster before reporting")."""
        return any(x.get("node") == "a" and x.get("result") != "sent"
                   for d in a.get("deliveries") or [] for x in d.get("attempts") or [])

    def table(self, ids, node: str, before: dict | None = None) -> None:
        """ID / ACCEPTED ON / [AT THE KILL] / SENT BY / STATE / TEXT, as `node` reports them.
        before: the states on a just before the kill; a "sending" one is shown with the node
        that had it in hand (a if b recorded a take-over from a, else b)."""
        cols = ["ID", "ACCEPTED ON"] + (["AT THE KILL"] if before is not None else []) + \
               ["SENT BY", "STATE", "TEXT"]
        rows = []
        for i in ids:
            a = self.get(node, i)
            row = [i, a.get("node") or "-"]
            if before is not None:
                st = before.get(i, "-")
                if st == "sending":
                    st = "sending on " + ("a" if self.was_on_a(a) else "b")
                row.append(st)
            row += [", ".join(self.sent_by(a)) or "-", a.get("state") or "-",
                    (a.get("text") or "")[:34]]
            rows.append(row)
        widths = [max(len(str(r[k])) for r in [cols] + rows) for k in range(len(cols))]
        for r in [cols] + rows:
            out("  " + "  ".join(str(v).ljust(w) for v, w in zip(r, widths)).rstrip())

    def modem_texts(self, texts) -> None:
        """What the simulated modems received (decoded from the PDUs), for these texts."""
        want = set(texts)
        for m in self.c.sms():
            if m["text"] in want:
                out(f"  {m['modem']} (node {m['modem'][0]}'s gsm0)  {m['to']:>13}  {m['text']}")

    def wait_same(self, args, timeout: float = 20.0) -> tuple[str, str]:
        """Runs gatewayctl ARGS on a and on b back to back until both print the same; bounded.
        Returns the two outputs of the last round."""
        deadline = time.monotonic() + timeout
        while True:
            oa = self.ctl("a", *args, echo=False, quiet=True)
            ob = self.ctl("b", *args, echo=False, quiet=True)
            if oa == ob or time.monotonic() > deadline:
                return oa, ob
            time.sleep(0.3)

    # ---- the four parts ----

    def part1(self) -> None:
        c = self.c
        lab = c.lab
        header("1. Two gateway nodes, a and b, each with its own corosync in its own network "
               "namespace")
        out(f"   namespaces {lab.nodes['a'].netns} (192.0.2.1) and {lab.nodes['b'].netns} "
            f"(192.0.2.2), a veth between them; one modem simulator: a0 is node a's gsm0, b0 "
            f"node b's gsm0, {SEND_DELAY:g} s per SMS")
        t0 = time.monotonic()
        c.start_both(timeout=40)
        c.wait_members(timeout=30)
        self.wait_both_modems()
        out(f"   gatewayd a and b started; both list a and b online after "
            f"{time.monotonic() - t0:.1f} s. Their submit sockets (ipc://, reachable from "
            f"outside the namespaces):")
        out(f"   A={self.ep['a']}")
        out(f"   B={self.ep['b']}")
        out()
        self.ctl("a", "status")

    def wait_both_modems(self, nodes=("a", "b"), timeout: float = 20.0) -> None:
        from gwcluster import wait_until

        def up():
            for n in nodes:
                st = self.c.node(n).try_request({"op": "status"}, timeout=1.0)
                mods = {(m.get("node"), m.get("name")): m.get("state")
                        for m in (st or {}).get("modems", [])}
                if not st or st.get("cluster", {}).get("syncing") or not all(
                        mods.get((x, "gsm0")) in ("ok", "degraded") for x in "ab"):
                    return False
            return True

        wait_until(up, timeout, "both nodes to list both modems up", interval=0.2)

    def part2(self) -> None:
        header("2. Alerts submitted to both nodes (gatewayctl send)")
        sends = [("a", "+32470000001", "db01 is DOWN (ping timeout)"),
                 ("b", "+32470000002", "mail01 SMTP queue 5000"),
                 ("a", "+32470000003", "core-sw1 port 24 down"),
                 ("b", "+32470000004", "backup job failed on nas2"),
                 ("a", "+32470000005", "ups1 on battery"),
                 ("b", "+32470000006", "dns2 not answering")]
        for node, number, text in sends:
            self.send(node, number, text, 2)
        out()
        out("Two upstream systems submit the same alert (key web01/http), one to each node, at "
            "the same instant:")
        args = ["send", "--key", "web01/http", "+32470000007", "-m",
                "web01 HTTP 503"]
        out(self.shown("a", args) + " &")
        out(self.shown("b", args))
        procs = {n: subprocess.Popen(self.ctl_argv(n, args), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True) for n in "ab"}
        res = {}
        for n, p in procs.items():
            try:
                o, _ = p.communicate(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.communicate(timeout=5)
                raise AssertionError(f"gatewayctl send to {n} did not return within 20 s")
            res[n] = o.strip()
            out(f"  ({n}) {res[n]}")
        ids = {n: r.split()[0] for n, r in res.items()}
        statuses = sorted(r.split()[1] for r in res.values())
        assert statuses == ["duplicate", "queued"] and ids["a"] == ids["b"], \
            f"the raced key: expected one queued and one duplicate with the same id: {res}"
        first = "a" if res["a"].split()[1] == "queued" else "b"
        self.raced = {"id": ids["a"], "queued_on": first, "text": "web01 HTTP 503"}
        self.accepted[ids["a"]] = {"node": first, "text": "web01 HTTP 503", "section": 2}
        out(f"  one alert: queued on {first}, the other node answered duplicate with the same "
            f"id")
        out()
        out("Right after, the cluster's queue as b sees it (alerts accepted on either node):")
        self.ctl("b", "queue")
        ids2 = [i for i, v in self.accepted.items() if v["section"] == 2]
        self.c.wait_texts([self.accepted[i]["text"] for i in ids2], timeout=60)
        self.wait_final(ids2)
        header("Where they went, once sent (the get op on node b; both nodes agree)")
        self.table(ids2, "b")
        out()
        out("What the simulated modems received (decoded from the PDUs):")
        self.modem_texts([self.accepted[i]["text"] for i in ids2])

    def part3(self) -> None:
        c = self.c
        header("3. Node a dies (kill -9 of its gatewayd and its corosync) with alerts it "
               "accepted still pending")
        sends = [("+32470000011", "disk /var 95% on app1"),
                 ("+32470000012", "disk /var 95% on app2"),
                 ("+32470000013", "load 40 on app3"),
                 ("+32470000014", "cert expires in 2d: shop"),
                 ("+32470000015", "raid degraded on db02"),
                 ("+32470000016", "vpn tunnel to site B down")]
        t_submit = time.monotonic()
        ids = [self.send("a", number, text, 3) for number, text in sends]
        self.kill_ids = ids
        # A moment for both modems to be busy with the batch, then the snapshot and the kill.
        time.sleep(0.8)
        before = {i: self.get("a", i).get("state") for i in ids}
        pending = [i for i in ids if before[i] not in DELIVERED]
        gw_pid, cs_pid = c.node("a").pid, c.lab.pid("a")
        t_kill = c.kill9("a")
        out(f"$ kill -9 {gw_pid} {cs_pid}        # gatewayd a and corosync a, "
            f"{time.monotonic() - t_submit:.1f} s after the first of these 6; "
            f"{len(pending)} of them not sent yet")
        c.wait_members(names=("b",), want=("b",), timeout=30)
        t_seen = time.monotonic() - t_kill
        out()
        out(f"b noticed a's death {t_seen:.1f} s after the kill (corosync token 1 s):")
        self.ctl("b", "status")
        texts = [self.accepted[i]["text"] for i in ids]
        c.wait_texts(texts, timeout=60)
        self.wait_final(ids, nodes=("b",), timeout=60)
        # the last SMS of an alert that was pending at the kill
        pending_texts = {self.accepted[i]["text"] for i in pending}
        monos = [m["mono"] for m in c.sms() if m["text"] in pending_texts]
        t_last = (max(monos) - t_kill) if monos else 0.0
        header("Where a's alerts went (get on b)")
        self.table(ids, "b", before=before)
        out()
        out("What the simulated modems received:")
        self.modem_texts(texts)
        after = c.texts()
        self.kill_repeats = {t: after[t] for t in texts if after[t] > 1}
        self.on_a_at_kill = {self.accepted[i]["text"] for i in ids
                             if self.was_on_a(self.get("b", i))}
        self.kill_summary = (f"a killed with {len(pending)} of its alerts pending; b saw it gone "
                             f"after {t_seen:.1f} s and delivered them all, the last "
                             f"{t_last:.1f} s after the kill")
        self.pending_at_kill = pending
        out()
        out(f"Every alert a had accepted was delivered: the last one {t_last:.1f} s after the "
            f"kill." + (f" Sent twice: {', '.join(self.kill_repeats)}; "
                        f"{self.why_twice(self.kill_repeats)}." if self.kill_repeats else ""))

    def part4(self) -> None:
        c = self.c
        header("4. b alone still accepts; then node a restarts on its own disk and catches up")
        sends = [("+32470000021", "nightly ETL late"),
                 ("+32470000022", "printer3 out of toner"),
                 ("+32470000023", "wifi ap7 offline"),
                 ("+32470000024", "ntp drift 3s on fw1"),
                 ("+32470000025", "login failures on bastion"),
                 ("+32470000026", "queue depth 10k on mq1")]
        ids = [self.send("b", number, text, 4) for number, text in sends]
        out()
        out("Restarting corosync a and gatewayd a (state dir kept: "
            f"{c.node('a').state_dir})")
        t0 = time.monotonic()
        c.start("a", timeout=40)
        c.wait_members(timeout=30)
        t_back = time.monotonic() - t0
        self.wait_both_modems(timeout=20)
        out(f"both online again {t_back:.1f} s after the restart:")
        out()
        self.ctl("a", "status")
        out()
        out("The queue on both nodes (the alerts b accepted while a was down that are not sent "
            "yet):")
        oa, ob = self.wait_same(["queue"])
        out(self.shown("a", ["queue"]))
        print(oa, end="", flush=True)
        out(self.shown("b", ["queue"]))
        print(ob, end="", flush=True)
        out("  (identical)" if oa == ob else "  (NOT identical)")
        everything = list(self.accepted)
        c.wait_texts([self.accepted[i]["text"] for i in everything], timeout=60)
        self.agree = c.wait_agree(everything, timeout=40, full=True)
        header("Where the alerts accepted by b alone went (get on a, which was down then)")
        self.table(ids, "a")
        # The most telling story: an alert whose send was in flight on a when a was killed.
        interrupted = [i for i in self.kill_ids if self.was_on_a(self.agree[i]["a"])]
        story = (interrupted or self.pending_at_kill or self.kill_ids)[0]
        out()
        out(f"One alert accepted by a before the kill, as a shows it now (its own disk plus what "
            f"it caught up on{'; its send was in flight on a at the kill' if interrupted else ''}"
            f"):")
        sa, sb = self.wait_same(["show", story])
        out(self.shown("a", ["show", story]))
        print(sa, end="", flush=True)
        out(f"  ({'identical to' if sa == sb else 'DIFFERENT from'} `gatewayctl -e $B show "
            f"{story[:8]}...`)")
        self.rejoin_summary = (f"a back on its disk: both online after {t_back:.1f} s; get, "
                               f"queue and show identical on both")
        self.same_queue = oa == ob
        self.same_show = sa == sb

    def part5(self) -> None:
        from gwcluster import wait_until
        from oncall_fixture import ALICE, BOB, CAROL
        c = self.c
        header("5. On call: a critical page to role:primary escalates until someone answers "
               "from a phone")
        self.ctl("a", "oncall")
        out()
        line = self.ctl("a", "send", "--priority", "critical", "role:primary", "-m",
                        "db01 DOWN: no ping for 3 min")
        alert = line.split()[0]
        t0 = time.monotonic()

        def texts_to(number):
            return [m for m in c.sms() if m["to"] == number]

        first = wait_until(lambda: texts_to(ALICE), 30, "the primary's page")[0]
        out(f"  {first['modem']}  -> alice {ALICE}:  " + first["text"].replace("\n", " / "))
        out(f"Alice does not answer. After step_timeout ({STEP} s) the secondary is paged:")
        page = wait_until(lambda: texts_to(BOB), STEP + 30, "the secondary's page")[0]
        t_page = time.monotonic() - t0
        out(f"  {page['modem']}  -> bob {BOB}:  " + page["text"].replace("\n", " / ") +
            f"   ({t_page:.1f} s after the page)")
        code = page["text"].rsplit("Reply ACK ", 1)[1].split()[0]
        out(f"Bob replies from his phone \"ACK {code}\" (it reaches node b's SIM):")
        c.sim.control({"cmd": "inject_sms", "modem": "b0", "from": BOB, "text": f"ACK {code}"})
        confirm = wait_until(lambda: texts_to(BOB)[1:], 30, "the confirmation")[0]
        out(f"  {confirm['modem']}  -> bob {BOB}:  {confirm['text']}")
        out()
        sa, _ = self.wait_same(["show", alert])
        out(self.shown("b", ["show", alert]))
        print(sa, end="", flush=True)
        a = self.get("a", alert)
        self.oncall_ok = (a.get("ack") or {}).get("by") == "bob" and not texts_to(CAROL)
        self.oncall_summary = (f"on call: the secondary paged {t_page:.1f} s after the page "
                               f"(step_timeout {STEP} s); bob's SMS \"ACK {code}\" on b "
                               f"acknowledged it on both nodes; management "
                               f"{'never paged' if not texts_to(CAROL) else 'PAGED'}")

    def why_twice(self, texts) -> str:
        if set(texts) <= self.on_a_at_kill:
            return ("its send was in flight on a at the kill (the network took it, a died "
                    "before recording it, b sent it again): at least once allows exactly this")
        self.unexplained = True
        return "NOT only sends in flight on the killed node: a bug"

    def summary(self) -> None:
        c = self.c
        header("Summary")
        ids = list(self.accepted)
        by_node = {n: sum(1 for v in self.accepted.values() if v["node"] == n) for n in "ab"}
        states = {i: {n: self.get(n, i).get("state") for n in "ab"} for i in ids}
        delivered = [i for i in ids if all(s in DELIVERED for s in states[i].values())]
        got = c.texts()
        lost = [i for i in ids if not got[self.accepted[i]["text"]]]
        repeats = {self.accepted[i]["text"]: got[self.accepted[i]["text"]] for i in ids
                   if got[self.accepted[i]["text"]] > 1}
        out(f"  {len(ids)} alerts accepted ({by_node['a']} on a, {by_node['b']} on b), "
            f"{len(delivered)} delivered, {len(lost)} lost")
        out(f"  duplicates: the raced key web01/http once (queued on {self.raced['queued_on']}, "
            f"duplicate on the other, same id, {got[self.raced['text']]} SMS)")
        if repeats:
            out(f"  sent twice: {', '.join(repeats)}; {self.why_twice(repeats)}")
        else:
            out("  sent twice: none")
        out(f"  {self.kill_summary}")
        out(f"  {self.rejoin_summary}")
        out(f"  {self.oncall_summary}")
        out(f"  SMS per modem: a0 {len(c.sms('a0'))}, b0 {len(c.sms('b0'))}; "
            f"the show took {time.monotonic() - self.t_show:.0f} s")
        self.ok = (not lost and len(delivered) == len(ids) and got[self.raced["text"]] == 1
                   and self.same_queue and self.same_show and not self.unexplained
                   and self.oncall_ok)

    # ---- --serve ----

    def serve(self) -> None:
        c = self.c
        self.serving = True
        header("Serving: nodes a and b keep running until Ctrl-C. Try, in another terminal:")
        ctl = self.ctl_path
        for n in "ab":
            out(f"   {ctl} -e {self.ep[n]} status")
        out(f"   {ctl} -e {self.ep['a']} send +32470000042 -m 'hello from a'")
        out(f"   {ctl} -e {self.ep['b']} send --key test/1 +32470000043 -m 'hello from b'")
        out(f"   {ctl} -e {self.ep['b']} queue")
        out(f"   {ctl} -e {self.ep['a']} show ID")
        out(f"   (daemon logs: {c.node('a').log_path}, {c.node('b').log_path})")
        out("Texts the simulated modems receive from now on are printed here.")
        seen = len(c.sms())
        warned = set()
        while True:
            time.sleep(0.5)
            sms = c.sms()
            for m in sms[seen:]:
                out(f"  {time.strftime('%H:%M:%S')}  {m['modem']}  {m['to']:>13}  {m['text']}")
            seen = len(sms)
            for n in "ab":
                node = c.node(n)
                if not node.alive() and n not in warned:
                    warned.add(n)
                    out(f"  gatewayd {n} exited ({node.proc.returncode}); see {node.log_path}")


def run(serve: bool) -> int:
    import gwcluster
    from corosync_lab import Skip
    from oncall_fixture import oncall_config

    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, on_signal)
    signal.signal(signal.SIGALRM, on_alarm)
    modem = "health_interval = 2\nsend_timeout = 5\ncommand_timeout = 3\ninbox_interval = 1\n"
    oncall = oncall_config(STEP)
    c = gwcluster.Cluster("demo", send_delay=SEND_DELAY, token_ms=1000,
                          extra={"a": oncall, "b": oncall},
                          modem_extra={"a": modem, "b": modem})
    failed = False
    interrupted = False
    demo = None
    try:
        try:
            c.up()
        except Skip as e:
            out(f"== The cluster cannot run here: {e}")
            return 77
        # Repeat only from here: c.up() cleans up after itself when interrupted, and must not
        # be interrupted again while it does.
        _stop["repeat"] = True
        signal.signal(signal.SIGTERM, on_signal)  # the lab put its own there
        if _stop["asked"]:
            raise Interrupted(_stop["asked"])
        demo = Demo(c)
        demo.part1()
        demo.part2()
        demo.part3()
        demo.part4()
        demo.part5()
        demo.summary()
        if not demo.ok:
            failed = True
            out("  SOMETHING IS WRONG: see above")
        if serve:
            demo.serve()
    except (Interrupted, KeyboardInterrupt, SystemExit) as e:
        quiet_signals()
        out()
        out(f"== Interrupted ({e or type(e).__name__})")
        interrupted = not (demo and demo.serving)  # Ctrl-C is how --serve ends
    except (AssertionError, subprocess.TimeoutExpired, OSError) as e:
        failed = True
        out()
        out(f"== FAILED: {type(e).__name__}: {e}")
        try:
            out(c.report())
        except Exception as re:
            out(f"(no report: {re})")
    finally:
        quiet_signals()
        if demo is not None:
            lab = c.lab
            out()
            out(f"== Cleaning up (by pid): gatewayd a and b, corosync a and b, the simulator, "
                f"namespaces {lab.nodes['a'].netns} and {lab.nodes['b'].netns}")
        c.close()
        quiet_signals()  # the lab's down() gave SIGTERM back to on_signal
        if failed:
            out(f"   logs kept in {c.dir}")
        else:
            c.remove_dir()
    return 1 if failed else 130 if interrupted else 0


def main() -> int:
    args = sys.argv[1:]
    if args == ["--check"]:
        reason = why_not()
        if reason:
            print(reason, flush=True)
            return 77
        return 0
    if args not in ([], ["--serve"]):
        print("usage: demo_cluster.py [--serve | --check]", file=sys.stderr)
        return 2
    rc = run(serve=args == ["--serve"])
    if rc == 77:  # no namespaces after all: the single-node demo instead
        out("== Running the single-node demo instead (./demo.sh --solo)")
        os.execv("/bin/sh", ["/bin/sh", os.path.join(TOP, "demo.sh"), "--solo", *args])
    return rc


if __name__ == "__main__":
    sys.exit(main())
