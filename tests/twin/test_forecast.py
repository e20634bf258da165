"""What the twin promises the engine: bounds() on how fast readings move until next_change(), and
next_change() never later than a threshold crossing, an event or a new recipe day."""

from __future__ import annotations

import dataclasses
import random

import pytest

from hydro_rules.twin.sensors import noise_max

from .helpers import DAY, HOUR, MIN, T0, command, make, send, zone

GRID = 60.0  # the twin's grid while water moves
COMMANDS = (
    ("pump_recirc", "set_relay", {"state": False}),
    ("pump_recirc", "set_relay", {"state": True}),
    ("pump_drain", "run_pump", {"duration_ms": 300_000}),
    ("pump_drain", "set_relay", {"state": False}),
    ("pump_fill", "run_pump", {"duration_ms": 600_000}),
    ("dose_ph_down", "dose", {"ml": 3}),
    ("dose_nutrient", "dose", {"ml": 20}),
)
FAULTS = ("leak@{}m:for=1h", "dry_reservoir@{}m:for=10m", "stuck_relay@{}m:pump_drain,for=5m", "no_flow@{}m",
          "sensor_frozen@{}m:ph", "heater_stuck@{}m")  # fmt: skip


def readings(twin) -> dict:
    return {(r.node_uid, r.metric): r.value for r in twin.drain_telemetry()}


def with_switch():
    return dataclasses.replace(zone(), metric_nodes={**zone().metric_nodes, "water_level_switch": "nd-level-1"})


@pytest.mark.parametrize("trial", range(12))
def test_readings_move_no_faster_than_the_bounds_until_next_change(trial):
    """Over random commands and faults: at later instants before next_change(), every reading differs from the
    one at t0 by at most 2 * noise_amp + swing + rate * (t - t0)."""
    rng = random.Random(trial)
    faults = [rng.choice(FAULTS).format(rng.randint(0, 600)) for _ in range(rng.randint(0, 2))]
    heated = dataclasses.replace(with_switch(), settings={"plant.heater": True, "plant.heater_setpoint": 22.0})
    twin = make(*faults, seed=trial, zone_=heated, fill_flow_l_min=rng.choice([None, 30.0]))
    t = T0
    checked = 0
    for _ in range(40):
        t += rng.choice([1.0, 10.0, 60.0, 300.0, 1800.0])
        twin.advance(t)
        twin.drain_telemetry()
        if rng.random() < 0.35:
            channel, cmd, params = rng.choice(COMMANDS)
            twin.send(command(twin, channel, cmd, **params))
        t += 0.001  # the readings of the state the commands left
        twin.advance(t)
        twin.drain_responses()
        before, t0 = readings(twin), t
        bounds, until = twin.bounds(), twin.next_change()
        assert until >= t0
        assert set(bounds) >= {metric for _, metric in before}
        for at in sorted(rng.uniform(t0, min(until, t0 + 6 * HOUR)) for _ in range(4)):
            twin.advance(at)
            t = at
            for key, value in readings(twin).items():
                if key in before:
                    amp, rate, swing = bounds[key[1]]
                    allowed = 2 * amp + swing + rate * (at - t0) + 1e-9
                    assert abs(value - before[key]) <= allowed, (key, at - t0, until - t0)
                    checked += 1
    assert checked > 100


def first(twin, metric: str, test, step: float = 1.0, limit: float = HOUR) -> float:
    """The first instant (stepping by `step`) at which the reading of `metric` passes `test`."""
    end = twin.now + limit
    while twin.now < end:
        twin.advance(twin.now + step)
        values = [r.value for r in twin.drain_telemetry() if r.metric == metric]
        if values and test(values[0]):
            return twin.now
    raise AssertionError(f"{metric} never passed")


def drained(*faults, zone_=None, recirc=False):
    twin = make(*faults, zone_=zone_)
    if not recirc:
        send(twin, "pump_recirc", "set_relay", state=False)
        twin.advance(twin.now + 10 * MIN)
    send(twin, "pump_drain", "run_pump", duration_ms=900_000)
    twin.advance(twin.now + 0.001)
    twin.drain_telemetry()
    return twin


