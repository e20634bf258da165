"""A checked rule set to Python: one generated `tick` function per zone shape.

The tick function evaluates every alert (unrolled per channel for `for each`
alerts), the transitions of each machine's current state and the reactive
rules, calling the zone program's runtime for lifecycles and actions. Guards
become one function each. The source is kept (`CompiledRuleSet.source`) so
that what runs can be read.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..lang import model as M
from ..lang import units as U
from ..lang.activity import zone_activity
from . import interp
from .codegen import ExprCompiler
from .horizon import failure_windows, horizon_source
from .runtime import LEVEL_METRIC, ZoneProgram
from .state import PENDING


@dataclass(frozen=True, slots=True)
class AlertSpec:
    code: str
    channel: str | None
    key: tuple
    hold: float
    clear_hold: float
    when_text: str
    clear_text: str


@dataclass(frozen=True, slots=True)
class TransitionSpec:
    machine: str
    index: int
    model: M.Transition


@dataclass(frozen=True, slots=True)
class RuleSpec:
    name: str
    model: M.Rule
    repeat: float | None
    hold_key: str


class CompiledRuleSet:
    """Compile once, then `program(zone_uid)` for each zone and caller."""

    def __init__(self, ruleset: M.RuleSet):
        self.ruleset = ruleset
        self.metrics_used: set[str] = set()
        self.unchanged_metrics: set[str] = set()
        self.history_metrics: dict[str, float] = {}
        self.drift_metrics: set[str] = set()
        #: channels `filled(CHANNEL, WINDOW)` reads -> the longest window it is read over
        self.filled_channels: dict[str, float] = {}
        #: the settings the generated tick folds in as constants: zones that differ in others share it
        self.settings_read: set[str] = set()
        self.alerts_on_error: dict[str, list[str]] = {}
        for a in ruleset.alerts.values():
            for code in a.on_error:
                self.alerts_on_error.setdefault(code, []).append(a.code)
        for e in _all_expressions(ruleset):
            self._note(e)
        self.settings_read |= _duration_settings(ruleset)
        for a in all_actions(ruleset):
            if a.amount is not None:
                self._note(a.amount)
            for step in a.then or ():
                self._note(step[1])
            if a.verb == "record":
                self.metrics_used.update(a.names)
        self.metrics_used |= {m for m in ruleset.metrics if any(m in z.metric_nodes for z in ruleset.zones)}
        #: channels under recirculation duty: targets of `recirculate`, in the order written
        self.recirculated = tuple(dict.fromkeys(a.target for a in all_actions(ruleset) if a.verb == "recirculate"))
        #: guards as they run in a zone that binds every channel; see guards_for
        self.guard_fns, self.guard_source = self._guards(frozenset())
        self._guard_sets: dict[frozenset, tuple] = {frozenset(): (self.guard_fns, self.guard_source)}
        self._ticks: dict[tuple, tuple] = {}
        self._horizons: dict[tuple, tuple] = {}
        #: every window `failures(CHANNEL, WINDOW)` is read over
        self.failure_windows = failure_windows(ruleset)

    # ---- what the expressions need ----------------------------------------------------
    def _note(self, e) -> None:
        if isinstance(e, M.SettingRef):
            self.settings_read.add(e.path)
        elif isinstance(e, M.MetricIs):
            self.metrics_used.add(e.metric)
        elif isinstance(e, M.MetricRef):
            self.metrics_used.add(e.metric)
            if e.attr == "unchanged_for":
                self.unchanged_metrics.add(e.metric)
        elif isinstance(e, M.Func):
            if e.name in ("change", "drift"):
                self.metrics_used.add(e.args[0])
            if e.name == "filled":
                w = float(e.args[1].value)
                self.metrics_used.add(LEVEL_METRIC)
                self.filled_channels[e.args[0]] = max(w, self.filled_channels.get(e.args[0], 0.0))
            if e.name == "drift":
                self.drift_metrics.add(e.args[0])
            if e.name == "change":
                w = float(e.args[1].value)
                self.history_metrics[e.args[0]] = max(w, self.history_metrics.get(e.args[0], 0.0))
            for a in e.args:
                if a is not None and not isinstance(a, str):
                    self._note(a)
            return
        for child in _children(e):
            self._note(child)

    # ---- programs ---------------------------------------------------------------------------
    def program(self, zone_uid: str) -> ZoneProgram:
        """A new program for the zone (its compiled code is shared). A program holds the tick it is
        evaluating, so each caller gets its own: the service's guard checks and a dry run in a
        worker thread must not evaluate on the same one."""
        zone = self.ruleset.zone(zone_uid)
        if zone is None:
            raise KeyError(f"no zone {zone_uid!r} in rule set {self.ruleset.ruleset_version}")
        tick, _ = self.tick_for(zone)
        return ZoneProgram(self, zone, tick, self.guards_for(zone)[0])

    def tick_for(self, zone: M.Zone, settings: dict | None = None):
        """(tick function, its source) for a zone with `settings` (its effective settings now; None:
        the zone's without a recipe phase). Compiled once per zone shape: the channels it binds, what
        is active there and the settings the code folds in as constants."""
        if settings is None:
            settings = self.ruleset.zone_settings(zone)
        act = zone_activity(self.ruleset, zone)
        key = (frozenset(zone.channels), act.key, _settings_key({p: settings.get(p) for p in self.settings_read}))
        if key not in self._ticks:
            source, env = self._tick_source(zone, settings)
            code = compile(source, f"<rules {self.ruleset.ruleset_version} tick>", "exec")
            ns: dict = dict(env)
            exec(code, ns)  # noqa: S102 - source generated from the checked model above
            if len(self._ticks) > 1024:
                self._ticks.clear()
            self._ticks[key] = (ns["tick"], source)
        return self._ticks[key]

    def horizon_for(self, zone: M.Zone, settings: dict):
        """(condition horizon functions, guard name -> its horizon function, hold key -> hold) of a zone shape with
        `settings` (see horizon.py); compiled once per shape, like its tick."""
        act = zone_activity(self.ruleset, zone)
        key = (frozenset(zone.channels), act.key, _settings_key({p: settings.get(p) for p in self.settings_read}))
        got = self._horizons.get(key)
        if got is None:
            source, env, n, names = horizon_source(self, zone, settings, hold_of)
            exec(compile(source, f"<rules {self.ruleset.ruleset_version} horizon>", "exec"), env)  # noqa: S102
            conds = tuple(env[f"c_{k}"] for k in range(n))
            guards = {name: env[f"g_{i}"] for i, name in enumerate(names)}
            holds = {}
            for mname, m in self.ruleset.machines.items():
                for sname, s in m.states.items():
                    for i, t in enumerate(s.transitions):
                        holds[f"{mname}/{sname}/{i}"] = hold_of(t.cond, settings)
            for rname, r in self.ruleset.rules.items():
                holds[f"rule/{rname}"] = hold_of(r.cond, settings)
            if len(self._horizons) > 1024:
                self._horizons.clear()
            got = self._horizons[key] = (conds, guards, holds, source)
        return got[:3]

    def guards_for(self, zone: M.Zone):
        """(guard functions, their source) for a zone: a deny that reads a channel the zone does not
        bind reads its values unknown, `is on` false, `is off` true, `is locked` false."""
        absent = frozenset(c for c in self.ruleset.channels if c not in zone.channels)
        got = self._guard_sets.get(absent)
        if got is None:
            got = self._guard_sets[absent] = self._guards(absent)
        return got

    def source(self, zone_uid: str) -> str:
        zone = self.ruleset.zone(zone_uid)
        return self.guards_for(zone)[1] + "\n\n" + self.tick_for(zone)[1]

    # ---- generation ---------------------------------------------------------------------------
    def _guards(self, absent: frozenset):
        lines = []
        for i, (name, g) in enumerate(self.ruleset.guards.items()):
            xc = ExprCompiler(absent=absent)
            lines.append(f"def guard_{i}(x, ch):  # guard {name}")
            lines.append("    mv = x.mv; S = x.S; T = x.T")
            for j, d in enumerate(g.denies):
                lines.append(f"    if (c := {xc.compile(d.expr)}) is not False:  # {d.reason}")
                lines.append(f"        return {j}, c is None")
            lines.append("    return None")
            lines.append("")
        source = "\n".join(lines)
        ns: dict = {}
        exec(compile(source, f"<rules {self.ruleset.ruleset_version} guards>", "exec"), ns)  # noqa: S102
        return {name: ns[f"guard_{i}"] for i, name in enumerate(self.ruleset.guards)}, source

    def _tick_source(self, zone: M.Zone, settings: dict):
        rs = self.ruleset
        act = zone_activity(rs, zone)
        absent = frozenset(c for c in rs.channels if c not in zone.channels)
        env: dict = {"PENDING": PENDING}
        out = [
            "def tick(x):",
            "    now = x.now; mv = x.mv; S = x.S; T = x.T; st = x.st",
            "    alerts = st.alerts; machines = st.machines; entered = st.entered_at",
        ]
        hoist: dict = {}  # per-tick values every condition reads: read once, at the top
        head = len(out)
        n = 0

        def const(value) -> str:
            nonlocal n
            n += 1
            name = f"C{n}"
            env[name] = value
            return name

        # alerts
        for a in rs.alerts.values():
            if (not a.when and a.clear is None) or not act.alert_active(a.code):
                continue
            channels = [None]
            if a.scope is not None:
                channels = [c for c in zone.channels if a.scope.covers(rs.channels[c])]
            for ch in channels:
                xc = ExprCompiler(settings, hoist, ch, rs.channels, absent)
                when = a.when[0] if a.when else None
                spec = AlertSpec(
                    a.code,
                    ch,
                    (a.code, ch),
                    hold_of(when, settings),
                    hold_of(a.clear, settings),
                    when.text if when else "",
                    a.clear.text if a.clear else "",
                )
                s, k = const(spec), const(spec.key)
                out.append(f"    # alert {a.code}" + (f" on {ch}" if ch else ""))
                out.append(f"    a = alerts.get({k})")
                if when is not None:
                    out.append("    if a is None or a.status is PENDING:")
                    out.append(f"        if {xc.compile(when.expr)}:")
                    out.append(f"            x.alert_true({s}, a)")
                    out.append("        elif a is not None:")
                    out.append(f"            del alerts[{k}]")
                    branch = "    elif"
                else:
                    branch = "    if a is not None and"
                if a.clear is not None:
                    out.append(f"{branch} a.status is not PENDING:")
                    out.append(f"        if {xc.compile(a.clear.expr)}:")
                    out.append(f"            x.alert_clear({s}, a)")
                    out.append("        elif a.clear_since is not None:")
                    out.append("            a.clear_since = None")
        # machines
        for mname, m in rs.machines.items():
            if not act.machine_active(mname):
                out.append(f"    # machine {mname}: inactive in this zone")
                continue
            out.append(f"    # machine {mname}")
            out.append(f"    s = machines[{mname!r}]")
            first_state = True
            for sname, state in m.states.items():
                live = [(i, t) for i, t in enumerate(state.transitions) if act.transition_active(mname, sname, i)]
                if not live:
                    continue
                out.append(f"    {'if' if first_state else 'elif'} s == {sname!r}:")
                first_state = False
                for k, (i, t) in enumerate(live):
                    spec = const(TransitionSpec(mname, i, t))
                    xc = ExprCompiler(settings, hoist, channels=rs.channels, absent=absent)
                    conds = []
                    if t.every is not None:
                        conds.append(f"x.due({xc.compile(t.every)}, {xc.compile(t.at)})")
                    if t.cond is not None:
                        c = xc.compile(t.cond.expr)
                        hold = hold_of(t.cond, settings)
                        if hold > 0:
                            hk = const(f"{mname}/{sname}/{i}")
                            conds.append(f"x.hold({hk}, {c}, {hold!r})")
                        else:
                            conds.append(c)
                    after = after_of(t, settings)
                    if after is not None:
                        conds.append(f"now - entered[{mname!r}] >= {after!r}")
                    out.append(f"        {'if' if k == 0 else 'elif'} {' and '.join(conds)}:")
                    out.append(f"            x.go({spec})")
        # reactive rules
        for rname, r in rs.rules.items():
            if not act.rule_active(rname):
                out.append(f"    # rule {rname}: inactive in this zone")
                continue
            repeat = settings.get(r.repeat_setting, r.repeat_s) if r.repeat_setting else r.repeat_s
            spec = RuleSpec(rname, r, repeat, f"rule/{rname}")
            s = const(spec)
            hk = const(spec.hold_key)
            xc = ExprCompiler(settings, hoist, channels=rs.channels, absent=absent)
            states = tuple(sn for sn in r.states if (st_ := rs.state(sn)) is None or act.state_active(st_.machine, sn))
            out.append(f"    # rule {rname}")
            indent = "    "
            if states:
                machines_of = {}
                for sn in states:
                    machines_of.setdefault(rs.state(sn).machine, []).append(sn)
                test = " or ".join(f"machines[{m!r}] in {tuple(v)!r}" for m, v in machines_of.items())
                out.append(f"    if {test}:")
                indent = "        "
            out.append(f"{indent}if x.hold({hk}, {xc.compile(r.cond.expr)}, {hold_of(r.cond, settings)!r}):")
            out.append(f"{indent}    x.fire({s})")
            out.append(f"{indent}elif {s}.name in st.fired:")
            out.append(f"{indent}    del st.fired[{s}.name]")
            if states:
                out.append("    else:")
                out.append(f"        x.rule_idle({s})")
        out.append("    return None")
        out[head:head] = [f"    {name} = {src}" for name, src in hoist.items()]
        return "\n".join(out) + "\n", env

    # ---- interpreted paths --------------------------------------------------------------------
    def value(self, prog: ZoneProgram, expr):
        return interp.evaluate(expr, prog) if expr is not None else None

    def explain_transition(self, prog: ZoneProgram, tr: TransitionSpec) -> str:
        t = tr.model
        parts = []
        if t.every is not None:
            every = interp.evaluate(t.every, prog)
            at = interp.evaluate(t.at, prog)
            parts.append(f"schedule: every {U.format_duration(every)} at {U.describe(at, U.TIME_OF_DAY)}")
        if t.cond is not None:
            vals = interp.values_seen(interp.trace(t.cond.expr, prog))
            h = hold_of(t.cond, prog.S)
            hold = f" for {U.format_duration(h)}" if h else ""
            parts.append(f"{t.cond.text}{hold}" + (f" ({vals})" if vals else ""))
        after = after_of(t, prog.S)
        if after is not None:
            parts.append(("timeout: " if t.is_fail else "after ") + U.format_duration(after))
        return "; ".join(parts)


def hold_of(cond: M.Condition | None, settings: dict) -> float:
    """A condition's hold in a zone: the setting it was written as (language 1.2), else its own."""
    if cond is None:
        return 0.0
    if cond.hold_setting:
        v = settings.get(cond.hold_setting)
        if v is not None:
            return float(v)
    return cond.hold_s


def after_of(t: M.Transition, settings: dict) -> float | None:
    """A transition's `after`/`fail after` in a zone: the setting it was written as, else its own."""
    if t.after_setting:
        v = settings.get(t.after_setting)
        if v is not None:
            return float(v)
    return t.after_s


def _duration_settings(rs: M.RuleSet) -> set[str]:
    """The settings holds, timeouts and repeats are written as (language 1.2)."""
    out = set()
    conds = [c for a in rs.alerts.values() for c in (*a.when, a.clear) if c is not None]
    conds += [r.cond for r in rs.rules.values()]
    for m in rs.machines.values():
        for st in m.states.values():
            for t in st.transitions:
                if t.cond is not None:
                    conds.append(t.cond)
                if t.after_setting:
                    out.add(t.after_setting)
    out |= {c.hold_setting for c in conds if c.hold_setting}
    out |= {r.repeat_setting for r in rs.rules.values() if r.repeat_setting}
    return out


def _settings_key(settings: dict):
    try:
        return frozenset(settings.items())
    except TypeError:  # an unhashable value: its text tells it
        return repr(sorted(settings.items(), key=lambda kv: kv[0]))


def _children(e):
    if isinstance(e, M.Cmp | M.Arith):
        return (e.left, e.right)
    if isinstance(e, M.Logic):
        return e.items
    if isinstance(e, M.Not | M.Neg | M.Known):
        return (e.operand,)
    return ()


def all_actions(rs: M.RuleSet):
    """Every action of the rule set: of states (enter, exit), transitions and reactive rules."""
    for m in rs.machines.values():
        for s in m.states.values():
            yield from s.enter
            yield from s.exit
            for t in s.transitions:
                yield from t.actions
    for r in rs.rules.values():
        yield from r.actions


def _all_expressions(rs: M.RuleSet):
    for a in rs.alerts.values():
        for c in a.when:
            yield c.expr
        if a.clear:
            yield a.clear.expr
    for g in rs.guards.values():
        for d in g.denies:
            yield d.expr
    for m in rs.machines.values():
        for s in m.states.values():
            for t in s.transitions:
                if t.cond:
                    yield t.cond.expr
                for e in (t.every, t.at):
                    if e is not None:
                        yield e
    for r in rs.rules.values():
        yield r.cond.expr
