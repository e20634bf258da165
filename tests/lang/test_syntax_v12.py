"""Language 1.2 syntax: each addition parses to its syntax-tree shape, a `hydro 1` or `hydro 1.1`
file that uses one is told which version it needs (HR007), and fmt prints each one canonically."""

from __future__ import annotations

import pytest

from hydro_rules.lang import ast as A
from hydro_rules.lang.diagnostics import Diagnostics
from hydro_rules.lang.formatter import format_text
from hydro_rules.lang.grammar import grammar_text
from hydro_rules.lang.parser import parse_text


def _parse(text: str, header: str = "hydro 1.2"):
    diags = Diagnostics()
    tree = parse_text(f"{header}\n{text}", "t.hydro", diags)
    return tree, diags.sorted()


def _one(text: str):
    tree, diags = _parse(text)
    assert diags == [], [d.message for d in diags]
    (decl,) = tree.decls
    return decl


def test_settings_declaration():
    d = _one("settings {\n  water_change { drain_timeout 30m  fill_timeout 30m }\n  topup { enabled yes }\n}\n")
    assert isinstance(d, A.SettingsDecl) and (d.span.line, d.span.column) == (2, 1)
    wc, topup = d.items
    assert wc.key.name == "water_change" and [s.key.name for s in wc.items] == ["drain_timeout", "fill_timeout"]
    assert wc.items[0].value.value == 1800.0 and topup.items[0].value.value is True


def test_zone_settings_and_light_and_site_light():
    d = _one(
        "site s-1 {\n  light 06:00 to 20:00\n  greenhouse gh-1 {\n    zone zn-1 {\n"
        "      light 05:00 to 21:00\n      light from nd-1\n"
        "      settings { water_change { fill_timeout 45m } }\n    }\n  }\n}\n"
    )
    site_light, gh = d.items
    assert isinstance(site_light, A.Light) and (site_light.start.value, site_light.end.value) == (21600.0, 72000.0)
    light, binding, settings = gh.zones[0].items
    assert isinstance(light, A.Light) and light.start.text == "05:00" and (light.span.line, light.span.column) == (6, 7)
    assert isinstance(binding, A.Binding) and binding.name.name == "light" and binding.is_metric
    assert isinstance(settings, A.SettingsDecl) and settings.items[0].items[0].value.value == 2700.0


def test_a_zone_item_name_before_a_time_is_a_syntax_error():
    _, diags = _parse("site s-1 { greenhouse gh-1 { zone zn-1 { lights 05:00 to 21:00 } } }\n")
    assert [d.code for d in diags] == ["HR003"]


def test_windows_with_max_off_and_off():
    d = _one(
        "profile p { recirc {\n  window 06:00 to 20:00 duty 50% period 20m max_off 10m\n"
        "  window 20:00 to 06:00 off\n} }\n"
    )
    day, night = d.items[0].items
    assert (day.duty.value, day.period.value, day.max_off.value, day.off) == (50.0, 1200.0, 600.0, False)
    assert (night.duty, night.period, night.max_off, night.off) == (None, None, None, True)
    assert night.end.text == "06:00"


def test_night_targets_and_phase_settings():
    d = _one(
        "recipe r { phase growth days 14 .. {\n"
        "  ec 1.4 mS/cm .. 1.8 mS/cm night 1.2 mS/cm .. 1.6 mS/cm\n"
        "  ph 5.8 .. 6.2\n"
        "  temp_water 20 °C night 18 °C\n"
        "  dosing { nutrient_dose 8 ml }\n} }\n"
    )
    ec, ph, temp, dosing = d.phases[0].targets
    assert isinstance(ec, A.TargetRange) and [x.text for x in ec.night] == ["1.2 mS/cm", "1.6 mS/cm"]
    assert ph.night is None
    assert isinstance(temp, A.Setting) and temp.value.text == "20 °C" and temp.night.text == "18 °C"
    assert isinstance(dosing, A.Section) and dosing.items[0].key.name == "nutrient_dose"


def test_durations_written_as_settings():
    d = _one(
        "machine m { initial A\n  state A {\n    go B when x > 1 for dosing.hold\n"
        "    go C after water_change.stabilize_time\n    fail after water_change.fill_timeout\n"
        "    go D every 1d at 06:00 when y for 5m\n  }\n}\n"
    )
    when, after, fail, sched = d.states[0].transitions
    assert isinstance(when.trigger.cond.hold, A.Path) and when.trigger.cond.hold.dotted == "dosing.hold"
    assert after.trigger.after.dotted == "water_change.stabilize_time" and not after.is_fail
    assert fail.is_fail and fail.trigger.after.dotted == "water_change.fill_timeout"
    assert isinstance(sched.trigger.cond.hold, A.Literal)
    rule = _one("rule r { when x for dosing.hold do event e repeat every dosing.repeat }\n")
    when, _, repeat = rule.items
    assert when.cond.hold.dotted == "dosing.hold"
    assert repeat.keyword == "repeat every" and repeat.values[0].dotted == "dosing.repeat"
    alert = _one("alert a { when x for alerts.hold clear when not x for alerts.clear_hold }\n")
    assert [i.cond.hold.dotted for i in alert.items] == ["alerts.hold", "alerts.clear_hold"]


