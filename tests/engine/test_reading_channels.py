"""A metric a zone binds to one channel of its node is read from that channel only."""

from pathlib import Path

from hydro_rules.engine.api import telemetry_of
from hydro_rules.engine.compiler import CompiledRuleSet
from hydro_rules.lang.loader import load
from hydro_rules.messages import Reading

from .harness import ROOT, T0

BINDING = "      water_level_switch from nd-irr-1 channel level_solution_min\n"


def _ruleset(tmp_path: Path):
    text = (ROOT / "rules" / "tests" / "fixture.hydro").read_text().replace("hydro 1\n", "hydro 1.1\n", 1)
    anchor = "      water_level from nd-level\n"
    p = tmp_path / "fixture.hydro"
    p.write_text(text.replace(anchor, anchor + BINDING, 1))
    loaded = load(ROOT / "rules", extra=[p])
    assert loaded.ruleset is not None, loaded.diags.items
    return loaded.ruleset


def test_a_switch_bound_to_one_channel_ignores_the_nodes_other_switches(tmp_path):
    rs = _ruleset(tmp_path)
    zone = rs.zone("zn-t")
    readings = [
        Reading("nd-irr-1", "water_level_switch", 1.0, T0, "level_solution_min"),
        Reading("nd-irr-1", "water_level_switch", 0.0, T0 + 5, "level_clean_max"),  # newer, another float
        Reading("nd-irr-1", "water_level_switch", 0.0, T0 + 9, None),  # no channel: not the bound one
        Reading("nd-level", "water_level", 80.0, T0, "water_level"),
    ]
    snap = telemetry_of(readings, zone)
    assert snap[("nd-irr-1", "water_level_switch")] == (1.0, T0)
    assert snap[("nd-level", "water_level")] == (80.0, T0), "metrics bound to no channel: any channel"
    upper = telemetry_of([Reading("nd-irr-1", "water_level_switch", 1.0, T0, "LEVEL_SOLUTION_MIN")], zone)
    assert upper == {("nd-irr-1", "water_level_switch"): (1.0, T0)}, "older firmware sends the key upper-case"
    assert telemetry_of(readings)[("nd-irr-1", "water_level_switch")] == (0.0, T0 + 9), "no zone: newest wins"


def test_the_engine_reads_the_bound_channel(tmp_path):
    rs = _ruleset(tmp_path)
    prog = CompiledRuleSet(rs).program("zn-t")  # not the cached one: it is changed below
    prog.metric_src["water_level_switch"] = ("nd-irr-1", 180.0)  # the rules read no switch: ask for it here
    readings = [
        Reading("nd-irr-1", "water_level_switch", 1.0, T0, "level_solution_min"),
        Reading("nd-irr-1", "water_level_switch", 0.0, T0 + 5, "level_clean_max"),
    ]
    st = prog.new_state(T0)
    prog.prepare(st, telemetry_of(readings, prog.zone), T0 + 10)
    assert prog.mv["water_level_switch"] == 1.0
