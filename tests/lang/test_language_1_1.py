"""Language 1.1: the header, the plausibility of a metric's readings, what a doser affects, a
node's capabilities, `METRIC is stale|frozen|implausible`, and that `hydro 1` stays as it was."""

from __future__ import annotations

import pytest

from hydro_rules.commands.check import collect
from hydro_rules.engine import interp
from hydro_rules.engine.codegen import ExprCompiler
from hydro_rules.lang import model as M
from hydro_rules.lang import render
from hydro_rules.lang import settings as S
from hydro_rules.lang.diagnostics import Diagnostics
from hydro_rules.lang.formatter import format_text
from hydro_rules.lang.loader import load
from hydro_rules.lang.parser import parse_text

VOCABULARY = """hydro 1.1

metric nitrate {
  text "nitrate in the nutrient solution"
  unit ppm
  range 0 ppm .. 2000 ppm
  stale after 10m
  frozen after 2h
  implausible zero
  implausible at limits
  max_step 200 ppm per 1m
}

channel dose_calcium {
  text "calcium nitrate dosing pump"
  kind doser
  fail_safe NO
  affects nitrate up by 5 ppm
}

channel dose_acid {
  text "acid dosing pump"
  kind doser
  fail_safe NO
  affects nitrate down
}

alert infra_nitrate_probe {
  source infra
  severity warning
  text "The nitrate probe sends readings that cannot be true"
  when nitrate is implausible or nitrate is frozen for 5m
  clear when not (nitrate is stale) and nitrate is known
}
"""

#: a small site of its own (no standard rules), for what a greenhouse declares of its nodes
SITE = """hydro 1.1

metric level {
  unit %
  range 0% .. 100%
  stale after 5m
}

channel pump_main {
  kind pump
  fail_safe NC
}

profile basic {
}

recipe greens {
  phase all days 0 .. {
    level 20% .. 90%
  }
}

site farm-1 {
  greenhouse gh-1 {
    node nd-pump-1 { bounded_off yes }
    node nd-pump-2 { bounded_off no }
    zone zn-1 {
      profile basic
      recipe greens
      reservoir 100 L
      pump_main on nd-pump-1
      level from nd-level-1
    }
    zone zn-2 {
      profile basic
      recipe greens
      reservoir 100 L
      pump_main on nd-pump-2
      level from nd-pump-1
    }
  }
  greenhouse gh-2 {
    zone zn-3 {
      profile basic
      recipe greens
      reservoir 100 L
      pump_main on nd-pump-1 channel relay_2
    }
  }
}
"""


def _lone(sets, files: dict[str, str]):
    """A rule set of `files` alone (no standard rules): its diagnostics and model."""
    d = sets.make(files, use_rules=False)
    diags, _ = collect([str(d.relative_to(sets.root))])
    return diags, load(d.relative_to(sets.root)).ruleset


def _parse(text: str):
    diags = Diagnostics()
    tree = parse_text(text, "t.hydro", diags)
    return tree, diags.sorted()


# ---- the header ----------------------------------------------------------------------------------
def test_vocabulary_in_1_1_is_clean_and_fills_the_model(sets):
    d = sets.make({"vocabulary.hydro": VOCABULARY})
    assert sets.check(d) == []
    rs = load(d.relative_to(sets.root)).ruleset
    m = rs.metrics["nitrate"]
    assert (m.frozen_s, m.implausible_zero, m.implausible_at_limits, m.max_step) == (7200.0, True, True, (200.0, 60.0))
    assert rs.channels["dose_calcium"].affects == ("nitrate", 1, 5.0)
    assert rs.channels["dose_acid"].affects == ("nitrate", -1, None)


def test_metrics_channels_and_zones_without_1_1_items_keep_the_defaults(sets):
    text = VOCABULARY.replace("hydro 1.1", "hydro 1")
    for item in ("frozen after 2h", "implausible zero", "implausible at limits", "max_step 200 ppm per 1m"):
        text = text.replace(f"  {item}\n", "")
    text = text.replace("  affects nitrate up by 5 ppm\n", "").replace("  affects nitrate down\n", "")
    text = text.split("alert infra_nitrate_probe")[0]
    site = SITE.replace("    node nd-pump-1 { bounded_off yes }\n    node nd-pump-2 { bounded_off no }\n", "")
    diags, rs = _lone(sets, {"v.hydro": text, "site.hydro": site})
    assert [x.code for x in diags] == ["HR502", "HR502"]  # (the two dosers no zone binds)
    m = rs.metrics["nitrate"]
    assert (m.frozen_s, m.implausible_zero, m.implausible_at_limits, m.max_step) == (None, False, False, None)
    assert rs.channels["dose_calcium"].affects is None
    assert [z.bounded_off_nodes for z in rs.zones] == [frozenset()] * 3