def test_dose_groups():
    d = _one(
        "rule r { do dose dose_a 5 ml then dose_b 2 * 3 ml after dosing.ab_wait "
        "then dose_a 1 ml after 30s guarded by can_dose, other }\n"
    )
    (action,) = d.items[0].actions.items
    assert (action.verb, action.target.name, action.amount.text) == ("dose", "dose_a", "5 ml")
    assert [g.name for g in action.guards] == ["can_dose", "other"]
    b, a = action.then
    assert b.channel.name == "dose_b" and isinstance(b.amount, A.Binary) and b.wait.dotted == "dosing.ab_wait"
    assert a.channel.name == "dose_a" and a.wait.value == 30.0
    plain = _one("rule r { do dose dose_a 5 ml guarded by can_dose }\n").items[0].actions.items[0]
    assert plain.then == ()


@pytest.mark.parametrize(
    "how, text, kind",
    [
        ("replace", "alert biz_low_ec { when ec < 1 mS/cm }", A.AlertDecl),
        ("extend", 'guard can_dose for each doser { deny "x" when y }', A.GuardDecl),
        ("extend", "machine water_cycle { state NEW { go OLD when x } }", A.MachineDecl),
        ("extend", "metric ph { alias PH_1 }", A.MetricDecl),
        ("replace", "channel c { kind pump }", A.ChannelDecl),
        ("replace", "rule r { when x do event e }", A.RuleDecl),
        ("replace", "profile p { }", A.ProfileDecl),
        ("replace", "recipe r { phase a days 0 .. { } }", A.RecipeDecl),
    ],
)
def test_replace_and_extend(how, text, kind):
    d = _one(f"{how} {text}\n")
    assert isinstance(d, A.Amend) and d.how == how and isinstance(d.decl, kind)
    assert (d.span.line, d.span.column, d.span.end_line) == (2, 1, 2)


# ---- earlier versions ------------------------------------------------------------------------
CONSTRUCTS = [
    ("settings { a { b 1m } }\n", "settings", 2, 1),
    ("replace alert x { when y }\n", "replace alert", 2, 1),
    ("extend metric ph { alias P }\n", "extend metric", 2, 1),
    ("site s-1 { light 06:00 to 20:00 }\n", "light", 2, 12),
    ("site s-1 { greenhouse g-1 { zone z-1 { light 06:00 to 20:00 } } }\n", "light", 2, 40),
    ("site s-1 { greenhouse g-1 { zone z-1 { settings { a { b 1m } } } } }\n", "settings", 2, 40),
    ("profile p { window 06:00 to 20:00 duty 50% period 20m max_off 10m }\n", "max_off", 2, 55),
    ("profile p { window 20:00 to 06:00 off }\n", "off", 2, 20),
    ("recipe r { phase a days 0 .. { ph 5.8 .. 6.2 night 6 .. 6.4 } }\n", "night", 2, 46),
    ("recipe r { phase a days 0 .. { ec 1 night 2 } }\n", "night", 2, 37),
    ("recipe r { phase a days 0 .. { dosing { d 8 ml } } }\n", "dosing { ... }", 2, 32),
    ("rule r { when x for dosing.hold }\n", "for dosing.hold", 2, 21),
    ("rule r { repeat every dosing.repeat }\n", "repeat every dosing.repeat", 2, 23),
    ("machine m { state A { go B after w.s } }\n", "after w.s", 2, 34),
    ("machine m { state A { fail after w.f } }\n", "fail after w.f", 2, 34),
    ("rule r { do dose a 1 ml then b 1 ml after 1m }\n", "then", 2, 18),
]


@pytest.mark.parametrize("header", ["hydro 1", "hydro 1.1"])
@pytest.mark.parametrize("text, words, line, col", CONSTRUCTS, ids=[c[1] for c in CONSTRUCTS])
def test_a_1_2_construct_in_an_earlier_file_is_told_to_say_hydro_1_2(header, text, words, line, col):
    tree, diags = _parse(text, header)
    assert [(d.code, d.span.line, d.span.column) for d in diags] == [("HR007", line, col)]
    version = header.split()[1]
    assert diags[0].message == f"`{words}` is language 1.2, but this file starts with `hydro {version}`"
    assert diags[0].hint == "write `hydro 1.2` on the first line"
    assert len(tree.decls) == 1 and tree.broken == ()
    assert _parse(text)[1] == []


