"""The checker on language 1.2: declared settings, zone settings and light, windows with their own
OFF bound, night targets, phase settings, durations as settings, dose groups, replace/extend,
the typer's new names and arithmetic, and what a zone that binds only what it has leaves inactive."""

from __future__ import annotations

from pathlib import Path

import pytest

from hydro_rules.lang import model as M
from hydro_rules.lang import units as U
from hydro_rules.lang.loader import load

SETTINGS = """hydro 1.2

settings {
  water_change { t_fill_timeout 45m }
  tank { enabled yes  start_below 80%  timeout 20m }
  dosing { t_hold 10m  t_per_100l 8 ml  t_ab_wait 5m }
}
"""


def _load(sets, files: dict[str, str], site: dict | None = None):
    if site is not None:  # the example site, in language 1.2
        files = {k: v.replace("hydro 1\n", "hydro 1.2\n", 1) for k, v in sets.site_files(site).items()} | files
    d = sets.make(files)
    out = load(d)
    return out, [(x.code, Path(x.span.path).name, x.span.line, x.message) for x in out.diags.items]


def _codes(out) -> list[str]:
    return [x.code for x in out.diags.items]


# ---- declared settings ----------------------------------------------------------------------------------
def test_declared_settings_join_the_schema_with_the_dimension_of_their_default(sets):
    out, diags = _load(sets, {"s.hydro": SETTINGS}, site={})
    assert diags == []
    schema = out.ruleset.settings_schema
    assert schema["water_cycle.water_change.t_fill_timeout"] == (U.DURATION, 2700.0, None)
    assert schema["tank.enabled"] == (U.BOOL, True, None)
    assert schema["tank.start_below"] == (U.PERCENT, 80.0, None)
    assert schema["dosing.t_per_100l"] == (U.VOLUME, pytest.approx(0.008), None)
    assert "levels.min" in schema  # the built-in ones stay
    # every profile starts from the declared defaults too
    assert out.ruleset.profiles["nft_standard"].settings["tank.timeout"] == 1200.0


def test_declaring_a_setting_that_exists_is_a_duplicate(sets):
    text = SETTINGS.replace("t_fill_timeout 45m", "t_fill_timeout 45m  interval 3d")
    out, diags = _load(sets, {"s.hydro": text}, site={})
    assert [(c, line) for c, _, line, _ in diags] == [("HR107", 4)]
    assert "water_cycle.water_change.interval" in diags[0][3] and "built in" in diags[0][3]


def test_a_setting_declared_twice_is_a_duplicate(sets):
    out, diags = _load(sets, {"s.hydro": SETTINGS, "t.hydro": "hydro 1.2\nsettings { tank { timeout 5m } }\n"}, {})
    assert [(c, f) for c, f, _, _ in diags] == [("HR107", "t.hydro")]


def test_profiles_and_rules_read_declared_settings(sets):
    profile = ("  dosing {\n", "  tank { start_below 70% }\n  dosing {\n    t_per_100l 6 ml\n")
    rule = """hydro 1.2

rule tank_alarm {
  when water_level < tank.start_below and tank.enabled
  do { event TOPUP_LOW }
}
"""
    out, diags = _load(sets, {"s.hydro": SETTINGS, "r.hydro": rule}, site={"profiles.hydro": profile})
    assert diags == []
    p = out.ruleset.profiles["nft_standard"]
    assert p.settings["tank.start_below"] == 70.0 and p.settings["dosing.t_per_100l"] == pytest.approx(0.006)


def test_an_unknown_declared_setting_is_still_unknown(sets):
    profile = ("  dosing {\n", "  tank { start_belo 70% }\n  dosing {\n")
    out, diags = _load(sets, {"s.hydro": SETTINGS}, site={"profiles.hydro": profile})
    assert [c for c, *_ in diags] == ["HR111"]
    assert out.diags.items[0].hint == "did you mean `start_below`?"


# ---- durations written as settings ------------------------------------------------------------------------
MACHINE = """hydro 1.2

machine top_up {
  initial TOP_UP_IDLE

  state TOP_UP_IDLE {
    go TOP_UP_FILL when water_level < levels.min for dosing.t_hold
  }

  state TOP_UP_FILL {
    enter { start pump_fill guarded by can_run_pump, no_overflow, tank_is_sound }
    go TOP_UP_IDLE when water_level >= levels.target
    go TOP_UP_WAIT after tank.timeout
  }

  state TOP_UP_WAIT {
    go TOP_UP_IDLE after water_change.t_fill_timeout
  }
}
"""


