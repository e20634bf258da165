"""Each physical law of the twin at its boundary (docs/twin.md): flows, mixing, concentration, uptake by
phase, temperature, heater and chiller faults. Plant values come from the zone's `plant.*` settings."""

from __future__ import annotations

import dataclasses
import math

import pytest

from hydro_rules.twin import FaultError, parse_fault
from hydro_rules.twin.faults import check_fault

from .helpers import DAY, HOUR, MIN, T0, make, ruleset, run, send, zone

CALM = {"uptake_per_degree": 0.0, "evaporation_per_degree": 0.0}  # no temperature dependence


def zone_with(**settings):
    """zn-1 with these plant settings (`fill_flow=12.0` -> plant.fill_flow 12 L/min) over its profile's."""
    return dataclasses.replace(zone(), settings={f"plant.{k}": v for k, v in settings.items()})


def still(twin):
    """Stop the recirculation and let the loop drain back, so the reservoir alone holds the water."""
    send(twin, "pump_recirc", "set_relay", state=False)
    run(twin, 10 * MIN)


def minutes_to_move(twin, counter: str, litres: float, tick: float) -> float:
    start, t0 = getattr(twin, counter), twin.now
    while getattr(twin, counter) - start < litres - 1e-9:
        twin.advance(twin.now + tick)
    return (twin.now - t0) / 60.0


# ---- flows: a drain of V litres at Q L/min takes V/Q minutes -------------------------------------------------
@pytest.mark.parametrize(("q", "v"), [(12.0, 60.0), (30.0, 90.0), (7.5, 45.0)])
def test_a_drain_of_v_litres_at_q_l_min_takes_v_over_q_minutes(q, v):
    tick = 10.0
    twin = make(zone_=zone_with(drain_flow=q))
    still(twin)
    send(twin, "pump_drain", "run_pump", duration_ms=900_000)
    took = minutes_to_move(twin, "drained_l", v, tick)
    assert took == pytest.approx(v / q, abs=tick / 60.0)  # ±1 tick
    assert twin.volume_l == pytest.approx(108.0 + 3.6 - v, abs=0.2)  # the loop drained back; a little used


@pytest.mark.parametrize("q", [4.0, 20.0])
def test_a_fill_of_v_litres_at_q_l_min_takes_v_over_q_minutes(q):
    twin = make(zone_=zone_with(fill_flow=q))
    still(twin)
    send(twin, "pump_drain", "run_pump", duration_ms=180_000)
    run(twin, 4 * MIN)
    send(twin, "pump_fill", "run_pump", duration_ms=900_000)
    assert minutes_to_move(twin, "filled_l", 40.0, 5.0) == pytest.approx(40.0 / q, abs=5.0 / 60.0)


def test_a_config_flow_overrides_the_setting():
    twin = make(zone_=zone_with(drain_flow=12.0), drain_flow_l_min=60.0)
    still(twin)
    send(twin, "pump_drain", "run_pump", duration_ms=60_000)
    run(twin, MIN)
    assert twin.drained_l == pytest.approx(60.0)


# ---- fresh water: it arrives at the source's EC and pH and mixes by volume ------------------------------------
def test_a_fill_at_source_ec_lowers_ec_toward_it_by_the_mixing_ratio():
    twin = make(zone_=zone_with(source_ec=0.5, source_ph=7.5, fill_flow=30.0, **CALM))
    still(twin)
    send(twin, "pump_drain", "run_pump", duration_ms=120_000)  # 60 L out: EC unchanged
    run(twin, 2 * MIN)
    v0, ec0, ph0 = twin.volume_l, twin.ec, twin.ph
    send(twin, "pump_fill", "run_pump", duration_ms=60_000)  # 30 L in
    run(twin, MIN)
    f = 30.0 / (v0 + 30.0)  # the share of fresh water
    assert twin.ec == pytest.approx(ec0 + (0.5 - ec0) * f, rel=2e-3)
    assert twin.ph == pytest.approx(ph0 + (7.5 - ph0) * f, abs=2e-3)
    assert 0.5 < twin.ec < ec0


