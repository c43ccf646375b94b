#!/usr/bin/python3
"""gatewayd benchmarks, side by side with smstools3 and gammu-smsd on the modem simulator.

    ninja -C build && /usr/bin/python3 tests/bench/bench.py [--quick]
        [--only latency|throughput|sms|rss|history|faults|voice|cluster] [--seed N] [--keep]
        [--parts accept,takeover,catchup,sms,three]   (of the cluster phase; default: all)

This is a measurement, not a test: it prints tables and exits 0 whatever the figures are
(it exits 1 only if it could not measure at all, e.g. the binaries are not built).

Method
------
Everything runs on this machine against tests/modemsim (SIM800-like modems on pseudo-
terminals, answering in <1 ms unless a send delay is set). The simulator logs every AT command
it receives with "mono" = its time.monotonic() (CLOCK_MONOTONIC, the same clock as ours), the
PDU line with the decoded text, and each completed SMS in sent.jsonl. Every message carries a
unique token ("tok" + 10 hex digits) in its text, so a message is matched to the AT+CMGS
that carried it (the last AT+CMGS before the PDU whose decoded text holds the token) and to
its completion, whatever daemon sent it. Nothing is timed from a daemon's own logs.

The phases, in the order of a full run, one module each whose top comment is its method (the
numbers are those the methods refer to):

    1. latency     phase_latency.py     alert -> AT+CMGS, gatewayd and the peers; idle CPU
    2. throughput  phase_throughput.py  durable acceptance, alerts/s, no modem
    3. sms         phase_sms.py         SMS per second on 1, 2, 4 and 8 modems
    4. rss         phase_rss.py         memory with 100,000 alerts queued
    6. history     phase_history.py     1,000,000 finished alerts: status, send, RSS; the purge
       faults      phase_faults.py      a modem hanging mid-send, a modem replugged
       voice       phase_voice.py       the last SMS path failed -> ATD on the dial-out line
    5. cluster     phase_cluster.py     two gatewayd on two real corosync nodes (root)

shared.py holds what they share: the simulator's records matched to messages (Tracker),
gatewayd as a measured daemon, statistics, tables and the acceptance load. This file parses
the command line, runs the phases and prints the summary.

Every process started here is stopped by PID (sysproc.py), every wait is bounded, every socket
is on loopback (the cluster's: ipc:// in the rig's directory), all files live in temporary
directories (removed unless --keep).
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))

try:
    import zmq
except ImportError:
    print("bench.py needs pyzmq: run it with /usr/bin/python3 (Debian's python3-zmq)")
    sys.exit(1)

import phase_cluster  # noqa: E402
import phase_faults  # noqa: E402
import phase_history  # noqa: E402
import phase_latency  # noqa: E402
import phase_rss  # noqa: E402
import phase_sms  # noqa: E402
import phase_throughput  # noqa: E402
import phase_voice  # noqa: E402
import sysproc  # noqa: E402
from shared import GATEWAYD, log, table  # noqa: E402

# A full run, in this order; --only names one. A module with summary_rows() adds its lines to
# the summary.
PHASES = [
    ("latency", phase_latency),
    ("throughput", phase_throughput),
    ("sms", phase_sms),
    ("rss", phase_rss),
    ("history", phase_history),
    ("faults", phase_faults),
    ("voice", phase_voice),
    ("cluster", phase_cluster),
]


def summary(args, results: dict, elapsed: float) -> None:
    rows = []
    for name, module in PHASES:
        if results.get(name) and hasattr(module, "summary_rows"):
            rows += module.summary_rows(results[name])
    table("Summary", ["figure", "gatewayd", "goal", "goal?",
                      "smstools3 (delaytime 1/trust_outgoing)",
                      "gammu-smsd (LoopSleep 1/CommTimeout 1; SMS/s: 0/0)"],
          rows)
    cmd = shlex.join(["/usr/bin/python3"] + [os.path.relpath(sys.argv[0], os.getcwd())]
                     + sys.argv[1:])
    print(f"\nPrinted by: {cmd}   (from {os.getcwd()}; {elapsed / 60:.1f} min; seed {args.seed})")


def environment() -> str:
    def first_line(cmd):
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
            return (out.stdout + out.stderr).strip().splitlines()[0]
        except Exception as e:
            return f"? ({e})"
    smsd = first_line(["/usr/sbin/smsd", "-V"]).split(",")[0].replace("Version ", "")
    return (f"{os.uname().sysname} {os.uname().release}, {os.cpu_count()} cores; "
            f"gatewayd {GATEWAYD}; smstools3 {smsd}; "
            f"gammu-smsd {first_line(['/usr/bin/gammu-smsd', '-v']).split()[-1]}")


def main(argv) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="small N, no default-settings peers: a ~2 min smoke run")
    p.add_argument("--only", choices=[name for name, _ in PHASES])
    p.add_argument("--seed", type=int, default=1, help="seed of the random injection phases")
    p.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    p.add_argument("--parts", help="the cluster phase's parts to run, comma-separated "
                   "(accept, takeover, catchup, sms, three; default: all of these; history, an empty "
                   "node catching up on 1,000,000 finished alerts, only when named)")
    args = p.parse_args(argv)
    if not os.access(GATEWAYD, os.X_OK):
        print(f"{GATEWAYD} not found: build first (meson setup build && ninja -C build)")
        return 1

    work = tempfile.mkdtemp(prefix="gatewayd-bench-")
    ctx = zmq.Context()
    t_start = time.monotonic()
    print(f"# gatewayd benchmark{' (quick)' if args.quick else ''}\n\n{environment()}")
    print(f"work directory: {work}")
    results: dict = {}
    try:
        phases = [args.only] if args.only else [name for name, _ in PHASES]
        for phase in phases:
            t = time.monotonic()
            try:
                results[phase] = dict(PHASES)[phase].run(ctx, work, args)
            except Exception as e:
                print(f"\n{phase}: could not measure: {type(e).__name__}: {e}")
            log(f"{phase}: {time.monotonic() - t:.0f} s")
        summary(args, results, time.monotonic() - t_start)
    finally:
        sysproc.stop_all()
        ctx.destroy(linger=0)
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
