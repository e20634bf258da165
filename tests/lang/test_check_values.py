"""Types and values: HR201-HR206."""

from __future__ import annotations

import pytest

PROFILE = """hydro 1

profile nft_lettuce {
  water_cycle {
    recirc {
      window 00:00 to 24:00 duty 50% period 20m
      max_recirc_off 10m
    }
    water_change {
      interval 7d
      time_of_day 09:00
      max_solution_age 10d
    }
  }
  levels {
    min 15%
    empty 5%
  }
}
"""

RECIPE = """hydro 1

recipe strawberry "Strawberry, everbearing" {
  phase vegetative days 0 .. 29 {
    ph 5.5 .. 6.5
    ec 1.0 mS/cm .. 1.5 mS/cm
  }
  phase fruiting days 30 .. {
    ph 5.5 .. 6.2
    ec 1.8 mS/cm .. 2.5 mS/cm
  }
}
"""


def test_valid_profile_and_recipe_are_clean(sets):
    assert sets.found({"p.hydro": PROFILE, "r.hydro": RECIPE}) == []


# ---- HR201 unit mismatch ----------------------------------------------------------------------
def test_hr201_ph_against_mS_per_cm(sets):
    text = sets.replace(sets.ALERT, "when temp_water > 26 °C", "when ph > 2.5 mS/cm")
    d = sets.one({"a.hydro": text})
    assert sets.at(d) == ("HR201", *sets.pos(text, "ph > 2.5"))
    assert d.message == "cannot compare `ph` (a pH value) with `2.5 mS/cm` (a conductivity in mS/cm)"


def test_hr201_duration_against_percentage(sets):
    text = sets.replace(sets.ALERT, "when temp_water > 26 °C", "when pump_recirc.on_for > 90%")
    d = sets.one({"a.hydro": text})
    assert sets.at(d) == ("HR201", *sets.pos(text, "pump_recirc.on_for"))
    assert "(a duration)" in d.message and "(a percentage)" in d.message


def test_hr201_same_units_are_fine(sets):
    text = sets.replace(sets.ALERT, "when temp_water > 26 °C", "when ec > 2.5 mS/cm and pump_recirc.on_for > 90m")
    assert sets.found({"a.hydro": text}) == []


def test_hr201_adding_different_units(sets):
    text = sets.replace(sets.ALERT, "when temp_water > 26 °C", "when temp_water + 1 mS/cm > 26 °C")
    d = sets.one({"a.hydro": text})
    assert sets.at(d) == ("HR201", *sets.pos(text, "temp_water + 1"))


def test_hr201_setting_without_its_unit(sets):
    text = sets.replace(PROFILE, "max_solution_age 10d", "max_solution_age 10")
    d = sets.one({"p.hydro": text})
    assert sets.at(d) == ("HR201", *sets.pos(text, "10\n"))
    assert d.hint == "durations carry their unit"


def test_hr201_start_for_a_volume(sets):
    text = sets.replace(sets.MACHINE, "start pump_fill guarded", "start pump_fill for 5 L guarded")
    d = sets.one({"m.hydro": text})
    assert sets.at(d) == ("HR201", *sets.pos(text, "5 L"))


def test_hr201_every_mistake_in_one_condition_is_reported(sets):
    text = sets.replace(sets.ALERT, "when temp_water > 26 °C", "when ph > 2 mS/cm or temp_water > 5 L")
    assert [sets.at(d) for d in sets.check({"a.hydro": text})] == [
        ("HR201", *sets.pos(text, "ph > 2")),
        ("HR201", *sets.pos(text, "temp_water > 5 L")),
    ]


# ---- HR202 comparison outside the physical range -------------------------------------------------
def test_hr202_always_true(sets):
    text = sets.replace(sets.ALERT, "when temp_water > 26 °C", "when ph < 15")
    d = sets.one({"a.hydro": text})
    assert sets.at(d) == ("HR202", *sets.pos(text, "ph < 15"))
    assert d.message == "`ph < 15` is always true: ph reads 0 pH to 14 pH"


def test_hr202_never_true(sets):
    text = sets.replace(sets.ALERT, "when temp_water > 26 °C", "when water_level > 120%")
    d = sets.one({"a.hydro": text})
    assert sets.at(d) == ("HR202", *sets.pos(text, "water_level > 120%"))
    assert "never true" in d.message


def test_hr202_constant_on_the_left(sets):
    text = sets.replace(sets.ALERT, "when temp_water > 26 °C", "when 60 °C < temp_water")
    d = sets.one({"a.hydro": text})
    assert d.code == "HR202" and "never true" in d.message


@pytest.mark.parametrize("cond", ["ph > 7", "ph <= 13.9", "water_level >= 100%", "water_level < 100%"])
def test_hr202_comparisons_inside_the_range_are_fine(sets, cond):
    # `>= 100%` may happen (full); `< 100%` may be false: neither is decided by the range alone
    text = sets.replace(sets.ALERT, "when temp_water > 26 °C", f"when {cond}")
    assert sets.found({"a.hydro": text}) == []


# ---- HR203 minimum greater than maximum ----------------------------------------------------------
def test_hr203_target_range_upside_down(sets):
    text = sets.replace(RECIPE, "ph 5.5 .. 6.5", "ph 6.5 .. 5.5")
    d = sets.one({"r.hydro": text})
    assert sets.at(d) == ("HR203", *sets.pos(text, "ph 6.5 .. 5.5"))
    assert d.hint == "write it as 5.5 .. 6.5"


