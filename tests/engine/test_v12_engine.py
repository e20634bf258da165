"""Language 1.2 in the engine: zones that bind only what they have, engine-enforced locks,
per-zone and per-phase settings, windows with their own OFF bound, night targets."""

from __future__ import annotations

from datetime import date

from hydro_rules.engine.api import compiled, nc_off_deadlines
from hydro_rules.engine.codegen import ExprCompiler
from hydro_rules.engine.state import ACTIVE, AlertState
from hydro_rules.lang import model as M
from hydro_rules.lang import units as U
from hydro_rules.lang.settings import SCHEMA

from .harness import T0, healthy
from .v12_helpers import SP, base, const, ruleset, zone

H = 3600.0


# ---- a zone binds only what it has ----------------------------------------------------------------
def test_a_zone_without_dosers_runs_without_its_dosing_rules():
    rs = ruleset(drop=("dose_ph_down", "dose_nutrient"))
    z = healthy(zone(rs)).set(ph=6.8, ec=0.8)
    z.tick(90)
    assert not [c for c in z.commands if c.channel.startswith("dose_")]
    src = compiled(rs).source("zn-t")
    assert "# rule correct_low_ec: inactive in this zone" in src
    assert z.is_on("pump_recirc") or z.cmds("pump_recirc"), "circulation runs as before"


def test_a_zone_without_a_drain_never_starts_a_change_and_skips_stopping_it():
    rs = ruleset(drop=("pump_drain",))
    z = healthy(zone(rs))
    z.tick(120)
    assert "pump_drain" not in z.state.channels
    assert z.machine_state == "NORMAL_RECIRC"
    assert not z.cmds("pump_drain")
    assert "WATER_CHANGE_DRAIN" not in compiled(rs).source("zn-t").split("def tick", 1)[1].split("# rule", 1)[0]


def test_a_deny_reading_an_absent_channel_reads_it_off_and_unknown():
    absent = frozenset({"pump_recirc"})
    xc = ExprCompiler(absent=absent)
    assert xc.compile(M.ChannelIs("pump_recirc", "on", SP)) == "False"
    assert xc.compile(M.ChannelIs("pump_recirc", "off", SP)) == "True"
    assert xc.compile(M.ChannelIs("pump_recirc", "locked", SP)) == "False"
    on_for = M.ChannelRef("pump_recirc", "on_for", U.DURATION, SP)
    assert eval(xc.compile(M.Cmp(">=", on_for, const(120.0, U.DURATION), SP))) is None  # noqa: S307
    # can_dose: `not (pump_recirc is on and pump_recirc.on_for >= 2m)` refuses where nothing circulates
    rs = ruleset(drop=("pump_recirc",))
    z = healthy(zone(rs))
    z.tick(2)
    verdict = z.prog.guard_verdict("dose_nutrient", ("can_dose",))
    assert verdict is not None and verdict[1].reason == "the solution is not circulating" and verdict[2] is False


# ---- locks the engine enforces ----------------------------------------------------------------------
def _lock(z, code, channel):
    z.state.alerts[(code, channel)] = AlertState(code, channel, ACTIVE, z.now)


def test_a_locked_pump_never_starts_whatever_guards_the_start_names():
    z = healthy(zone(ruleset()))
    z.tick(2)
    _lock(z, "biz_no_flow", "pump_drain")
    z.prog.now, z.prog.st = z.now, z.state
    z.prog.run_actions((M.Action("start", "pump_drain", None, (), (), SP),), "test")
    z.tick()
    assert not z.is_on("pump_drain")
    assert not [c for c in z.cmds("pump_drain") if c.params.get("duration_ms")]
    r = [r for r in z.refusals if r.channel == "pump_drain"]
    assert r and r[-1].guard == "lock" and "biz_no_flow" in r[-1].reason
    n = len(z.refusals)
    z.tick(3)
    assert len(z.refusals) == n, "the refusal is said once"


def test_a_locked_doser_never_doses_whatever_guards_the_dose_names():
    z = healthy(zone(ruleset({"profile": "test_by_age"})))
    z.tick(20)
    _lock(z, "biz_dose_ineffective", "dose_nutrient")
    z.prog.now, z.prog.st = z.now, z.state
    z.prog.dec = d = type(z.prog.dec)()
    z.prog.run_actions((M.Action("dose", "dose_nutrient", const(0.005, U.VOLUME), (), (), SP),), "test")
    assert not d.commands
    assert d.refusals[-1].guard == "lock" and "biz_dose_ineffective" in d.refusals[-1].reason


