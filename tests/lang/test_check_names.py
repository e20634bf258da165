"""Names: HR101-HR113. Each check has a small input that triggers exactly it, at its place,
and a near-identical valid twin that does not."""

from __future__ import annotations

import pytest

RULE = """hydro 1

rule correct_high_ph_fast {
  in NORMAL_RECIRC
  when ph > target.ph.max + 0.5 for 5m
  do { dose dose_ph_down dosing.ph_down_dose guarded by can_dose; event FAST_PH_CORRECTION }
  repeat every 10m
}
"""


def test_valid_rule_is_clean(sets):
    assert sets.found({"r.hydro": RULE}) == []


# ---- HR101 unknown metric ------------------------------------------------------------------
def test_hr101_unknown_metric_in_a_condition(sets):
    d = sets.one({"a.hydro": sets.replace(sets.ALERT, "when temp_water >", "when temp_watr >")})
    assert sets.at(d) == ("HR101", 7, 8)
    assert d.message == "unknown metric `temp_watr`" and d.hint == "did you mean `temp_water`?"


def test_hr101_unknown_metric_in_record(sets):
    text = sets.replace(RULE, "event FAST_PH_CORRECTION", "record ph, ecc")
    d = sets.one({"r.hydro": text})
    assert sets.at(d) == ("HR101", *sets.pos(text, "ecc")) and d.hint == "did you mean `ec`?"


def test_hr101_unknown_metric_bound_by_a_zone(sets):
    files = sets.site_files({"site.hydro": ("ph from nd-ph-1", "phh from nd-ph-1")})
    d = sets.one(files)
    assert sets.at(d) == ("HR101", *sets.pos(files["site.hydro"], "phh"))


def test_hr101_change_of_something_that_is_not_a_metric(sets):
    text = sets.replace(sets.ALERT, "when temp_water > 26 °C", "when change(temp_watr, 1h) > 2 °C")
    d = sets.one({"a.hydro": text})
    assert sets.at(d) == ("HR101", 7, 15) and d.hint == "did you mean `temp_water`?"


# ---- HR102 unknown channel -----------------------------------------------------------------
def test_hr102_unknown_channel_in_an_action(sets):
    d = sets.one({"m.hydro": sets.replace(sets.MACHINE, "start pump_fill", "start pump_fil")})
    assert sets.at(d) == ("HR102", 11, 19) and d.hint == "did you mean `pump_fill`?"


def test_hr102_unknown_channel_in_is_on(sets):
    text = sets.replace(sets.ALERT, "when temp_water > 26 °C", "when pump_recirk is on and temp_water > 26 °C")
    d = sets.one({"a.hydro": text})
    assert sets.at(d) == ("HR102", 7, 8) and d.hint == "did you mean `pump_recirc`?"


def test_hr102_unknown_channel_in_an_alert_scope(sets):
    text = sets.replace(sets.ALERT, "alert biz_warm_solution {", "alert biz_warm_solution for pump_recirk {")
    d = sets.one({"a.hydro": text})
    assert sets.at(d) == ("HR102", 3, 29)


# ---- HR103 unknown state -------------------------------------------------------------------
def test_hr103_unknown_state_in_a_rule(sets):
    d = sets.one({"r.hydro": sets.replace(RULE, "in NORMAL_RECIRC", "in NORMAL_RECIRK")})
    assert sets.at(d) == ("HR103", 4, 6) and d.hint == "did you mean `NORMAL_RECIRC`?"


def test_hr103_state_written_in_lower_case(sets):
    d = sets.one({"r.hydro": sets.replace(RULE, "in NORMAL_RECIRC", "in normal_recirc")})
    assert sets.at(d) == ("HR103", 4, 6) and d.hint == "did you mean `NORMAL_RECIRC`?"


# ---- HR104 unknown alert -------------------------------------------------------------------
def test_hr104_unknown_alert_raised(sets):
    text = sets.replace(RULE, "event FAST_PH_CORRECTION", "raise biz_high_pH")
    d = sets.one({"r.hydro": text})
    assert sets.at(d) == ("HR104", *sets.pos(text, "biz_high_pH")) and d.hint == "did you mean `biz_high_ph`?"


def test_hr104_unknown_alert_asked_is_active(sets):
    text = sets.replace(sets.MACHINE, "when water_level < levels.min", "when biz_dry_rn is resolved")
    d = sets.one({"m.hydro": text})
    assert sets.at(d) == ("HR104", 7, 25) and d.hint == "did you mean `biz_dry_run`?"


