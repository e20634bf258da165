"""A dry run of one zone over 365 days, engine and twin together, in event-driven and fixed-step time.

The goal (issue 11): the event-driven zone-year within 3x a fixed 1M-iteration plain-Python
reference loop measured in the same run (machines here are shared and noisy, so runs on different
days compare by that ratio). The fixed-step run, the reference whose decisions the event-driven
one must make, is timed too (`--no-fixed` leaves it out), with evaluations per zone-day of each, and so is
a fault run in both loops (`--fault`, default a stuck NO drain pump: fine 5-s steps while it is powered, the
costliest runs of a diff matrix; `--fault-days 0` leaves it out).

    python bench/dry_run_year.py [--days 365] [--zone zn-1] [--site examples] [--no-fixed]
                                 [--fault stuck_relay@2d:pump_drain] [--fault-days 10]
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

from hydro_rules.lang.loader import load
from hydro_rules.sim.dryrun import run

ROOT = Path(__file__).resolve().parents[1]
GOAL = 3.0


def reference_loop(n: int) -> float:
    """A fixed amount of plain Python work (dict updates, float maths, random numbers)."""
    rng = random.Random(1)
    d: dict = {}
    t = time.perf_counter()
    acc = 0.0
    for i in range(n):
        v = rng.gauss(6.0, 0.1)
        d[i & 63] = (v, float(i))
        acc += v * 0.5 if v > 6.0 else -v
    return time.perf_counter() - t


def timed(rs, zone: str, days: float, step: str, faults=()) -> tuple[float, object]:
    t = time.perf_counter()
    zr = run(rs, [zone], days=days, step=step, faults=list(faults)).zones[0]
    return time.perf_counter() - t, zr


def decisions(zr) -> list:
    return [(c["at"], c["channel"], c["cmd"]) for c in zr.commands] + [
        (a["raised_at"], a["code"], a["channel"]) for a in zr.alerts
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=float, default=365.0)
    ap.add_argument("--zone", default="zn-1")
    ap.add_argument("--site", default="examples")
    ap.add_argument("--no-fixed", action="store_true", help="time only the event-driven run")
    ap.add_argument("--fault", default="stuck_relay@2d:pump_drain", help="the fault of the fault run")
    ap.add_argument("--fault-days", type=float, default=10.0, help="days of the fault run (0: none)")
    args = ap.parse_args()
    rs = load(ROOT / args.site).ruleset
    ref = reference_loop(1_000_000)
    wall, zr = timed(rs, args.zone, args.days, "event")
    s = zr.summary()
    per_day = zr.evaluations / args.days
    print(
        f"{args.days:g} days of {args.zone}, event-driven: {wall:.2f} s, {zr.evaluations:,} evaluations "
        f"({per_day:.0f} per zone-day of {86400 / 60:.0f} ticks; {wall / zr.evaluations * 1e6:.1f} us each)"
    )
    print(
        f"  engine {zr.engine_s:.2f} s ({zr.engine_s / wall:.0%}), twin {zr.twin_s:.2f} s ({zr.twin_s / wall:.0%}), "
        f"the rest (dry-run bookkeeping) {wall - zr.engine_s - zr.twin_s:.2f} s"
    )
    print(
        f"  water changes: {s['water_changes_completed']} completed, {s['water_changes_failed']} failed; "
        f"alerts: {s['alerts_by_code'] or 'none'}"
    )
    ratio = wall / ref
    out = {
        "bench": "dry_run_year",
        "value": round(ratio, 2),
        "unit": "x reference loop",
        "goal": GOAL,
        "ok": ratio <= GOAL,
        "event_s": round(wall, 2),
        "reference_loop_s": round(ref, 3),
        "event_evaluations_per_day": round(per_day, 1),
        "engine_share": round(zr.engine_s / wall, 3),
        "twin_share": round(zr.twin_s / wall, 3),
    }
    if not args.no_fixed:
        fixed_wall, fz = timed(rs, args.zone, args.days, "fixed")
        same = decisions(fz) == decisions(zr)
        print(
            f"  fixed-step reference: {fixed_wall:.2f} s, {fz.evaluations:,} evaluations "
            f"({fz.evaluations / args.days:.0f} per zone-day); same commands and alerts: {'yes' if same else 'NO'}"
        )
        out.update(
            fixed_s=round(fixed_wall, 2),
            fixed_x_reference_loop=round(fixed_wall / ref, 2),
            fixed_evaluations_per_day=round(fz.evaluations / args.days, 1),
            speedup=round(fixed_wall / wall, 2),
            same_decisions=same,
        )
    if args.fault_days > 0:
        fw_event, fe = timed(rs, args.zone, args.fault_days, "event", [args.fault])
        fw_fixed, ff = timed(rs, args.zone, args.fault_days, "fixed", [args.fault])
        same = decisions(ff) == decisions(fe)
        print(
            f"  {args.fault_days:g} days with {args.fault}: event {fw_event:.2f} s ({fe.evaluations:,} evaluations), "
            f"fixed {fw_fixed:.2f} s ({ff.evaluations:,}); same commands and alerts: {'yes' if same else 'NO'}"
        )
        out.update(
            fault=args.fault,
            fault_event_s=round(fw_event, 2),
            fault_fixed_s=round(fw_fixed, 2),
            fault_speedup=round(fw_fixed / fw_event, 2),
            fault_same_decisions=same,
        )
    print(f"  reference loop (1M iterations of plain Python) {ref:.2f} s here: the event-driven run took {ratio:.1f}x")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