def test_a_tank_filled_from_empty_holds_source_water():
    twin = make(zone_=zone_with(fill_flow=30.0))
    still(twin)
    send(twin, "pump_drain", "run_pump", duration_ms=300_000)
    run(twin, 6 * MIN)
    assert twin.volume_l == 0.0
    send(twin, "pump_fill", "run_pump", duration_ms=180_000)
    run(twin, 3 * MIN)
    assert twin.ec == pytest.approx(0.3, abs=0.002)  # plant.source_ec
    assert twin.ph == pytest.approx(7.0, abs=0.002)  # plant.source_ph


# ---- concentration: water leaves, salts stay ------------------------------------------------------------------
def test_ec_rises_when_water_evaporates_and_the_salts_stay():
    twin = make(zone_=zone_with(uptake=0.0, evaporation=5.0, **CALM))
    v0, ec0 = twin.volume_l, twin.ec
    run(twin, DAY, tick=600)
    assert twin.evaporated_l == pytest.approx(0.05 * 120.0, rel=1e-6)  # 5 % of the reservoir per day
    assert twin.taken_up_l == 0.0 and twin.filled_l == 0.0 and twin.dosed_l == 0.0
    assert twin.ec > ec0
    assert twin.ec * twin.volume_l == pytest.approx(ec0 * v0, rel=1e-9)  # no salt left


@pytest.mark.parametrize(("ratio", "rises"), [(0.0, True), (50.0, True), (100.0, False)])
def test_uptake_takes_salts_at_its_ratio_of_the_solutions_concentration(ratio, rises):
    twin = make(zone_=zone_with(uptake=5.0, evaporation=0.0, uptake_ec_ratio=ratio, **CALM))
    v0, ec0 = twin.volume_l, twin.ec
    run(twin, DAY, tick=600)
    up = twin.taken_up_l
    assert up == pytest.approx(6.0, rel=1e-6)  # 5 % of 120 L; the day's swing averages out
    if rises:
        assert twin.ec > ec0
    else:
        assert twin.ec == pytest.approx(ec0, rel=1e-9)  # the crop takes the solution as it is
    # salts: what the crop took at ratio * EC, with EC between its start and end values
    lost = ec0 * v0 - twin.ec * twin.volume_l
    assert ratio / 100.0 * ec0 * up - 1e-9 <= lost <= ratio / 100.0 * twin.ec * up + 1e-9


def test_fresh_water_lowers_ec_that_evaporation_raised_but_brings_its_own_salts():
    twin = make(zone_=zone_with(uptake=0.0, evaporation=5.0, fill_flow=30.0, **CALM))
    v0, ec0 = twin.volume_l, twin.ec
    run(twin, 2 * DAY, tick=600)
    high = twin.ec
    assert high > ec0
    used = twin.consumed_l
    send(twin, "pump_fill", "run_pump", duration_ms=round(used / 30.0 * 60_000))
    run(twin, MIN)
    assert twin.volume_l == pytest.approx(v0, abs=0.05)
    assert ec0 < twin.ec < high  # back at the old volume with the source's salts on top
    assert twin.ec == pytest.approx(ec0 + 0.3 * used / v0, rel=1e-3)


# ---- uptake by stage and temperature -------------------------------------------------------------------------
def phased_ruleset(growth_uptake: float):
    """The example rule set with lettuce's growth phase taking `growth_uptake` % per day."""
    rs = ruleset()
    recipe = rs.recipes["lettuce"]
    phases = tuple(
        dataclasses.replace(p, settings={**p.settings, "plant.uptake": growth_uptake}) if p.name == "growth" else p
        for p in recipe.phases
    )
    return dataclasses.replace(rs, recipes={**rs.recipes, "lettuce": dataclasses.replace(recipe, phases=phases)})


