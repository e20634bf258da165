"""What nodes publish: one reading per metric per node per tick, with Gaussian noise; determinism."""

from __future__ import annotations

import dataclasses
import statistics

import pytest

from hydro_rules.twin import ZoneTwin
from hydro_rules.twin.sensors import gaussian_table

from .helpers import DAY, HOUR, MIN, T0, make, ruleset, run, send, values, zone

EXPECTED = {
    ("nd-ph-1", "ph"),
    ("nd-ec-1", "ec"),
    ("nd-ec-1", "temp_water"),
    ("nd-level-1", "water_level"),
    ("nd-pump-1", "pump_current"),
    ("nd-pump-1", "flow_rate"),
    ("nd-drain-1", "pump_current"),
    ("nd-drain-1", "flow_rate"),
    ("nd-fill-1", "pump_current"),
    ("nd-fill-1", "flow_rate"),
}


def test_each_node_publishes_each_metric_once_per_tick():
    twin = ZoneTwin(zone(), ruleset(), seed=1, start=T0)
    assert twin.drain_telemetry() == []
    twin.advance(T0)
    first = twin.drain_telemetry()
    assert {(r.node_uid, r.metric) for r in first} == EXPECTED
    assert len(first) == len(EXPECTED) and {r.ts for r in first} == {T0}
    twin.advance(T0 + 60)
    twin.advance(T0 + 60)  # the same moment again publishes nothing new
    again = twin.drain_telemetry()
    assert len(again) == len(EXPECTED) and {r.ts for r in again} == {T0 + 60}
    assert twin.drain_telemetry() == []


def test_time_cannot_go_backwards():
    twin = make()
    with pytest.raises(ValueError, match="backwards"):
        twin.advance(T0 - 1)


def test_readings_scatter_around_the_truth_with_the_configured_noise():
    twin = make()
    ph, level = [], []
    for _ in range(2000):
        twin.advance(twin.now + 60)
        for r in twin.drain_telemetry():
            if r.metric == "ph":
                ph.append(r.value - twin.ph)
            elif r.metric == "water_level":
                level.append(r.value - twin.level_pct)
    assert abs(statistics.fmean(ph)) < 0.001 and statistics.stdev(ph) == pytest.approx(0.01, rel=0.1)
    assert abs(statistics.fmean(level)) < 0.02 and statistics.stdev(level) == pytest.approx(0.2, rel=0.1)


def test_flow_of_a_stopped_pump_reads_exactly_zero_and_levels_stay_in_range():
    twin = make()
    send(twin, "pump_drain", "run_pump", duration_ms=600_000)
    readings = run(twin, 10 * MIN)
    assert set(values(readings, "nd-fill-1", "flow_rate")) == {0.0}
    assert min(values(readings, "nd-level-1", "water_level")) == 0.0  # empty: noise is clipped at the range
    assert min(r.value for r in readings if r.metric == "pump_current") >= 0.0


def test_noise_table_is_a_standard_normal():
    table = gaussian_table()
    assert len(table) == 65536
    assert statistics.fmean(table) == pytest.approx(0.0, abs=1e-12)
    assert statistics.pstdev(table) == pytest.approx(1.0, abs=1e-4)
    assert sum(abs(x) < 1 for x in table) / len(table) == pytest.approx(0.6827, abs=1e-3)


def _scenario(seed: int):
    twin = make("leak@3h:for=1h", "sensor_frozen@5h:ec", "node_offline@6h:pump_drain,for=30m", seed=seed)
    out = []
    for i in range(8 * 60):
        if i == 30:
            send(twin, "pump_recirc", "set_relay", state=False, duration_ms=600_000)
        if i == 100:
            send(twin, "pump_drain", "run_pump", duration_ms=60_000)
            send(twin, "dose_ph_down", "dose", ml=2)
        twin.advance(twin.now + 60)
        out.append((twin.drain_telemetry(), [(r.status, r.ts, r.error_code) for r in twin.drain_responses()]))
    return out, (twin.volume_l, twin.ph, twin.ec, twin.temp_water)


def test_same_seed_same_run_different_seed_different_noise():
    a, state_a = _scenario(7)
    b, state_b = _scenario(7)
    c, state_c = _scenario(8)
    assert a == b and state_a == state_b
    assert state_c == state_a  # the physics does not depend on the seed...
    assert [r for tick in a for r in tick[0]] != [r for tick in c for r in tick[0]]  # ...the noise does
    assert [tick[1] for tick in a] == [tick[1] for tick in c]


def test_a_year_of_untouched_recirculation_stays_finite():
    twin = make()
    run(twin, 365 * DAY, tick=6 * HOUR)
    assert twin.volume_l == 0.0  # nobody refilled: plants and air took it all
    assert twin.water_balance_l == pytest.approx(111.6)
    assert all(0.0 <= r.value <= 20000.0 for r in twin.drain_telemetry())


def test_other_metrics_a_zone_declares_are_reported():
    extra = {**zone().metric_nodes, "water_level_switch": "nd-level-1", "temp_air": "nd-clim-1", "lux": "nd-clim-1"}
    twin = make(zone_=dataclasses.replace(zone(), metric_nodes=extra))
    readings = run(twin, MIN)
    assert values(readings, "nd-level-1", "water_level_switch") == [1.0]
    assert values(readings, "nd-clim-1", "temp_air")[0] == pytest.approx(twin.air_temp, abs=0.5)
    assert twin.air_temp == pytest.approx(21.0 - 2.0 * 0.5**0.5, abs=0.05)  # midnight: 15 h from the peak
    assert len(values(readings, "nd-clim-1", "lux")) == 1
    send(twin, "pump_drain", "run_pump", duration_ms=600_000)
    readings = run(twin, 6 * MIN)
    assert values(readings, "nd-level-1", "water_level_switch")[-1] == 0.0
    assert values(readings, "nd-ec-1", "ec")[-1] == 0.0  # the probe is out of the water
