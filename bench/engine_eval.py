"""Engine evaluation of 1,000 zones: compiled rules against the same logic written by hand.

Both variants evaluate the same 1,000 zones of the standard rule set, tick by
tick, on the same pre-built telemetry (some zones drift out of their pH/EC
targets, some run low on water), and nodes answer every command. The
hand-written variant is bench/handwritten_standard.py. Before timing, the
decisions of both are compared and must be identical.

    python bench/engine_eval.py [--zones 1000] [--ticks 30] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from handwritten_standard import make  # noqa: E402

from hydro_rules.engine.compiler import CompiledRuleSet  # noqa: E402
from hydro_rules.engine.runtime import ZoneProgram  # noqa: E402
from hydro_rules.lang.loader import load  # noqa: E402
from hydro_rules.messages import CommandResponse  # noqa: E402

T0 = 1767225600.0 + 3 * 86400 + 8 * 3600  # 2026-01-04 08:00 UTC


def site(n: int) -> str:
    zones = []
    for i in range(n):
        zones.append(f"""    zone zn-{i} {{
      profile bench
      recipe bench
      reservoir 120 L
      pump_recirc on nd-{i}-pump
      pump_drain on nd-{i}-drain
      pump_fill on nd-{i}-fill
      dose_ph_down on nd-{i}-dose channel pump_acid
      dose_nutrient on nd-{i}-dose channel pump_nutrient
      level_sensor on nd-{i}-level
      ph from nd-{i}-ph
      ec from nd-{i}-ec
      temp_water from nd-{i}-ec
      water_level from nd-{i}-level
    }}""")
    return (
        "hydro 1\n\nsite bench-site {\n  greenhouse gh-1 {\n" + "\n".join(zones) + "\n  }\n}\n\n"
        "profile bench {\n  water_cycle {\n    recirc {\n      window 00:00 to 24:00 duty 50% period 20m\n"
        "      max_recirc_off 10m\n    }\n  }\n}\n\n"
        "recipe bench {\n  phase all days 0 .. {\n    ph 5.8 .. 6.2\n    ec 1.2 mS/cm .. 1.6 mS/cm\n  }\n}\n"
    )


def build(n: int):
    tmp = Path(tempfile.mkdtemp(prefix="hydro-bench-"))
    (tmp / "ruleset.hydro").write_text(f'hydro 1\nruleset bench version "1.0.0"\nuse "{ROOT / "rules"}"\n')
    (tmp / "site.hydro").write_text(site(n))
    loaded = load(tmp)
    assert loaded.ruleset is not None and not loaded.diags.errors, loaded.diags.errors[:3]
    return loaded.ruleset


def telemetry(n: int, ticks: int, seed: int = 7) -> list[list[dict]]:
    """Per tick, per zone: the snapshot of readings the engine sees."""
    rng = random.Random(seed)
    out = []
    kinds = [rng.random() for _ in range(n)]
    for k in range(ticks):
        now = T0 + 60.0 * k
        row = []
        for i in range(n):
            kind = kinds[i]
            ph = 6.0 + (0.6 if kind < 0.2 else 0.0) + rng.gauss(0, 0.02)
            ec = 1.4 - (0.3 if 0.2 <= kind < 0.35 else 0.0) + rng.gauss(0, 0.01)
            level = 10.0 if 0.35 <= kind < 0.4 else 85.0 + rng.gauss(0, 0.2)
            snap = {
                (f"nd-{i}-ph", "ph"): (ph, now),
                (f"nd-{i}-ec", "ec"): (ec, now),
                (f"nd-{i}-ec", "temp_water"): (21.0, now),
                (f"nd-{i}-level", "water_level"): (level, now),
            }
            for pump, flow in (("pump", 20.0), ("drain", 0.0), ("fill", 0.0)):
                snap[(f"nd-{i}-{pump}", "flow_rate")] = (flow + rng.gauss(0, 0.1), now)
                snap[(f"nd-{i}-{pump}", "pump_current")] = (1000.0 if flow else 5.0, now)
            row.append(snap)
        out.append(row)
    return out


def programs(compiled: CompiledRuleSet, hand: bool):
    tick, guards = make(compiled.ruleset) if hand else (None, None)
    out = []
    for zone in compiled.ruleset.zones:
        gen_tick, _ = compiled.tick_for(zone)
        out.append(ZoneProgram(compiled, zone, tick or gen_tick, guards or compiled.guard_fns))
    return out


def run(progs, snaps, record: bool = False):
    """Evaluate every zone for every tick; nodes answer each command DONE at the next tick."""
    states = [p.new_state(T0 - 3 * 86400) for p in progs]
    for st in states:
        st.solution_started_at = T0 - 3 * 86400
    answers = [[] for _ in progs]
    log = [] if record else None
    t = time.perf_counter()
    for k, row in enumerate(snaps):
        now = T0 + 60.0 * k
        for i, p in enumerate(progs):
            st = states[i]
            for cmd_id in answers[i]:
                p.apply_response(st, CommandResponse(cmd_id, "DONE", now), now)
            d = p.evaluate(st, row[i], now)
            answers[i] = [c.cmd_id for c in d.commands]
            if record:
                log.append(
                    (
                        i,
                        k,
                        [(c.channel, c.cmd, tuple(sorted(c.params.items()))) for c in d.commands],
                        [(a.code, a.channel, a.change) for a in d.alerts],
                        [(t.source, t.target) for t in d.transitions],
                    )
                )
    return time.perf_counter() - t, log


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--zones", type=int, default=1000)
    ap.add_argument("--ticks", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    rs = build(args.zones)
    compiled = CompiledRuleSet(rs)
    snaps = telemetry(args.zones, args.ticks)
    gen, hand = programs(compiled, False), programs(compiled, True)
    _, log_gen = run(gen, snaps, record=True)
    _, log_hand = run(hand, snaps, record=True)
    if log_gen != log_hand:
        diff = next(i for i, (a, b) in enumerate(zip(log_gen, log_hand)) if a != b)
        sys.exit(
            f"decisions differ at zone {log_gen[diff][0]}, tick {log_gen[diff][1]}:\n"
            f"  compiled: {log_gen[diff]}\n  by hand:  {log_hand[diff]}"
        )
    decisions = sum(len(x[2]) + len(x[3]) + len(x[4]) for x in log_gen)
    print(f"{args.zones} zones x {args.ticks} ticks; both variants made the same {decisions} decisions")
    times = {"compiled": [], "hand": []}
    for r in range(args.rounds):
        order = [("compiled", gen), ("hand", hand)] if r % 2 == 0 else [("hand", hand), ("compiled", gen)]
        for name, progs in order:
            times[name].append(run(progs, snaps)[0])
    evals = args.zones * args.ticks
    for name, ts in times.items():
        print(
            f"  {name:<9} median {statistics.median(ts):.3f} s  min {min(ts):.3f} s  "
            f"({statistics.median(ts) / evals * 1e6:.1f} us per zone evaluation)"
        )
    ratio = statistics.median(times["compiled"]) / statistics.median(times["hand"])
    print(f"compiled / hand-written: {ratio:.2f} (goal <= 1.3)")
    print(
        json.dumps(
            {
                "bench": "engine_eval",
                "value": round(ratio, 3),
                "unit": "x hand-written",
                "goal": 1.3,
                "ok": ratio <= 1.3,
            }
        )
    )


if __name__ == "__main__":
    main()