def test_hr104_unknown_alert_raised_by_a_guard(sets):
    guard = """hydro 1

guard cold_water for pump_fill {
  deny "the water is too cold" when temp_water < 5 °C raise biz_cold_watr
}
"""
    machine = sets.MACHINE.replace("no_overflow", "no_overflow, cold_water")
    # (the standard water cycle does not evaluate the new guard: an HR303 there, not in g.hydro)
    found = [f for f in sets.found({"g.hydro": guard, "m.hydro": machine}) if f[1] != "water_cycle.hydro"]
    assert found == [("HR104", "g.hydro", *sets.pos(guard, "biz_cold_watr"))]
    valid = guard.replace("biz_cold_watr", "biz_overflow")
    assert [f for f in sets.found({"g.hydro": valid, "m.hydro": machine}) if f[1] != "water_cycle.hydro"] == []


# ---- HR105 unknown guard -------------------------------------------------------------------
def test_hr105_unknown_guard(sets):
    d = sets.one({"m.hydro": sets.replace(sets.MACHINE, "guarded by can_run_pump,", "guarded by can_run_pmp,")})
    assert sets.at(d) == ("HR105", 11, 40) and d.hint == "did you mean `can_run_pump`?"


# ---- HR106 unknown name ----------------------------------------------------------------------
def test_hr106_unknown_name(sets):
    text = sets.replace(sets.ALERT, "when temp_water > 26 °C", "when sunshine > 26 °C")
    d = sets.one({"a.hydro": text})
    assert sets.at(d) == ("HR106", 7, 8) and d.message == "unknown name `sunshine`"


def test_hr106_unknown_attribute_of_a_metric(sets):
    text = sets.replace(sets.ALERT, "when temp_water > 26 °C", "when temp_water.agee > 10m")
    d = sets.one({"a.hydro": text})
    assert sets.at(d) == ("HR106", 7, 19) and d.hint == "did you mean `age`?"


def test_hr106_unknown_recipe_target(sets):
    text = sets.replace(sets.ALERT, "when temp_water > 26 °C", "when temp_water > target.temp_water.top")
    d = sets.one({"a.hydro": text})
    assert sets.at(d) == ("HR106", 7, 21)


# ---- HR107 duplicate definitions ---------------------------------------------------------------
def test_hr107_alert_defined_twice(sets):
    d = sets.one({"a.hydro": sets.ALERT, "b.hydro": sets.ALERT})
    assert sets.at(d) == ("HR107", 3, 7) and d.span.path.endswith("b.hydro")
    assert "first at" in d.message and "a.hydro:3:7" in d.message


def test_hr107_redefining_a_standard_alert_is_reported_in_the_site_file(sets):
    text = sets.ALERT.replace("biz_warm_solution", "biz_high_ph")
    d = sets.one({"a.hydro": text})
    assert sets.at(d) == ("HR107", 3, 7) and d.span.path.endswith("a.hydro")


def test_hr107_state_defined_twice(sets):
    text = sets.MACHINE.replace("state TOP_UP_FILL", "state NORMAL_RECIRC").replace("go TOP_UP_FILL", "go TOP_UP_IDLE")
    # NORMAL_RECIRC is a state of the standard water cycle: state names are shared by all machines
    assert sets.found({"m.hydro": text}) == [("HR107", "m.hydro", 10, 9)]


def test_hr107_setting_given_twice(sets):
    profile = "hydro 1\n\nprofile p {\n  levels {\n    min 15%\n    min 20%\n  }\n}\n"
    d = sets.one({"p.hydro": profile})
    assert sets.at(d) == ("HR107", 6, 5)


# ---- HR108 unknown unit --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "unit, hint",
    [("mg/L", "units: pH, mS/cm"), ("ms/cm", "did you mean `mS/cm`?"), ("ph", "did you mean `pH`?")],
)
def test_hr108_unknown_unit_of_a_metric(sets, unit, hint):
    metric = f"hydro 1\n\nmetric dissolved_oxygen {{\n  unit {unit}\n  range 0 .. 20\n  stale after 10m\n}}\n"
    d = sets.one({"m.hydro": metric})
    assert sets.at(d) == ("HR108", 4, 8) and d.message == f"unknown unit `{unit}`"
    assert d.hint.startswith(hint)
    assert sets.found({"m.hydro": metric.replace(unit, "ppm")}) == []


def test_hr108_misspelled_unit_in_a_condition(sets):
    text = sets.replace(sets.ALERT, "26 °C for 15m", "2.5 ms/cm for 15m").replace("temp_water > 2.5", "ec > 2.5")
    d = sets.one({"a.hydro": text})
    assert sets.at(d) == ("HR108", *sets.pos(text, "ms/cm")) and d.hint == "write `2.5 mS/cm`"
    assert d.span.end_column - d.span.column == len("ms/cm")


