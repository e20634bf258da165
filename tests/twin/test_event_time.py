"""Event-driven time: the twin's readings and state at an instant do not depend on the instants the caller
stopped at before (noise keyed by time, stepping on the twin's own instants)."""

from __future__ import annotations

import random

import pytest

from hydro_rules.twin.sensors import gaussian_table, noise_index, noise_key, time_salt

from .helpers import HOUR, MIN, T0, command, make

STATE = ("volume_l", "loop_l", "ph", "ec", "temp_water", "air_temp", "drained_l", "filled_l", "leaked_l",
         "consumed_l", "overflow_l", "level_pct")  # fmt: skip
#: (offset, channel, command, params): what the engine might send, at fixed instants
PLAN = (
    (30 * MIN, "pump_recirc", "set_relay", {"state": False}),
    (100 * MIN, "pump_drain", "run_pump", {"duration_ms": 200_000}),
    (100 * MIN, "dose_ph_down", "dose", {"ml": 2}),
    (104 * MIN, "pump_fill", "run_pump", {"duration_ms": 300_000}),
    (150 * MIN, "pump_recirc", "set_relay", {"state": True}),
    (7 * HOUR, "pump_drain", "run_pump", {"duration_ms": 900_000}),
    (7 * HOUR + 40 * MIN, "pump_fill", "run_pump", {"duration_ms": 900_000}),
)
FAULTS = ("leak@3h:for=1h", "sensor_frozen@5h:ec", "dry_reservoir@9h:for=20m", "node_offline@10h:pump_drain,for=7m")


def play(stops, *, faults=FAULTS, seed=3, plan=PLAN, watch=None):
    """Advance a twin through `stops` (and the plan's instants), sending the plan's commands at their
    instants; at each instant of `watch` (default: all stops): (state, readings, responses, run and dry seconds)."""
    twin = make(*faults, seed=seed)
    at = {}
    for off, ch, cmd, params in plan:
        at.setdefault(T0 + off, []).append((ch, cmd, params))
    watch = set(stops if watch is None else watch)
    out = {}
    responses = []
    for t in sorted(set(stops) | set(at) | watch):
        twin.advance(t)
        readings = twin.drain_telemetry()
        responses += [(r.status, r.ts, r.error_code) for r in twin.drain_responses()]
        for ch, cmd, params in at.get(t, ()):
            twin.send(command(twin, ch, cmd, **params))
        if t in watch:
            out[t] = (
                {f: getattr(twin, f) for f in STATE},
                sorted((r.node_uid, r.metric, r.value, r.ts) for r in readings),
                twin.run_seconds,
                twin.dry_seconds,
            )
    return out, responses


def test_a_readings_noise_is_a_function_of_the_run_seed_the_sensor_and_the_instant():
    salt, key = time_salt(1), noise_key(1, "nd-ph-1", "ph", "ph_1")
    draws = [noise_index(salt, key, T0 + k * 60.0) for k in range(2000)]
    again = time_salt(1), noise_key(1, "nd-ph-1", "ph", "ph_1")
    assert draws == [noise_index(*again, T0 + k * 60.0) for k in range(2000)]
    assert len(set(draws)) > 1900  # fresh noise at each instant...
    other = [noise_index(salt, noise_key(1, "nd-ec-1", "ec", "ec_1"), T0 + k * 60.0) for k in range(2000)]
    assert sum(a == b for a, b in zip(draws, other, strict=True)) < 5  # ...for each sensor its own
    reseeded = [noise_index(time_salt(2), noise_key(2, "nd-ph-1", "ph", "ph_1"), T0 + k * 60.0) for k in range(2000)]
    assert sum(a == b for a, b in zip(draws, reseeded, strict=True)) < 5
    table = gaussian_table()
    values = [table[i] for i in draws]
    assert sum(values) / len(values) == pytest.approx(0.0, abs=0.1)
    assert sum(v * v for v in values) / len(values) == pytest.approx(1.0, abs=0.1)


