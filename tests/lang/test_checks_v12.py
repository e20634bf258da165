"""The checks of issue 10 that look across declarations (hydro_rules/lang/checks.py):
HR207 HR208 HR306 HR307 HR406 HR505 HR506, and per zone HR407 / HR604 (safety.py).

Each test writes the smallest rule set that shows the mistake, on the standard rules (and on the
demo site of examples/ where a zone is needed), and fails without the check.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hydro_rules.commands.check import collect
from hydro_rules.lang import render

#: a machine of its own next to the standard water cycle; tests break one line of it
BOOST = """hydro 1

machine nutrient_boost {
  initial BOOST_IDLE

  state BOOST_IDLE {
    go BOOST_SETTLE every 7d at 03:00
  }

  state BOOST_SETTLE {
    enter { stop pump_recirc }
    go BOOST_MIX when ec is known for 5m
    go BOOST_MIX after 20m
  }

  state BOOST_MIX {
    enter { recirculate pump_recirc guarded by can_run_pump, reservoir_has_water }
    go BOOST_IDLE after 10m
  }
}
"""


def codes(diags) -> list[str]:
    return [d.code for d in diags]


def infos(sets, d: Path) -> list:
    out: list = []
    collect([str(d.relative_to(sets.root))], out)
    return out


def test_the_machine_on_its_own_and_the_demo_site_are_clean(sets):
    assert sets.check({"b.hydro": BOOST}) == []
    assert sets.check(sets.site(extra={"b.hydro": BOOST})) == []


# ---- HR207 time of day out of range ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("old", "new", "at"),
    [
        ("every 7d at 03:00", "every 7d at 25:00", "25:00"),
        ("every 7d at 03:00", "every 7d at 24:00", "24:00"),
        ("every 7d at 03:00", "every 7d at 3:75", "3:75"),
        ("when ec is known for 5m", "when time_of_day > 25:00 for 5m", "25:00"),
        ("when ec is known for 5m", "when time_of_day < 08:60", "08:60"),
    ],
)
def test_hr207_a_time_of_day_out_of_range_anywhere(sets, old, new, at):
    text = sets.replace(BOOST, old, new)
    d = sets.one({"b.hydro": text})
    assert sets.at(d) == ("HR207", *sets.pos(text, at))
    assert f"`{at}` is not a time of day" in d.message


def test_hr207_in_a_profile_setting_and_a_window(sets):
    files = sets.site_files({"profiles.hydro": ("time_of_day 09:00", "time_of_day 09:61")})
    found = sets.found(files)
    assert found == [("HR207", "profiles.hydro", *sets.pos(files["profiles.hydro"], "09:61"))]
    files = sets.site_files({"profiles.hydro": ("window 00:00 to 24:00", "window 00:70 to 24:00")})
    # (and the stretch from midnight no window covers is an HR401 of its own)
    found = [x for x in sets.found(files) if x[0] == "HR207"]
    assert found == [("HR207", "profiles.hydro", *sets.pos(files["profiles.hydro"], "00:70"))]


def test_hr207_24_00_ends_a_window_and_the_light(sets):
    site = sets.site_files()["site.hydro"].replace("hydro 1\n", "hydro 1.2\n", 1)
    lit = sets.replace(site, '  timezone "UTC"\n', '  timezone "UTC"\n  light 06:00 to 24:00\n')
    assert sets.check(sets.site(extra={"site.hydro": lit})) == []  # (the profile's window ends at 24:00 too)
    dark = sets.replace(site, '  timezone "UTC"\n', '  timezone "UTC"\n  light 06:75 to 20:00\n')
    (d,) = sets.check(sets.site(extra={"site.hydro": dark}))
    assert sets.at(d) == ("HR207", *sets.pos(dark, "06:75"))


# ---- HR208 durations where time must pass -------------------------------------------------------------
@pytest.mark.parametrize(
    ("old", "new", "at", "what"),
    [
        ("every 7d at 03:00", "every 0d at 03:00", "0d", "a schedule's interval"),
        ("go BOOST_IDLE after 10m", "go BOOST_IDLE after 10m do { start pump_fill for 0s guarded by "
         "can_run_pump, no_overflow, tank_is_sound }", "0s", "the run of `start ... for`"),
    ],
)  # fmt: skip
def test_hr208_a_zero_duration_where_time_must_pass(sets, old, new, at, what):
    text = sets.replace(BOOST, old, new)
    d = sets.one({"b.hydro": text})
    assert sets.at(d) == ("HR208", *sets.pos(text, at))
    assert d.message.startswith(what + " must be longer than 0")


def test_hr208_repeat_every_zero(sets):
    rule = "hydro 1\n\nrule r {\n  in NORMAL_RECIRC\n  when ph > 7\n  do { event HIGH }\n  repeat every 0s\n}\n"
    d = sets.one({"r.hydro": rule})
    assert sets.at(d) == ("HR208", *sets.pos(rule, "0s"))


def test_hr208_a_hold_of_zero_is_no_hold_and_fine(sets):
    assert sets.check({"b.hydro": sets.replace(BOOST, "is known for 5m", "is known for 0s")}) == []


def test_hr208_a_zero_timeout_is_reported_once(sets):
    text = sets.replace(BOOST, "go BOOST_MIX after 20m", "go BOOST_MIX after 0m")
    found = codes(sets.check({"b.hydro": text}))
    assert "HR204" in found and "HR208" not in found  # the timeout check of the checker, not twice


# ---- HR306 one node output, one role --------------------------------------------------------------------
def test_hr306_one_output_for_two_dosers_in_a_zone(sets):
    files = sets.site_files(
        {
            "site.hydro": (
                "dose_nutrient on nd-dose-1 channel pump_nutrient",
                "dose_nutrient on nd-dose-1 channel pump_acid",
            )
        }
    )
    d = sets.one(files)
    assert sets.at(d) == ("HR306", *sets.pos(files["site.hydro"], "dose_nutrient on nd-dose-1"))
    assert "output `pump_acid` of node `nd-dose-1` is already bound to doser `dose_ph_down` in this zone" in d.message


def test_hr306_one_pump_output_in_two_zones(sets):
    files = sets.site_files({"site.hydro": ("pump_recirc on nd-pump-2", "pump_recirc on nd-pump-1")})
    d = sets.one(files)
    assert sets.at(d) == (
        "HR306",
        *sets.pos(files["site.hydro"], "pump_recirc on nd-pump-1\n      pump_drain on nd-drain-2"),
    )
    assert "in zone `zn-1`" in d.message and "zone `zn-2`" in d.message


def test_hr306_sensors_of_one_node_are_fine(sets):
    # the demo site reads ec and temp_water from nd-ec-1, and the level sensor and level from nd-level-1
    files = sets.site_files({"site.hydro": ("temp_water from nd-ec-2", "temp_water from nd-ec-1")})
    assert sets.check(files) == []


# ---- HR307 dosing where nothing circulates -------------------------------------------------------------------
DOSE_RULE = """hydro 1