def test_a_hold_and_a_timeout_written_as_settings_keep_the_path_and_the_default(sets):
    out, diags = _load(sets, {"s.hydro": SETTINGS, "m.hydro": MACHINE}, site={})
    assert [c for c, *_ in diags] == []
    m = out.ruleset.machines["top_up"]
    (hold,) = m.states["TOP_UP_IDLE"].transitions
    assert (hold.cond.hold_s, hold.cond.hold_setting) == (600.0, "dosing.t_hold")
    fail = m.states["TOP_UP_FILL"].transitions[1]
    assert (fail.after_s, fail.after_setting) == (1200.0, "tank.timeout")
    (back,) = m.states["TOP_UP_WAIT"].transitions
    assert (back.after_s, back.after_setting) == (2700.0, "water_cycle.water_change.t_fill_timeout")


def test_a_duration_setting_must_be_a_duration(sets):
    text = MACHINE.replace("for dosing.t_hold", "for tank.start_below")
    out, diags = _load(sets, {"s.hydro": SETTINGS, "m.hydro": text}, site={})
    assert [(c, line) for c, _, line, _ in diags] == [("HR201", 7)]
    assert "tank.start_below" in diags[0][3]


def test_a_duration_setting_must_exist(sets):
    text = MACHINE.replace("after tank.timeout", "after tank.timout")
    out, diags = _load(sets, {"s.hydro": SETTINGS, "m.hydro": text}, site={})
    assert [c for c, *_ in diags] == ["HR111"]


# ---- names and arithmetic ----------------------------------------------------------------------------------
def _rule(expr: str, when: str = "ec < target.ec.min") -> str:
    return f"""hydro 1.2

rule boost {{
  in NORMAL_RECIRC
  when {when}
  do {{ dose dose_nutrient {expr} guarded by can_dose }}
  repeat every 20m
}}
"""


def test_a_dose_from_reservoir_volume_and_error_is_a_volume(sets):
    expr = "dosing.t_per_100l * reservoir.volume / 100 L * (target.ec.min - ec) / 0.1 mS/cm"
    out, diags = _load(sets, {"s.hydro": SETTINGS, "r.hydro": _rule(expr)}, site={})
    assert diags == []
    (a,) = out.ruleset.rules["boost"].actions
    assert a.amount.dim == U.VOLUME


def test_a_quantity_times_a_percentage_is_the_quantity(sets):
    out, diags = _load(sets, {"s.hydro": SETTINGS, "r.hydro": _rule("reservoir.volume * 1%")}, site={})
    assert diags == []
    assert out.ruleset.rules["boost"].actions[0].amount.dim == U.VOLUME


@pytest.mark.parametrize(
    "expr, words",
    [("reservoir.volume * reservoir.volume", "volume*volume"), ("ec * 2 ml", "conductivity*volume")],
)
def test_a_product_that_is_not_a_volume_is_not_a_dose(sets, expr, words):
    out, diags = _load(sets, {"s.hydro": SETTINGS, "r.hydro": _rule(expr)}, site={})
    assert [c for c, *_ in diags] == ["HR201"] and words in diags[0][3]


def test_reservoir_volume_is_language_1_2(sets):
    text = _rule("2 ml", "reservoir.volume > 100 L").replace("hydro 1.2", "hydro 1.1")
    out, diags = _load(sets, {"r.hydro": text}, site={})
    assert [c for c, *_ in diags] == ["HR007"]


def test_filled_is_the_volume_a_channel_filled_in_some_states(sets):
    when = "filled(pump_fill, 1d, NORMAL_RECIRC) > 10 L"
    out, diags = _load(sets, {"r.hydro": _rule("2 ml", when)}, site={})
    assert diags == []
    cmp = out.ruleset.rules["boost"].cond.expr
    assert cmp.left == M.Func("filled", ("pump_fill", cmp.left.args[1], ("NORMAL_RECIRC",)), U.VOLUME, cmp.left.span)
    assert cmp.left.args[1].value == 86400


@pytest.mark.parametrize(
    "call, code",
    [
        ("filled(pump_fil, 1d)", "HR102"),
        ("filled(pump_fill, 1d, NORMAL_RECIRK)", "HR103"),
        ("filled(pump_fill)", "HR109"),
        ("filled(pump_fill, ec)", "HR201"),
    ],
)
def test_filled_mistakes(sets, call, code):
    out, diags = _load(sets, {"r.hydro": _rule("2 ml", f"{call} > 10 L")}, site={})
    assert [c for c, *_ in diags] == [code]