def test_hr203_metric_range_upside_down(sets):
    metric = "hydro 1\n\nmetric dissolved_oxygen {\n  unit ppm\n  range 20 ppm .. 0 ppm\n  stale after 10m\n}\n"
    d = sets.one({"m.hydro": metric})
    assert sets.at(d) == ("HR203", 5, 9)


def test_hr203_phase_that_ends_before_it_starts(sets):
    text = sets.replace(RECIPE, "days 0 .. 29", "days 29 .. 0")
    d = sets.one({"r.hydro": text})
    assert (
        sets.at(d) == ("HR203", *sets.pos(text, "vegetative")) and "ends (day 0) before it starts (day 29)" in d.message
    )


def test_hr203_levels_that_do_not_rise(sets):
    text = sets.replace(PROFILE, "min 15%", "min 3%")
    d = sets.one({"p.hydro": text})
    assert sets.at(d) == ("HR203", *sets.pos(text, "min 3%"))
    assert "empty < min < target <= max" in d.message


# ---- HR204 value out of range ------------------------------------------------------------------
@pytest.mark.parametrize(
    "old, new, needle",
    [
        ("time_of_day 09:00", "time_of_day 25:00", "25:00"),
        ("duty 50%", "duty 150%", "150%"),
        ("window 00:00 to 24:00", "window 09:00 to 09:00", "09:00 to 09:00"),
        ("period 20m", "period 2d", "2d"),
    ],
)
def test_hr204_profile_value_out_of_range(sets, old, new, needle):
    text = sets.replace(PROFILE, old, new)
    assert sets.found({"p.hydro": text}) == [("HR204", "p.hydro", *sets.pos(text, needle))]


def test_hr204_unknown_severity(sets):
    text = sets.replace(sets.ALERT, "severity warning", "severity urgent")
    d = sets.one({"a.hydro": text})
    assert sets.at(d) == ("HR204", *sets.pos(text, "urgent"))
    assert "critical" in d.hint


def test_hr204_unknown_time_zone(sets):
    files = sets.site_files({"site.hydro": ('timezone "UTC"', 'timezone "Europe/Amsterdm"')})
    d = sets.one(files)
    assert sets.at(d) == ("HR204", *sets.pos(files["site.hydro"], '"Europe/Amsterdm"'))


def test_hr204_division_by_zero(sets):
    text = sets.replace(sets.ALERT, "when temp_water > 26 °C", "when temp_water > 26 °C / 0")
    d = sets.one({"a.hydro": text})
    assert sets.at(d) == ("HR204", *sets.pos(text, "26 °C / 0"))


# ---- HR205 condition is not a yes/no question ----------------------------------------------------
def test_hr205_a_value_is_not_a_condition(sets):
    text = sets.replace(sets.ALERT, "when temp_water > 26 °C", "when temp_water")
    d = sets.one({"a.hydro": text})
    assert sets.at(d) == ("HR205", *sets.pos(text, "temp_water for"))
    assert "compare it" in d.hint


def test_hr205_a_channel_is_not_a_condition(sets):
    text = sets.replace(sets.ALERT, "when temp_water > 26 °C", "when pump_recirc")
    d = sets.one({"a.hydro": text})
    assert sets.at(d) == ("HR205", *sets.pos(text, "pump_recirc")) and "is on" in d.hint


def test_hr205_an_alert_is_asked_with_is_active(sets):
    text = sets.replace(sets.ALERT, "when temp_water > 26 °C", "when biz_dry_run")
    d = sets.one({"a.hydro": text})
    assert d.code == "HR205" and "biz_dry_run is active" in d.message


# ---- HR206 missing required item ------------------------------------------------------------------
@pytest.mark.parametrize(
    "old, needle",
    [('  text "Nutrient solution too warm"\n', "biz_warm_solution"), ("  source biz\n", "biz_warm_solution")],
)
def test_hr206_alert_without_text_or_source(sets, old, needle):
    text = sets.replace(sets.ALERT, old, "")
    d = sets.one({"a.hydro": text})
    assert sets.at(d) == ("HR206", *sets.pos(text, needle))


def test_hr206_metric_without_stale_after(sets):
    metric = "hydro 1\n\nmetric dissolved_oxygen {\n  unit ppm\n  range 0 ppm .. 20 ppm\n}\n"
    d = sets.one({"m.hydro": metric})
    assert sets.at(d) == ("HR206", 3, 8) and "stale after" in d.message


def test_hr206_zone_without_reservoir(sets):
    files = sets.site_files({"site.hydro": ("      reservoir 150 L\n", "")})
    d = sets.one(files)
    assert sets.at(d) == ("HR206", *sets.pos(files["site.hydro"], "zn-2")) and "reservoir" in d.message


def test_hr206_rule_without_when(sets):
    rule = "hydro 1\n\nrule flush_note {\n  in NORMAL_RECIRC\n  do { event NOTE }\n}\n"
    d = sets.one({"r.hydro": rule})
    assert sets.at(d) == ("HR206", 3, 6)
    assert sets.found({"r.hydro": rule.replace("  do", "  when ph > 7\n  do")}) == []