rule boost_dose {
  in BOOST_SETTLE
  when ec < target.ec.min
  do { dose dose_nutrient dosing.nutrient_dose guarded by can_dose }
}
"""


def test_hr307_a_rule_doses_in_a_state_that_stops_recirculation(sets):
    d = sets.one({"b.hydro": BOOST, "r.hydro": DOSE_RULE})
    assert sets.at(d) == ("HR307", *sets.pos(DOSE_RULE, "dose_nutrient dosing"))
    assert "its state `BOOST_SETTLE` stops pump_recirc" in d.message


def test_hr307_a_state_doses_after_stopping_recirculation(sets):
    text = sets.replace(
        BOOST,
        "enter { stop pump_recirc }",
        "enter {\n      stop pump_recirc\n      dose dose_ph_down 1 ml guarded by can_dose\n    }",
    )
    d = sets.one({"b.hydro": text})
    assert sets.at(d) == ("HR307", *sets.pos(text, "dose_ph_down 1 ml"))


def test_hr307_dosing_where_the_pump_recirculates_is_fine(sets):
    rule = DOSE_RULE.replace("in BOOST_SETTLE", "in BOOST_MIX")
    assert sets.check({"b.hydro": BOOST, "r.hydro": rule}) == []


# ---- HR406 resolving a lock ----------------------------------------------------------------------------------
def test_hr406_a_transition_resolves_an_alert_that_locks(sets):
    text = sets.replace(BOOST, "go BOOST_IDLE after 10m", "go BOOST_IDLE after 10m do { resolve biz_dose_ineffective }")
    d = sets.one({"b.hydro": text})
    assert sets.at(d) == ("HR406", *sets.pos(text, "biz_dose_ineffective"))
    assert "only the operator's reset clears a lock" in d.message


def test_hr406_resolving_an_alert_that_does_not_lock_is_fine(sets):
    text = sets.replace(BOOST, "go BOOST_IDLE after 10m", "go BOOST_IDLE after 10m do { resolve biz_high_ph }")
    assert "HR406" not in codes(sets.check({"b.hydro": text}))


# ---- HR506 a schedule the solution-age limit pre-empts ------------------------------------------------------
def test_hr506_an_interval_not_shorter_than_the_age_limit(sets):
    files = sets.site_files({"profiles.hydro": ("interval 7d", "interval 12d")})
    d = sets.one(files)
    assert sets.at(d) == ("HR506", *sets.pos(files["profiles.hydro"], "nft_standard"))
    assert d.severity.value == "warning"
    assert "water_change.interval 12d is not shorter than water_change.max_solution_age 10d" in d.message


def test_hr506_not_where_a_yes_no_setting_the_schedule_needs_turns_it_off(sets):
    files = sets.site_files(
        {"profiles.hydro": ("      enabled yes\n      interval 7d", "      enabled no\n      interval 12d")}
    )
    assert sets.check(files) == []


def test_hr506_a_zone_setting_pre_empts_its_own_schedule(sets):
    site = sets.site_files()["site.hydro"].replace("hydro 1\n", "hydro 1.2\n", 1)
    site = sets.replace(
        site,
        "      reservoir 150 L\n",
        "      reservoir 150 L\n      settings {\n        water_change { max_solution_age 5d }\n      }\n",
    )
    d = sets.one(sets.site(extra={"site.hydro": site}))
    assert sets.at(d) == ("HR506", *sets.pos(site, "zn-2"))
    assert d.message.startswith("in zone `zn-2`")


# ---- HR505 a metric no sensor of the zone reads -------------------------------------------------------------
def test_hr505_a_zone_without_a_ph_sensor(sets):
    files = sets.site_files({"site.hydro": ("      ph from nd-ph-2\n", "")})
    d = sets.one(files)
    assert sets.at(d) == ("HR505", *sets.pos(files["site.hydro"], "zn-2"))
    assert "zone `zn-2` binds no sensor for `ph`, which rule `correct_high_ph` reads" in d.message


# ---- HR407 / HR604 the OFF stretches of an NC pump, per zone ----------------------------------------------
def test_hr407_a_state_that_holds_the_pump_off_without_a_bound_in_the_zones(sets):
    text = sets.replace(BOOST, "    go BOOST_MIX after 20m\n", "")
    d = sets.site(extra={"b.hydro": text})
    (e,) = sets.check(d)
    assert sets.at(e) == ("HR407", *sets.pos(text, "BOOST_SETTLE {"))
    assert "in zones `zn-1`, `zn-2`: BOOST_SETTLE; `BOOST_SETTLE` has no timeout" in e.message
    # without zones, it is the warning of the machine alone
    assert codes(sets.check({"b.hydro": text})) == ["HR504"]


def test_hr407_a_loop_of_states_that_hold_the_pump_off(sets):
    text = sets.replace(BOOST, "go BOOST_MIX after 20m", "go BOOST_CHECK after 20m")
    check = "  state BOOST_CHECK {\n    go BOOST_MIX after 2m\n    go BOOST_SETTLE when ec is unknown\n  }\n\n"
    text = sets.replace(text, "  state BOOST_MIX {", check + "  state BOOST_MIX {")
    (e,) = sets.check(sets.site(extra={"b.hydro": text}))
    assert e.code == "HR407"
    assert e.message.endswith(
        "BOOST_SETTLE 20m, BOOST_CHECK 2m, back to BOOST_SETTLE; `BOOST_SETTLE` comes back to a state already passed"
    )


def test_hr407_a_state_that_does_not_switch_the_pump_holds_it_off_as_long_as_it_lasts(sets):
    # BOOST_SETTLE can go back to BOOST_IDLE, which never starts the pump again and has no timeout
    text = sets.replace(
        BOOST, "    go BOOST_MIX after 20m\n", "    go BOOST_MIX after 20m\n    go BOOST_IDLE when ec is unknown\n"
    )
    (e,) = sets.check(sets.site(extra={"b.hydro": text}))
    assert sets.at(e) == ("HR407", *sets.pos(text, "BOOST_IDLE {"))
    assert e.message.endswith(": BOOST_SETTLE 20m, BOOST_IDLE, back to BOOST_SETTLE; `BOOST_IDLE` has no timeout")


def test_hr604_the_longest_off_stretch_of_each_zone(sets):
    d = sets.site()
    shown = [x for x in infos(sets, d) if x.code == "HR604"]
    assert [Path(x.span.path).name for x in shown] == ["site.hydro", "site.hydro"]
    assert shown[0].message == (
        "pump_recirc (fail_safe NC) is OFF at most 1h31m at a time in zone `zn-1`: the windows' OFF before it 10m"
        " + machine `water_cycle` from 00:00: WATER_CHANGE_DRAIN 30m + WATER_CHANGE_FILL 30m + FAILED 1m"
        " + FAILED_REFILL 20m; the windows alone 10m"
    )


V12_ZONE = """      settings {
        boost { settle 45m }
        water_cycle {
          recirc {
            window 06:00 to 20:00 duty 50% period 20m max_off 10m
            window 20:00 to 06:00 off
          }
        }
      }