# ---- dose groups -----------------------------------------------------------------------------------------------
GROUP = """hydro 1.2

rule boost_ab {
  in NORMAL_RECIRC
  when ec < target.ec.min
  do { dose dose_nutrient 5 ml then dose_nutrient_b 5 ml after dosing.t_ab_wait guarded by can_dose }
  repeat every 20m
}
"""


def test_a_dose_group_doses_one_doser_after_another(sets):
    site = {
        "site.hydro": (
            "      dose_nutrient on nd-dose-1",
            "      dose_nutrient_b on nd-dose-1 channel b\n      dose_nutrient on nd-dose-1",
        )
    }
    out, diags = _load(sets, {"s.hydro": SETTINGS, "r.hydro": GROUP}, site=site)
    assert [c for c, *_ in diags] == []
    (a,) = out.ruleset.rules["boost_ab"].actions
    ((ch, amount, wait, setting),) = a.then
    assert (ch, amount.value, wait, setting) == ("dose_nutrient_b", 0.005, 300.0, "dosing.t_ab_wait")


def test_every_channel_of_a_dose_group_is_a_doser(sets):
    text = GROUP.replace("then dose_nutrient_b", "then pump_fill")
    out, diags = _load(sets, {"s.hydro": SETTINGS, "r.hydro": text}, site={})
    assert "HR113" in [c for c, *_ in diags]
    assert any("pump_fill" in m and "doser" in m for c, _, _, m in diags if c == "HR113")


# ---- replace and extend ------------------------------------------------------------------------------------------
REPLACE = """hydro 1.2

replace alert biz_low_ec {
  source biz
  severity warning
  text "EC below the recipe"
  when ec < target.ec.min * 0.9 for 30m
  clear when ec >= target.ec.min for 10m
}
"""


def test_replace_takes_the_place_of_the_standard_definition(sets):
    out, diags = _load(sets, {"a.hydro": REPLACE}, site={})
    assert diags == []
    alert = out.ruleset.alerts["biz_low_ec"]
    assert alert.text == "EC below the recipe"
    (info,) = [x for x in out.diags.infos if x.code == "HR602"]
    assert info.message.startswith("alert `biz_low_ec` of ") and "alerts.hydro:" in info.message
    assert info.message.endswith("replaced here") and (info.span.line, info.span.column) == (3, 15)
    ((how, kind, name, new, old),) = out.ruleset.replaced
    assert (how, kind, name, Path(old.path).name) == ("replace", "alert", "biz_low_ec", "alerts.hydro")


def test_replacing_what_no_used_rule_set_defines_is_an_error(sets):
    text = REPLACE.replace("biz_low_ec", "biz_low_ecc")
    out, diags = _load(sets, {"a.hydro": text}, site={})
    assert [(c, line) for c, _, line, _ in diags] == [("HR115", 3)]
    assert out.diags.items[0].hint == "did you mean `biz_low_ec`?"


def test_replacing_a_definition_of_the_site_itself_is_an_error(sets):
    own = REPLACE.replace("replace alert biz_low_ec", "alert biz_very_low_ec")
    text = REPLACE.replace("biz_low_ec", "biz_very_low_ec")
    out, diags = _load(sets, {"a.hydro": own, "b.hydro": text}, site={})
    assert [(c, f) for c, f, _, _ in diags] == [("HR115", "b.hydro")]


def test_a_plain_second_definition_stays_a_duplicate(sets):
    text = REPLACE.replace("replace alert", "alert")
    out, diags = _load(sets, {"a.hydro": text}, site={})
    assert [c for c, *_ in diags] == ["HR107"]


def test_extend_adds_states_transitions_and_denies(sets):
    text = """hydro 1.2

extend machine water_cycle {
  state TOPUP {
    enter { start pump_fill guarded by can_run_pump, no_overflow, tank_is_sound }
    go NORMAL_RECIRC when water_level >= levels.target
    fail after 20m
  }
  state NORMAL_RECIRC {
    go TOPUP when water_level < levels.min for 10m
  }
}

extend guard can_dose for each doser {
  deny "the solution is too warm" when temp_water > 30 °C
}

extend metric ph {
  alias PH_1
}
"""
    out, diags = _load(sets, {"x.hydro": text}, site={})
    assert diags == []
    m = out.ruleset.machines["water_cycle"]
    assert "TOPUP" in m.states and m.states["NORMAL_RECIRC"].transitions[-1].target == "TOPUP"
    assert m.states["NORMAL_RECIRC"].transitions[0].target == "WATER_CHANGE_DRAIN"  # kept, in front
    assert out.ruleset.guards["can_dose"].denies[-1].reason == "the solution is too warm"
    assert out.ruleset.aliases["PH_1"] == "ph"
    assert sorted(x.message.split(" of ")[0] for x in out.diags.infos if x.code == "HR602") == [
        "guard `can_dose`",
        "machine `water_cycle`",
        "metric `ph`",
    ]