def test_max_step_and_affects_amounts_are_in_base_units(sets):
    text = VOCABULARY.replace("200 ppm per 1m", "0.5 ppm per 30s").replace("metric nitrate", "metric nitrate")
    text = text.replace("unit ppm\n  range 0 ppm .. 2000 ppm", "unit mS/cm\n  range 0 mS/cm .. 10 mS/cm")
    text = text.replace("0.5 ppm per 30s", "500 uS/cm per 30s").replace("by 5 ppm", "by 20 uS/cm")
    rs = load(sets.make({"v.hydro": text}, use_rules=False).relative_to(sets.root)).ruleset
    assert rs.metrics["nitrate"].max_step == pytest.approx((0.5, 30.0))
    assert rs.channels["dose_calcium"].affects == ("nitrate", 1, pytest.approx(0.02))


def test_a_rule_set_may_mix_hydro_1_and_1_1_files(sets):
    alert = sets.ALERT.replace("when temp_water > 26 °C for 15m", "when temp_water > 26 °C and not (ec is frozen)")
    alert_1_1 = alert.replace("hydro 1\n", "hydro 1.1\n")
    assert sets.check({"old.hydro": sets.ALERT, "new.hydro": alert_1_1.replace("biz_warm", "biz_hot")}) == []


@pytest.mark.parametrize(
    ("old", "new", "words"),
    [
        ("  stale after 10m\n", "  stale after 10m\n  frozen after 2h\n", "frozen after"),
        ("  stale after 10m\n", "  stale after 10m\n  implausible zero\n", "implausible zero"),
        ("  stale after 10m\n", "  stale after 10m\n  implausible at limits\n", "implausible at limits"),
        ("  stale after 10m\n", "  stale after 10m\n  max_step 5 ppm per 1m\n", "max_step"),
        ("  fail_safe NO\n", "  fail_safe NO\n  affects nitrate up\n", "affects"),
    ],
)
def test_a_1_1_item_in_a_hydro_1_file_is_told_to_say_hydro_1_1(sets, old, new, words):
    text = """hydro 1

metric nitrate {
  unit ppm
  range 0 ppm .. 2000 ppm
  stale after 10m
}

channel dose_calcium {
  kind doser
  fail_safe NO
}
"""
    text = text.replace(old, new)
    d = sets.one({"v.hydro": text})
    line = new.strip().splitlines()[-1].strip()
    assert sets.at(d) == ("HR007", *sets.pos(text, line))
    assert d.message == f"`{words}` is language 1.1, but this file starts with `hydro 1`"
    assert d.hint == "write `hydro 1.1` on the first line"
    assert sets.check({"v.hydro": text.replace("hydro 1\n", "hydro 1.1\n")}) == []


def test_a_node_in_a_hydro_1_file_is_told_to_say_hydro_1_1(sets):
    text = SITE.replace("hydro 1.1\n", "hydro 1\n")
    diags, _ = _lone(sets, {"site.hydro": text})
    assert [(x.code, x.span.line) for x in diags] == [("HR007", 25), ("HR007", 26)]
    assert diags[0].message == "`node` is language 1.1, but this file starts with `hydro 1`"


def test_a_hydro_1_file_parses_exactly_as_before_with_the_v1_grammar_alone():
    """The v1 grammar has none of the additions: a 1.1 keyword there is not read as one."""
    from hydro_rules.lang.grammar import grammar_text

    v1, v11 = grammar_text(1), grammar_text("1.1")
    assert v11.startswith(v1) and "%extend" not in v1
    for word in ('"frozen"', '"implausible"', '"max_step"', '"affects"', '"node"', '"convert"', '"flow_flag"'):
        assert word not in v1 and word in v11


def test_a_1_1_construct_with_a_syntax_error_in_a_hydro_1_file_is_a_syntax_error():
    tree, diags = _parse("hydro 1\n\nmetric x {\n  frozen after\n}\n")
    assert [d.code for d in diags] == ["HR003"]