"""

V12_BOOST = """hydro 1.2

settings {
  boost { settle 20m }
}

machine nutrient_boost {
  initial BOOST_IDLE

  state BOOST_IDLE {
    go BOOST_SETTLE every 7d at 03:00
  }

  state BOOST_SETTLE {
    enter { stop pump_recirc }
    go BOOST_MIX after boost.settle
  }

  state BOOST_MIX {
    enter { recirculate pump_recirc guarded by can_run_pump, reservoir_has_water }
    go BOOST_IDLE after 10m
  }
}
"""


def test_hr604_with_the_zone_s_windows_and_timeouts(sets):
    site = sets.site_files()["site.hydro"].replace("hydro 1\n", "hydro 1.2\n", 1)
    site = sets.replace(site, "      reservoir 120 L\n", "      reservoir 120 L\n" + V12_ZONE)
    d = sets.site(extra={"site.hydro": site, "b.hydro": V12_BOOST})
    assert sets.check(d) == []
    zn1, zn2 = [x.message for x in infos(sets, d) if x.code == "HR604"]
    # the night window holds the pump off 10h, after the day window's last OFF part; a change at 06:00 adds its own
    assert zn1.startswith(
        "pump_recirc (fail_safe NC) is OFF at most 11h31m at a time in zone `zn-1`: the windows' OFF before it 10h10m"
    )
    assert zn1.endswith("; machine `nutrient_boost` 10h55m, the windows alone 10h10m")  # the zone's 45m settle
    assert zn2.endswith("; machine `nutrient_boost` 30m, the windows alone 10m")  # the rule set's 20m


def test_hr604_goldens(sets, snapshot):
    site = sets.site_files()["site.hydro"].replace("hydro 1\n", "hydro 1.2\n", 1)
    site = sets.replace(site, "      reservoir 120 L\n", "      reservoir 120 L\n" + V12_ZONE)
    d = sets.site(extra={"site.hydro": site, "b.hydro": V12_BOOST})
    out: list = []
    diags, sources = collect([str(d.relative_to(sets.root))], out)
    mine = [x for x in diags + out if x.code in ("HR407", "HR601", "HR604")]  # (not what else the zones show)
    text = render.to_text(mine, sources).replace(str(sets.root), "ROOT")
    assert text == snapshot


def test_hr208_a_timeout_written_as_a_setting_that_is_0_in_a_zone(sets):
    text = V12_BOOST.replace("boost { settle 20m }", "boost { settle 0s }")
    (e,) = sets.check(sets.site(extra={"b.hydro": text}))
    assert sets.at(e) == ("HR208", *sets.pos(text, "BOOST_MIX after boost"))
    assert e.message == "the timeout `boost.settle` is 0s in zones `zn-1`, `zn-2`: it must be longer than 0"


# ---- HR401 with the windows of language 1.2 -------------------------------------------------------------
def test_hr401_a_window_s_own_max_off(sets):
    site = sets.site_files()["site.hydro"].replace("hydro 1\n", "hydro 1.2\n", 1)
    zone = V12_ZONE.replace("period 20m max_off 10m", "period 20m max_off 5m")
    site = sets.replace(site, "      reservoir 120 L\n", "      reservoir 120 L\n" + zone)
    (e,) = sets.check(sets.site(extra={"site.hydro": site, "b.hydro": V12_BOOST}))
    assert sets.at(e) == ("HR401", *sets.pos(site, "06:00 to 20:00"))
    assert "OFF for 10m at a time, longer than max_off 5m" in e.message


def test_hr407_windows_that_keep_the_pump_off_all_day(sets):
    site = sets.site_files()["site.hydro"].replace("hydro 1\n", "hydro 1.2\n", 1)
    zone = "      settings {\n        recirc {\n          window 00:00 to 24:00 off\n        }\n      }\n"
    site = sets.replace(site, "      reservoir 120 L\n", "      reservoir 120 L\n" + zone)
    (e,) = sets.check(sets.site(extra={"site.hydro": site}))
    assert sets.at(e) == ("HR407", *sets.pos(site, "zn-1"))
    assert e.message.endswith("in zone `zn-1`: its recirculation windows keep it off all day")


def test_hr407_a_stretch_that_begins_with_a_transition_s_stop(sets):
    text = sets.replace(BOOST, "    enter { stop pump_recirc }\n", "")
    text = sets.replace(
        text, "go BOOST_SETTLE every 7d at 03:00", "go BOOST_SETTLE every 7d at 03:00 do { stop pump_recirc }"
    )
    text = sets.replace(text, "    go BOOST_MIX after 20m\n", "")
    (e,) = [x for x in sets.check(sets.site(extra={"b.hydro": text})) if x.code == "HR407"]
    assert sets.at(e) == ("HR407", *sets.pos(text, "BOOST_SETTLE {"))


def test_hr604_a_duty_period_shorter_than_a_minute(sets):
    files = sets.site_files(
        {"profiles.hydro": ("window 00:00 to 24:00 duty 50% period 20m", "window 00:00 to 24:00 duty 50% period 20s")}
    )
    d = sets.make(files)
    assert sets.check(d) == []
    (zn1, _) = [x.message for x in infos(sets, d) if x.code == "HR604"]
    assert "is OFF at most 1h21m10s at a time in zone `zn-1`: the windows' OFF before it 10s" in zn1
    assert zn1.endswith("; the windows alone 10s")