# ---- zones: settings, windows, light, night targets --------------------------------------------------------------
ZONE_SETTINGS = """      reservoir 120 L
      settings {
        levels { min 20% }
        water_cycle { recirc { window 06:00 to 20:00 duty 50% period 20m max_off 10m  window 20:00 to 06:00 off } }
      }
      light 06:00 to 20:00
"""


def test_a_zone_sets_its_own_settings_windows_and_light(sets):
    site = {"site.hydro": ("      reservoir 120 L\n", ZONE_SETTINGS)}
    out, diags = _load(sets, {}, site=site)
    assert [c for c, *_ in diags if c not in ("HR407",)] == []
    zone = out.ruleset.sites[0].zones[0]
    assert zone.settings == {"levels.min": 20.0}
    day, night = zone.windows
    assert (day.max_off_s, day.off, night.off, night.duty, night.start_s) == (600.0, False, True, 0.0, 72000.0)
    assert zone.light == (21600.0, 72000.0)
    other = out.ruleset.sites[0].zones[1]
    assert other.windows is None and other.light is None and other.settings == {}
    assert out.ruleset.zone_settings(zone)["levels.min"] == 20.0


def test_a_zone_setting_that_breaks_the_level_order_is_reported(sets):
    site = {"site.hydro": ("      reservoir 120 L\n", "      reservoir 120 L\n      settings { levels { min 95% } }\n")}
    out, diags = _load(sets, {}, site=site)
    assert [(c, line) for c, _, line, _ in diags] == [("HR203", 12)]


def test_the_site_light_is_every_zone_s_unless_the_zone_has_its_own(sets):
    site = {"site.hydro": ('  timezone "UTC"\n', '  timezone "UTC"\n  light 05:00 to 21:00\n')}
    out, diags = _load(sets, {}, site=site)
    assert diags == []
    s = out.ruleset.sites[0]
    assert s.light == (18000.0, 75600.0) and all(z.light == s.light for z in s.zones)


NIGHT = """hydro 1.2

recipe lettuce_nights "Lettuce with nights" {
  phase all days 0 .. {
    ph 5.8 .. 6.2 night 6.0 .. 6.4
    ec 1.4 mS/cm .. 1.8 mS/cm night 1.2 mS/cm .. 1.6 mS/cm
    ideal_change_interval 7d night 8d
    dosing { nutrient_dose 8 ml }
  }
}
"""


def test_night_targets_and_phase_settings(sets):
    site = {
        "site.hydro": (
            "      recipe lettuce\n      planted 2025-12-20\n",
            "      recipe lettuce_nights\n      planted 2025-12-20\n      light 06:00 to 20:00\n",
        )
    }
    out, diags = _load(sets, {"n.hydro": NIGHT}, site=site)
    assert [c for c, *_ in diags if c != "HR502"] == []  # (recipe lettuce is no longer used)
    (phase,) = out.ruleset.recipes["lettuce_nights"].phases
    assert phase.night_targets == {"ph": (6.0, 6.4), "ec": (1.2, 1.6)}
    assert phase.night_values == {"ideal_change_interval": 8 * 86400.0}
    assert phase.settings == {"dosing.nutrient_dose": pytest.approx(0.008)}


def test_a_zone_with_night_targets_needs_light(sets):
    site = {
        "site.hydro": (
            "      recipe lettuce\n      planted 2025-12-20\n",
            "      recipe lettuce_nights\n      planted 2025-12-20\n",
        )
    }
    out, diags = _load(sets, {"n.hydro": NIGHT}, site=site)
    assert [(c, line) for c, _, line, _ in diags if c != "HR502"] == [("HR206", 7)]
    assert "light" in diags[0][3] and "lettuce_nights" in diags[0][3]


def test_a_night_range_upside_down(sets):
    text = NIGHT.replace("night 6.0 .. 6.4", "night 6.4 .. 6.0")
    out, diags = _load(sets, {"n.hydro": text}, site={"recipes.hydro": ("recipe lettuce", "recipe lettuce_unused")})
    assert "HR203" in [c for c, *_ in diags]


