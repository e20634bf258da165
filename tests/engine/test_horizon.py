"""The horizon of a zone (ZoneProgram.horizon): the earliest instant a decision could differ.

Each timer is checked at its boundary: the horizon names the instant, nothing happens a tick before
it, the decision comes at it. A comparison's horizon is its margin less both readings' noise, over
the rate its reading may move at; a metric the rules compare without bounds allows no skipping.
"""

from __future__ import annotations

import pytest

from hydro_rules.engine.margins import UNSTABLE, cmp, grows, mul, num, reading

from .harness import T0, healthy
from .test_boundaries import at, changes, ph_zone, run_to, transitions
from .v12_helpers import ruleset, zone

#: readings that do not move at all: only timers bound the horizon
STILL = {m: (0.0, 0.0) for m in ("ph", "ec", "temp_water", "water_level", "pump_current", "flow_rate")}


def horizon(z, bounds=None) -> float:
    return z.prog.horizon(z.state, z.now, STILL if bounds is None else bounds)


# ---- timers --------------------------------------------------------------------------------------
def test_a_raise_hold_of_15_minutes_is_the_horizon_exactly():
    # pH above 6.2 + 0.3 from the first tick: pending since minute 1 (the dosing rule holds an hour)
    z = healthy(zone(ruleset({"settings": {"alerts.ph_hold": 900.0, "dosing.ph_hold": 3600.0}}))).set(ph=6.6)
    run_to(z, 11)  # after the duty edge of minute 10, the next edge is minute 20
    assert z.state.alerts[("biz_high_ph", None)].since == at(1)
    assert horizon(z) == at(16)
    run_to(z, 15)
    assert changes(z, "biz_high_ph") == []
    run_to(z, 16)
    assert changes(z, "biz_high_ph") == [("raised", at(16))]


def test_a_duty_edge_is_the_horizon():
    z = healthy(zone(ruleset({"settings": {"water_cycle.recirc.max_recirc_off": 1800.0}})))
    run_to(z, 13)  # ON for 10 minutes of each 20 from midnight, then OFF
    assert horizon(z) == at(20)
    run_to(z, 19)
    assert [c.at for c in z.cmds("pump_recirc") if c.params.get("state") is True] == []
    run_to(z, 20)
    assert [c.at for c in z.cmds("pump_recirc") if c.params.get("state") is True] == [at(20)]


def test_the_end_of_a_duty_on_phase_is_the_horizon():
    z = healthy(zone(ruleset()))
    run_to(z, 3)
    assert horizon(z) == at(10)
    off = [c for c in z.cmds("pump_recirc") if c.params.get("state") is False]
    assert off == []
    run_to(z, 10)
    assert [c.at for c in z.cmds("pump_recirc") if c.params.get("state") is False] == [at(10)]


def test_a_schedule_due_before_any_other_timer_is_the_horizon():
    # `every 7d at 09:05` of a solution started 7 days before T0: due at 09:05 today (duty edges at :00, :10)
    start = T0 + 9 * 3600.0
    z = healthy(zone(ruleset({"settings": {"water_cycle.water_change.time_of_day": 9 * 3600.0 + 300.0}}), start=start))
    z.state.solution_started_at = T0 - 7 * 86400.0
    due = start + 300.0
    z.tick()
    assert horizon(z) == due
    while z.now < due - 60.0:
        z.tick()
    assert transitions(z) == []
    z.tick()
    assert z.now == due
    assert transitions(z) == [("NORMAL_RECIRC", "WATER_CHANGE_DRAIN", due)]


# ---- comparisons ---------------------------------------------------------------------------------
def test_a_comparison_lasts_its_margin_less_the_noise_over_the_rate():
    now = 100.0
    ph = reading(6.0, 0.01, 1e-4)  # a reading of 6.0, noise 0.01, moving up to 1e-4 pH/s
    max_ph = num(6.2)
    assert cmp(">", ph, max_ph, now) == (False, pytest.approx(now + (0.2 - 0.02) / 1e-4))
    assert cmp("<", ph, max_ph, now) == (True, pytest.approx(now + 1800.0))
    assert cmp(">", ph, num(6.01), now) == (UNSTABLE, now)  # within the noise: any instant
    assert cmp(">", num(6.0), num(5.0), now) == (True, float("inf"))


def test_a_growing_time_keeps_a_comparison_it_already_passed():
    on_for = grows(180.0)  # a pump on for 3 minutes
    assert cmp(">", on_for, num(120.0), 0.0) == (True, float("inf"))
    assert cmp(">", on_for, num(600.0), 0.0) == (False, 420.0)


def test_a_product_of_a_moving_reading_moves_by_the_constant_times_its_rate():
    assert mul((1.0, 1.2, 1e-3, 1e-3), num(1.15)) == pytest.approx((1.15, 1.38, 1.15e-3, 1.15e-3))


def test_a_reading_near_a_threshold_bounds_the_horizon():
    z = healthy(ph_zone()).set(ph=6.0)  # correct_high_ph: ph > 6.2
    run_to(z, 2)
    fast = {**STILL, "ph": (0.01, 1e-3)}  # (0.2 - 2 x 0.01) / 1e-3 = 180 s
    assert horizon(z, fast) == z.now + 180.0


def test_a_metric_compared_without_bounds_allows_no_skipping():
    z = healthy(ph_zone())
    run_to(z, 2)
    unbounded = {k: v for k, v in STILL.items() if k != "ph"}
    assert horizon(z, unbounded) == z.now
    assert horizon(z) > z.now + 60.0


def test_a_reading_not_refreshed_bounds_the_horizon_by_its_staleness():
    z = healthy(zone(ruleset()))
    run_to(z, 2)
    z.set(water_level=None)  # the level sensor stops reporting: its last reading is from minute 2
    z.tick()
    assert horizon(z) == pytest.approx(at(2) + 180.0, abs=0.01)  # water_level: stale once older than 3m


def test_the_horizon_is_now_right_after_another_instant():
    z = healthy(zone(ruleset()))
    run_to(z, 2)
    assert z.prog.horizon(z.state, T0 + 1.0, STILL) == T0 + 1.0
