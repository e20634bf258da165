"""Machines, pump safety, schedules, alerts and recipes: HR301-HR305 and HR401-HR405."""

from __future__ import annotations

import pytest

RECIRC = """hydro 1

profile ebb_and_flow {
  water_cycle {
    recirc {
      window 06:00 to 22:00 duty 50% period 20m
      window 22:00 to 06:00 duty 25% period 8m
      max_recirc_off 10m
    }
  }
}
"""

RECIPE = """hydro 1

recipe tomato "Cherry tomato" {
  phase seedling days 0 .. 20 {
    ph 5.8 .. 6.3
  }
  phase flowering days 21 .. 59 {
    ph 5.8 .. 6.3
  }
  phase fruiting days 60 .. {
    ph 5.8 .. 6.5
  }
}
"""


def test_valid_schedule_and_recipe_are_clean(sets):
    assert sets.found({"p.hydro": RECIRC, "r.hydro": RECIPE}) == []


# ---- HR301 unreachable state ------------------------------------------------------------------
def test_hr301_unreachable_state(sets):
    text = sets.MACHINE.replace("}\n}\n", "}\n\n  state TOP_UP_CHECK {\n    go TOP_UP_IDLE after 5m\n  }\n}\n")
    d = sets.one({"m.hydro": text})
    assert sets.at(d) == ("HR301", *sets.pos(text, "TOP_UP_CHECK"))


def test_hr301_reached_state_is_fine(sets):
    text = sets.MACHINE.replace("}\n}\n", "}\n\n  state TOP_UP_CHECK {\n    go TOP_UP_IDLE after 5m\n  }\n}\n")
    text = text.replace("go TOP_UP_IDLE after 20m", "go TOP_UP_CHECK after 20m")
    assert sets.found({"m.hydro": text}) == []


def test_hr301_not_reported_for_a_misspelled_transition(sets):
    # the misspelling is the one mistake: HR110, not also "TOP_UP_FILL cannot be reached"
    text = sets.replace(sets.MACHINE, "go TOP_UP_FILL", "go TOP_UP_FIL")
    assert [c for c, *_ in sets.found({"m.hydro": text})] == ["HR110"]


# ---- HR302 a pump with neither timeout nor exit -------------------------------------------------
def test_hr302_state_runs_a_pump_with_no_way_out(sets):
    text = sets.replace(sets.MACHINE, "    go TOP_UP_IDLE when water_level >= levels.target\n", "")
    text = sets.replace(text, "    go TOP_UP_IDLE after 20m\n", "")
    text = text.replace("  state TOP_UP_IDLE {", "  state TOP_UP_IDLE {\n    go TOP_UP_IDLE after 1d")
    found = sets.found({"m.hydro": text})
    assert found == [("HR302", "m.hydro", *sets.pos(text, "TOP_UP_FILL {"))]


def test_hr302_a_timeout_alone_is_a_way_out(sets):
    text = sets.replace(sets.MACHINE, "    go TOP_UP_IDLE when water_level >= levels.target\n", "")
    assert sets.found({"m.hydro": text}) == []


def test_hr302_a_pump_started_for_a_duration_stops_by_itself(sets):
    text = sets.replace(sets.MACHINE, "    go TOP_UP_IDLE when water_level >= levels.target\n", "")
    text = sets.replace(text, "    go TOP_UP_IDLE after 20m\n", "")
    text = text.replace("start pump_fill guarded", "start pump_fill for 2m guarded")
    assert "HR302" not in [c for c, *_ in sets.found({"m.hydro": text})]


# ---- HR303 a pump started where its guard is not evaluated ---------------------------------------
def test_hr303_start_without_one_of_its_guards(sets):
    text = sets.replace(sets.MACHINE, "guarded by can_run_pump, no_overflow", "guarded by no_overflow")
    d = sets.one({"m.hydro": text})
    assert sets.at(d) == ("HR303", *sets.pos(text, "pump_fill guarded"))
    assert "`can_run_pump`" in d.message and d.hint == "add `guarded by no_overflow, tank_is_sound, can_run_pump`"