# ---- a zone binds only what it has ---------------------------------------------------------------------------------
def test_a_zone_without_dosers_lists_what_is_inactive_there(sets):
    site = {
        "site.hydro": (
            "      dose_ph_down on nd-dose-1 channel pump_acid\n"
            "      dose_nutrient on nd-dose-1 channel pump_nutrient\n",
            "",
        )
    }
    out, diags = _load(sets, {}, site=site)
    assert "HR305" not in [c for c, *_ in diags]
    (info,) = [x for x in out.diags.infos if x.code == "HR603" and "zn-1" in x.message]
    assert info.message.startswith("in zone `zn-1`, ") and "rule correct_low_ec (zone zn-1 binds no" in info.message
    assert out.ruleset.sites[0].zones[0].uid == "zn-1"  # the zone is built, not dropped


def test_a_zone_where_the_machine_cannot_start_is_an_error(sets):
    site = {"site.hydro": ("      pump_recirc on nd-pump-1\n", "")}
    out, diags = _load(sets, {}, site=site)
    assert [(c, line) for c, _, line, _ in diags] == [("HR305", 7)]
    assert out.diags.items[0].hint == "bind `pump_recirc on NODE-UID`"


def test_a_constant_times_a_percentage_folds_to_that_share(sets):
    out, diags = _load(sets, {"r.hydro": _rule("5 ml * 10%")}, site={})
    assert diags == []
    amount = out.ruleset.rules["boost"].actions[0].amount
    assert (amount.dim, amount.value) == (U.VOLUME, pytest.approx(0.0005))


def test_a_percentage_of_a_percentage_is_a_fraction(sets):
    out, diags = _load(sets, {"r.hydro": _rule("2 ml", "levels.min * 50% < 0.1")}, site={})
    assert diags == []
    assert out.ruleset.rules["boost"].cond.expr.left.dim == U.NUMBER


# ---- names: the same words in another order -------------------------------------------------------------------
@pytest.mark.parametrize(
    "when, code, hint",
    [
        ("water_temp > 26 °C", "HR101", "did you mean `temp_water`?"),
        ("level_water < 10%", "HR101", "did you mean `water_level`?"),
        ("biz_ec_low is active", "HR104", "did you mean `biz_low_ec`?"),
        ("recirc_pump is on", "HR102", "did you mean `pump_recirc`?"),
        ("ec < target.ec.min and levels.min_x > 1%", "HR111", None),
    ],
)
def test_a_name_with_its_words_reordered_suggests_the_known_one(sets, when, code, hint):
    out, diags = _load(sets, {"r.hydro": _rule("2 ml", when)}, site={})
    assert [c for c, *_ in diags] == [code]
    if hint:
        assert out.diags.items[0].hint == hint


def test_a_profile_setting_with_its_words_reordered(sets):
    profile = ("    nutrient_dose 5 ml\n", "    nutrient_dose 5 ml\n    dose_nutrient 5 ml\n")
    out, diags = _load(sets, {}, site={"profiles.hydro": profile})
    assert [c for c, *_ in diags] == ["HR111"] and out.diags.items[0].hint == "did you mean `nutrient_dose`?"


def test_a_duration_setting_in_a_1_1_file_is_reported_once(sets):
    text = MACHINE.replace("hydro 1.2", "hydro 1.1").replace("after tank.timeout", "after 20m")
    text = text.replace("after water_change.t_fill_timeout", "after 30m")
    out, diags = _load(sets, {"s.hydro": SETTINGS, "m.hydro": text}, site={})
    assert [(c, f, line) for c, f, line, _ in diags] == [("HR007", "m.hydro", 7)]


# ---- goldens: HR115, HR602, HR603, HR206 (light) on a small library of its own -------------------------------------
LIB = """hydro 1.2

metric ec {
  unit mS/cm
  range 0 .. 10
  stale after 5m
}

metric water_level {
  unit %
  range 0 .. 100
  stale after 5m
}

channel pump_recirc {
  kind pump
  fail_safe NC
}

channel dose_nutrient {
  kind doser
  fail_safe NO
}

guard can_run_pump for each pump {
  deny "locked by a safety alert" when pump is locked
}

guard can_dose for each doser {
  deny "nothing circulates" when not (pump_recirc is on)
}

machine cycle {
  initial RUN

  state RUN {
    enter { recirculate pump_recirc guarded by can_run_pump }
    go PAUSE when ec > 9 mS/cm
  }

  state PAUSE {
    enter { stop pump_recirc }
    go RUN after 5m
  }
}

rule feed {
  in RUN
  when ec < target.ec.min for 10m
  do { dose dose_nutrient 5 ml guarded by can_dose }
  repeat every 20m
}

alert biz_low_ec {
  source biz
  severity warning
  text "EC low"
  when ec < 1 mS/cm for 10m
  clear when ec > 1.2 mS/cm for 10m
}
"""

