"""`explain` of a zone that binds only what it has: what is inactive there says so and why."""

from __future__ import annotations

from pathlib import Path

from hydro_rules.commands.explain import mark_inactive
from hydro_rules.lang.activity import zone_activity
from hydro_rules.lang.loader import load
from hydro_rules.sim.explain import Explanation, Line, Section

REPO = Path(__file__).resolve().parents[2]


def _zone(rs, uid):
    return next(z for s in rs.sites for z in s.zones if z.uid == uid)


def test_an_inactive_rule_says_why_instead_of_its_values():
    out = load(REPO / "sites" / "hillside")
    rs = out.ruleset
    zone = _zone(rs, "zn-micro")
    act = zone_activity(rs, zone)
    (rule,) = [i for i in act.inactive if i.kind == "rule" and i.name == "correct_low_ec"]
    e = Explanation(
        "zn-micro",
        0.0,
        0.0,
        [],
        [
            Section("Rules", [Line("unknown", "correct_low_ec", "ec < target.ec.min: unknown"), Line("holds", "x")]),
            Section("Alerts", [Line("does not hold", "biz_low_ec", "raised when ...")]),
        ],
    )
    mark_inactive(e, act)
    first, other = e.sections[0].lines
    assert (first.verdict, first.detail) == ("inactive", f"inactive in this zone: {rule.why}")
    assert "binds no dose_nutrient" in first.detail
    assert other.verdict == "holds" and e.sections[1].lines[0].verdict == "does not hold"  # active: as evaluated


def test_an_inactive_guard_and_transition_say_why():
    out = load(REPO / "sites" / "hillside")
    rs = out.ruleset
    act = zone_activity(rs, _zone(rs, "zn-micro"))
    guards = [i for i in act.inactive if i.kind == "guard"]
    transitions = [i for i in act.inactive if i.kind == "transition"]
    lines = []
    sections = []
    if guards:
        lines.append(Line("holds", f"dose_nutrient: {guards[0].name}", "deny ..."))
        sections.append(Section("Guards of the channels the rules want on", lines))
    if transitions:
        src, _, rest = transitions[0].name.partition(" -> ")
        title = f"{src.split('.', 1)[1]} → {rest.rsplit(' #', 1)[0]}"
        sections.append(Section("Transitions (the first that holds is taken)", [Line("holds", title, "...")]))
    assert sections, "zn-micro has inactive guards or transitions"
    e = Explanation("zn-micro", 0.0, 0.0, [], sections)
    mark_inactive(e, act)
    assert all(
        ln.verdict == "inactive" and ln.detail.startswith("inactive in this zone: ") for s in sections for ln in s.lines
    )
