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
from . import interp
from .codegen import ExprCompiler
from .runtime import ZoneProgram
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
        self.alerts_on_error: dict[str, list[str]] = {}
        for a in ruleset.alerts.values():
            for code in a.on_error:
                self.alerts_on_error.setdefault(code, []).append(a.code)
        for e in _all_expressions(ruleset):
            self._note(e)
        for a in all_actions(ruleset):
            if a.amount is not None:
                self._note(a.amount)
            if a.verb == "record":
                self.metrics_used.update(a.names)
        self.metrics_used |= {m for m in ruleset.metrics if any(m in z.metric_nodes for z in ruleset.zones)}
        #: channels under recirculation duty: targets of `recirculate`, in the order written
        self.recirculated = tuple(dict.fromkeys(a.target for a in all_actions(ruleset) if a.verb == "recirculate"))
        self.guard_fns, self.guard_source = self._guards()
        self._ticks: dict[tuple, tuple] = {}

    # ---- what the expressions need ----------------------------------------------------
    def _note(self, e) -> None:
        if isinstance(e, M.MetricIs):
            self.metrics_used.add(e.metric)
        elif isinstance(e, M.MetricRef):
            self.metrics_used.add(e.metric)
            if e.attr == "unchanged_for":
                self.unchanged_metrics.add(e.metric)
        elif isinstance(e, M.Func):
            if e.name in ("change", "drift"):
                self.metrics_used.add(e.args[0])
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
        return ZoneProgram(self, zone, tick, self.guard_fns)

    def tick_for(self, zone: M.Zone):
        key = (frozenset(zone.channels), zone.profile)
        if key not in self._ticks:
            source, env = self._tick_source(zone)
            code = compile(source, f"<rules {self.ruleset.ruleset_version} tick>", "exec")
            ns: dict = dict(env)
            exec(code, ns)  # noqa: S102 - source generated from the checked model above
            self._ticks[key] = (ns["tick"], source)
        return self._ticks[key]

    def source(self, zone_uid: str) -> str:
        zone = self.ruleset.zone(zone_uid)
        return self.guard_source + "\n\n" + self.tick_for(zone)[1]

    # ---- generation ---------------------------------------------------------------------------
    def _guards(self):
        lines = []
        for i, (name, g) in enumerate(self.ruleset.guards.items()):
            xc = ExprCompiler()
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

    def _tick_source(self, zone: M.Zone):
        rs = self.ruleset
        settings = rs.profiles[zone.profile].settings
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
            if not a.when and a.clear is None:
                continue
            channels = [None]
            if a.scope is not None:
                channels = [c for c in zone.channels if a.scope.covers(rs.channels[c])]
            for ch in channels:
                xc = ExprCompiler(settings, hoist, ch, rs.channels)
                when = a.when[0] if a.when else None
                spec = AlertSpec(
                    a.code,
                    ch,
                    (a.code, ch),
                    when.hold_s if when else 0.0,
                    a.clear.hold_s if a.clear else 0.0,
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
            out.append(f"    # machine {mname}")
            out.append(f"    s = machines[{mname!r}]")
            first_state = True
            for sname, state in m.states.items():
                if not state.transitions:
                    continue
                out.append(f"    {'if' if first_state else 'elif'} s == {sname!r}:")
                first_state = False
                for i, t in enumerate(state.transitions):
                    spec = const(TransitionSpec(mname, i, t))
                    xc = ExprCompiler(settings, hoist)
                    conds = []
                    if t.every is not None:
                        conds.append(f"x.due({xc.compile(t.every)}, {xc.compile(t.at)})")
                    if t.cond is not None:
                        c = xc.compile(t.cond.expr)
                        if t.cond.hold_s > 0:
                            hk = const(f"{mname}/{sname}/{i}")
                            conds.append(f"x.hold({hk}, {c}, {t.cond.hold_s!r})")
                        else:
                            conds.append(c)
                    if t.after_s is not None:
                        conds.append(f"now - entered[{mname!r}] >= {t.after_s!r}")
                    out.append(f"        {'if' if i == 0 else 'elif'} {' and '.join(conds)}:")
                    out.append(f"            x.go({spec})")
        # reactive rules
        for rname, r in rs.rules.items():
            spec = RuleSpec(rname, r, r.repeat_s, f"rule/{rname}")
            s = const(spec)
            hk = const(spec.hold_key)
            xc = ExprCompiler(settings, hoist)
            states = r.states
            out.append(f"    # rule {rname}")
            indent = "    "
            if states:
                machines_of = {}
                for sn in states:
                    machines_of.setdefault(rs.state(sn).machine, []).append(sn)
                test = " or ".join(f"machines[{m!r}] in {tuple(v)!r}" for m, v in machines_of.items())
                out.append(f"    if {test}:")
                indent = "        "
            out.append(f"{indent}if x.hold({hk}, {xc.compile(r.cond.expr)}, {r.cond.hold_s!r}):")
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
            hold = f" for {U.format_duration(t.cond.hold_s)}" if t.cond.hold_s else ""
            parts.append(f"{t.cond.text}{hold}" + (f" ({vals})" if vals else ""))
        if t.after_s is not None:
            parts.append(("timeout: " if t.is_fail else "after ") + U.format_duration(t.after_s))
        return "; ".join(parts)


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