def test_a_hydro_1_file_with_a_1_1_construct_is_still_told_1_1():
    _, diags = _parse("metric x {\n  implausible zero\n}\n", "hydro 1")
    assert [(d.code, d.message, d.hint) for d in diags] == [
        (
            "HR007",
            "`implausible zero` is language 1.1, but this file starts with `hydro 1`",
            "write `hydro 1.1` on the first line",
        )
    ]


def test_a_hydro_1_file_with_1_1_and_1_2_constructs_names_each_ones_version():
    _, diags = _parse("metric x {\n  implausible zero\n}\nextend metric y {\n  alias Y\n}\n", "hydro 1")
    assert [d.message.split(" but")[0] for d in diags] == [
        "`implausible zero` is language 1.1,",
        "`extend metric` is language 1.2,",
    ]
    _, diags = _parse("metric x {\n  implausible zero\n  alias X\n}\nextend metric y { alias Y }\n", "hydro 1")
    assert [d.hint for d in diags] == ["write `hydro 1.1` on the first line", "write `hydro 1.2` on the first line"]


def test_earlier_grammars_have_none_of_the_additions():
    v11, v12 = grammar_text("1.1"), grammar_text("1.2")
    assert v12.startswith(v11)
    for word in ('"settings"', '"light"', '"max_off"', '"night"', '"then"', '"replace"', '"extend"'):
        assert word not in v11 and word in v12


def test_a_1_2_construct_with_a_syntax_error_in_a_1_1_file_is_a_syntax_error():
    _, diags = _parse("profile p { window 20:00 to 06:00 off duty }\n", "hydro 1.1")
    assert [d.code for d in diags] == ["HR003"]


# ---- fmt ------------------------------------------------------------------------------------------
ROUND_TRIPS = [
    "settings {\n  water_change {\n    drain_timeout 30m\n  }\n}\n",
    "replace alert biz_low_ec {\n  when ec < 1 mS/cm for dosing.hold\n}\n",
    "extend machine m {\n  state A {\n    fail after w.fill_timeout do { raise x }\n"
    "    go B after w.stabilize_time\n  }\n}\n",
    "profile p {\n  recirc {\n    window 06:00 to 20:00 duty 50% period 20m max_off 10m\n"
    "    window 20:00 to 06:00 off\n  }\n}\n",
    "recipe r {\n  phase a days 0 .. {\n    ec 1.4 mS/cm .. 1.8 mS/cm night 1.2 mS/cm .. 1.6 mS/cm\n"
    "    temp_water 20 °C night 18 °C\n    dosing {\n      nutrient_dose 8 ml\n    }\n  }\n}\n",
    "rule r {\n  when x for dosing.hold\n  do { dose a 1 ml then b 2 ml after dosing.ab_wait guarded by g }\n"
    "  repeat every dosing.repeat\n}\n",
    "site s-1 {\n  light 06:00 to 20:00\n  greenhouse g-1 {\n    zone z-1 {\n      light 05:00 to 21:00\n"
    "      settings {\n        w {\n          fill_timeout 45m\n        }\n      }\n    }\n  }\n}\n",
]


@pytest.mark.parametrize("text", ROUND_TRIPS)
def test_canonical_1_2_text_formats_to_itself(text):
    text = "hydro 1.2\n\n" + text
    assert format_text(text, "t.hydro") == text


def test_a_long_dose_group_puts_each_then_on_its_own_line():
    amount = "dosing.nutrient_per_100l * reservoir.volume / 100 L * (target.ec.min - ec) / 0.1 mS/cm"
    text = f"hydro 1.2\n\nrule r {{ do dose a {amount} then b {amount} after dosing.ab_wait guarded by g }}\n"
    out = format_text(text, "t.hydro")
    assert out == (
        "hydro 1.2\n\nrule r {\n  do {\n"
        f"    dose a {amount}\n      then b {amount} after dosing.ab_wait\n      guarded by g\n  }}\n}}\n"
    )
    assert format_text(out, "t.hydro") == out


def test_comments_in_1_2_constructs_are_kept_and_fmt_is_idempotent():
    text = (
        "hydro 1.2\nprofile p { window 20:00 to 06:00 # w\n off\n"
        " window 06:00 to 20:00 duty 50% # a\n  period 20m  max_off # b\n  10m\n}\n"
        "rule r {\n  do {\n    dose a 1 ml  # first\n      then b 2 ml after dosing.ab_wait  # second\n"
        "    # before guards\n      guarded by g\n  }\n}\n"
    )
    once = format_text(text, "t.hydro")
    assert format_text(once, "t.hydro") == once
    assert [line.strip() for line in once.splitlines() if line.strip().startswith("#")] == [
        "# w",
        "# a",
        "# b",
        "# first",
        "# second",
        "# before guards",
    ]