def test_uptake_follows_the_recipe_phase_setting():
    from hydro_rules.twin import ZoneTwin

    # zn-1 was planted 2025-12-20: day 13 (2026-01-02) is seedling, day 14 (2026-01-03) growth
    start = T0 - 8 * DAY
    z = zone_with(evaporation=0.0, **CALM)
    twin = ZoneTwin(z, phased_ruleset(6.0), seed=1, start=start)
    twin.advance(start)
    assert twin.plant["plant.uptake"] == 1.5
    run(twin, DAY, tick=600)
    seedling = twin.taken_up_l
    assert seedling == pytest.approx(0.015 * 120.0, rel=1e-6)  # the default, 1.5 %/day
    run(twin, DAY, tick=600)
    assert twin.plant["plant.uptake"] == 6.0  # the growth phase has begun
    assert twin.taken_up_l - seedling == pytest.approx(0.06 * 120.0, rel=1e-6)


def test_warmer_air_means_more_uptake():
    cool = make(zone_=zone_with(air_temp=15.0, air_temp_swing=0.0, evaporation=0.0))
    warm = make(zone_=zone_with(air_temp=25.0, air_temp_swing=0.0, evaporation=0.0))
    for twin in (cool, warm):
        run(twin, DAY, tick=600)
    assert cool.taken_up_l == pytest.approx(1.8 * (1 - 0.04 * 5), rel=1e-6)  # 4 % less per degree below 20 °C
    assert warm.taken_up_l == pytest.approx(1.8 * (1 + 0.04 * 5), rel=1e-6)


# ---- temperature ---------------------------------------------------------------------------------------------
def test_the_solution_approaches_air_temperature_with_its_time_constant():
    z = zone_with(air_temp=25.0, air_temp_swing=0.0, source_temp=5.0, temp_time_constant=HOUR, fill_flow=60.0)
    twin = make(zone_=z)
    still(twin)
    send(twin, "pump_drain", "run_pump", duration_ms=120_000)
    run(twin, 2 * MIN)
    send(twin, "pump_fill", "run_pump", duration_ms=60_000)
    run(twin, MIN)
    t0 = twin.temp_water
    assert t0 < 20.0  # cold water came in
    run(twin, HOUR, tick=60)
    assert (twin.temp_water - 25.0) / (t0 - 25.0) == pytest.approx(math.exp(-1.0), abs=1e-3)
    run(twin, 9 * HOUR, tick=600)
    assert twin.temp_water == pytest.approx(25.0, abs=0.01)


def test_air_temperature_peaks_at_its_local_hour():
    z = dataclasses.replace(zone_with(air_temp_peak=15 * 3600.0), timezone="Europe/Berlin")
    twin = make(zone_=z)
    temps = {}
    for _ in range(24):
        run(twin, HOUR)
        temps[round((twin.now - T0) / HOUR) % 24] = twin.air_temp
    assert max(temps, key=temps.get) == 14  # 15:00 in Berlin (UTC+1 in January) is 14:00 UTC
    assert max(temps.values()) == pytest.approx(23.0, abs=1e-3)


HEATED = {"heater": True, "heater_setpoint": 22.0, "air_temp": 18.0, "air_temp_swing": 0.0}


def test_a_heater_holds_its_setpoint_above_the_air():
    twin = make(zone_=zone_with(**HEATED))
    run(twin, 12 * HOUR, tick=600)
    assert twin.temp_water == pytest.approx(22.0, abs=1e-6)
    assert twin.heating


def test_a_failed_heater_shows_the_solution_falls_to_air_temperature():
    twin = make("heater_failed@2h", zone_=zone_with(**HEATED))
    readings = run(twin, 2 * HOUR, tick=600)
    assert twin.temp_water == pytest.approx(22.0, abs=1e-6)
    readings = run(twin, 12 * HOUR, tick=600)
    assert not twin.heating
    assert twin.temp_water < 18.2
    temps = [r.value for r in readings if r.metric == "temp_water"]
    assert temps[-1] < 18.5 < 21.5 < temps[0]  # the probe sees it


