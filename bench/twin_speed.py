"""How much does the digital twin cost per simulated hour, stepped at 1-minute ticks or advanced by jumps?

Runs zn-1 of `examples/` for 365 days with the command traffic the engine produces: an NC
duty cycle (set_relay false for 10 minutes every 20 minutes), a pH dose every third day
and a weekly water change (drain, then fill). The commands are built before timing; the
timed loop is what a dry run calls at each instant it evaluates: send the instant's
commands, advance, drain_telemetry, drain_responses. Three callers:

- ticks:   every minute (the fixed-step dry run);
- evaluated: the command instants and every 5 minutes (~300 instants a day: an event-driven
  dry run whose engine is evaluated a few hundred times a day);
- hourly:  the command instants and every hour;

and the "evaluated" caller once more with readings published into a snapshot dict
(`advance(now, snapshot)`) instead of Reading objects.

The twin integrates on its own instants whatever the caller does (`segments` is the same
in all three), so the jumps cost the readings published and the views, not the minutes
skipped. In the same run, a 1M-iteration plain-Python reference loop (as in
dry_run_year.py) for machines that differ. Ends with one JSON line: value = seconds of
twin per zone-year for the "evaluated" caller; ok = value <= goal (the twin's share of a
~1 s zone-year dry run).

    .venv/bin/python bench/twin_speed.py [--days 365] [--repeat 3]
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hydro_rules.lang.loader import load  # noqa: E402
from hydro_rules.messages import WireCommand  # noqa: E402
from hydro_rules.twin import ZoneTwin  # noqa: E402

GOAL_S_PER_YEAR = 0.5
TICK = 60.0
START = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
CALLERS = {"ticks": 60.0, "evaluated": 300.0, "hourly": 3600.0}


def schedule(zone, minutes: int) -> dict[float, list[WireCommand]]:
    """instant -> the commands sent then, as the engine would send them."""
    out: dict[float, list[WireCommand]] = {}
    n = 0

    def cmd(k: int, channel: str, name: str, **params) -> None:
        nonlocal n
        n += 1
        b = zone.channels[channel]
        at = START + k * TICK
        out.setdefault(at, []).append(WireCommand(f"b-{n}", b.node_uid, b.channel_key, name, params, at))

    for k in range(minutes):
        minute = k % 1440
        day = k // 1440
        if day % 7 == 6 and 540 <= minute < 560:  # a water change at 09:00 every 7th day
            if minute == 540:
                cmd(k, "pump_recirc", "set_relay", state=False, duration_ms=600_000)
                cmd(k, "pump_drain", "run_pump", duration_ms=300_000)
            elif minute == 545:
                cmd(k, "pump_fill", "run_pump", duration_ms=216_000)
            elif minute == 550:
                cmd(k, "pump_recirc", "set_relay", state=True)
            continue
        if k % 20 == 10:
            cmd(k, "pump_recirc", "set_relay", state=False, duration_ms=600_000)
        if minute == 720 and day % 3 == 0:
            cmd(k, "dose_ph_down", "dose", ml=2.0)
    return out


def instants(sched, days: float, every: float) -> list[float]:
    end = START + days * 86400.0
    grid = [START + k * every for k in range(int(days * 86400.0 / every) + 1)]
    return sorted({t for t in grid if t <= end} | {t for t in sched if t <= end})


def run_twin(zone, rs, stops, sched, snapshot: bool = False) -> tuple[float, int, ZoneTwin]:
    """(seconds, readings, twin) of one timed run; `snapshot`: readings go straight into a dict, as
    advance(now, snapshot) offers (what the dry run keeps of them), instead of Reading objects."""
    twin = ZoneTwin(zone, rs, seed=1, start=START)
    advance, telemetry, responses, send = twin.advance, twin.drain_telemetry, twin.drain_responses, twin.send
    get = sched.get
    n_read = 0
    snap: dict = {}
    gc.collect()
    gc.disable()
    try:
        t = time.perf_counter()
        for at in stops:
            cmds = get(at)
            if cmds:
                for c in cmds:
                    send(c)
            if snapshot:
                advance(at, snap)
                n_read += 10
            else:
                advance(at)
                n_read += len(telemetry())
            responses()
        elapsed = time.perf_counter() - t
    finally:
        gc.enable()
    return elapsed, n_read, twin


def reference_loop(n: int) -> float:
    """A fixed amount of plain Python work (the same as bench/dry_run_year.py's)."""
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
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    rs = load(ROOT / "examples").ruleset
    zone = rs.zone("zn-1")
    sched = schedule(zone, int(args.days * 1440))
    hours = args.days * 24.0
    n_cmds = sum(map(len, sched.values()))
    print(f"twin of {zone.uid} ({zone.reservoir_l:g} L), {args.days:g} days, {n_cmds:,} commands")
    ref = min(reference_loop(1_000_000) for _ in range(args.repeat))
    results = {}
    for name, every in CALLERS.items():
        stops = instants(sched, args.days, every)
        best = None
        for _ in range(args.repeat):
            s, n_read, twin = run_twin(zone, rs, stops, sched)
            best = s if best is None else min(best, s)
        results[name] = best
        print(
            f"  {name:9s} {len(stops) / args.days:7.0f} instants/day: {best:6.2f} s, "
            f"{best / hours * 1e6:7.1f} us per simulated hour, {best / len(stops) * 1e6:5.2f} us per instant, "
            f"{n_read / len(stops):.1f} readings per instant, {twin.segments / args.days:.0f} segments/day"
        )
        print(
            f"            end state: level {twin.level_pct:.1f} %, pH {twin.ph:.2f}, EC {twin.ec:.2f}, "
            f"drained {twin.drained_l:.0f} L, filled {twin.filled_l:.0f} L"
        )
    stops = instants(sched, args.days, CALLERS["evaluated"])
    snap_s = min(run_twin(zone, rs, stops, sched, snapshot=True)[0] for _ in range(args.repeat))
    print(f"  evaluated into a snapshot dict: {snap_s:6.2f} s, {snap_s / len(stops) * 1e6:5.2f} us per instant")
    per_year = results["evaluated"] * 365.0 / args.days
    print(f"  reference loop (1M iterations of plain Python): {ref:.2f} s")
    print(
        f"twin per zone-year: ticks {results['ticks'] * 365.0 / args.days:.2f} s, evaluated {per_year:.2f} s, "
        f"hourly {results['hourly'] * 365.0 / args.days:.2f} s (goal for evaluated <= {GOAL_S_PER_YEAR:g} s)"
    )
    print(
        json.dumps(
            {
                "bench": "twin_speed",
                "value": round(per_year, 3),
                "unit": "s/zone-year",
                "goal": GOAL_S_PER_YEAR,
                "ok": per_year <= GOAL_S_PER_YEAR,
                "us_per_hour": {k: round(v / hours * 1e6, 1) for k, v in results.items()},
                "x_reference_loop": round(per_year / ref, 3),
                "evaluated_snapshot_s": round(snap_s * 365.0 / args.days, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
