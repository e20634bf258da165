"""How fast is the digital twin per 60-second tick, against bare random.gauss calls?

Runs zn-1 of `examples/` for 365 days at 1-minute ticks (525,600 ticks) with the
command traffic the engine produces: an NC duty cycle (set_relay false for 10 minutes
every 20 minutes), a pH dose every third day and a weekly water change (drain, then fill). The
commands are built before timing; the timed loop is what the dry run calls per tick:
send the tick's commands, advance, drain_telemetry, drain_responses.

In the same run it times a loop that only calls random.gauss once for every noise draw
the twin made (every reading but a stopped flow or a dry EC probe, which read exactly 0), and prints the
ratio. Ends with one JSON line; `ok` is us_per_tick <= goal.

    .venv/bin/python bench/twin_speed.py [--days 365] [--repeat 3]
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hydro_rules.lang.loader import load  # noqa: E402
from hydro_rules.messages import WireCommand  # noqa: E402
from hydro_rules.twin import ZoneTwin  # noqa: E402

GOAL_US = 12.0
TICK = 60.0
START = datetime(2026, 1, 1, tzinfo=UTC).timestamp()


def schedule(zone, ticks: int) -> dict[int, list[WireCommand]]:
    """tick index -> the commands sent at that tick, as the engine would send them."""
    out: dict[int, list[WireCommand]] = {}
    n = 0

    def cmd(k: int, channel: str, name: str, **params) -> None:
        nonlocal n
        n += 1
        b = zone.channels[channel]
        out.setdefault(k, []).append(WireCommand(f"b-{n}", b.node_uid, b.channel_key, name, params, START + k * TICK))

    for k in range(ticks):
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


def run_twin(zone, rs, ticks: int, sched) -> tuple[float, int, int, int, ZoneTwin]:
    """(seconds, readings, noise draws, responses, twin) of one timed run."""
    twin = ZoneTwin(zone, rs, seed=1, start=START)
    advance, telemetry, responses, send = twin.advance, twin.drain_telemetry, twin.drain_responses, twin.send
    get = sched.get
    n_read = n_zero = n_resp = 0
    gc.collect()
    gc.disable()
    try:
        t = time.perf_counter()
        for k in range(ticks):
            cmds = get(k)
            if cmds:
                for c in cmds:
                    send(c)
            advance(START + k * TICK)
            r = telemetry()
            responses()
        elapsed = time.perf_counter() - t
    finally:
        gc.enable()
    del r
    # a second, untimed pass counts what the timed one produced (same seed, same run)
    twin2 = ZoneTwin(zone, rs, seed=1, start=START)
    for k in range(ticks):
        for c in get(k, ()):
            twin2.send(c)
        twin2.advance(START + k * TICK)
        rs_ = twin2.drain_telemetry()
        n_read += len(rs_)
        n_zero += sum(1 for x in rs_ if x.value == 0.0 and x.metric in ("flow_rate", "ec"))  # exact zeros: no noise
        n_resp += len(twin2.drain_responses())
    return elapsed, n_read, n_read - n_zero, n_resp, twin


def run_gauss(draws: int) -> float:
    g = random.Random(1).gauss
    gc.collect()
    gc.disable()
    try:
        t = time.perf_counter()
        for _ in range(draws):
            g(0.0, 1.0)
        return time.perf_counter() - t
    finally:
        gc.enable()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=float, default=365.0)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    rs = load(ROOT / "examples").ruleset
    zone = rs.zone("zn-1")
    ticks = int(args.days * 1440)
    sched = schedule(zone, ticks)
    n_cmds = sum(len(v) for v in sched.values())
    print(
        f"twin of {zone.uid} ({zone.reservoir_l:g} L), {args.days:g} days at 1-minute ticks: {ticks:,} ticks, "
        f"{n_cmds:,} commands"
    )
    twin_s, gauss_s = [], []
    for i in range(args.repeat):
        s, n_read, draws, n_resp, twin = run_twin(zone, rs, ticks, sched)
        g = run_gauss(draws)
        twin_s.append(s)
        gauss_s.append(g)
        print(
            f"  run {i + 1}: twin {s:.2f} s ({s / ticks * 1e6:.2f} us/tick), "
            f"{draws:,} x random.gauss {g:.2f} s ({g / ticks * 1e6:.2f} us/tick)"
        )
    us = min(twin_s) / ticks * 1e6
    base = min(gauss_s) / ticks * 1e6
    print(f"  per tick: {n_read / ticks:.1f} readings, {draws / ticks:.2f} noise draws, {n_resp / ticks:.3f} responses")
    print(
        f"  end state: level {twin.level_pct:.1f} %, pH {twin.ph:.2f}, EC {twin.ec:.2f}, "
        f"drained {twin.drained_l:.0f} L, filled {twin.filled_l:.0f} L"
    )
    print(f"twin: best {us:.2f} us/tick, median {statistics.median(twin_s) / ticks * 1e6:.2f} (goal <= {GOAL_US:g})")
    print(f"baseline (random.gauss only): best {base:.2f} us/tick; twin/baseline = {us / base:.2f}x")
    print(
        json.dumps(
            {
                "bench": "twin_speed",
                "value": round(us, 3),
                "unit": "us/tick",
                "goal": GOAL_US,
                "ok": us <= GOAL_US,
                "baseline_gauss_us": round(base, 3),
                "ratio": round(us / base, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
