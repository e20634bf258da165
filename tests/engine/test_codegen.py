"""The generated code and the interpreter (used by explain) agree on every condition of the standard rules."""

from hypothesis import given, settings
from hypothesis import strategies as st

from hydro_rules.engine import interp
from hydro_rules.engine.codegen import ExprCompiler
from hydro_rules.engine.compiler import _all_expressions
from hydro_rules.engine.state import ACTIVE, AlertState, ZoneState

from .harness import PUMP_NODES, T0, Zone

ZONE = Zone()
RS = ZONE.loaded.ruleset
EXPRS = list(_all_expressions(RS))
CHANNELS = list(ZONE.prog.channels)


def compiled_fn(expr, settings=None):
    src = ExprCompiler(settings).compile(expr)
    ns: dict = {}
    exec(f"def f(x, ch):\n    mv = x.mv; S = x.S; T = x.T\n    return {src}\n", ns)
    return ns["f"]


def unrolled_fn(expr, channel):
    """The form of the tick function: settings folded in, per-tick values hoisted, the channel fixed."""
    hoist: dict = {}
    src = ExprCompiler(ZONE.prog.S, hoist, channel, RS.channels).compile(expr)
    head = "".join(f"    {name} = {init}\n" for name, init in hoist.items())
    ns: dict = {}
    exec(f"def f(x):\n    now = x.now; mv = x.mv; S = x.S; T = x.T; st = x.st\n{head}    return {src}\n", ns)
    return ns["f"]


FNS = [compiled_fn(e) for e in EXPRS]
# the tick functions fold a zone's profile settings into the code: check that form too
FOLDED = [compiled_fn(e, ZONE.prog.S) for e in EXPRS]
UNROLLED = [{ch: unrolled_fn(e, ch) for ch in CHANNELS} for e in EXPRS]
maybe = st.one_of(st.none(), st.floats(min_value=0, max_value=100, allow_nan=False))


@settings(max_examples=150, deadline=None)
@given(
    values=st.dictionaries(st.sampled_from(["ph", "ec", "temp_water", "water_level"]), maybe),
    ages=st.dictionaries(st.sampled_from(["ph", "ec", "temp_water", "water_level"]), st.integers(0, 600)),
    flows=st.lists(maybe, min_size=3, max_size=3),
    flags=st.lists(st.sampled_from([None, 0.0, 1.0, 3.0]), min_size=3, max_size=3),  # 3: no flag, unknown
    on=st.lists(st.booleans(), min_size=len(CHANNELS), max_size=len(CHANNELS)),
    since=st.integers(0, 7200),
    failed=st.integers(0, 4),
    alert=st.sampled_from([None, "biz_water_change_failed", "biz_dry_run"]),
    solution=st.one_of(st.none(), st.floats(min_value=0.5, max_value=3)),
    age=st.one_of(st.none(), st.integers(0, 20 * 86400)),
)
def test_compiled_conditions_equal_the_interpreter(values, ages, flows, flags, on, since, failed, alert, solution, age):
    now = T0 + 86400
    z = ZONE
    state = z.prog.new_state(T0)
    snap = {}
    for metric, v in values.items():
        if v is not None:
            node = z.loaded.ruleset.zone("zn-t").metric_nodes[metric]
            snap[(node, metric)] = (v, now - ages.get(metric, 0))
    for node, f in zip(PUMP_NODES.values(), flows):
        if f is not None:
            snap[(node, "flow_rate")] = (f, now)
            snap[(node, "pump_current")] = (f * 50, now)
    for node, flag in zip(PUMP_NODES.values(), flags):
        if flag is not None:
            snap[(node, "flow_present")] = (flag, now)
    for ch, is_on in zip(CHANNELS, on):
        state.channels[ch].is_on = is_on
        state.channels[ch].since = now - since
        state.channels[ch].failures = [now - 60.0 * i for i in range(failed)]
    if alert:
        state.alerts[(alert, "pump_recirc" if alert == "biz_dry_run" else None)] = AlertState(
            alert, "pump_recirc" if alert == "biz_dry_run" else None, ACTIVE, now
        )
    if solution is not None:
        state.solution["ec"] = solution
    state.solution_started_at = None if age is None else now - age
    z.prog.prepare(state, snap, now)
    for expr, fn, folded, unrolled in zip(EXPRS, FNS, FOLDED, UNROLLED):
        for ch in CHANNELS:
            arg = ch if _uses_channel(expr) else None
            want = interp.evaluate(expr, z.prog, arg)
            text = interp.trace(expr, z.prog, arg).text
            assert fn(z.prog, arg) == want, (text, fn(z.prog, arg), want)
            assert folded(z.prog, arg) == want, (text, folded(z.prog, arg), want)
            assert unrolled[ch](z.prog) == want, (text, ch, unrolled[ch](z.prog), want)
            if arg is None:
                break


