"""The water: volumes, flows, conservation, solution chemistry and temperature."""

from __future__ import annotations

import dataclasses

import pytest

from .helpers import DAY, HOUR, MIN, T0, make, run, send, values, zone


def test_initial_state_follows_profile_and_recipe():
    twin = make()
    assert twin.level_pct == pytest.approx(90.0)  # levels.target of nft_standard
    assert twin.volume_l == pytest.approx(108.0)
    assert twin.loop_l == pytest.approx(3.6)  # the NC pump has been running: the loop is full
    assert twin.ph == pytest.approx(6.05)  # growth phase of lettuce on day 21: pH 5.8 .. 6.3
    assert twin.ec == pytest.approx(1.6)  # EC 1.4 .. 1.8
    assert 19.0 < twin.temp_water < 23.0


def test_unplanted_zone_counts_recipe_days_from_start():
    twin = make(zone_=dataclasses.replace(zone(), planted=None))
    assert twin.ec == pytest.approx(1.2)  # seedling phase, EC 1.0 .. 1.4


def test_drain_and_fill_move_the_level_at_their_flows():
    twin = make()
    send(twin, "pump_recirc", "set_relay", state=False)
    run(twin, 10 * MIN)  # the loop drains back
    before, used = twin.volume_l, twin.consumed_l
    send(twin, "pump_drain", "run_pump", duration_ms=120_000)
    readings = run(twin, 2 * MIN)
    assert twin.drained_l == pytest.approx(60.0)  # 30 L/min
    assert before - twin.volume_l - (twin.consumed_l - used) == pytest.approx(60.0)
    assert values(readings, "nd-drain-1", "flow_rate")[0] == pytest.approx(30.0, abs=1.0)
    before = twin.volume_l
    send(twin, "pump_fill", "run_pump", duration_ms=60_000)
    run(twin, 1 * MIN)
    assert twin.filled_l == pytest.approx(8.0)  # plant.fill_flow
    assert twin.volume_l - before == pytest.approx(8.0, abs=0.01)


def test_drain_stops_moving_water_when_empty_and_pump_runs_dry():
    twin = make()
    send(twin, "pump_drain", "run_pump", duration_ms=600_000)
    readings = run(twin, 6 * MIN)
    assert twin.volume_l == 0.0
    assert twin.level_pct == 0.0
    assert values(readings, "nd-drain-1", "flow_rate")[-1] == 0.0
    assert values(readings, "nd-drain-1", "pump_current")[-1] == pytest.approx(600.0, abs=60)
    # the recirculation pump lost its prime too
    assert values(readings, "nd-pump-1", "flow_rate")[-1] == 0.0


def test_fill_overflows_at_the_brim():
    twin = make(fill_flow_l_min=30.0)
    send(twin, "pump_fill", "run_pump", duration_ms=120_000)
    run(twin, 2 * MIN)
    assert twin.level_pct == pytest.approx(100.0, abs=0.01)
    assert twin.overflow_l > 40.0


def test_water_is_conserved_through_changes_doses_and_leaks():
    twin = make("leak@2h:for=1h", fill_flow_l_min=30.0)
    start = twin.water_balance_l
    assert start == pytest.approx(111.6)
    send(twin, "dose_ph_down", "dose", ml=2)
    run(twin, 30 * MIN, tick=7)
    send(twin, "pump_recirc", "set_relay", state=False, duration_ms=600_000)
    send(twin, "pump_drain", "run_pump", duration_ms=300_000)
    run(twin, 5 * MIN, tick=13)
    send(twin, "pump_fill", "run_pump", duration_ms=400_000)
    run(twin, 5 * HOUR, tick=600)
    send(twin, "dose_nutrient", "dose", ml=5)
    run(twin, DAY, tick=600)
    assert twin.drained_l > 90 and twin.filled_l > 150 and twin.overflow_l > 0 and twin.leaked_l == pytest.approx(12.0)
    assert twin.dosed_l == pytest.approx(0.007)
    assert twin.water_balance_l == pytest.approx(start, abs=1e-9)
    lost = twin.leaked_l + twin.consumed_l + twin.overflow_l
    assert twin.lost_l == pytest.approx(lost)
    total = twin.volume_l + twin.loop_l + twin.drained_l + twin.lost_l - twin.filled_l - twin.dosed_l
    assert total == pytest.approx(111.6)