def test_resolve_of_a_locking_alert_does_not_resolve_it():
    z = healthy(zone(ruleset()))
    z.tick(2)
    _lock(z, "biz_no_flow", "pump_drain")
    z.prog.now, z.prog.st = z.now, z.state
    z.prog.dec = d = type(z.prog.dec)()
    z.prog.run_actions((M.Action("resolve", "biz_no_flow", None, (), (), SP),), "rule r")
    assert ("biz_no_flow", "pump_drain") in z.active()
    assert not d.alerts
    assert "only the operator's reset clears a lock" in d.refusals[-1].reason
    # a non-locking alert is resolved as before
    _lock(z, "biz_water_change_failed", None)
    z.prog.run_actions((M.Action("resolve", "biz_water_change_failed", None, (), (), SP),), "rule r")
    assert ("biz_water_change_failed", None) not in z.active()


# ---- settings per zone and per recipe phase ---------------------------------------------------------
def test_zone_settings_are_what_the_zone_reads_and_its_code_folds_in():
    rs = ruleset({"settings": {"dosing.nutrient_dose": 0.007}})
    z = zone(rs)
    assert z.prog.S["dosing.nutrient_dose"] == 0.007
    assert z.prog.S["dosing.ph_down_dose"] == base().zone_settings(base().zone("zn-t"))["dosing.ph_down_dose"]


def _phased():
    grow = M.Phase("seed", 0, 9, {"ph": (5.8, 6.2), "ec": (1.2, 1.6)}, {}, SP, settings={})
    late = M.Phase(
        "late", 10, None, {"ph": (5.8, 6.2), "ec": (1.6, 2.0)}, {}, SP, settings={"water_cycle.recirc.min_on": 120.0}
    )
    rec = M.Recipe("test_recipe", "t", (grow, late), SP)
    return ruleset({"planted": date(2026, 1, 1)}, recipes={"test_recipe": rec})


def test_phase_settings_apply_from_the_first_tick_of_the_phase():
    z = healthy(zone(_phased()))
    base_min_on = z.prog.S["water_cycle.recirc.min_on"]
    z.now = T0 + 10 * 86400 - 120.0
    z.tick()  # one tick before day 10
    assert z.prog.T["ec.min"] == 1.2 and z.prog.S["water_cycle.recirc.min_on"] == base_min_on
    z.tick()  # day 10 begins
    assert z.prog.T["ec.min"] == 1.6 and z.prog.S["water_cycle.recirc.min_on"] == 120.0
    assert z.prog.S["commands.run_chunk"] == 180.0, "what the caller set stays"
    z.tick()
    assert z.prog.S["water_cycle.recirc.min_on"] == 120.0


def test_durations_written_as_settings_take_each_zones_value():
    schema = {**base().settings_schema, "test.stabilize": (U.DURATION, 900.0, None)}
    m = base().machines["water_cycle"]
    stab = m.states["WATER_CHANGE_STABILIZE"]
    t2 = M.Transition(
        "WATER_CHANGE_STABILIZE", "NORMAL_RECIRC", None, 900.0, None, None, (), False, SP, "test.stabilize"
    )
    states = {
        **m.states,
        "WATER_CHANGE_STABILIZE": M.State(stab.name, stab.machine, stab.enter, stab.exit, (t2,), stab.span),
    }
    machine = M.Machine(m.name, m.initial, states, m.span)
    rs = ruleset({"settings": {"test.stabilize": 300.0}}, machines={"water_cycle": machine}, schema=schema)
    z = healthy(zone(rs))
    z.tick(2)
    from hydro_rules.engine.compiler import TransitionSpec

    z.prog.now, z.prog.st = z.now, z.state
    fill = M.Transition("WATER_CHANGE_FILL", "WATER_CHANGE_STABILIZE", None, 1.0, None, None, (), False, SP)
    z.prog.go(TransitionSpec("water_cycle", 0, fill), "a test")
    assert z.machine_state == "WATER_CHANGE_STABILIZE"
    z.tick(4)
    assert z.machine_state == "WATER_CHANGE_STABILIZE", "4 min: not yet"
    z.tick(1)
    assert z.machine_state == "NORMAL_RECIRC", "5 min: the zone's test.stabilize"
    assert "after 5m" in z.transitions[-1].reason


