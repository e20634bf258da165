"""Checks that keep pumps safe: machines, actions, guards and recirculation schedules.

- every start of a pump names every guard that protects it (HR303);
- every state that runs a pump can leave, by a timeout or a transition (HR302);
- every state can be reached (HR301), every target exists (HR110);
- an NC recirculation schedule never asks for an OFF stretch longer than
  `max_recirc_off` (HR401), and its windows do not overlap (HR402);
- the states of a machine that hold an NC recirculation pump OFF (from a state that stops it
  to one that starts it again) are bounded by their timeouts: `check` shows the longest such
  stretch (HR601), and warns of a state that stops the pump with no timeout (HR504) when no zone
  uses the rule set;
- per zone (language 1.2, run from checks.py): every OFF stretch of an NC recirculation pump, from
  the zone's windows (each with its own `max_off`, `off` windows to their end) and every path through
  the active states that hold it off, each bounded by its timeouts with the zone's values: a path
  without a bound is an error (HR407), otherwise `check` shows the longest stretch (HR604).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import ast as A
from . import model as M
from . import units as U
from .diagnostics import Diagnostics, closest, did_you_mean
from .exprs import Typer

#: verb -> channel kinds it applies to
CHANNEL_VERBS = {
    "start": ("pump",),
    "stop": ("pump", "doser"),
    "recirculate": ("pump",),
    "release": ("pump", "valve"),
    "open": ("valve",),
    "close": ("valve",),
    "dose": ("doser",),
}
STARTING_VERBS = {"start", "recirculate", "open", "dose"}
MUST_BE_GUARDED = {"pump", "doser"}


@dataclass
class Usage:
    """What the machines and rules use; read by later checks."""

    channels: dict = field(default_factory=dict)  # channel -> span of first use
    guards: set = field(default_factory=set)
    raised: set = field(default_factory=set)
    recirculated: dict = field(default_factory=dict)  # channel -> span of `recirculate`


def check_machines(checker, typer: Typer, rs: M.RuleSet):
    d: Diagnostics = checker.d
    usage = Usage()
    all_states: dict[str, A.StateDecl] = {}
    for mdecl in checker.decls["machine"].values():
        for s in mdecl.states:
            if s.name.name in all_states:
                d.add(
                    "HR107",
                    f"state `{s.name.name}` is defined twice; first at {all_states[s.name.name].name.span}",
                    s.name.span,
                )
                continue
            all_states[s.name.name] = s
    actions = _Actions(checker, typer, rs, usage)
    machines = {}
    for name, mdecl in checker.decls["machine"].items():
        machine = _machine(d, mdecl, all_states, typer, actions)
        if machine:
            machines[name] = machine
    rules = {}
    for name, rdecl in checker.decls["rule"].items():
        rule = _rule(checker, rdecl, all_states, typer, actions)
        if rule:
            rules[name] = rule
    for name, span in typer.n.channels_used.items():
        usage.channels.setdefault(name, span)
    return machines, rules, usage


def _machine(d: Diagnostics, mdecl: A.MachineDecl, all_states, typer, actions) -> M.Machine | None:
    own = {s.name.name: s for s in mdecl.states if all_states.get(s.name.name) is s}
    initial = None
    if not mdecl.initial:
        d.add("HR304", f"machine `{mdecl.name.name}` needs `initial STATE`", mdecl.name.span)
    elif len(mdecl.initial) > 1:
        d.add("HR304", f"machine `{mdecl.name.name}` has more than one `initial`", mdecl.initial[1].span)
    elif mdecl.initial[0].name not in own:
        d.add(
            "HR304",
            f"initial state `{mdecl.initial[0].name}` is not a state of `{mdecl.name.name}`",
            mdecl.initial[0].span,
            did_you_mean(mdecl.initial[0].name, own),
        )
    else:
        initial = mdecl.initial[0].name
    states = {}
    for sname, s in own.items():
        enter = actions.block(s.enter)
        exit_ = actions.block(s.exit)
        transitions = []
        for t in s.transitions:
            tr = _transition(d, sname, t, own, all_states, typer, actions)
            if tr:
                transitions.append(tr)
        state = M.State(sname, mdecl.name.name, enter, exit_, tuple(transitions), s.name.span)
        states[sname] = state
        _check_runs_pump(d, state, s, typer.n.channels)
    if initial is None:
        return None
    _reachability(d, initial, own, states)
    return M.Machine(mdecl.name.name, initial, states, mdecl.name.span)


def _transition(d, source, t: A.Transition, own, all_states, typer: Typer, actions) -> M.Transition | None:
    target = t.target.name
    ok = True
    if target not in own:
        if target in all_states:
            d.add("HR110", f"`{target}` belongs to another machine", t.target.span)
        elif t.is_fail:
            d.add(
                "HR110",
                "`fail after` goes to state FAILED, which machine has none",
                t.span,
                "add `state FAILED { ... }` with what to do when a step times out",
            )
        else:
            d.add("HR110", f"transition to missing state `{target}`", t.target.span, did_you_mean(target, own))
        ok = False
    trig = t.trigger
    cond = typer.condition(trig.cond) if trig.cond is not None else None
    if trig.cond is not None and cond is None:
        ok = False
    every = at = None
    if trig.every is not None:
        every, at = typer.expr(trig.every), typer.expr(trig.at)
        if every is not None and every.dim != U.DURATION:
            d.add("HR201", "`every` needs a duration such as 7d", trig.every.span)
            ok = False
        if at is not None and at.dim != U.TIME_OF_DAY:
            d.add("HR201", "`at` needs a time of day such as 09:00", trig.at.span)
            ok = False
        ok = ok and every is not None and at is not None
    after = after_setting = None
    if isinstance(trig.after, A.Literal):
        after = float(trig.after.value)
        if after <= 0:
            d.add("HR204", "a timeout must be longer than 0", trig.after.span)
            ok = False
    elif trig.after is not None:  # a setting's path (language 1.2): each zone reads its own value
        got = typer.duration(trig.after, "a timeout")
        if got is None:
            ok = False
        else:
            after, after_setting = got
    acts = actions.block((t.actions,) if t.actions else ())
    if not ok:
        return None
    return M.Transition(source, target, cond, after, every, at, acts, t.is_fail, t.span, after_setting)


def _check_runs_pump(d, state: M.State, decl: A.StateDecl, channels) -> None:
    running = [
        a
        for a in state.enter
        if a.verb in ("start", "recirculate", "open")
        and a.amount is None
        and a.target in channels
        and channels[a.target].kind in ("pump", "valve")
    ]
    if running and not decl.transitions:  # as written: a transition with an error still leaves
        a = running[0]
        d.add(
            "HR302",
            f"state `{state.name}` runs `{a.target}` but has neither a timeout nor a way out",
            decl.name.span,
            "add `fail after 30m` or a `go ... when ...`",
        )


def _reachability(d, initial, own: dict[str, A.StateDecl], states) -> None:
    """States no transition leads to. The transitions are taken as written, so one with an
    error of its own (reported already) still counts, and a misspelled target counts as
    the state it most likely means: one mistake is reported once."""
    seen, todo = {initial}, [initial]
    while todo:
        decl = own.get(todo.pop())
        if decl is None:
            continue
        for t in decl.transitions:
            target = t.target.name if t.target.name in own else closest(t.target.name, own)
            if target is not None and target not in seen:
                seen.add(target)
                todo.append(target)
    for name, s in states.items():
        if name not in seen:
            d.add("HR301", f"state `{name}` cannot be reached from `{initial}`", s.span, "no transition leads to it")


def _rule(checker, r: A.RuleDecl, all_states, typer: Typer, actions) -> M.Rule | None:
    d = checker.d
    states, cond, acts, repeat, repeat_setting = [], None, (), None, None
    ok = True
    for it in r.items:
        if isinstance(it, A.Item) and it.keyword == "in":
            for s in it.values:
                if s.name not in all_states:
                    checker._unknown("HR103", "state", s, all_states)
                    ok = False
                else:
                    states.append(s.name)
        elif isinstance(it, A.Item) and it.keyword == "repeat every":
            value = it.values[0]
            if isinstance(value, A.Literal):
                repeat = float(value.value)
            else:  # a setting's path (language 1.2)
                got = typer.duration(value, "`repeat every`")
                if got is None:
                    ok = False
                else:
                    repeat, repeat_setting = got
        elif isinstance(it, A.RuleWhen):
            if cond is not None:
                d.add("HR107", "a rule has one `when`", it.span)
                continue
            cond = typer.condition(it.cond)
            ok = ok and cond is not None
        elif isinstance(it, A.RuleDo):
            acts = actions.block((it.actions,))
    whens = [it for it in r.items if isinstance(it, A.RuleWhen)]
    if not whens:
        d.add("HR206", f"rule `{r.name.name}` needs a `when`", r.name.span)
        ok = False
    if not any(isinstance(it, A.RuleDo) for it in r.items):
        d.add("HR206", f"rule `{r.name.name}` needs a `do {{ ... }}`", r.name.span)
        ok = False
    if not ok or cond is None:
        return None
    return M.Rule(r.name.name, tuple(states), cond, acts, repeat, r.name.span, repeat_setting)


class _Actions:
    """Checks actions and records what they use."""

    def __init__(self, checker, typer: Typer, rs: M.RuleSet, usage: Usage):
        self.c, self.d, self.typer, self.rs, self.usage = checker, checker.d, typer, rs, usage

    def block(self, blocks) -> tuple[M.Action, ...]:
        out = []
        for b in blocks:
            for a in b.items:
                act = self.action(a)
                if act:
                    out.append(act)
        return tuple(out)

    def action(self, a: A.Action) -> M.Action | None:
        verb = a.verb
        if verb in CHANNEL_VERBS:
            return self._channel_action(a)
        if verb in ("raise", "resolve"):
            code = a.target.name
            alert = self.rs.alerts.get(code)
            if alert is None:
                if code not in self.c.decls["alert"]:
                    self.c._unknown("HR104", "alert", a.target, self.c.decls["alert"])
                return None
            if verb == "raise":
                if alert.scope is not None:
                    self.d.add(
                        "HR113",
                        f"alert `{code}` is raised per channel; raise it from a guard's "
                        "`deny ... raise` or give it a `when`",
                        a.target.span,
                    )
                    return None
                self.usage.raised.add(code)
            return M.Action(verb, code, None, (), (), a.span)
        if verb == "record":
            names = []
            for n in a.names:
                if n.name not in self.rs.metrics:
                    self.c._unknown("HR101", "metric", n, self.rs.metrics)
                else:
                    names.append(n.name)
            return M.Action("record", None, None, (), tuple(names), a.span)
        if verb == "event":
            return M.Action("event", a.target.name, None, (), (), a.span)
        return M.Action("reset_solution", None, None, (), (), a.span)

    def _channel_action(self, a: A.Action) -> M.Action | None:
        verb, name = a.verb, a.target.name
        ch = self.rs.channels.get(name)
        if ch is None:
            if name not in self.c.decls["channel"]:
                self.c._unknown("HR102", "channel", a.target, self.rs.channels)
            return None
        self.usage.channels.setdefault(name, a.target.span)
        if ch.kind not in CHANNEL_VERBS[verb]:
            self.d.add(
                "HR113",
                f"`{verb}` does not apply to `{name}`, a {ch.kind}",
                a.target.span,
                {
                    "pump": "pumps are started and stopped",
                    "valve": "valves are opened and closed",
                    "doser": "dosers dose an amount",
                    "sensor": "sensors are read, not switched",
                }[ch.kind],
            )
            return None
        amount = None
        if a.amount is not None:
            amount = self.typer.expr(a.amount)
            want = U.VOLUME if verb == "dose" else U.DURATION
            if amount is not None and amount.dim != want:
                self.d.add(
                    "HR201",
                    f"`{verb}` takes {'a volume such as 2 ml' if verb == 'dose' else 'a duration'}, not {amount.dim}",
                    a.amount.span,
                )
                return None
        guards, unresolved = [], False
        for g in a.guards:
            guard = self.rs.guards.get(g.name)
            if guard is None:
                if g.name not in self.c.decls["guard"]:
                    self.c._unknown("HR105", "guard", g, self.c.decls["guard"])
                unresolved = True
                continue
            self.usage.guards.add(g.name)
            if not guard.scope.covers(ch):
                self.d.add("HR113", f"guard `{g.name}` does not protect `{name}`", g.span)
                continue
            guards.append(g.name)
        if verb in STARTING_VERBS and not unresolved:  # a misspelled guard is reported once, as HR105
            self._guard_coverage(a, ch, guards)
        if verb == "recirculate":
            self.usage.recirculated.setdefault(name, a.target.span)
        then = ()
        if verb == "dose" and getattr(a, "then", ()):  # a dose group (language 1.2)
            then = self.c.dose_group(a, self)
            if then is None:
                return None
        return M.Action(verb, name, amount, tuple(guards), (), a.span, then)

    def _guard_coverage(self, a: A.Action, ch: M.Channel, named: list[str]) -> None:
        protecting = [g for g in self.rs.guards.values() if g.scope.covers(ch)]
        missing = [g.name for g in protecting if g.name not in named]
        if missing:
            self.d.add(
                "HR303",
                f"`{a.verb} {ch.name}` does not evaluate guard "
                + ", ".join(f"`{m}`" for m in missing)
                + f", which protects {ch.name}",
                a.span,
                "add `guarded by " + ", ".join(named + missing) + "`",
            )
        elif not protecting and ch.kind in MUST_BE_GUARDED:
            self.d.add(
                "HR303",
                f"`{a.verb} {ch.name}`: no guard protects {ch.kind} `{ch.name}`",
                a.span,
                f"declare `guard can_run_{ch.kind} for each {ch.kind} {{ ... }}` and use it here",
            )


def check_schedules(d: Diagnostics, rs: M.RuleSet, usage: Usage) -> None:
    """Recirculation windows of every profile, when an NC pump is recirculated."""
    nc = [n for n in usage.recirculated if rs.channels[n].fail_safe == "NC"]
    if not nc:
        return
    # a profile's windows, and those a zone gives in place of its profile's (language 1.2)
    sources = [(p.settings, p.windows) for p in rs.profiles.values()]
    sources += [(rs.zone_settings(z), z.windows) for z in rs.zones if z.windows is not None]
    for settings, windows in sources:
        if not settings.get("water_cycle.recirc.enabled", True) or not windows:
            continue
        max_off = settings["water_cycle.recirc.max_recirc_off"]
        ws = sorted(windows, key=lambda w: w.start_s)
        for i, a in enumerate(ws):
            for b in ws[i + 1 :]:
                if _overlap(a, b):
                    d.add(
                        "HR402",
                        f"schedule windows overlap: {_hm(a.start_s)}-{_hm(a.end_s)} and "
                        f"{_hm(b.start_s)}-{_hm(b.end_s)}",
                        b.span,
                    )
        limit = U.format_duration(max_off)
        for w in ws:
            off = (1.0 - w.duty) * w.period_s
            bound = w.max_off_s if w.max_off_s is not None else max_off
            if not w.off and off > bound:
                name = "max_off" if w.max_off_s is not None else "max_recirc_off"
                d.add(
                    "HR401",
                    f"duty {w.duty * 100:g}% of {U.format_duration(w.period_s)} switches {nc[0]} OFF "
                    f"for {U.format_duration(off)} at a time, longer than {name} {U.format_duration(bound)}",
                    w.span,
                    "raise the duty or shorten the period",
                )
        for start, end, before in _gaps(ws):
            gap = (end - start) % 86400
            off = gap + (1.0 - before.duty) * before.period_s
            if off > max_off:
                d.add(
                    "HR401",
                    f"no window covers {_hm(start)}-{_hm(end)}: {nc[0]} would be OFF for up to "
                    f"{U.format_duration(off)}, longer than max_recirc_off {limit}",
                    before.span,
                    "cover the whole day with windows, e.g. a night window with a low duty",
                )


def _hm(s: float) -> str:
    return "24:00" if s == 86400 else U.describe(s % 86400, U.TIME_OF_DAY)


def _intervals(w: M.Window):
    if w.start_s < w.end_s:
        return [(w.start_s, w.end_s)]
    return [(w.start_s, 86400.0), (0.0, w.end_s)]


def _overlap(a: M.Window, b: M.Window) -> bool:
    return any(x0 < y1 and y0 < x1 for x0, x1 in _intervals(a) for y0, y1 in _intervals(b))


def _gaps(ws: list[M.Window]):
    """(start, end, window before) of each stretch of the day no window covers."""
    covered = sorted(iv for w in ws for iv in _intervals(w))
    merged: list[list[float]] = []
    for s, e in covered:
        if merged and s <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], e)
        else:
            merged.append([s, e])
    gaps = []
    for i, (_start, e) in enumerate(merged):
        nxt = merged[(i + 1) % len(merged)][0]  # merged stretches are apart: a gap follows each
        if nxt == 0 and e == 86400:
            continue  # ... except where the day wraps round covered
        before = next(w for w in ws if any(abs(x1 - e) < 1e-9 for _, x1 in _intervals(w)))
        gaps.append((e % 86400, nxt, before))
    return gaps


# ---- OFF stretches of an NC pump inside machine states ---------------------------------------------
def check_off_stretches(d: Diagnostics, rs: M.RuleSet, usage: Usage) -> None:
    """For each NC pump that is recirculated and each machine: the longest chain of consecutive
    states that keep it OFF, from a state that stops it until one that starts it again, each state
    bounded by its shortest timeout (`after`, `fail after`). The schedule limit (max_recirc_off)
    does not apply inside these states, so `check` shows how long they can hold the pump off."""
    nc = [n for n in usage.recirculated if n in rs.channels and rs.channels[n].fail_safe == "NC"]
    for pump in nc:
        for m in rs.machines.values():
            best = None
            for s in m.states.values():
                if _switches(s.enter, pump) != "stop":
                    continue
                stretch = _OffStretch(m, pump).longest(s.name)
                if best is None or stretch.rank > best.rank:
                    best = stretch
            if best is None:
                continue
            first = m.states[best.states[0][0]]
            if best.bounded:
                steps = " + ".join(f"{name} {U.format_duration(b)}" for name, b in best.states)
                d.add(
                    "HR601",
                    f"{pump} (fail_safe NC) can be held OFF by machine `{m.name}` for up to "
                    f"{U.format_duration(best.seconds)}: {steps}",
                    first.span,
                )
                continue
            words, passed = [], set()
            for name, b in best.states:
                words.append(
                    f"back to {name}" if name in passed else f"{name} {U.format_duration(b)}" if b is not None else name
                )
                passed.add(name)
            loose = best.unbounded_state
            why = "comes back to a state already passed" if best.cycle else "has no timeout"
            d.add(
                "HR601",
                f"{pump} (fail_safe NC) can be held OFF by machine `{m.name}` without a bound: "
                f"{', '.join(words)}; `{loose}` {why}",
                first.span,
            )
            held = m.states[loose]
            # with zones, the per-zone proof (HR407, check_zone_off_stretches) reports it as an error
            if not rs.zones and not best.cycle and _switches(held.enter, pump) == "stop" and held.transitions:
                d.add(
                    "HR504",
                    f"state `{loose}` stops {pump} (fail_safe NC) and has no timeout: "
                    "the pump can stay OFF for as long as the state lasts",
                    held.span,
                    "add `fail after ...` or `go ... after ...` to bound it",
                )


def _switches(actions, pump: str) -> str | None:
    """What a list of actions last does to `pump`: "start", "stop" or None (nothing)."""
    out = None
    for a in actions:
        if a.target == pump and a.verb in ("start", "recirculate"):
            out = "start"
        elif a.target == pump and a.verb == "stop":
            out = "stop"
    return out


@dataclass
class _Stretch:
    seconds: float
    states: list  # (state, its bound in seconds or None), in order
    unbounded_state: str | None = None  # the first state without a bound
    cycle: bool = False  # the chain comes back to a state it passed

    @property
    def bounded(self) -> bool:
        return self.unbounded_state is None

    @property
    def rank(self) -> tuple:
        return (not self.bounded, self.seconds, len(self.states))


class _OffStretch:
    """The longest path through the states of a machine that keep `pump` OFF."""

    def __init__(self, machine: M.Machine, pump: str):
        self.m, self.pump = machine, pump
        self.memo: dict[str, _Stretch] = {}
        self.on_path: set[str] = set()

    def longest(self, name: str) -> _Stretch:
        if name in self.memo:
            return self.memo[name]
        s = self.m.states[name]
        timeouts = [t.after_s for t in s.transitions if t.after_s is not None]
        bound = min(timeouts) if timeouts else None
        tail = _Stretch(0.0, [])
        self.on_path.add(name)
        if _switches(s.exit, self.pump) != "start":
            for t in s.transitions:
                nxt = self.m.states.get(t.target)
                if nxt is None or _switches(t.actions, self.pump) == "start":
                    continue
                if _switches(nxt.enter, self.pump) == "start":
                    continue  # the stretch ends where the next state starts the pump
                if t.target in self.on_path:
                    cand = _Stretch(0.0, [(t.target, None)], t.target, cycle=True)
                else:
                    cand = self.longest(t.target)
                if cand.rank > tail.rank:
                    tail = cand
        self.on_path.discard(name)
        out = _Stretch(
            (bound or 0.0) + tail.seconds,
            [(name, bound)] + tail.states,
            name if bound is None else tail.unbounded_state,
            tail.cycle if bound is not None else False,
        )
        if not out.cycle:
            self.memo[name] = out  # (a chain that loops depends on the path it was found on)
        return out


# ---- per zone (language 1.2): the machines' OFF stretches with the zone's settings and windows ---------
def recirculated_pumps(rs: M.RuleSet) -> list[str]:
    """The channels some state, transition or rule `recirculate`s, in the order first met."""
    out: dict[str, None] = {}
    for m in rs.machines.values():
        for s in m.states.values():
            for a in (*s.enter, *s.exit, *(a for t in s.transitions for a in t.actions)):
                if a.verb == "recirculate" and a.target:
                    out.setdefault(a.target)
    for r in rs.rules.values():
        for a in r.actions:
            if a.verb == "recirculate" and a.target:
                out.setdefault(a.target)
    return list(out)


def apply_switches(actions, status: set, pump: str) -> set:
    """What `pump` may be (a set of "on", "off") after `actions`, from `status`."""
    switched = _switches(actions, pump)
    return {"on" if switched == "start" else "off"} if switched else status


def pump_status(m: M.Machine, pump: str) -> tuple[dict, dict] | None:
    """(state -> what `pump` may be on entering it, state -> what it may be once its enter actions ran),
    over every way into the state from the initial one (where the pump is off); None when the machine
    never switches the pump."""
    states = m.states.values()
    if not any(
        _switches(s.enter, pump) or _switches(s.exit, pump) or any(_switches(t.actions, pump) for t in s.transitions)
        for s in states
    ):
        return None
    if m.initial not in m.states:
        return None
    entry: dict[str, set] = {m.initial: {"off"}}
    inside: dict[str, set] = {}
    todo = [m.initial]
    while todo:
        name = todo.pop()
        s = m.states[name]
        now = apply_switches(s.enter, set(entry[name]), pump)
        if inside.get(name) == now:
            continue
        inside[name] = now
        leaving = apply_switches(s.exit, now, pump)
        for t in s.transitions:
            if t.target not in m.states:
                continue
            out = apply_switches(t.actions, leaving, pump)
            if not out <= entry.get(t.target, set()):
                entry[t.target] = entry.get(t.target, set()) | out
                todo.append(t.target)
            elif t.target not in inside:
                todo.append(t.target)
    return entry, inside


def zone_activity_of(rs: M.RuleSet, zone: M.Zone):
    """What is active in `zone` (activity.py), or None where that is not known: everything is."""
    try:
        from .activity import zone_activity
    except ImportError:  # pragma: no cover - before activity.py exists
        return None
    return zone_activity(rs, zone)


#: the step the recirculation schedule is followed through the day in (HR604): one minute
_STEP = 60.0


class Schedule:
    """When the recirculation windows hold an NC pump off over a day, minute by minute.

    A duty window starts ON and switches off for (1 - duty) x period at the end of each period, for at
    most its `max_off` (else the profile's max_recirc_off); an `off` window, and a stretch no window
    covers, keeps the pump off to its end. No windows: the pump runs all day."""

    def __init__(self, windows, max_recirc_off: float):
        n = int(86400 / _STEP)
        self.off = [False] * n  # is the pump off for the whole of minute i?
        # the longest OFF part of a duty window too short for a whole minute of it to be off (a period
        # of seconds): the minutes below do not see it, so it is added where an OFF stretch may begin
        self.duty_off = 0.0
        for w in windows:
            if not w.off and 0 < w.duty < 1 and w.period_s > 0:
                part = self._off_part(w, max_recirc_off)
                if part < 2 * _STEP:
                    self.duty_off = max(self.duty_off, part)
        for i in range(n):
            t0 = i * _STEP
            w = next((w for w in windows if w.contains(t0 + _STEP / 2)), None)
            if w is None:
                self.off[i] = bool(windows)
            elif w.off or w.duty <= 0:
                self.off[i] = True
            elif w.duty < 1 and w.period_s > 0:
                on = w.duty * w.period_s
                phase = ((t0 - w.start_s) % 86400.0) % w.period_s
                self.off[i] = phase >= on and phase + _STEP <= on + self._off_part(w, max_recirc_off) + 1e-9
        self.n = n
        # minutes the pump has been off when minute i begins / stays off from minute i on (two turns
        # round the day, so a stretch over midnight counts whole)
        self._before, self._after = [0] * n, [0] * n
        if not all(self.off):
            run = 0
            for k in range(2 * n):
                self._before[k % n] = run
                run = run + 1 if self.off[k % n] else 0
            run = 0
            for k in range(2 * n - 1, -1, -1):
                run = run + 1 if self.off[k % n] else 0
                self._after[k % n] = run

    @staticmethod
    def _off_part(w, max_recirc_off: float) -> float:
        bound = w.max_off_s if w.max_off_s is not None else max_recirc_off
        return min((1.0 - w.duty) * w.period_s, bound)

    @property
    def always_off(self) -> bool:
        return all(self.off)

    def before(self, i: int) -> float:
        """How long the schedule has held the pump off when minute `i` begins."""
        return self._before[i % self.n] * _STEP

    def after(self, i: int) -> float:
        """How long the schedule holds the pump off from minute `i` on."""
        return self._after[i % self.n] * _STEP

    def longest(self) -> tuple[float, int]:
        """(the longest OFF stretch of the schedule alone, the minute it starts)."""
        best = (0.0, 0)
        for i in range(self.n):
            if self.off[i] and not self.off[i - 1]:
                best = max(best, (self.after(i), -i))
        if self.duty_off > best[0]:  # an OFF part shorter than the minute the day is followed in
            best = (self.duty_off, 0)
        return best[0], -best[1]

    def around(self, seconds: float, resumes: bool) -> tuple[float, float, int]:
        """(OFF before, OFF after, the minute it starts) that make a machine's OFF stretch of `seconds`,
        starting at any minute of the day, longest: the schedule's OFF just before it, and, when the
        schedule takes the pump over again at its end (`recirculate`), the OFF that follows."""
        steps = int(-(-seconds // _STEP))
        best = (-1.0, 0.0, 0.0, 0)
        for i in range(self.n):
            b = max(self.before(i), self.duty_off)  # (it may begin as any OFF part of a duty window ends)
            a = self.after((i + steps) % self.n) if resumes else 0.0
            if b + a > best[0]:
                best = (b + a, b, a, i)
        return best[1], best[2], best[3]


@dataclass
class _ZoneStretch(_Stretch):
    resumes: bool = False  # ends where the schedule takes over again (`recirculate`), not a plain `start`


class _ZoneOff:
    """The longest path through the active states of a machine that keep `pump` OFF in one zone,
    each state lasting at most its shortest active timeout (the zone's value of a setting)."""

    def __init__(self, machine: M.Machine, pump: str, settings: dict, act):
        self.m, self.pump, self.settings, self.act = machine, pump, settings, act
        self.memo: dict[str, _ZoneStretch] = {}
        self.on_path: set[str] = set()

    def active(self, state: str, index: int | None = None) -> bool:
        if self.act is None:
            return True
        if index is None:
            return self.act.state_active(self.m.name, state)
        return self.act.transition_active(self.m.name, state, index)

    def bound(self, s: M.State) -> float | None:
        out = None
        for i, t in enumerate(s.transitions):
            if t.after_s is None or not self.active(s.name, i):
                continue
            v = self.settings.get(t.after_setting, t.after_s) if t.after_setting else t.after_s
            v = float(v) if isinstance(v, int | float) and not isinstance(v, bool) else float(t.after_s)
            out = v if out is None else min(out, v)
        return out

    def longest(self, name: str) -> _ZoneStretch:
        if name in self.memo:
            return self.memo[name]
        s = self.m.states[name]
        bound = self.bound(s)
        tail = _ZoneStretch(0.0, [])
        self.on_path.add(name)
        exit_switch = _switches(s.exit, self.pump)
        if exit_switch == "start":
            tail.resumes = any(a.verb == "recirculate" and a.target == self.pump for a in s.exit)
        else:
            for i, t in enumerate(s.transitions):
                nxt = self.m.states.get(t.target)
                if nxt is None or not self.active(name, i) or not self.active(t.target):
                    continue
                if _switches(t.actions, self.pump) == "start" or _switches(nxt.enter, self.pump) == "start":
                    acts = (*t.actions, *nxt.enter) if _switches(t.actions, self.pump) != "start" else t.actions
                    last = [a for a in acts if a.target == self.pump and a.verb in ("start", "recirculate")]
                    cand = _ZoneStretch(0.0, [], resumes=bool(last) and last[-1].verb == "recirculate")
                elif t.target in self.on_path:
                    cand = _ZoneStretch(0.0, [(t.target, None)], t.target, cycle=True)
                else:
                    cand = self.longest(t.target)
                if cand.rank > tail.rank or (cand.rank == tail.rank and cand.resumes):
                    tail = cand
        self.on_path.discard(name)
        out = _ZoneStretch(
            (bound or 0.0) + tail.seconds,
            [(name, bound)] + tail.states,
            name if bound is None else tail.unbounded_state,
            tail.cycle if bound is not None else False,
            tail.resumes,
        )
        if not out.cycle:
            self.memo[name] = out
        return out


def _stop_points(m: M.Machine, pump: str) -> list[str]:
    """The states an OFF stretch of `pump` can begin in: those that stop it on entering, and those
    entered with it stopped by the way in (the source's `exit` or the transition's `do`)."""
    out = [s.name for s in m.states.values() if _switches(s.enter, pump) == "stop"]
    for s in m.states.values():
        for t in s.transitions:
            nxt = m.states.get(t.target)
            if nxt is None or t.target in out or _switches(nxt.enter, pump) is not None:
                continue
            if _switches((*s.exit, *t.actions), pump) == "stop":
                out.append(t.target)
    return out


def check_zone_off_stretches(rs: M.RuleSet, d: Diagnostics) -> None:
    """For each zone and each NC pump it recirculates: the longest OFF stretch any path allows, the
    recirculation windows and the machines' states that stop the pump together (HR604); a path with
    no bound is an error (HR407), once for every zone it holds in."""
    pumps = [p for p in recirculated_pumps(rs) if p in rs.channels and rs.channels[p].fail_safe == "NC"]
    unbounded: dict[tuple, list[str]] = {}  # (pump, machine, words, state, why) -> zones
    for zone in rs.zones:
        act = zone_activity_of(rs, zone)
        settings = rs.zone_settings(zone)
        for pump in pumps:
            if pump not in zone.channels:
                continue
            enabled = settings.get("water_cycle.recirc.enabled", True)
            windows = rs.zone_windows(zone) if enabled else ()
            sched = Schedule(windows, float(settings.get("water_cycle.recirc.max_recirc_off") or 0.0))
            if sched.always_off:
                d.add(
                    "HR407",
                    f"{pump} (fail_safe NC) has no bound on its OFF stretch in zone `{zone.uid}`: "
                    "its recirculation windows keep it off all day",
                    zone.span,
                    "give the pump a window with a duty above 0%",
                )
                continue
            longest, start = sched.longest()
            # (total, words, short label) of each way the pump is held off: the windows alone, and from
            # each state that stops it, the longest path of each machine with the windows around it
            paths = [(longest, f"its recirculation windows from {_hm(start * _STEP)}", "the windows alone")]
            if not longest:
                paths = [(0.0, "", "the windows never")]
            held = False
            for m in rs.machines.values():
                if act is not None and not act.machine_active(m.name):
                    continue
                walker = _ZoneOff(m, pump, settings, act)
                found = None
                for s in (m.states[n] for n in _stop_points(m, pump)):
                    if not walker.active(s.name):
                        continue
                    st = walker.longest(s.name)
                    if not st.bounded:
                        words, passed = [], set()
                        for name, b in st.states:
                            words.append(
                                f"back to {name}"
                                if name in passed
                                else f"{name} {U.format_duration(b)}"
                                if b is not None
                                else name
                            )
                            passed.add(name)
                        why = "comes back to a state already passed" if st.cycle else "has no timeout"
                        key = (pump, m.name, ", ".join(words), st.unbounded_state, why)
                        unbounded.setdefault(key, []).append(zone.uid)
                        held = True
                        continue
                    before, after, at = sched.around(st.seconds, st.resumes)
                    total = before + st.seconds + after
                    if found is None or total > found[0]:
                        parts = [f"the windows' OFF before it {U.format_duration(before)}"] if before else []
                        steps = " + ".join(f"{n} {U.format_duration(b)}" for n, b in st.states)
                        when = f" from {_hm(at * _STEP)}" if before or after else ""
                        parts.append(f"machine `{m.name}`{when}: {steps}")
                        if after:
                            parts.append(f"the windows' OFF after it {U.format_duration(after)}")
                        found = (total, " + ".join(parts), f"machine `{m.name}`")
                if found is not None:
                    paths.append(found)
            if held:
                continue  # HR407 says it
            paths.sort(key=lambda p: -p[0])
            (total, words, _), others = paths[0], paths[1:]
            message = f"{pump} (fail_safe NC) is OFF at most {U.format_duration(total)} at a time in zone `{zone.uid}`"
            message += f": {words}" if total else ": it runs all day"
            if others:
                message += "; " + ", ".join(
                    f"{label} {U.format_duration(t)}" if t else f"{label} switch it off" for t, _, label in others
                )
            d.add("HR604", message, zone.span)
    for (pump, machine, words, state, why), zones in unbounded.items():
        m = rs.machines[machine]
        d.add(
            "HR407",
            f"{pump} (fail_safe NC) can be held OFF without a bound by machine `{machine}` in zone"
            + ("s " if len(zones) > 1 else " ")
            + ", ".join(f"`{z}`" for z in zones)
            + f": {words}; `{state}` {why}",
            m.states[state].span,
            "add `fail after ...` or `go ... after ...` to the state, so that the stretch ends",
        )
