"""A dry run of one zone over 365 days at 1-minute ticks, engine and twin together.

Reports the wall time (goal: under 20 s here), the share of it spent in the
engine and in the twin, and, since machines here are shared and noisy, the
time of a fixed pure-Python reference loop measured in the same run, so that
runs on different days compare by their ratio too.

    python bench/dry_run_year.py [--days 365] [--zone zn-1]
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=float, default=365.0)
    ap.add_argument("--zone", default="zn-1")
    args = ap.parse_args()
    rs = load(ROOT / "examples").ruleset
    ref = reference_loop(1_000_000)
    t = time.perf_counter()
    result = run(rs, [args.zone], days=args.days)
    wall = time.perf_counter() - t
    zr = result.zones[0]
    s = zr.summary()
    print(
        f"{args.days:g} days of {args.zone} at 1-minute ticks: {zr.ticks:,} ticks in {wall:.2f} s "
        f"({wall / zr.ticks * 1e6:.1f} us per tick)"
    )
    print(
        f"  engine {zr.engine_s:.2f} s ({zr.engine_s / wall:.0%}), twin {zr.twin_s:.2f} s ({zr.twin_s / wall:.0%}), "
        f"the rest (dry-run bookkeeping) {wall - zr.engine_s - zr.twin_s:.2f} s"
    )
    print(
        f"  water changes: {s['water_changes_completed']} completed, {s['water_changes_failed']} failed; "
        f"alerts: {s['alerts_by_code'] or 'none'}"
    )
    print(f"  reference loop (1M iterations of plain Python) {ref:.2f} s here: the dry run took {wall / ref:.1f}x it")
    print(
        json.dumps(
            {
                "bench": "dry_run_year",
                "value": round(wall, 2),
                "unit": "s",
                "goal": 20.0,
                "ok": wall < 20.0,
                "engine_share": round(zr.engine_s / wall, 3),
                "twin_share": round(zr.twin_s / wall, 3),
                "x_reference_loop": round(wall / ref, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