def test_holds_and_repeats_written_as_settings():
    schema = {**SCHEMA, "test.hold": (U.DURATION, 600.0, None), "test.repeat": (U.DURATION, 900.0, None)}
    r = base().rules["correct_low_ec"]
    c = M.Condition(r.cond.expr, 600.0, SP, r.cond.text, "dosing.hold")
    r2 = M.Rule(r.name, r.states, c, r.actions, 900.0, r.span, "dosing.repeat")
    rs = ruleset(
        {"settings": {"dosing.hold": 120.0, "dosing.repeat": 1800.0}}, rules={"correct_low_ec": r2}, schema=schema
    )
    src = compiled(rs).source("zn-t")
    assert "120.0" in src.split("# rule correct_low_ec", 1)[1].split("# rule", 1)[0]
    z = zone(rs)
    spec = next(v for v in z.prog.tick_fn.__globals__.values() if getattr(v, "name", None) == "correct_low_ec")
    assert spec.repeat == 1800.0


# ---- windows with their own OFF bound, off windows --------------------------------------------------
def _windows():
    day = M.Window(6 * H, 20 * H, 0.5, 1200.0, SP, max_off_s=300.0)
    night = M.Window(20 * H, 6 * H, 0.0, 0.0, SP, off=True)
    return ruleset({"windows": (day, night)})


def _off_runs(z, minutes):
    out, run, start = [], 0, None
    for _ in range(minutes):
        z.tick()
        if not z.is_on("pump_recirc"):
            run += 1
            start = start or z.now
        elif run:
            out.append((start, run))
            run, start = 0, None
    return out + ([(start, run)] if run else [])


def test_an_off_window_holds_the_pump_off_until_it_ends_then_the_day_window_bounds_each_off():
    z = healthy(zone(_windows()))  # T0 is midnight UTC: in the off window
    z.tick(5 * 60 + 58)  # 05:58
    assert not z.is_on("pump_recirc")
    st = z.state.channels["pump_recirc"]
    assert st.since <= T0 + 120.0, "held off since the start, never forced on in the off window"
    d = nc_off_deadlines(z.loaded.ruleset, "zn-t", z.state, z.now)
    assert d[0]["deadline"] == T0 + 6 * H, "the dead-man's deadline is the window's end"
    z.tick()  # 05:59
    assert not z.is_on("pump_recirc")
    z.tick()  # 06:00: the day window, duty ON first
    assert z.is_on("pump_recirc")
    runs = _off_runs(z, 4 * 60)
    assert runs and max(n for _, n in runs) <= 5, "the day window's own max_off 5m"


def test_the_day_windows_max_off_bounds_an_off_a_guard_asks():
    z = healthy(zone(_windows()))
    z.now = T0 + 8 * H
    z.tick(3)
    assert z.is_on("pump_recirc")
    c = z.state.channels["pump_recirc"]
    z.prog.now, z.prog.st = z.now, z.state
    assert z.prog.max_off() == 300.0
    assert z.prog.off_deadline("pump_recirc", c) == z.now + 300.0


# ---- night targets ----------------------------------------------------------------------------------
def test_night_targets_apply_while_the_lights_are_off():
    ph = base().recipes["test_recipe"].phases[0]
    night = M.Phase(ph.name, ph.day_from, ph.day_to, ph.targets, {}, SP, night_targets={"ec": (1.0, 1.4)})
    rs = ruleset({"light": (6 * H, 20 * H)}, recipes={"test_recipe": M.Recipe("test_recipe", "t", (night,), SP)})
    z = healthy(zone(rs))
    z.now = T0 + 6 * H - 120.0
    z.tick()  # 05:59
    assert z.prog.T["ec.min"] == 1.0
    z.tick()  # 06:00
    assert z.prog.T["ec.min"] == 1.2 and z.prog.T["ph.min"] == 5.8
    z.now = T0 + 20 * H - 120.0
    z.tick()  # 19:59
    assert z.prog.T["ec.min"] == 1.2
    z.tick()  # 20:00
    assert z.prog.T["ec.min"] == 1.0 and z.prog.T["ec.max"] == 1.4


def test_reservoir_volume_is_the_zones_reservoir():
    z = zone(ruleset({"reservoir_l": 400.0}))
    e = M.ZoneRef("reservoir.volume", U.VOLUME, SP)
    assert ExprCompiler().compile(e) == "x.reservoir_l"
    assert z.prog.compiled.value(z.prog, e) == 400.0


