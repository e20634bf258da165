"""Language 1.2 dosing in the engine: dose groups (`dose A x then B y after W`), amounts from
expressions, and `filled(CHANNEL, WINDOW, STATES)`."""

from __future__ import annotations

from hydro_rules.engine.decisions import Decisions
from hydro_rules.engine.state import ZoneState
from hydro_rules.lang import model as M
from hydro_rules.lang import units as U

from .harness import healthy
from .v12_helpers import SP, cond, const, ruleset, zone

ML = 0.001  # litres


def _group_rule(wait=120.0, wait_setting=None, states=("NORMAL_RECIRC",), amount_b=None):
    ec = M.MetricRef("ec", "value", U.CONDUCTIVITY, SP)
    low = M.Cmp("<", ec, M.TargetRef("ec", "min", U.CONDUCTIVITY, SP), SP)
    b = amount_b if amount_b is not None else const(4 * ML, U.VOLUME)
    act = M.Action(
        "dose",
        "dose_nutrient",
        const(5 * ML, U.VOLUME),
        ("can_dose",),
        (),
        SP,
        then=(("dose_ph_down", b, wait, wait_setting),),
    )
    return M.Rule("ab", states, cond(low), (act,), 3600.0, SP)


def _zone(rule, **zone_fields):
    rs = ruleset({"profile": "test_by_age", **zone_fields}, rules={"ab": rule})
    rs.rules.clear()  # the standard dosing rules dose too: only this one
    rs.rules["ab"] = rule
    return healthy(zone(rs))


def _doses(z):
    return [(c.channel, c.params["ml"], c.at) for c in z.commands if c.cmd == "dose"]


def _first_dose(z, limit=60):
    for _ in range(limit):
        z.tick()
        if _doses(z):
            return _doses(z)[0]
    raise AssertionError("no dose")


def test_a_dose_group_gives_each_dose_after_its_wait_and_counts_as_one_dose():
    z = _zone(_group_rule(wait=120.0))
    z.tick(20)  # circulating, nothing to correct
    age_before = z.prog.last_dose_age()
    z.set(ec=1.0)
    ch, ml, t0 = _first_dose(z)
    assert (ch, ml) == ("dose_nutrient", 5.0)
    assert z.state.dose_group is not None
    assert z.prog.last_dose_age() >= age_before, "last_dose.age keeps the age of the last finished group"
    z.tick()  # 1 min after: still waiting
    assert len(_doses(z)) == 1
    z.tick()  # 2 min: the wait is over
    assert _doses(z)[1] == ("dose_ph_down", 4.0, t0 + 120.0)
    assert z.state.dose_group is None
    assert z.prog.last_dose_age() == 0.0, "the group is over: counted from its last dose"
    z.tick(10)
    assert len(_doses(z)) == 2


def test_a_group_in_flight_survives_save_and_restore():
    z = _zone(_group_rule(wait=300.0))
    z.tick(20)
    z.set(ec=1.0)
    _, _, t0 = _first_dose(z)
    z.tick(2)
    z.state = ZoneState.from_json(z.state.to_json())  # the daemon saved and loaded it
    z.prog = z.program()
    z.tick(2)
    assert len(_doses(z)) == 1
    z.tick(1)
    assert _doses(z)[1] == ("dose_ph_down", 4.0, t0 + 300.0)


def test_a_group_is_dropped_when_its_rules_states_are_left():
    z = _zone(_group_rule(wait=300.0))
    z.tick(20)
    z.set(ec=1.0)
    _first_dose(z)
    from hydro_rules.engine.compiler import TransitionSpec

    z.prog.now, z.prog.st = z.now, z.state
    t = z.loaded.ruleset.machines["water_cycle"].states["NORMAL_RECIRC"].transitions[1]
    z.prog.dec = Decisions()
    z.prog.go(TransitionSpec("water_cycle", 1, t), "a test")
    z._collect(z.prog.dec)
    assert z.state.dose_group is None
    r = [r for r in z.refusals if r.guard == "dose group"]
    assert r and "were left" in r[0].reason and "dose_ph_down 4 ml" in r[0].reason
    z.tick(10)
    assert len(_doses(z)) == 1