def test_a_stuck_heater_overheats_to_where_the_air_takes_what_it_gives():
    twin = make("heater_stuck@1h", zone_=zone_with(**HEATED, heater_rate=1.0, temp_time_constant=3 * HOUR))
    run(twin, DAY, tick=600)
    assert twin.temp_water == pytest.approx(18.0 + 1.0 * 3.0, abs=0.1)  # air + rate * time constant


def test_a_failed_chiller_lets_the_solution_warm_with_the_air():
    z = zone_with(chiller=True, chiller_setpoint=21.0, air_temp=27.0, air_temp_swing=0.0)
    cooled = make(zone_=z)
    failed = make("chiller_failed@0", zone_=z)
    for twin in (cooled, failed):
        run(twin, 12 * HOUR, tick=600)
    assert cooled.temp_water == pytest.approx(21.0, abs=1e-6) and cooled.cooling
    assert failed.temp_water > 26.0 and not failed.cooling


@pytest.mark.parametrize("kind", ["heater_stuck", "heater_failed", "chiller_stuck", "chiller_failed"])
def test_a_heating_fault_needs_the_device(kind):
    with pytest.raises(FaultError, match="has no (heater|chiller)"):
        check_fault(parse_fault(f"{kind}@1h"), zone(), ruleset())
    device = "heater" if kind.startswith("heater") else "chiller"
    check_fault(parse_fault(f"{kind}@1h"), zone_with(**{device: True}), ruleset())


# ---- dosing: concentrate strength ---------------------------------------------------------------------------
def test_doses_move_ec_and_ph_by_their_strength_per_100_l():
    z = zone_with(nutrient_ec_per_ml_per_100l=0.02, acid_ph_per_ml_per_100l=0.05, **CALM)
    twin = make(zone_=z)
    ph0, ec0, v = twin.ph, twin.ec, twin.volume_l
    send(twin, "dose_nutrient", "dose", ml=10)
    send(twin, "dose_ph_down", "dose", ml=4)
    run(twin, HOUR)
    assert twin.ec - ec0 == pytest.approx(0.02 * 10 * 100 / v, rel=0.03)  # plus an hour's concentration
    assert twin.ph - ph0 == pytest.approx(-0.05 * 4 * 100 / v + 0.07 / 24, abs=0.005)


def test_ph_up_raises_ph_by_its_strength():
    twin = make(zone_=zone_with(base_ph_per_ml_per_100l=0.2, **CALM), roles={"dose_ph_down": "base"})
    ph0, v = twin.ph, twin.volume_l
    send(twin, "dose_ph_down", "dose", ml=3)
    run(twin, HOUR)
    assert twin.ph - ph0 == pytest.approx(0.2 * 3 * 100 / v + 0.07 / 24, abs=0.005)


@pytest.mark.parametrize(
    ("name", "affects", "role"),
    [
        ("dose_x", ("ec", 1, None), "nutrient"),
        ("dose_x", ("ph", -1, 0.05), "acid"),
        ("dose_x", ("ph", 1, None), "base"),
        ("dose_nutrient_b", None, "nutrient"),  # no `affects`: the name tells
        ("dose_ph_up", None, "base"),
        ("dose_thing", None, "none"),
    ],
)
def test_a_dosers_concentrate_comes_from_what_it_affects(name, affects, role):
    from types import SimpleNamespace

    from hydro_rules.twin import TwinConfig

    assert TwinConfig().role(name, SimpleNamespace(kind="doser", affects=affects)) == role
    assert TwinConfig(roles={name: "acid"}).role(name, SimpleNamespace(kind="doser", affects=affects)) == "acid"
