#!/usr/bin/python3
"""The chaos test: two gatewayd on two real corosync nodes (tests/lib/gwcluster.py, two modems
per node), a few hundred alerts streamed to random nodes while seeded random faults hit the
cluster (tests/lib/chaos.py: kill -9 of either gatewayd, kill -9 of either corosync, partition,
a hung modem, a modem failing every send, one node's database locked by another process), then
everything healed. The promise (DESIGN 1, 2, 4) checked on what the phones got and what both
nodes answer:
  - every accepted alert (answered queued, or duplicate naming it) reached its phone: lost = 0;
  - an alert reached its phone twice only if a kill, a cut or a hang explains it (a send in
    flight on the node killed, an alert pending at a cut);
  - `get` of every accepted alert on both nodes: known to both, the same state, sent;
  - quiescence (both up, in step, nothing queued or sending) reached after the heal, and both
    daemons alive at the end, none having exited on its own.

Environment:
  CHAOS_SEED=N       replay a run (default: a random seed, printed first as "chaos seed: N")
  CHAOS_ALERTS=300   alerts; CHAOS_FAULTS=8 faults; CHAOS_WINDOW=75 seconds of streaming
  CHAOS_SKIP=...     comma-separated fault kinds planned as usual but not injected, e.g.
                     CHAOS_SKIP=lock_db replays a seed without its database locks (the same
                     plan otherwise), to tell which kind of fault breaks a promise
Exit 77 when the lab cannot run here (not root, no corosync, no network namespaces).
"""

from __future__ import annotations

import os
import random
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from chaos import KINDS, Chaos  # noqa: E402
from gwcluster import main, summary  # noqa: E402


def skip_from_env() -> tuple[str, ...]:
    names = [k.strip() for k in os.environ.get("CHAOS_SKIP", "").split(",") if k.strip()]
    unknown = set(names) - set(KINDS)
    if unknown:
        raise AssertionError(f"CHAOS_SKIP: unknown kinds {sorted(unknown)} (known: "
                             f"{', '.join(KINDS)})")
    return tuple(names)


def test_chaos(rig):
    seed_env = os.environ.get("CHAOS_SEED", "").strip()
    seed = int(seed_env) if seed_env else random.SystemRandom().randrange(1, 1_000_000)
    print(f"chaos seed: {seed}", flush=True)
    env = f"CHAOS_SEED={seed}" + "".join(
        f" {k}={os.environ[k]}" for k in ("CHAOS_ALERTS", "CHAOS_FAULTS", "CHAOS_WINDOW",
                                          "CHAOS_SKIP") if os.environ.get(k))
    replay = (f"replay: {env} meson test -C build cluster-chaos --print-errorlogs"
              f" (or {env} GATEWAYD=build/gatewayd/gatewayd "
              f"/usr/bin/python3 tests/cluster/test_chaos.py)")
    alerts = int(os.environ.get("CHAOS_ALERTS", "300"))
    faults = int(os.environ.get("CHAOS_FAULTS", "8"))
    window = float(os.environ.get("CHAOS_WINDOW", "75"))
    skip = skip_from_env()
    print(replay, flush=True)
    c = rig.cluster(modems_per_node=2)
    t0 = time.monotonic()
    c.start_both()
    c.wait_members()
    try:
        run = Chaos(c, seed, alerts=alerts, faults=faults, window=window, skip=skip,
                    stall=45.0, bound=110.0).run()
    except BaseException:
        print(f"chaos seed: {seed}\n{replay}", flush=True)
        raise
    print(run.report(), flush=True)
    v = run.violations()
    if v:
        raise AssertionError(f"chaos seed {seed}: {len(v)} broken promises:\n  "
                             + "\n  ".join(v) + f"\n{replay}")
    r, q = run.result, run.quiescence
    summary(f"seed {seed}: {r['accepted']} of {alerts} accepted, lost 0, duplicated "
            f"{len(r['dup_alerts'])} (all explained), "
            f"{sum(1 for f in run.faults if f.t_start is not None)} faults, "
            f"quiescent {q['seconds']:.1f} s after the heal, stores agree "
            f"({time.monotonic() - t0:.0f} s in all)")


if __name__ == "__main__":
    main(globals())