def test_a_quantity_times_a_percentage_is_that_fraction_of_it_in_code_and_in_explanations():
    from hydro_rules.engine import interp

    z = healthy(zone(ruleset({"reservoir_l": 200.0})))
    z.tick()
    vol = M.ZoneRef("reservoir.volume", U.VOLUME, SP)
    ec_max = M.TargetRef("ec", "max", U.CONDUCTIVITY, SP)
    pct = const(8.0, U.PERCENT)
    cases = [
        (M.Arith("*", vol, pct, U.VOLUME, SP), 16.0),
        (M.Arith("*", const(115.0, U.PERCENT), ec_max, U.CONDUCTIVITY, SP), 1.6 * 1.15),
        (M.Arith("*", pct, const(2.0), U.PERCENT, SP), 16.0),  # a percentage times a number stays one
        (M.Arith("/", vol, const(50.0, U.PERCENT), U.VOLUME, SP), 400.0),
        (M.Arith("/", pct, const(4.0, U.PERCENT), U.NUMBER, SP), 2.0),
        (M.Arith("*", pct, const(50.0, U.PERCENT), U.NUMBER, SP), 0.04),
    ]
    for e, want in cases:
        src = ExprCompiler().compile(e)
        got = eval(src, {"x": z.prog, "T": z.prog.T, "S": z.prog.S})  # noqa: S307
        assert abs(got - want) < 1e-9, (src, got, want)
        assert abs(interp.evaluate(e, z.prog) - want) < 1e-9


def test_a_reload_that_leaves_a_machine_in_a_state_the_zone_cannot_run_restarts_it():
    from hydro_rules.engine.api import carry_state

    z = healthy(zone(ruleset()))
    z.tick(2)
    z.state.machines["water_cycle"] = "WATER_CHANGE_DRAIN"
    new = compiled(ruleset(drop=("pump_drain",))).program("zn-t")
    st = carry_state(z.state, new, z.now)
    assert st.machines["water_cycle"] == "NORMAL_RECIRC" and "water_cycle" not in st.entered_at


def test_the_services_start_check_refuses_a_locked_channel_whatever_its_guards():
    from hydro_rules.engine.api import check_start

    rs = ruleset()
    z = healthy(zone(rs))
    z.tick(2)
    _lock(z, "biz_no_flow", "pump_drain")
    v = check_start(rs, "zn-t", "pump_drain", z.state, [], z.now)
    assert not v.allowed and "biz_no_flow" in (v.reason or "") or v.guard == "can_run_pump"


def test_no_dose_that_an_off_window_would_stop_mixing():
    z = healthy(zone(_windows()))
    z.now = T0 + 19 * H + 40 * 60
    z.tick(2)  # 19:42, the off window starts at 20:00, a dose mixes 15 min
    z.prog.now, z.prog.st = z.now, z.state
    z.state.channels["pump_recirc"].is_on = True
    assert z.prog._circulation_blocked() is None, "19:42 + 15 min < 20:00"
    z.prog.now = z.now + 4 * 60  # 19:46
    assert "off window" in z.prog._circulation_blocked()


def test_drift_is_measured_against_the_new_phases_target_from_the_first_tick_of_the_phase():
    z = healthy(zone(_phased()))  # ec 1.2 .. 1.6 until day 9, 1.6 .. 2.0 from day 10
    z.tick()
    assert z.state.phase == "seed" and not z.events, "a zone seen for the first time only notes its phase"
    z.state.solution["ec"] = 1.4
    z.now = T0 + 10 * 86400 - 120.0
    z.tick()  # one tick before day 10
    assert z.state.solution["ec"] == 1.4
    z.tick()  # day 10
    assert abs(z.state.solution["ec"] - 1.8) < 1e-9, "1.4 under 1.2..1.6 is 1.8 under 1.6..2.0"
    ev = [e for e in z.events if e.type == "RECIPE_PHASE_CHANGED"]
    assert len(ev) == 1 and ev[0].details["from"] == "seed" and ev[0].details["to"] == "late"
    z.tick()
    assert len([e for e in z.events if e.type == "RECIPE_PHASE_CHANGED"]) == 1
    # a daemon restart (a new program, the saved state) changes nothing
    z.prog = z.program()
    z.tick()
    assert abs(z.state.solution["ec"] - 1.8) < 1e-9
    assert len([e for e in z.events if e.type == "RECIPE_PHASE_CHANGED"]) == 1