SITE = """hydro 1.2

replace alert biz_low_ec {
  source biz
  severity warning
  text "EC well below the recipe"
  when ec < target.ec.min * 0.8 for 30m
  clear when ec >= target.ec.min for 10m
}

extend alert biz_high_ec {
  text "EC high"
}

profile standard {
  water_cycle { recirc { window 00:00 to 24:00 duty 100% period 20m } }
}

recipe greens "Greens" {
  phase all days 0 .. {
    ec 1.0 mS/cm .. 1.4 mS/cm night 0.8 mS/cm .. 1.2 mS/cm
  }
}

site farm "Farm" {
  greenhouse gh {
    zone zn-1 "No dosing" {
      profile standard
      recipe greens
      reservoir 80 L
      pump_recirc on nd-1
      ec from nd-2
      water_level from nd-2
    }
  }
}
"""


def test_goldens(sets, snapshot):
    from hydro_rules.commands.check import collect
    from hydro_rules.lang import render

    lib = sets.make({"lib.hydro": LIB, "ruleset.hydro": 'hydro 1\nruleset lib version "2026.11.1"\n'})
    manifest = f'hydro 1\nruleset site version "2026.11.1"\nuse "../{lib.name}"\n'
    site = sets.make({"site.hydro": SITE, "ruleset.hydro": manifest})
    infos: list = []
    diags, sources = collect([site.name], infos)
    assert render.to_text(diags + infos, sources) == snapshot


# ---- the other mistakes of 1.2 items -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "zone_items, code, needle",
    [
        (
            "      settings { levels { min 20% } }\n      settings { levels { min 25% } }\n",
            "HR107",
            "one `settings` block",
        ),
        ("      light 06:00 to 20:00\n      light 07:00 to 21:00\n", "HR107", "`light` is given twice"),
        ("      light 06:00 to 06:00\n", "HR204", "the light goes off when it comes on"),
        (
            "      settings { water_cycle { recirc { window 00:00 to 24:00 duty 50% period 20m max_off 0s } } }\n",
            "HR204",
            "`max_off` must be longer than 0",
        ),
        ("      settings { levels { minimum 20% } }\n", "HR111", "unknown setting `minimum`"),
    ],
)
def test_zone_item_mistakes(sets, zone_items, code, needle):
    site = {"site.hydro": ("      reservoir 120 L\n", "      reservoir 120 L\n" + zone_items)}
    out, diags = _load(sets, {}, site=site)
    assert [c for c, *_ in diags] == [code] and needle in diags[0][3]


def test_a_window_in_declared_settings_or_a_phase_is_reported(sets):
    decl = "hydro 1.2\n\nsettings {\n  window 00:00 to 24:00 duty 50% period 20m\n}\n"
    phase = NIGHT.replace(
        "dosing { nutrient_dose 8 ml }", "water_cycle { recirc { window 00:00 to 24:00 duty 50% period 20m } }"
    )
    site = {"recipes.hydro": ("recipe lettuce", "recipe lettuce_unused")}
    out, diags = _load(sets, {"d.hydro": decl, "n.hydro": phase}, site=site)
    assert sorted((c, f) for c, f, _, _ in diags if c == "HR111") == [("HR111", "d.hydro"), ("HR111", "n.hydro")]


def test_extend_keeps_the_initial_state(sets):
    text = "hydro 1.2\n\nextend machine water_cycle {\n  initial WATER_CHANGE_FILL\n}\n"
    out, diags = _load(sets, {"x.hydro": text}, site={})
    assert [(c, line) for c, _, line, _ in diags] == [("HR107", 4)]
    assert out.ruleset.machines["water_cycle"].initial == "NORMAL_RECIRC"


def test_replacing_twice_is_a_duplicate(sets):
    out, diags = _load(sets, {"a.hydro": REPLACE, "b.hydro": REPLACE}, site={})
    assert [(c, f) for c, f, _, _ in diags] == [("HR107", "b.hydro")]
