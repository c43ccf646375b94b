"""The cluster rig of tests/lib/gwcluster.py (two nodes, or three), as bench.py's cluster phase
uses it.

gwcluster.Cluster (two real corosync in network namespaces, one modem simulator, two gatewayd
with ipc:// endpoints) is used as it is; this module only adds what a benchmark needs and the
test rig has no reason to offer (the rig itself is maintained elsewhere and not edited here):

* BenchCluster(modems=False): both daemons without their [modem gsm0] section, so that only
  acceptance and replication are measured (no modem: every alert simply waits, queued). The
  config the rig writes is post-processed: its [modem gsm0] section is dropped, nothing else
  changes. start_nomodem() then waits for a status answer instead of a modem coming up.
* owner() (from gwcluster): which node sends an alert, by the daemon's own rule (gatewayd/members.c
  members_owner: FNV-1a 64 of id then number, modulo the eligible nodes in name order), for
  alerts with no attempt yet while both nodes are eligible (in the view, announced, a usable
  modem each).
* pids and CPU of both daemons and both corosyncs.
* corosync_policy() / demote_corosync(): corosync runs every thread SCHED_RR at priority 99
  (its default when it may). With both nodes on one 2-core machine, two real-time corosyncs
  then preempt both daemons; demote_corosync() puts every thread of both corosyncs to
  SCHED_OTHER, for a diagnostic run that shows what that costs (not a deployment setting).
"""

from __future__ import annotations

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "lib"))

import gwcluster  # noqa: E402
import sysproc  # noqa: E402
from gwcluster import NODE_NAMES, Cluster, Node, owner, wait_until  # noqa: E402, F401



class NoModemNode(Node):
    def write_config(self) -> None:
        super().write_config()
        with open(self.config_path) as f:
            lines = f.read().split("\n")
        out, skip = [], False
        for line in lines:
            s = line.strip()
            if s.startswith("["):
                skip = s.startswith("[modem ")
            if not skip:
                out.append(line)
        with open(self.config_path, "w") as f:
            f.write("\n".join(out))


class BenchCluster(Cluster):
    def __init__(self, name: str, gatewayd: str, modems: bool = True, **kw):
        gwcluster.GATEWAYD = gatewayd  # read by Cluster.start at each start
        super().__init__(name, **kw)
        self.with_modems = modems
        if not modems:
            self.nodes = {n: NoModemNode(self, n) for n in self.names}

    def start_nomodem(self, name: str, wipe_state: bool = False, timeout: float = 30.0):
        """Starts a daemon without waiting for a modem: until it answers status."""
        n = self.start(name, wipe_state=wipe_state, wait=False)

        def up():
            n.check_alive()
            st = n.try_request({"op": "status"}, timeout=1.0)
            return st if st and st.get("ok") else None

        wait_until(up, timeout, f"gatewayd {name} to answer status", interval=0.1)
        return n

    def start_both_nomodem(self) -> None:
        for name in self.names:
            self.start_nomodem(name)

    def daemon_pid(self, name: str) -> int | None:
        return self.nodes[name].pid

    def corosync_pid(self, name: str) -> int | None:
        return self.lab.pid(name)

    def corosync_policy(self, name: str = "a") -> str:
        pid = self.corosync_pid(name)
        pol = os.sched_getscheduler(pid)
        names = {os.SCHED_OTHER: "SCHED_OTHER", os.SCHED_RR: "SCHED_RR",
                 os.SCHED_FIFO: "SCHED_FIFO"}
        return f"{names.get(pol, pol)} {os.sched_getparam(pid).sched_priority}"

    def corosync_peak_mb(self, name: str) -> float:
        """The named node's corosync's peak resident memory since it started (VmHWM), MB."""
        kb = sysproc.vm_status(self.corosync_pid(name)).get("VmHWM")
        return kb / 1024 if kb is not None else float("nan")

    def demote_corosync(self) -> int:
        """Every thread of both corosyncs to SCHED_OTHER; returns how many threads."""
        n = 0
        for name in self.names:
            pid = self.corosync_pid(name)
            for tid in os.listdir(f"/proc/{pid}/task"):
                try:
                    os.sched_setscheduler(int(tid), os.SCHED_OTHER, os.sched_param(0))
                    n += 1
                except ProcessLookupError:
                    pass
        return n

    def runqueue_wait(self, names=None) -> float:
        """Seconds the named daemons' (default: all) threads have spent runnable but waiting
        for a core (/proc/PID/task/TID/schedstat, second field), summed."""
        total = 0
        names = self.names if names is None else names
        for name in names:
            pid = self.daemon_pid(name)
            if not pid:
                continue
            for tid in os.listdir(f"/proc/{pid}/task"):
                try:
                    with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                        total += int(f.read().split()[1])
                except (OSError, IndexError, ValueError):
                    pass
        return total / 1e9

    def cpu(self, names=None, corosync: bool = False) -> float:
        """CPU seconds so far of the named daemons (default: all; and their corosyncs if
        asked)."""
        names = self.names if names is None else names
        pids = [self.daemon_pid(n) for n in names]
        if corosync:
            pids += [self.corosync_pid(n) for n in names]
        return sysproc.cpu_seconds([p for p in pids if p])
