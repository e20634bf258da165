"""The full safety matrix of the demo site: `hydro-rules safety examples`, timed.

Every fault of the twin at the four moments of the water cycle, three seeds, both
zones, 12 days per run (270 runs), on every core (goal: under 600 s here). Prints
the matrix as the command does and which invariants broke, then, since machines
here are shared and noisy, the parallel speed-up measured in the same run on a
subset (one zone, one seed, a few faults) run with --jobs 1 and with every core,
and checks that both give the same results.

    python bench/safety_matrix.py [--seeds 3] [--days 12] [--jobs N]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from rich.console import Console

from hydro_rules.commands.safety import print_text, summary
from hydro_rules.sim.safety import run_matrix, without_timings

ROOT = Path(__file__).resolve().parents[1]
GOAL_S = 600.0
#: 2 baselines and 8 fault runs: enough to keep two processes busy
SUBSET = dict(
    zones=["zn-1"],
    seeds=2,
    faults=["leak", "sensor_frozen_ph", "node_offline", "stuck_relay_recirc"],
    moments=["between"],
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--days", type=float, default=12.0)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()
    site = str(ROOT / "examples")

    t = time.perf_counter()
    report = run_matrix(site, seeds=args.seeds, days=args.days, jobs=args.jobs)
    wall = time.perf_counter() - t
    print_text(report, Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 160))
    per_run = wall / report["runs"]
    runs = report["runs"]
    print(f"{runs} runs of {args.days:g} days in {wall:.1f} s on {args.jobs} process(es): {per_run:.2f} s each")
    idle = report["cpu_s"] / args.jobs
    print(
        f"  the runs took {report['cpu_s']:.0f} s of CPU: on {args.jobs} idle core(s) the matrix would take "
        f"about {idle:.0f} s (this machine is shared; the wall time above counts the others' load too)"
    )

    t = time.perf_counter()
    serial = run_matrix(site, days=args.days, jobs=1, **SUBSET)
    one = time.perf_counter() - t
    t = time.perf_counter()
    parallel = run_matrix(site, days=args.days, jobs=args.jobs, **SUBSET)
    many = time.perf_counter() - t
    same = without_timings(serial) == without_timings(parallel)
    speedup = one / many if many > 0 else 0.0
    print(
        f"subset of {serial['runs']} runs: {one:.1f} s with --jobs 1, {many:.1f} s with --jobs {args.jobs}: "
        f"speed-up {speedup:.2f}x; results {'identical' if same else 'DIFFERENT'}"
    )
    print(f"invariants: {'all hold' if report['ok'] else 'broken — ' + summary(report)}")
    print(
        json.dumps(
            {
                "bench": "safety_matrix",
                "value": round(wall, 1),
                "unit": "s",
                "goal": GOAL_S,
                "ok": wall <= GOAL_S and same,
                "runs": report["runs"],
                "cpu_s": report["cpu_s"],
                "idle_estimate_s": round(idle, 1),
                "jobs": args.jobs,
                "speedup": round(speedup, 2),
                "identical_to_serial": same,
                "invariants_hold": report["ok"],
                "broken": len(report["broken"]),
            }
        )
    )


if __name__ == "__main__":
    main()
