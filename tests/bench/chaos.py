#!/usr/bin/python3
"""The chaos run at scale: 10,000 alerts and 50 seeded random faults on the two-node cluster.

    ninja -C build                 # from the root of the checkout
    /usr/bin/python3 tests/bench/chaos.py [--alerts 10000] [--faults 50] [--seed N]
        [--modems 4] [--rate 8] [--clients 8] [--skip lock_db] [--keep]

The engine is tests/lib/chaos.py, the same one tests/cluster/test_chaos.py runs with 300 alerts
(its top comment says what it does and counts); the rig is tests/lib/gwcluster.py (two real
corosync nodes in network namespaces, one modem simulator, two gatewayd). Root only (network
namespaces). The alerts are streamed over alerts / rate seconds (default 8/s, which the 2 x 4
simulated modems, each ~1.4 SMS/s through libgammu, keep up with when healthy); the faults start
at random moments of that window. Prints the seed first ("chaos seed: N"), the faults with their
times, then the figures: accepted, lost, duplicated (explained by a kill, a cut or a hang, or
not), time to quiescence after the heal, both stores compared. Exit 0 when every promise held,
1 when one did not (the figures say which), 77 when it cannot run here.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "lib"))

import gwcluster  # noqa: E402
from chaos import KINDS, Chaos  # noqa: E402
from corosync_lab import Skip  # noqa: E402


def parse_skip(spec: str | None) -> tuple[str, ...]:
    names = [k.strip() for k in (spec or "").split(",") if k.strip()]
    unknown = set(names) - set(KINDS)
    if unknown:
        raise SystemExit(f"--skip: unknown {sorted(unknown)} (known: {', '.join(KINDS)})")
    return tuple(names)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--alerts", type=int, default=10000)
    ap.add_argument("--faults", type=int, default=50)
    ap.add_argument("--seed", type=int, default=None, help="default: a random one (printed)")
    ap.add_argument("--modems", type=int, default=4, help="simulated modems per node")
    ap.add_argument("--rate", type=float, default=8.0, help="alerts submitted per second")
    ap.add_argument("--clients", type=int, default=8, help="client threads (requests in flight)")
    ap.add_argument("--skip", default=None,
                    help=f"fault kinds planned as usual but not injected, comma-separated "
                         f"(kinds: {','.join(KINDS)})")
    ap.add_argument("--stall", type=float, default=90.0,
                    help="seconds without any SMS, while not quiescent, that count as wedged")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 1_000_000)
    print(f"chaos seed: {seed}", flush=True)
    gwcluster.GATEWAYD = os.path.abspath(os.environ.get("GATEWAYD", "build/gatewayd/gatewayd"))
    if not os.path.exists(gwcluster.GATEWAYD):
        print(f"gatewayd not found at {gwcluster.GATEWAYD} (build it, or set GATEWAYD)")
        return 1
    reason = gwcluster.can_run()
    if reason:
        print(f"SKIP: {reason}")
        return 77
    window = args.alerts / args.rate
    t0 = time.monotonic()
    c = gwcluster.Cluster("chaos-bench", modems_per_node=args.modems)
    ok = False
    try:
        try:
            c.up()
        except Skip as e:
            print(f"SKIP: {e}")
            return 77
        c.start_both(timeout=60)
        c.wait_members(timeout=60)
        t_up = time.monotonic() - t0
        run = Chaos(c, seed, alerts=args.alerts, faults=args.faults, window=window,
                    clients=args.clients, skip=parse_skip(args.skip), stall=args.stall,
                    bound=max(600.0, args.alerts * 0.5), progress=60.0).run()
        print(run.report(), flush=True)
        v = run.violations()
        r, q = run.result, run.quiescence
        print("\n| figure | value |\n|---|---|")
        rows = [
            ("seed", seed),
            ("alerts submitted / accepted", f"{args.alerts} / {r['accepted']}"),
            ("faults injected", f"{sum(1 for f in run.faults if f.t_start is not None)} of "
                                f"{args.faults}"),
            ("lost", len(r["lost"])),
            ("duplicated (explained / unexplained)",
             f"{len(r['dup_alerts'])} ({len(r['explained'])} / {len(r['unexplained'])}), "
             f"{r['extra_copies']} extra copies"),
            ("time to quiescence after the heal",
             f"{q['seconds']:.1f} s" + ("" if q["quiescent"] else " (NOT quiescent)")),
            ("stores: unknown on a / b, states differ, not sent",
             f"{len(r['stores']['missing'].get('a', []))} / "
             f"{len(r['stores']['missing'].get('b', []))}, {len(r['stores']['differ'])}, "
             f"{len(r['stores']['not_sent'])}"),
            ("daemon exits on their own", len(run.crashes)),
            ("run time", f"{time.monotonic() - t0:.0f} s (cluster up in {t_up:.0f} s)"),
        ]
        for k, val in rows:
            print(f"| {k} | {val} |")
        print(f"\ncommand: {' '.join(sys.argv)} --seed {seed}" if args.seed is None
              else f"\ncommand: {' '.join(sys.argv)}")
        if v:
            print("\nBROKEN PROMISES:\n  " + "\n  ".join(v))
            print(f"replay: /usr/bin/python3 tests/bench/chaos.py --alerts {args.alerts} "
                  f"--faults {args.faults} --seed {seed} --modems {args.modems} "
                  f"--rate {args.rate:g}"
                  + (f" --skip {args.skip}" if args.skip else ""))
            print(c.report())
            return 1
        ok = True
        print("\nevery promise held")
        return 0
    finally:
        c.close()
        if args.keep or not ok:
            print(f"work directory kept: {c.dir}")
        else:
            c.remove_dir()


if __name__ == "__main__":
    sys.exit(main())