def test_one_declaration_with_a_1_1_item_leaves_the_others_and_their_comments_alone():
    text = "hydro 1\n# a\nmetric a {\n  unit pH\n}\n\n# b\nmetric b {\n  implausible zero  # c\n}\n"
    tree, diags = _parse(text)
    assert [(d.code, d.span.line, d.span.column) for d in diags] == [("HR007", 9, 3)]
    assert [d.name.name for d in tree.decls] == ["a", "b"] and tree.broken == ()
    assert [c.text for c in tree.comments] == ["# a", "# b", "# c"]


# ---- metric items ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("old", "new", "code", "at", "message"),
    [
        ("max_step 200 ppm", "max_step 2 mS/cm", "HR201", "2 mS/cm", "the max_step of nitrate is in ppm"),
        ("max_step 200 ppm", "max_step 0 ppm", "HR204", "0 ppm per", "the `max_step` amount must be more than 0"),
        ("max_step 200 ppm", "max_step -5 ppm", "HR204", "-5 ppm", "the `max_step` amount must be more than 0"),
        ("per 1m", "per 0s", "HR204", "0s", "the `max_step` duration must be longer than 0"),
        ("frozen after 2h", "frozen after 0s", "HR204", "0s", "`frozen after` must be longer than 0"),
        ("  implausible zero\n", "  implausible zero\n  implausible zero\n", "HR107", None, "given twice"),
        ("  max_step", "  max_step 1 ppm per 1s\n  max_step", "HR107", "max_step 200", "given twice"),
    ],
)
def test_metric_item_mistakes(sets, old, new, code, at, message):
    text = VOCABULARY.replace(old, new, 1)
    diags = sets.check({"v.hydro": text})
    (d,) = [x for x in diags if x.code == code]
    assert message in d.message
    if at is not None:
        assert (d.span.line, d.span.column) == sets.pos(text, at)


def test_implausible_at_limits_without_a_range_says_why_the_range_is_needed(sets):
    text = VOCABULARY.replace("  range 0 ppm .. 2000 ppm\n", "")
    d = sets.one({"v.hydro": text})
    assert sets.at(d) == ("HR206", *sets.pos(text, "nitrate {"))
    assert d.message.endswith("`implausible at limits` reads its limits")


# ---- affects -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("old", "new", "code", "at", "message", "hint"),
    [
        ("affects nitrate up", "affects nitrat up", "HR101", "|nitrat up", "unknown metric `nitrat`", "`nitrate`"),
        ("affects nitrate up", "affects nitrate upp", "HR204", "|upp", "`up` or `down`, not `upp`", "`up`"),
        ("by 5 ppm", "by 5 mS/cm", "HR201", "|5 mS/cm", "is a conductivity", None),
        ("by 5 ppm", "by 0 ppm", "HR204", "by |0 ppm", "must be more than 0", None),
        ("  kind doser\n  fail_safe NO\n  affects nitrate up", "  kind pump\n  fail_safe NO\n  affects nitrate up",
         "HR113", "|affects nitrate up", "`dose_calcium` is a pump", "kind doser"),
        ("  affects nitrate up by 5 ppm\n", "  affects nitrate up by 5 ppm\n  affects nitrate down by 1 ppm\n",
         "HR107", "|affects nitrate down by", "`affects` is given twice", None),
    ],
)  # fmt: skip
def test_affects_mistakes(sets, old, new, code, at, message, hint):
    text = VOCABULARY.replace(old, new, 1)
    diags = sets.check({"v.hydro": text})
    (d,) = [x for x in diags if x.code == code]
    line, col = sets.pos(text, at.replace("|", ""))
    assert (d.span.line, d.span.column) == (line, col + at.index("|"))
    assert message in d.message
    assert hint is None or hint in d.hint


# ---- nodes ---------------------------------------------------------------------------------------
def test_bounded_off_nodes_are_those_the_zone_binds_in_its_own_greenhouse(sets):
    diags, rs = _lone(sets, {"site.hydro": SITE})
    assert diags == []
    zones = {z.uid: z.bounded_off_nodes for z in rs.zones}
    # zn-2 reads a sensor of nd-pump-1; zn-3 binds nd-pump-1 in a greenhouse that declares nothing
    assert zones == {"zn-1": {"nd-pump-1"}, "zn-2": {"nd-pump-1"}, "zn-3": frozenset()}