def test_plants_use_water_and_push_ph_up_and_ec_drifts_slowly():
    twin = make()
    v0, ph0, ec0 = twin.volume_l, twin.ph, twin.ec
    run(twin, DAY, tick=600)
    # uptake 1.5 %/day and evaporation 0.5 %/day of 120 L at 20 °C; the air and water are about 21 °C
    assert twin.consumed_l == pytest.approx(2.5, rel=0.05)
    assert twin.consumed_l == pytest.approx(twin.taken_up_l + twin.evaporated_l)
    assert v0 - twin.volume_l == pytest.approx(twin.consumed_l)
    assert twin.ph - ph0 == pytest.approx(0.07, abs=0.005)
    assert 0.0 < (twin.ec - ec0) / ec0 < 0.02  # water leaves faster than salts: about +1 %/day


def test_acid_lowers_ph_and_nutrient_raises_ec_once_mixed():
    twin = make()
    ph0, ec0, v = twin.ph, twin.ec, twin.volume_l
    send(twin, "dose_ph_down", "dose", ml=2)
    send(twin, "dose_nutrient", "dose", ml=5)
    run(twin, 1 * MIN)
    assert twin.ph > ph0 - 0.1  # still mixing
    run(twin, 30 * MIN)
    assert twin.ph - ph0 == pytest.approx(-10.0 * 2 / v, abs=0.01)  # ~ -0.18
    assert twin.ec - ec0 == pytest.approx(1.0 * 5 / v, abs=0.005)  # ~ +0.046


def test_a_dose_mixes_slowly_without_circulation():
    still = make()
    send(still, "pump_recirc", "set_relay", state=False)
    moving = make()
    for twin in (still, moving):
        send(twin, "dose_ph_down", "dose", ml=4)
        run(twin, 15 * MIN)
    assert moving.ph < still.ph - 0.2


def test_loop_drains_back_when_recirculation_stops():
    twin = make()
    send(twin, "pump_recirc", "set_relay", state=False)
    run(twin, 5 * MIN)
    assert twin.loop_l < 0.01
    assert twin.level_pct == pytest.approx(93.0, abs=0.05)
    send(twin, "pump_recirc", "set_relay", state=True)
    run(twin, 5 * MIN)
    assert twin.level_pct == pytest.approx(90.0, abs=0.05)


def test_water_temperature_follows_a_daily_cycle():
    twin = make()
    temps = {}
    for _ in range(48):
        run(twin, HOUR, tick=600)
        temps[round((twin.now - T0) / HOUR) % 24] = twin.temp_water
    assert 19.0 < min(temps.values()) < max(temps.values()) < 23.0
    assert max(temps, key=temps.get) in range(15, 21)  # the room peaks at 15:00, the water lags
    assert max(temps.values()) - min(temps.values()) > 1.0


def test_premixed_fill_water_follows_the_recipe_day():
    # zn-1 was planted 2025-12-20: day 13 is the last seedling day (EC 1.0..1.4), day 14 starts growth (1.4..1.8)
    start = T0 - 8 * DAY + 23 * HOUR
    premixed = dataclasses.replace(zone(), settings={"plant.fill_premixed": True})
    twin = make(start=start, fill_flow_l_min=30.0, zone_=premixed)
    assert twin.ec == pytest.approx(1.2, abs=0.01)
    send(twin, "pump_recirc", "set_relay", state=False)
    send(twin, "pump_drain", "run_pump", duration_ms=300_000)
    run(twin, HOUR)
    assert twin.volume_l == 0.0
    send(twin, "pump_fill", "run_pump", duration_ms=216_000)
    run(twin, 4 * MIN)
    assert twin.ec == pytest.approx(1.6, abs=0.01)
    assert twin.level_pct == pytest.approx(90.0, abs=0.1)


@pytest.mark.parametrize("tick", [1.0, 600.0])
def test_any_tick_gives_the_same_physics(tick):
    ref = make()
    run(ref, 12 * HOUR, tick=60)
    twin = make()
    run(twin, 12 * HOUR, tick=tick)
    assert twin.level_pct == pytest.approx(ref.level_pct, abs=0.01)
    assert twin.ph == pytest.approx(ref.ph, abs=1e-3)
    assert twin.ec == pytest.approx(ref.ec, abs=1e-3)
    assert twin.temp_water == pytest.approx(ref.temp_water, abs=0.05)