def test_hr108_unit_spelled_as_a_name(sets):
    metric = "hydro 1\n\nmetric leaf_temp {\n  unit degF\n  range 0 .. 200\n  stale after 10m\n}\n"
    d = sets.one({"m.hydro": metric})
    assert sets.at(d) == ("HR108", 4, 8) and d.message == "unknown unit `degF`"


# ---- HR109 functions -------------------------------------------------------------------------
def test_hr109_unknown_function(sets):
    text = sets.replace(sets.ALERT, "when temp_water > 26 °C", "when average(temp_water) > 26 °C")
    d = sets.one({"a.hydro": text})
    assert sets.at(d) == ("HR109", 7, 8)
    assert "change" in d.hint  # lists the functions there are


def test_hr109_wrong_number_of_arguments(sets):
    text = sets.replace(sets.ALERT, "when temp_water > 26 °C", "when change(temp_water) > 2 °C")
    d = sets.one({"a.hydro": text})
    assert sets.at(d) == ("HR109", 7, 8) and "2 argument" in d.message


# ---- HR110 transition to a missing state ---------------------------------------------------------
def test_hr110_transition_to_a_missing_state(sets):
    d = sets.one({"m.hydro": sets.replace(sets.MACHINE, "go TOP_UP_FILL", "go TOP_UP_FIL")})
    assert sets.at(d) == ("HR110", 7, 8) and d.hint == "did you mean `TOP_UP_FILL`?"


def test_hr110_fail_after_without_a_failed_state(sets):
    # the standard water cycle owns FAILED; this machine has none
    text = sets.replace(sets.MACHINE, "go TOP_UP_IDLE after 20m", "fail after 20m")
    d = sets.one({"m.hydro": text})
    assert sets.at(d) == ("HR110", 13, 16)


# ---- HR111 unknown setting -------------------------------------------------------------------------
def test_hr111_setting_from_the_old_plan(sets):
    profile = "hydro 1\n\nprofile p {\n  water_cycle {\n    water_change {\n      interval_days 7\n    }\n  }\n}\n"
    d = sets.one({"p.hydro": profile})
    assert sets.at(d) == ("HR111", 6, 7) and "`interval 7d`" in d.hint


def test_hr111_unknown_setting_read_by_a_rule(sets):
    text = sets.replace(sets.MACHINE, "levels.min", "levels.minn")
    d = sets.one({"m.hydro": text})
    assert sets.at(d) == ("HR111", *sets.pos(text, "levels.minn")) and d.hint == "did you mean `min`?"


# ---- HR112 unknown profile or recipe ----------------------------------------------------------------
def test_hr112_zone_with_an_unknown_profile(sets):
    d = sets.one(
        sets.site(
            {"site.hydro": ("profile nft_standard\n      recipe lettuce", "profile nft_standrd\n      recipe lettuce")}
        ),
    )
    assert sets.at(d) == ("HR112", 8, 15) and d.hint == "did you mean `nft_standard`?"


def test_hr112_zone_with_an_unknown_recipe(sets):
    d = sets.one(sets.site({"site.hydro": ("recipe basil", "recipe basill")}))
    assert sets.at(d) == ("HR112", 26, 14)


def test_site_is_clean(sets):
    assert sets.found(sets.site()) == []


# ---- HR113 channel of the wrong kind -------------------------------------------------------------
@pytest.mark.parametrize(
    "action, col",
    [("open pump_fill guarded by can_run_pump, no_overflow, tank_is_sound", 18), ("dose pump_fill 2 ml", 18)],
)
def test_hr113_verb_that_does_not_apply_to_the_channel(sets, action, col):
    text = sets.replace(sets.MACHINE, "start pump_fill guarded by can_run_pump, no_overflow, tank_is_sound", action)
    d = sets.one({"m.hydro": text})
    assert sets.at(d) == ("HR113", 11, col) and "a pump" in d.message


def test_hr113_guard_that_does_not_protect_the_channel(sets):
    text = sets.replace(sets.MACHINE, "tank_is_sound }", "tank_is_sound, drain_has_water }")
    d = sets.one({"m.hydro": text})
    assert sets.at(d) == ("HR113", *sets.pos(text, "drain_has_water"))


def test_hr111_target_written_with_to_is_reported_once_with_the_range_to_write(sets):
    recipe = 'hydro 1\n\nrecipe r "R" {\n  phase all days 0 .. {\n    ph 5.6 to 6.4\n  }\n}\n'
    d = sets.one({"r.hydro": recipe})
    assert sets.at(d) == ("HR111", 5, 5) and d.hint == "write `ph 5.6 .. 6.4`"
    assert sets.found({"r.hydro": recipe.replace(" to ", " .. ")}) == []