def test_next_change_is_when_the_level_switch_goes_dry_under_a_drain():
    twin = drained(zone_=with_switch())
    predicted = twin.next_change()
    flipped = first(twin, "water_level_switch", lambda v: v == 0.0)
    assert predicted <= flipped < predicted + GRID  # never late, within a grid step
    assert flipped - predicted < 2.0  # under a pump, close


def test_next_change_is_when_the_recirculation_pump_loses_its_prime():
    twin = drained(recirc=True)
    predicted = twin.next_change()
    dry = first(twin, "flow_rate", lambda v: v == 0.0)  # nd-pump-1 reports first: the recirculation line
    assert twin.level_pct < 2.0
    assert predicted <= dry < predicted + GRID


def test_next_change_is_when_the_ec_probe_leaves_the_water_then_when_the_tank_is_empty():
    twin = drained()
    predicted = twin.next_change()
    zero = first(twin, "ec", lambda v: v == 0.0)
    assert predicted <= zero < predicted + GRID
    empty_at = twin.next_change()
    assert twin.volume_l > 0.0
    twin.advance(max(empty_at - 0.5, twin.now))
    assert twin.volume_l > 0.0  # not before
    twin.advance(empty_at + GRID)
    assert twin.volume_l == 0.0
    assert twin.dry_seconds["pump_drain"] > 0.0


def test_next_change_is_when_a_fill_brims_over():
    twin = make(fill_flow_l_min=30.0)
    send(twin, "pump_fill", "run_pump", duration_ms=300_000)
    predicted = twin.next_change()
    twin.advance(predicted - 0.5)
    assert twin.overflow_l == 0.0
    twin.advance(predicted + GRID)
    assert twin.overflow_l > 0.0
    assert twin.next_change() > twin.now  # brim-full: the fill keeps it there till the run ends


def test_next_change_includes_queued_timers_faults_and_the_recipe_day():
    twin = make("leak@3h:for=20m")
    assert twin.next_change() == T0 + 3 * HOUR  # the leak starts
    send(twin, "pump_fill", "set_relay", state=True, duration_ms=40_000)  # a timed run ends by itself
    assert twin.next_change() == pytest.approx(T0 + 40.0)
    twin.advance(T0 + 3 * HOUR + 1)
    assert twin.next_change() <= T0 + 3 * HOUR + 20 * MIN  # the leak ends
    quiet = make()
    assert quiet.next_change() <= T0 + DAY  # zn-1's recipe day starts at midnight UTC


def test_a_cancelled_timer_is_no_change():
    twin = make()
    send(twin, "pump_fill", "set_relay", state=True, duration_ms=120_000)
    send(twin, "pump_fill", "set_relay", state=False)  # cancels the timer
    send(twin, "pump_recirc", "set_relay", state=False)
    twin.advance(twin.now + 10 * MIN)
    assert twin.next_change() > T0 + HOUR


def test_switched_metrics_move_only_at_next_change_and_noise_is_bounded_by_the_table():
    twin = make()
    bounds = twin.bounds()
    assert bounds["pump_current"] == (10.0 * noise_max(), 0.0, 0.0)
    assert bounds["flow_rate"] == (0.2 * noise_max(), 0.0, 0.0)
    assert bounds["ph"][0] == 0.01 * noise_max() and 0.0 < bounds["ph"][1] < 1e-5 and bounds["ph"][2] == 0.0
    send(twin, "pump_recirc", "set_relay", state=False)
    level = twin.bounds()["water_level"]
    assert level[1] < 1e-4 and level[2] == pytest.approx(3.0)  # the loop drains back: 3 % of the reservoir
    assert noise_max() == pytest.approx(4.32, abs=0.01)


def test_has_output_until_readings_and_responses_are_drained():
    twin = make()
    assert not twin.has_output()
    twin.advance(T0 + MIN)
    assert twin.has_output()
    twin.drain_telemetry()
    assert not twin.has_output()
    send(twin, "pump_recirc", "set_relay", state=False)
    assert twin.has_output()  # ACK and DONE, to be seen at the next evaluation
    twin.drain_responses()
    assert not twin.has_output()