def test_hr303_start_without_any_guard(sets):
    text = sets.replace(sets.MACHINE, " guarded by can_run_pump, no_overflow, tank_is_sound", "")
    d = sets.one({"m.hydro": text})
    assert sets.at(d) == ("HR303", *sets.pos(text, "pump_fill }"))


def test_hr303_dose_without_its_guard(sets):
    rule = "hydro 1\n\nrule top_up_acid {\n  when ph > 7 for 10m\n  do { dose dose_ph_down 2 ml }\n}\n"
    d = sets.one({"r.hydro": rule})
    assert sets.at(d) == ("HR303", *sets.pos(rule, "dose_ph_down 2 ml"))
    assert sets.found({"r.hydro": rule.replace("2 ml }", "2 ml guarded by can_dose }")}) == []


def test_hr303_stopping_needs_no_guard(sets):
    text = sets.replace(sets.MACHINE, "go TOP_UP_IDLE after 20m", "go TOP_UP_IDLE after 20m do { stop pump_fill }")
    assert sets.found({"m.hydro": text}) == []


# ---- HR304 machine without a valid initial state ---------------------------------------------------
def test_hr304_no_initial_state(sets):
    text = sets.replace(sets.MACHINE, "  initial TOP_UP_IDLE\n", "")
    d = sets.one({"m.hydro": text})
    assert sets.at(d) == ("HR304", *sets.pos(text, "top_up"))


def test_hr304_initial_state_of_another_name(sets):
    text = sets.replace(sets.MACHINE, "initial TOP_UP_IDLE", "initial TOP_UP_IDEL")
    d = sets.one({"m.hydro": text})
    assert sets.at(d) == ("HR304", *sets.pos(text, "TOP_UP_IDEL")) and d.hint == "did you mean `TOP_UP_IDLE`?"


# ---- HR305 zone does not bind a channel the rules use -------------------------------------------------
def test_hr305_zone_without_the_recirculation_pump_cannot_run_the_water_cycle(sets):
    files = sets.site_files({"site.hydro": ("      pump_recirc on nd-pump-2\n", "")})
    d = sets.one(files)
    assert sets.at(d) == ("HR305", *sets.pos(files["site.hydro"], "zn-2"))
    assert "pump_recirc" in d.message and d.hint == "bind `pump_recirc on NODE-UID`"


def test_a_zone_without_the_fill_pump_leaves_what_needs_it_inactive(sets):
    # language 1.2: a zone binds only what it has (HR603 lists what is inactive there, as information)
    assert sets.check(sets.site_files({"site.hydro": ("      pump_fill on nd-fill-2\n", "")})) == []


# ---- HR401 NC recirculation OFF longer than max_recirc_off ------------------------------------------------
def test_hr401_duty_inside_a_window_switches_off_too_long(sets):
    text = sets.replace(RECIRC, "duty 50% period 20m", "duty 25% period 1h")
    d = sets.one({"p.hydro": text})
    assert sets.at(d) == ("HR401", *sets.pos(text, "06:00 to 22:00"))
    assert "OFF for 45m at a time, longer than max_recirc_off 10m" in d.message


def test_hr401_gap_between_windows(sets):
    text = sets.replace(RECIRC, "window 22:00 to 06:00 duty 25% period 8m", "window 23:00 to 06:00 duty 25% period 8m")
    d = sets.one({"p.hydro": text})
    assert sets.at(d) == ("HR401", *sets.pos(text, "06:00 to 22:00"))
    assert "no window covers 22:00-23:00" in d.message and "1h10m" in d.message


def test_hr401_short_gap_within_the_limit_is_fine(sets):
    # a 2-minute gap after a window whose last cycle may end with 10m OFF (50% of 20m): 12m, too long
    text = sets.replace(RECIRC, "window 22:00 to 06:00", "window 22:02 to 06:00")
    assert [c for c, *_ in sets.found({"p.hydro": text})] == ["HR401"]
    # with a 4-minute period the worst stretch is 2m OFF + the 2m gap
    text = text.replace("duty 50% period 20m", "duty 50% period 4m")
    assert sets.found({"p.hydro": text}) == []