def test_a_node_no_zone_binds_is_a_warning(sets):
    text = SITE.replace("    node nd-pump-2 { bounded_off no }\n", "    node nd-spare { bounded_off yes }\n")
    text = text.replace("pump_main on nd-pump-2", "pump_main on nd-pump-3")
    diags, rs = _lone(sets, {"site.hydro": text})
    (d,) = diags
    assert (d.code, d.severity.value) == ("HR502", "warning")
    assert (d.span.line, d.span.column) == sets.pos(text, "nd-spare")
    assert "no zone of it binds the node" in d.message
    assert all("nd-spare" not in z.bounded_off_nodes for z in rs.zones)


def test_node_mistakes_are_positioned_goldens(sets, snapshot):
    cases = {
        "declared_twice": SITE.replace("node nd-pump-2 { bounded_off no }", "node nd-pump-1 { bounded_off no }"),
        "capability_typo": SITE.replace("node nd-pump-2 { bounded_off no }", "node nd-pump-2 { bounded_of no }"),
        "yes_or_no": SITE.replace("node nd-pump-2 { bounded_off no }", "node nd-pump-2 { bounded_off true }"),
        "given_twice": SITE.replace("{ bounded_off no }", "{\n      bounded_off no\n      bounded_off yes\n    }"),
        "unbound": SITE.replace("pump_main on nd-pump-2", "pump_main on nd-pump-3"),
    }
    out = []
    for name, text in cases.items():
        d = sets.make({"site.hydro": text}, use_rules=False)
        diags, sources = collect([str(d.relative_to(sets.root))])
        assert diags, name
        out.append(f"## {name}\n" + render.to_text(diags, sources).replace(d.name, "set"))
    assert "\n".join(out) == snapshot


def test_a_node_declared_twice_keeps_the_first_declaration(sets):
    text = SITE.replace("node nd-pump-2 { bounded_off no }", "node nd-pump-1 { bounded_off no }")
    diags, rs = _lone(sets, {"site.hydro": text})
    assert [x.code for x in diags] == ["HR107"]
    assert rs.zone("zn-1").bounded_off_nodes == {"nd-pump-1"}


# ---- METRIC is stale | frozen | implausible ------------------------------------------------------
def _alert_condition(sets, when: str, header: str = "hydro 1.1"):
    text = sets.ALERT.replace("hydro 1\n", header + "\n").replace("when temp_water > 26 °C for 15m", f"when {when}")
    d = sets.make({"a.hydro": text})
    diags, _ = collect([str(d.relative_to(sets.root))])
    rs = load(d.relative_to(sets.root)).ruleset
    return text, diags, rs


@pytest.mark.parametrize("word", ["stale", "frozen", "implausible"])
def test_metric_is_word_is_a_yes_no_metric_status(sets, word):
    _, diags, rs = _alert_condition(sets, f"ph is {word}")
    assert diags == []
    (cond,) = rs.alerts["biz_warm_solution"].when
    assert cond.expr == M.MetricIs("ph", word, cond.expr.span)
    assert cond.expr.dim == "yes/no"


def test_metric_is_word_in_a_hydro_1_file_needs_1_1(sets):
    text, diags, _ = _alert_condition(sets, "ph is stale", header="hydro 1")
    (d,) = diags
    assert (d.code, d.span.line, d.span.column) == ("HR007", *sets.pos(text, "stale"))
    assert d.message == "`is stale` is language 1.1, but this file starts with `hydro 1`"


@pytest.mark.parametrize(
    ("when", "at", "hint"),
    [
        ("pump_recirc is frozen", "pump_recirc", "ask about a metric, e.g. `ph is frozen`"),
        ("pump_recirc.current is stale", "pump_recirc.current", "ask about a metric, e.g. `ph is stale`"),
        ("phh is implausible", "phh", "did you mean `ph`?"),
        ("(ph + 1) is stale", "ph + 1", "ask about a metric, e.g. `ph is stale`"),
    ],
)
def test_metric_is_word_is_only_for_metrics(sets, when, at, hint):
    text, diags, _ = _alert_condition(sets, when)
    (d,) = diags
    assert (d.code, d.span.line, d.span.column) == ("HR101", *sets.pos(text, at))
    assert d.hint == hint


def test_a_misspelled_status_word_suggests_the_new_words(sets):
    _, diags, _ = _alert_condition(sets, "ph is frozn")
    (d,) = diags
    assert (d.code, d.hint) == ("HR106", "did you mean `frozen`?")