def _uses_channel(expr) -> bool:
    from hydro_rules.lang import model as M

    if isinstance(expr, M.ChannelRef | M.ChannelIs):
        return expr.channel is None
    if isinstance(expr, M.Func) and expr.name == "failures":
        return expr.args[0] is None
    kids = []
    if isinstance(expr, M.Cmp | M.Arith):
        kids = [expr.left, expr.right]
    elif isinstance(expr, M.Logic):
        kids = list(expr.items)
    elif isinstance(expr, M.Not | M.Neg | M.Known):
        kids = [expr.operand]
    elif isinstance(expr, M.Func):
        kids = [a for a in expr.args if a is not None and not isinstance(a, str)]
    return any(_uses_channel(k) for k in kids)


def test_state_survives_a_json_round_trip():
    import json

    from hydro_rules.engine.state import ZoneState

    z = Zone()
    z.set(ph=6.6, ec=1.4, temp_water=21.0, water_level=90.0).tick(40)
    data = json.loads(json.dumps(z.state.to_json()))
    back = ZoneState.from_json(data)
    assert back.to_json() == z.state.to_json()
    # and the engine carries on from it exactly as from the original
    z2 = Zone()
    z2.state, z2.now, z2.readings, z2.snap = back, z.now, dict(z.readings), dict(z.snap)
    z2._answers = list(z._answers)  # answers already on their way
    before = len(z.commands)
    z.tick(30)
    z2.tick(30)
    assert z2.commands, "the half hour after the snapshot has commands to compare"
    assert [c.to_json() for c in z.commands[before:]] == [c.to_json() for c in z2.commands]
    assert z.state.to_json() == z2.state.to_json()


def test_a_state_saved_for_another_zone_shape_still_evaluates():
    """A site adds or removes a channel between restarts: the saved state must not break the daemon."""
    z = Zone()
    z.set(ph=6.0, ec=1.4, temp_water=21.0, water_level=90.0).tick(15)
    data = z.state.to_json()
    data["channels"].pop("pump_fill")  # the zone gained pump_fill since
    data["channels"]["pump_old"] = dict(data["channels"]["pump_drain"], pending={"x-1": z.now - 600})
    z.state = ZoneState.from_json(data)
    z.tick(5)
    assert z.state.channels["pump_fill"].is_on is False
    assert z.state.channels["pump_old"].pending == {"x-1": z.now - 900}, "an unbound channel is left alone"


def test_a_state_saved_with_fields_this_engine_does_not_know_still_loads():
    """A state saved by an older or newer engine (fields it had then, e.g. last_status) loads without them."""
    z = Zone()
    z.set(ph=6.6, ec=1.4, temp_water=21.0, water_level=90.0).tick(20)
    data = z.state.to_json()
    data["retired_field"] = 1
    data["channels"]["pump_recirc"]["last_status"] = "DONE"
    data["alerts"] = [dict(a, count=3, resolved_by=None) for a in data["alerts"]]
    assert data["alerts"], "a pending or active alert is saved with the state"
    back = ZoneState.from_json(data)
    assert back.to_json() == z.state.to_json()


def test_the_generated_source_is_there_to_read():
    """CompiledRuleSet.source(): what runs for a zone, guards and tick, as Python a person can read."""
    src = ZONE.prog.compiled.source("zn-t")
    compile(src, "<source>", "exec")
    assert "def tick(x):" in src
    assert all(f"# guard {g}" in src for g in RS.guards)
    assert all(f"# alert {a.code}" in src for a in RS.alerts.values() if a.when or a.clear)
    assert all(f"# rule {r}" in src for r in RS.rules)
