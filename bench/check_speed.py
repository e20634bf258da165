"""How fast is `hydro-rules check` compared with the bare Lark parse of the same text?

Generates a valid rule set with 5,000 alerts and 200 state machines (conditions with
units, holds and clears; states with enter actions, transitions and timeouts) that uses
the standard rules of `rules/`, then times, in the same run and several times each:

- `check`: load + parse + every semantic check, as the CLI does it (no rendering);
- the bare parse: `Lark(grammar_text(1), parser="lalr")` with default tree building,
  over the text of every file `check` reads.

Runs alternate (check, parse, check, parse, ...) so that load from other processes hits
both alike. Prints min and median of both and ends with one JSON line whose value is the
median of the per-pair ratios; `ok` is value <= goal.

    .venv/bin/python bench/check_speed.py [--alerts 5000] [--machines 200] [--repeat 5]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from lark import Lark

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hydro_rules.commands.check import collect  # noqa: E402
from hydro_rules.lang.grammar import grammar_text  # noqa: E402

GOAL = 2.0

# Conditions an agronomist writes, with units, holds and hysteresis; {i} makes thresholds vary.
_ALERT_SHAPES = [
    ("ph > target.ph.max + 0.{a} for {h}m", "ph < target.ph.max for 5m"),
    ("ph < target.ph.min - 0.{a} for {h}m", "ph > target.ph.min for 5m"),
    ("ec > target.ec.max * 1.{a} for {h}m", "ec < target.ec.max for 10m"),
    ("ec < {e}.{a} mS/cm and ph is known for {h}m", "ec > {e}.{a} mS/cm + 0.2 mS/cm for 10m"),
    ("temp_water > 2{a} °C for {h}m", "temp_water < 2{a} °C - 1 °C for 15m"),
    ("water_level < 1{a}% and pump_drain is off for {h}m", "water_level > 2{a}% for 5m"),
    (
        "pump_recirc is on and pump_recirc.on_for > {a}m and pump_recirc.flow < 0.{a} L/min for {h}m",
        "pump_recirc.flow > 1 L/min for 2m",
    ),
    ("abs(change(water_level, 1h)) > {a}% and not (pump_fill is on) for {h}m", "change(water_level, 1h) > -1% for 30m"),
    ("humidity > 8{a}% or temp_air > 3{a} °C for {h}m", "humidity < 75% and temp_air < 28 °C for 20m"),
    ("ph.age > {a}m or ec.unchanged_for > {h}h", "ph.age < 1m and ec.unchanged_for < 10m for 5m"),
]


def _alert(i: int) -> str:
    when, clear = _ALERT_SHAPES[i % len(_ALERT_SHAPES)]
    a, h, e = i % 9 + 1, i % 50 + 10, i % 3 + 1
    source = "biz" if i % 4 else "infra"
    severity = ("info", "warning", "critical")[i % 3]
    return (
        f"alert {source}_generated_{i} {{\n"
        f"  source {source}\n"
        f"  severity {severity}\n"
        f'  text "generated alert number {i}"\n'
        f"  when {when.format(a=a, h=h, e=e)}\n"
        f"  clear when {clear.format(a=a, h=h, e=e)}\n"
        "}\n"
    )


def _machine(i: int) -> str:
    p = f"M{i}"
    return f"""machine cycle_{i} {{
  initial {p}_IDLE

  state {p}_IDLE {{
    enter {{
      stop pump_drain
      stop pump_fill
      recirculate pump_recirc guarded by can_run_pump, reservoir_has_water
    }}
    go {p}_DRAIN every {i % 6 + 2}d at 0{i % 10}:{i % 6}0 when water_change.enabled
    go {p}_DRAIN when solution.age > water_change.max_solution_age or drift(ec) > {i % 20 + 20}% for 2h
  }}

  state {p}_DRAIN {{
    enter {{
      event DRAIN_STARTED
      stop pump_recirc
      start pump_drain guarded by can_run_pump, drain_has_water
    }}
    go {p}_FILL when water_level <= levels.empty + {i % 3}% for 30s
    go FAILED_{i} after {i % 20 + 20}m
  }}

  state {p}_FILL {{
    enter {{ stop pump_drain; start pump_fill guarded by can_run_pump, no_overflow }}
    go {p}_SETTLE when water_level >= levels.target
    go FAILED_{i} after 40m do {{ stop pump_fill; event FILL_TIMEOUT }}
  }}

  state {p}_SETTLE {{
    enter {{
      stop pump_fill
      start pump_recirc guarded by can_run_pump, reservoir_has_water
      dose dose_ph_down 2 ml guarded by can_dose
    }}
    go {p}_IDLE after {i % 10 + 10}m do {{
      record ph, ec, temp_water
      reset solution age
      event CHANGE_DONE
    }}
  }}

  state FAILED_{i} {{
    enter {{
      stop pump_drain
      stop pump_fill
      start pump_recirc guarded by can_run_pump, reservoir_has_water
      raise biz_water_change_failed
    }}
    go {p}_IDLE when biz_water_change_failed is resolved
  }}
}}
"""


def generate(directory: Path, alerts: int, machines: int) -> None:
    """Write a valid rule set: manifest (using ../rules), alerts and machines."""
    rules = ROOT / "rules"
    (directory / "ruleset.hydro").write_text(
        f'hydro 1\nruleset bench version "2026.11.1"\nuse "{rules}"\n', encoding="utf-8"
    )
    (directory / "alerts.hydro").write_text(
        "hydro 1\n# generated\n\n" + "\n".join(_alert(i) for i in range(alerts)), encoding="utf-8"
    )
    # State names are global, so each machine has its own FAILED_i (reached by `go ... after`).
    text = "\n".join(_machine(i) for i in range(machines))
    (directory / "machines.hydro").write_text("hydro 1\n# generated\n\n" + text, encoding="utf-8")


def _time(fn) -> float:
    gc.collect()
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--alerts", type=int, default=5000)
    ap.add_argument("--machines", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="hydro-bench-") as tmp:
        d = Path(tmp)
        generate(d, args.alerts, args.machines)
        texts = [p.read_text(encoding="utf-8") for p in sorted(d.glob("*.hydro"))]
        texts += [p.read_text(encoding="utf-8") for p in sorted((ROOT / "rules").glob("*.hydro"))]
        size = sum(len(t) for t in texts)
        lines = sum(t.count("\n") for t in texts)

        cwd = os.getcwd()
        os.chdir(d)
        try:
            diags, _ = collect(["."])  # warm-up: builds and caches the parser
            errors = [x for x in diags if x.severity.value == "error"]
            if errors:
                for x in errors[:10]:
                    print(f"{x.span}: {x.code} {x.message}", file=sys.stderr)
                print("the generated rule set is not valid; fix the generator", file=sys.stderr)
                return 1
            bare = Lark(grammar_text(1), parser="lalr")
            for t in texts:  # warm-up
                bare.parse(t)
            # Interleaved, so that a busy machine slows both alike; the figure is the median
            # of the ratios of runs made back to back.
            check_times, parse_times = [], []
            for _ in range(args.repeat):
                check_times.append(_time(lambda: collect(["."])))
                parse_times.append(_time(lambda: [bare.parse(t) for t in texts]))
        finally:
            os.chdir(cwd)

    c_min, c_med = min(check_times), statistics.median(check_times)
    p_min, p_med = min(parse_times), statistics.median(parse_times)
    ratio = statistics.median(c / p for c, p in zip(check_times, parse_times))
    print(f"rule set: {args.alerts} alerts, {args.machines} machines, {lines} lines, {size / 1e6:.1f} MB of text")
    print(f"warnings in the generated set: {len(diags)}")
    print(f"check (load+parse+checks): min {c_min:.3f}s  median {c_med:.3f}s  ({args.repeat} runs)")
    print(f"bare Lark LALR parse:      min {p_min:.3f}s  median {p_med:.3f}s  ({args.repeat} runs)")
    print(f"ratio (median of pairs):   {ratio:.2f}x  (min / min: {c_min / p_min:.2f}x), goal <= {GOAL}")
    result = {"bench": "check_speed", "value": round(ratio, 3), "unit": "x bare parse", "goal": GOAL}
    print(json.dumps(result | {"ok": ratio <= GOAL}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
