"""The default matrix of `hydro-rules diff` on the demo site, on 2 processes.

Both versions of examples/ (the site against a copy whose recirculation period
is 16 minutes instead of 20, or against itself with --edit none) run on every
zone × 10 seeds × (no fault + every fault of the safety matrix at 2 days) × 30
days: 2 × 2 × 10 × 12 = 480 zone runs. Goal: under 60 s on 2 cores. Machines
here are shared and noisy, so the time of a fixed plain-Python reference loop
(bench/dry_run_year.py's) measured in the same run is printed too, and the
ratio to it.

    python bench/diff_matrix.py [--seeds 10] [--days 30] [--jobs 2] [--edit period|none]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import tempfile
import time
from pathlib import Path

from hydro_rules.sim.diff import load_version, run_diff
from hydro_rules.sim.scenarios import matrix

ROOT = Path(__file__).resolve().parents[1]
GOAL_S = 60.0


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


def edited_copy(into: Path) -> Path:
    """examples/ and rules/ side by side, the recirculation period 16 minutes instead of 20."""
    shutil.copytree(ROOT / "rules", into / "rules", ignore=shutil.ignore_patterns("tests"))
    shutil.copytree(ROOT / "examples", into / "examples", ignore=shutil.ignore_patterns("tests"))
    p = into / "examples" / "profiles.hydro"
    p.write_text(p.read_text().replace("period 20m", "period 16m"))
    return into / "examples"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--days", type=float, default=30.0)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--edit", choices=("period", "none"), default="period")
    ap.add_argument("--report", metavar="FILE", help="also write the diff's JSON report there")
    args = ap.parse_args()
    ref = reference_loop(1_000_000)
    with tempfile.TemporaryDirectory(prefix="diff-bench-") as tmp:
        new_dir = edited_copy(Path(tmp)) if args.edit == "period" else ROOT / "examples"
        old = load_version("examples", ROOT / "examples")
        new = load_version("examples, period 16m" if args.edit == "period" else "examples", new_dir)
        zones = [z.uid for z in new.ruleset.zones]
        scs = matrix(zones, seeds=args.seeds, days=args.days)
        t = time.perf_counter()
        r = run_diff(old, new, scs, jobs=args.jobs, fail_on=["safety"])
        wall = time.perf_counter() - t
    m = r["matrix"]
    if args.report:
        Path(args.report).write_text(json.dumps(r, indent=1, ensure_ascii=False))
    n_faults = len({row["scenario"]["fault"] for row in r["scenarios"]} - {None})
    evals = sum(row[side]["evaluations"] for row in r["scenarios"] for side in ("old", "new"))
    print(
        f"diff matrix: {len(zones)} zones × {args.seeds} seeds × (no fault + {n_faults} "
        f"faults) × {args.days:g} days, both versions: {m['runs']} runs ({len(r['skipped'])} skipped: no heater "
        f"or chiller) in {wall:.1f} s on {args.jobs} processes"
    )
    print(
        f"  CPU {r['cpu_s']:.0f} s in the runs ({r['cpu_s'] / max(wall, 1e-9):.2f} cores busy on average), "
        f"{r['cpu_s'] / m['runs']:.2f} s per 30-day zone run, {evals:,} engine evaluations "
        f"({evals / m['runs']:,.0f} per run)"
    )
    changed = sum(1 for row in r["scenarios"] if row["changes"])
    print(
        f"  {changed} of {m['scenarios']} scenarios behave differently; safety figures worse: "
        f"{len(r['safety']['worse'])}; --fail-on safety {'holds' if not r['ok'] else 'does not hold'}"
    )
    for w in r["safety"]["worse"]:
        print(f"    worse: [{w['fault']}, {w['changed_in']}/{w['of']}] {w['text']}")
    print(f"  reference loop (1M iterations of plain Python) {ref:.2f} s here: the matrix took {wall / ref:.1f}x it")
    print(
        json.dumps(
            {
                "bench": "diff_matrix",
                "value": round(wall, 1),
                "unit": "s",
                "goal": GOAL_S,
                "ok": wall <= GOAL_S,
                "runs": m["runs"],
                "jobs": args.jobs,
                "cpu_s": r["cpu_s"],
                "reference_loop_s": round(ref, 3),
                "x_reference_loop": round(wall / ref, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