def test_guards_are_asked_for_every_doser_of_the_group_at_its_start():
    z = _zone(_group_rule())
    z.tick(20)
    z.state.channels["dose_ph_down"].ineffective = 99  # the engine stops this doser
    z.set(ec=1.0)
    z.tick(10)
    assert _doses(z) == [], "no part of the group when one doser may not dose"


def test_a_dose_amount_unknown_or_not_above_zero_is_no_dose_and_says_why():
    unknown = M.TargetRef("temp_water", "min", U.TEMPERATURE, SP)  # the recipe has no such target
    amount = M.Arith("*", const(ML, U.VOLUME), M.Arith("/", unknown, unknown, U.NUMBER, SP), U.VOLUME, SP)
    z = _zone(_group_rule(amount_b=amount))
    z.tick(20)
    z.set(ec=1.0)
    z.tick(5)
    assert _doses(z) == []
    assert any("unknown" in r.reason for r in z.refusals if r.channel == "dose_ph_down")
    z2 = _zone(_group_rule(amount_b=const(0.0, U.VOLUME)))
    z2.tick(20)
    z2.set(ec=1.0)
    z2.tick(5)
    assert _doses(z2) == []
    assert any("0 ml: nothing to give" in r.reason for r in z2.refusals)


def test_a_dose_sized_from_the_reservoir():
    vol = M.ZoneRef("reservoir.volume", U.VOLUME, SP)
    per_100 = M.Arith("/", vol, const(100.0, U.VOLUME), U.NUMBER, SP)
    amount = M.Arith("*", const(2 * ML, U.VOLUME), per_100, U.VOLUME, SP)  # 2 ml per 100 L
    act = M.Action("dose", "dose_nutrient", amount, ("can_dose",), (), SP)
    ec = M.MetricRef("ec", "value", U.CONDUCTIVITY, SP)
    rule = M.Rule("ab", ("NORMAL_RECIRC",), cond(M.Cmp("<", ec, const(1.2, U.CONDUCTIVITY), SP)), (act,), 3600.0, SP)
    z = _zone(rule, reservoir_l=300.0)
    z.tick(20)
    z.set(ec=1.0)
    assert _first_dose(z)[:2] == ("dose_nutrient", 6.0)


def test_filled_counts_the_litres_the_level_rose_while_the_channel_was_on():
    f = M.Func("filled", ("pump_fill", const(3600.0, U.DURATION), ()), U.VOLUME, SP)
    fs = M.Func("filled", ("pump_fill", const(3600.0, U.DURATION), ("WATER_CHANGE_FILL",)), U.VOLUME, SP)
    watch = M.Rule("watch", (), cond(M.Cmp(">", f, const(1000.0, U.VOLUME), SP)), (), None, SP)
    rs = ruleset({"profile": "test_by_age", "reservoir_l": 200.0}, rules={"watch": watch})
    z = healthy(zone(rs), level=80.0)
    z.tick(5)
    value = z.prog.compiled.value
    assert value(z.prog, f) == 0.0
    z.prog.now, z.prog.st = z.now, z.state
    z.prog.run_actions((M.Action("start", "pump_fill", None, (), (), SP),), "a top-up")
    z.tick()  # the top-up starts
    assert z.is_on("pump_fill") and value(z.prog, f) == 0.0
    for level in (81.0, 82.0, 83.0):
        z.set(water_level=level)
        z.tick()
    assert abs(value(z.prog, f) - 6.0) < 1e-9, "3 % of 200 L"
    assert value(z.prog, fs) == 0.0, "not in WATER_CHANGE_FILL"
    z.prog.run_actions((M.Action("stop", "pump_fill", None, (), (), SP),), "a top-up ends")
    z.set(water_level=85.0)
    z.tick()
    assert not z.is_on("pump_fill")
    assert abs(value(z.prog, f) - 10.0) < 1e-9, "the minute up to the tick that stops it counts"
    z.set(water_level=90.0)
    z.tick()
    assert abs(value(z.prog, f) - 10.0) < 1e-9
    z.tick(60)
    assert value(z.prog, f) == 0.0, "out of the window"
    z.set(water_level=None)
    z.tick(65)
    assert value(z.prog, f) is None, "the level unknown for the whole window"
