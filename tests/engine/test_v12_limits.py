"""What the service asks the engine of a zone at a moment (language 1.2): a setting as the zone, its profile
and its recipe phase make it then, and when an NC pump that has been off must run again, by the window."""

from datetime import datetime
from pathlib import Path

import pytest

from hydro_rules.engine.api import nc_run_by, setting_now
from hydro_rules.lang.loader import load

RS = load(Path(__file__).resolve().parents[2] / "sites" / "hillside").ruleset
MIN = 60.0


def at(local: str) -> float:
    return datetime.fromisoformat(local).timestamp()


def test_a_zone_setting_wins_over_the_standard_default():
    t = at("2026-01-20T12:00+01:00")
    assert setting_now(RS, "zn-tomato", "water_change.fill_timeout", t) == 90 * MIN
    assert setting_now(RS, "zn-berry", "water_change.fill_timeout", t) == 30 * MIN


def test_a_phase_setting_applies_from_the_phase_s_first_day():
    # tomatoes planted 2025-12-01: fruiting (its own nutrient_max_dose 40 ml) from day 42, 2026-01-12
    assert setting_now(RS, "zn-tomato", "dosing.nutrient_max_dose", at("2026-01-11T12:00+01:00")) == pytest.approx(0.03)
    assert setting_now(RS, "zn-tomato", "dosing.nutrient_max_dose", at("2026-01-12T12:00+01:00")) == pytest.approx(0.04)


def test_by_day_a_window_s_own_max_off_bounds_the_off_stretch():
    t = at("2026-01-20T12:00+01:00")
    assert nc_run_by(RS, "zn-tomato", t - 10 * MIN, t) == t + 5 * MIN  # max_off 15m
    assert nc_run_by(RS, "zn-berry", t - 10 * MIN, t) == t  # max_recirc_off 10m


@pytest.mark.parametrize("local", ["2026-01-20T21:00+01:00", "2026-01-20T23:00+01:00", "2026-01-21T06:59+01:00"])
def test_in_the_night_off_window_the_pump_runs_by_its_end_plus_the_morning_window_s_max_off(local):
    t = at(local)
    assert nc_run_by(RS, "zn-tomato", t - 10 * MIN, t) == at("2026-01-21T07:15+01:00")