class _Stub:
    """What generated code and the interpreter call for a metric's status."""

    def __init__(self, status: dict[str, str]):
        self.status = self.mstat = status

    def metric_status(self, metric: str) -> str:
        return self.status.get(metric, "stale")


@pytest.mark.parametrize("word", ["stale", "frozen", "implausible"])
@pytest.mark.parametrize("status", ["ok", "stale", "frozen", "implausible"])
def test_metric_is_compiles_to_the_metric_status_and_the_interpreter_agrees(word, status):
    e = M.MetricIs("ph", word, None)
    src = ExprCompiler().compile(e)
    x = _Stub({"ph": status})
    assert eval(src, {"x": x}) is (status == word)
    assert eval(src, {"x": _Stub({})}) is (word == "stale"), "never seen is stale"
    t = interp.trace(e, x)
    assert (t.text, t.value) == (f"ph is {word}", status == word)
    assert interp.values_seen(interp.trace(M.Not(e, None), x)) == f"ph is {word} = {'yes' if status == word else 'no'}"


def test_the_compiled_rule_set_tracks_a_metric_only_asked_about(sets):
    from hydro_rules.engine.compiler import CompiledRuleSet

    _, diags, rs = _alert_condition(sets, "ph is frozen")
    assert diags == []
    assert "ph" in CompiledRuleSet(rs).metrics_used


# ---- settings ------------------------------------------------------------------------------------
def test_the_new_settings_have_their_defaults():
    d = S.defaults()
    assert d["dosing.max_per_hour"] is None and d["dosing.max_per_day"] is None
    assert d["dosing.ineffective_after"] == 3
    assert d["water_cycle.water_change.max_wait"] == 6 * 3600


def test_a_profile_sets_the_new_settings_in_hydro_1(sets):
    profile = """hydro 1

profile careful {
  dosing {
    max_per_hour 5 ml
    max_per_day 12 ml
    ineffective_after 4
  }
  water_change {
    max_wait 2h
  }
}
"""
    d = sets.make({"p.hydro": profile})
    assert sets.check(d) == []
    s = load(d.relative_to(sets.root)).ruleset.profiles["careful"].settings
    assert (s["dosing.max_per_hour"], s["dosing.max_per_day"]) == (pytest.approx(0.005), pytest.approx(0.012))
    assert (s["dosing.ineffective_after"], s["water_cycle.water_change.max_wait"]) == (4, 7200)
    untouched = load(d.relative_to(sets.root)).ruleset.profiles["careful"].settings["dosing.mixing_time"]
    assert untouched == 900


@pytest.mark.parametrize(
    ("line", "code"),
    [("ineffective_after 2.5", "HR204"), ("ineffective_after 0", "HR204"), ("max_per_hour 5", "HR201")],
)
def test_new_setting_mistakes(sets, line, code):
    profile = f"hydro 1\n\nprofile careful {{\n  dosing {{\n    {line}\n  }}\n}}\n"
    assert [x.code for x in sets.check({"p.hydro": profile})] == [code]


def test_a_rule_cannot_read_a_setting_the_engine_computes(sets):
    _, diags, _ = _alert_condition(sets, "last_dose.age > 1h and dosing.max_per_hour > 2 ml")
    (d,) = diags
    assert d.code == "HR111" and "the engine computes it" in d.message


# ---- fmt -----------------------------------------------------------------------------------------
def test_1_1_files_round_trip_through_fmt():
    for text in (VOCABULARY, SITE):
        once = format_text(text, "t.hydro")
        assert format_text(once, "t.hydro") == once
        assert "node nd-pump-1 {\n      bounded_off yes\n    }" in once or text is VOCABULARY
    assert format_text(VOCABULARY, "t.hydro") == VOCABULARY


# ---- check: how long machine states may hold an NC pump OFF (HR601, HR504) -----------------------
BOOST = """hydro 1

machine nutrient_boost {
  initial BOOST_IDLE

  state BOOST_IDLE {
    go BOOST_SETTLE every 7d at 03:00
  }

  state BOOST_SETTLE {
    enter { stop pump_recirc }
    go BOOST_SAMPLE when ec is known for 5m
    go BOOST_SAMPLE after 20m
  }

  state BOOST_SAMPLE {
    enter { record ph, ec }
    go BOOST_MIX after 2m
    go BOOST_SETTLE when ec is unknown
  }

  state BOOST_MIX {
    enter { recirculate pump_recirc guarded by can_run_pump, reservoir_has_water }
    go BOOST_IDLE after 10m
  }
}
"""


