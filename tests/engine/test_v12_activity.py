"""Zone activity (language 1.2): a zone binds only what it has; what needs a channel it lacks is inactive."""

from __future__ import annotations

from dataclasses import replace

import pytest

from hydro_rules.lang import model as M
from hydro_rules.lang.activity import expr_channels, zone_activity
from hydro_rules.lang.source import Span

from .harness import fixture_ruleset

SP = Span("t.hydro", 1, 1, 1, 2)


@pytest.fixture(scope="module")
def rs():
    return fixture_ruleset().ruleset


def without(rs, *channels, uid="zn-t"):
    z = rs.zone(uid)
    return replace(z, channels={k: v for k, v in z.channels.items() if k not in channels})


def test_a_zone_binding_every_pump_has_its_water_cycle_whole(rs):
    act = zone_activity(rs, rs.zone("zn-t"))
    # only what needs dosers zn-t does not have (pH up, two-part nutrient) is inactive
    assert act.absent <= {"dose_ph_up", "dose_nutrient_a", "dose_nutrient_b"}
    assert {i.kind for i in act.inactive} <= {"rule"}
    assert act.machine_active("water_cycle")
    assert act.state_active("water_cycle", "WATER_CHANGE_DRAIN")


def test_no_dosers_leaves_dosing_rules_and_doser_guard_out(rs):
    act = zone_activity(rs, without(rs, "dose_ph_down", "dose_nutrient"))
    assert {"dose_ph_down", "dose_nutrient"} <= act.absent
    assert not act.rule_active("correct_high_ph")
    assert not act.rule_active("correct_low_ec")
    assert not act.guard_active("can_dose")
    assert not act.alert_active("biz_dose_ineffective")
    assert act.guard_active("can_run_pump")
    assert act.machine_active("water_cycle")
    why = {i.name: i.why for i in act.inactive}
    assert why["correct_low_ec"] == "zone zn-t binds no dose_nutrient"
    assert why["can_dose"] == "zone zn-t binds no doser channel"
    assert {i.kind for i in act.inactive} == {"rule", "guard", "alert"}


def test_no_drain_pump_makes_the_change_unreachable(rs):
    act = zone_activity(rs, without(rs, "pump_drain"))
    assert act.machine_active("water_cycle")
    assert not act.state_active("water_cycle", "WATER_CHANGE_DRAIN")
    # reached only through the drain
    assert not act.state_active("water_cycle", "WATER_CHANGE_FILL")
    assert not act.state_active("water_cycle", "WATER_CHANGE_STABILIZE")
    assert not act.state_active("water_cycle", "FAILED")
    assert act.state_active("water_cycle", "NORMAL_RECIRC")
    # NORMAL_RECIRC only stops pump_drain: skipped, not a reason
    assert not act.transition_active("water_cycle", "NORMAL_RECIRC", 0)
    why = {i.name: i.why for i in act.inactive}
    assert why["water_cycle.WATER_CHANGE_DRAIN"] == "zone zn-t binds no pump_drain"
    assert why["water_cycle.WATER_CHANGE_FILL"] == "unreachable in this zone"
    assert (
        why["water_cycle.NORMAL_RECIRC -> WATER_CHANGE_DRAIN #0"] == "its target state WATER_CHANGE_DRAIN is inactive"
    )
    # alerts reading the drain pump
    assert not act.alert_active("biz_water_level_falling")
    assert not act.alert_active("biz_reservoir_burst")
    assert act.alert_active("biz_high_ph")
    # rules in NORMAL_RECIRC stay
    assert act.rule_active("correct_low_ec")


def test_no_recirculation_pump_makes_the_machine_inactive(rs):
    act = zone_activity(rs, without(rs, "pump_recirc"))
    assert not act.machine_active("water_cycle")
    assert not act.state_active("water_cycle", "NORMAL_RECIRC")
    m = [i for i in act.inactive if i.kind == "machine"]
    assert m and "NORMAL_RECIRC" in m[0].why and "pump_recirc" in m[0].why
    # rules in its states go with it
    assert not act.rule_active("correct_high_ph")
    assert act.guard_active("can_dose")  # dosers are bound; the guard reads pump_recirc as absent


def test_alert_scoped_to_an_absent_channel_is_inactive(rs):
    act = zone_activity(rs, without(rs, "pump_fill"))
    assert not act.alert_active("biz_overflow")
    assert not act.guard_active("no_overflow")
    assert act.alert_active("biz_overcurrent")  # still covers the other pumps


def test_rule_with_all_states_inactive(rs):
    rule = M.Rule("r", ("WATER_CHANGE_FILL",), M.Condition(M.Const(True, "yes/no", SP), 0.0, SP, "yes"), (), None, SP)
    rs2 = replace(rs, rules={**rs.rules, "r": rule})
    act = zone_activity(rs2, without(rs2, "pump_drain"))
    assert not act.rule_active("r")
    assert {i.why for i in act.inactive if i.name == "r"} == {"its state WATER_CHANGE_FILL is inactive"}


def test_then_dose_of_an_absent_doser_makes_the_rule_inactive(rs):
    amount = M.Const(5e-3, "volume", SP)
    act_ = M.Action(
        "dose", "dose_ph_down", amount, ("can_dose",), (), SP, then=(("dose_nutrient", amount, 60.0, None),)
    )
    rule = M.Rule("ab", ("NORMAL_RECIRC",), M.Condition(M.Const(True, "yes/no", SP), 0.0, SP, "yes"), (act_,), None, SP)
    rs2 = replace(rs, rules={**rs.rules, "ab": rule})
    act = zone_activity(rs2, without(rs2, "dose_nutrient"))
    assert not act.rule_active("ab")
    assert act.rule_active("correct_high_ph")


def test_expr_channels_reads_named_channels_and_functions():
    e = M.Logic(
        "and",
        (
            M.ChannelIs("pump_recirc", "on", SP),
            M.Cmp(
                ">",
                M.Func("failures", ("pump_fill", M.Const(3600.0, "duration", SP)), "number", SP),
                M.Const(1, "number", SP),
                SP,
            ),
            M.Cmp(
                ">",
                M.Func("filled", ("pump_x", M.Const(3600.0, "duration", SP), ("A",)), "volume", SP),
                M.Const(1, "volume", SP),
                SP,
            ),
            M.ChannelIs(None, "locked", SP),
        ),
        SP,
    )
    assert expr_channels(e) == {"pump_recirc", "pump_fill", "pump_x"}


def test_activity_is_cached_per_ruleset_and_zone(rs):
    z = rs.zone("zn-t")
    assert zone_activity(rs, z) is zone_activity(rs, z)