def test_hr401_longer_limit_allows_the_same_schedule(sets):
    text = sets.replace(RECIRC, "duty 50% period 20m", "duty 25% period 1h")
    text = sets.replace(text, "max_recirc_off 10m", "max_recirc_off 45m")
    assert sets.found({"p.hydro": text}) == []


def test_hr401_disabled_recirculation_is_not_checked(sets):
    text = sets.replace(RECIRC, "duty 50% period 20m", "duty 25% period 1h")
    text = sets.replace(text, "    recirc {\n", "    recirc {\n      enabled no\n")
    assert sets.found({"p.hydro": text}) == []


# ---- HR402 overlapping windows --------------------------------------------------------------------
def test_hr402_overlapping_windows(sets):
    text = sets.replace(RECIRC, "window 22:00 to 06:00", "window 21:00 to 06:00")
    d = sets.one({"p.hydro": text})
    assert sets.at(d) == ("HR402", *sets.pos(text, "21:00 to 06:00"))
    assert d.message == "schedule windows overlap: 06:00-22:00 and 21:00-06:00"


def test_hr402_windows_that_touch_do_not_overlap(sets):
    text = sets.replace(RECIRC, "window 22:00 to 06:00", "window 22:00 to 24:00")
    text = text.replace("    recirc {\n", "    recirc {\n      window 00:00 to 06:00 duty 25% period 8m\n")
    assert sets.found({"p.hydro": text}) == []


# ---- HR403 recipe phases with a gap or an overlap ----------------------------------------------------
def test_hr403_gap_between_phases(sets):
    text = sets.replace(RECIPE, "days 21 .. 59", "days 25 .. 59")
    d = sets.one({"r.hydro": text})
    assert sets.at(d) == ("HR403", *sets.pos(text, "flowering"))
    assert "no phase for days 21 to 24" in d.message


def test_hr403_overlapping_phases(sets):
    text = sets.replace(RECIPE, "days 60 ..", "days 55 ..")
    d = sets.one({"r.hydro": text})
    assert sets.at(d) == ("HR403", *sets.pos(text, "fruiting"))
    assert "starts on day 55, inside the previous phase" in d.message


def test_hr403_recipe_that_does_not_start_on_day_0(sets):
    text = sets.replace(RECIPE, "days 0 .. 20", "days 1 .. 20")
    d = sets.one({"r.hydro": text})
    assert sets.at(d) == ("HR403", *sets.pos(text, "seedling"))


# ---- HR404 alert code outside the taxonomy --------------------------------------------------------
@pytest.mark.parametrize("code", ["HighSolutionTemp", "warm_solution", "biz_Warm", "bizwarm"])
def test_hr404_code_outside_the_taxonomy(sets, code):
    text = sets.ALERT.replace("biz_warm_solution", code)
    d = sets.one({"a.hydro": text})
    assert sets.at(d) == ("HR404", *sets.pos(text, code))
    assert "biz_" in d.hint and "infra_" in d.hint


def test_hr404_source_that_contradicts_the_code(sets):
    text = sets.replace(sets.ALERT, "source biz", "source infra")
    d = sets.one({"a.hydro": text})
    assert sets.at(d) == ("HR404", *sets.pos(text, "infra"))


def test_hr404_infra_alert_is_fine(sets):
    text = sets.ALERT.replace("biz_warm_solution", "infra_warm_cabinet").replace("source biz", "source infra")
    assert sets.found({"a.hydro": text}) == []


# ---- HR405 locking alert with a clear condition -------------------------------------------------------
def test_hr405_lock_until_reset_with_clear_when(sets):
    text = sets.replace(sets.ALERT, "  clear when", "  lock until reset\n  clear when")
    d = sets.one({"a.hydro": text})
    assert sets.at(d) == ("HR405", *sets.pos(text, "temp_water < 24"))


def test_hr405_lock_until_reset_alone_is_fine(sets):
    text = sets.replace(sets.ALERT, "  clear when temp_water < 24 °C for 15m\n", "  lock until reset\n")
    assert sets.found({"a.hydro": text}) == []