def _infos(path: str) -> list:
    infos: list = []
    collect([path], infos)
    return infos


def test_check_shows_the_longest_off_stretch_of_the_standard_water_change(monkeypatch):
    from pathlib import Path

    from hydro_rules.lang.diagnostics import Severity

    monkeypatch.chdir(Path(__file__).resolve().parents[2])
    (info,) = [x for x in _infos("rules") if x.code == "HR601"]
    assert info.severity is Severity.INFO
    assert info.message.startswith("pump_recirc (fail_safe NC) can be held OFF by machine `water_cycle` for up to ")
    # the drain and the fill, then what a failed change adds before circulation comes back
    assert ": WATER_CHANGE_DRAIN 30m + WATER_CHANGE_FILL 30m" in info.message
    assert str(info.span) == f"rules/water_cycle.hydro:{info.span.line}:9"


def test_a_site_set_does_not_repeat_the_facts_of_the_rules_it_uses(sets):
    assert _infos(str(sets.make({"a.hydro": sets.ALERT}).relative_to(sets.root))) == []


def test_the_longest_chain_adds_each_state_s_shortest_timeout(sets):
    d = sets.make({"boost.hydro": BOOST})
    assert sets.check(d) == []
    infos = [x for x in _infos(d.name) if "nutrient_boost" in x.message]
    assert [(x.code, x.span.line) for x in infos] == [("HR601", 10)]
    # SAMPLE can go back to SETTLE: a loop of states that keep the pump off has no bound
    assert "without a bound: BOOST_SETTLE 20m, BOOST_SAMPLE 2m, back to BOOST_SETTLE" in infos[0].message
    assert infos[0].message.endswith("`BOOST_SETTLE` comes back to a state already passed")
    loopless = BOOST.replace("    go BOOST_SETTLE when ec is unknown\n", "")
    (info,) = [x for x in _infos(sets.make({"boost.hydro": loopless}).name) if "nutrient_boost" in x.message]
    assert info.message.endswith("for up to 22m: BOOST_SETTLE 20m + BOOST_SAMPLE 2m")


def test_a_transition_that_starts_the_pump_ends_the_stretch(sets):
    text = BOOST.replace(
        "    go BOOST_MIX after 2m\n",
        "    go BOOST_IDLE after 2m do { recirculate pump_recirc guarded by can_run_pump, reservoir_has_water }\n",
    ).replace("    go BOOST_SETTLE when ec is unknown\n", "")
    d = sets.make({"boost.hydro": text})
    assert [x.code for x in sets.check(d)] == ["HR301"]  # (BOOST_MIX is no longer reached)
    (info,) = [x for x in _infos(d.name) if "nutrient_boost" in x.message]
    assert info.message.endswith("for up to 22m: BOOST_SETTLE 20m + BOOST_SAMPLE 2m")


def test_a_state_that_stops_the_pump_without_a_timeout_is_a_warning(sets):
    text = BOOST.replace("    go BOOST_SAMPLE after 20m\n", "")
    d = sets.make({"boost.hydro": text})
    (w,) = sets.check(d)
    assert (w.code, w.severity.value, w.span.line) == ("HR504", "warning", 10)
    (info,) = [x for x in _infos(d.name) if "nutrient_boost" in x.message]
    assert info.message.endswith("`BOOST_SETTLE` has no timeout")


def test_information_does_not_make_check_fail_even_with_strict(sets, capsys):
    import json

    from hydro_rules.cli import main

    d = sets.make({"boost.hydro": BOOST.replace("    go BOOST_SETTLE when ec is unknown\n", "")})
    assert main(["check", "--strict", d.name]) == 0
    out = capsys.readouterr().out
    assert "info[HR601]: pump_recirc (fail_safe NC) can be held OFF by machine `nutrient_boost`" in out
    assert "no problems" in out
    assert main(["check", "--format", "json", d.name]) == 0
    (item,) = json.loads(capsys.readouterr().out)
    assert (item["code"], item["severity"], item["line"]) == ("HR601", "info", 10)
    assert main(["check", "--format", "github", d.name]) == 0
    assert capsys.readouterr().out.startswith(f"::notice file={d.name}/boost.hydro,line=10,")