def test_readings_at_an_instant_do_not_depend_on_the_instants_skipped_before():
    hours = [T0 + h * HOUR for h in range(1, 12)]
    every_minute, _ = play([T0 + k * MIN for k in range(1, 12 * 60)], watch=hours)
    hourly, _ = play(hours)
    for t in hours:
        assert hourly[t][1] == every_minute[t][1]
    assert len({r[2] for t in hours for r in hourly[t][1] if r[1] == "ph"}) > 5  # the noise moves


def test_a_silent_sensor_leaves_the_others_noise_alone():
    stops = [T0 + k * 7 * MIN for k in range(1, 100)]
    plain, _ = play(stops, faults=())
    dead, _ = play(stops, faults=("sensor_dead@0:water_level",))
    for t in stops:
        assert [r for r in dead[t][1] if r[1] != "water_level"] == [r for r in plain[t][1] if r[1] != "water_level"]
        assert not [r for r in dead[t][1] if r[1] == "water_level"]


def test_a_frozen_sensor_repeats_the_reading_it_had_when_it_froze():
    stops = [T0 + k * 10 * MIN for k in range(1, 60)]
    plain, _ = play(stops, faults=())
    frozen, _ = play(stops, faults=("sensor_frozen@2h:ph",))

    def ph(run, t):
        return [r[2] for r in run[t][1] if r[1] == "ph"]

    at_freeze = ph(plain, T0 + 2 * HOUR)
    assert ph(frozen, T0 + 2 * HOUR - 10 * MIN) == ph(plain, T0 + 2 * HOUR - 10 * MIN)
    assert all(ph(frozen, t) == at_freeze for t in stops if t >= T0 + 2 * HOUR)
    assert ph(plain, T0 + 3 * HOUR) != at_freeze


@pytest.mark.parametrize("trial", range(6))
def test_advancing_in_any_partition_gives_the_same_run(trial):
    """advance(a); advance(b) == advance(b): the same state, readings, responses, run and dry seconds at every
    instant both runs stop at, with commands and faults at fixed instants (drain to empty, fill, dose, leak,
    burst, a node offline, a frozen sensor)."""
    rng = random.Random(trial)
    end = T0 + 12 * HOUR
    checks = [T0 + k * 1800.0 + 7.0 for k in range(24)]
    ref, ref_responses = play(checks)
    stops = sorted(set(checks) | {rng.uniform(T0, end) for _ in range(rng.randint(5, 400))})
    got, responses = play(stops)
    assert responses == ref_responses
    for t in checks:
        assert got[t] == ref[t]


def test_quiet_days_cost_a_step_per_quarter_hour_whatever_the_caller_does():
    jump = make()
    jump.advance(T0 + 10 * 86400.0)
    assert jump.level_pct < 89.0  # ten days of uptake and evaporation
    assert 10 * 96 <= jump.segments <= 10 * 97 + 5  # 15-minute grid, recipe days
    minutes = make()
    for k in range(1, 10 * 1440 + 1):
        minutes.advance(T0 + k * 60.0)
    assert minutes.segments == jump.segments
    for name in ("volume_l", "ec", "ph", "temp_water"):
        assert getattr(minutes, name) == getattr(jump, name)


def test_publishing_into_a_snapshot_gives_what_the_readings_say():
    listed, snapped = make("sensor_frozen@1h:ph", "sensor_dead@2h:ec"), make("sensor_frozen@1h:ph", "sensor_dead@2h:ec")
    snap: dict = {}
    for k in range(1, 200):
        t = T0 + k * 97.0
        listed.advance(t)
        snapped.advance(t, snap)
        for r in listed.drain_telemetry():
            assert snap[(r.node_uid, r.metric)] == (r.value, t)
        assert snapped.drain_telemetry() == []
    assert snap[("nd-ec-1", "ec")][1] < T0 + 2 * HOUR  # a dead sensor reports nothing
