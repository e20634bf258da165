"""What of the rule set is active in a zone: a zone binds only what it has (language 1.2).

A channel the rules use that a zone does not bind is *absent* there. Alerts, guards, rules,
machine states and transitions that need an absent channel are *inactive* in that zone: the
engine leaves them out of the zone's tick, the checker lists them (HR603), `explain` says why.

Pure: no I/O, nothing but the model. The rules (see docs/engine.md, "Zone activity"):

- an alert with a scope is instantiated over the zone's bound channels it covers; none: inactive.
  An alert whose `when` or `clear` reads an absent channel (other than its own scope's) is inactive.
- a guard applies to bound channels only; one whose scope covers none is inactive. Its denies that
  read an absent channel are evaluated by the engine with that channel's values unknown.
- a state is inactive when an enter/exit action starts, recirculates, opens or doses an absent
  channel (stop, release and close of an absent channel are simply skipped). A transition is
  inactive when its target state is, when its condition (or schedule) reads an absent channel, or
  when one of its actions starts/doses one. States that no active path reaches from the initial
  state are inactive ("unreachable in this zone"); an inactive initial state makes the machine inactive.
- a rule is inactive when an action starts/doses an absent channel (`then` doses too), when its
  condition reads one, or when all its `in` states are inactive.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import model as M
from .source import Span

#: verbs that need their channel: a state or transition doing one on an absent channel is inactive
ACTIVATING = frozenset({"start", "recirculate", "open", "dose"})
#: verbs that are skipped on an absent channel
RELEASING = frozenset({"stop", "release", "close"})


@dataclass(frozen=True, slots=True)
class Inactive:
    kind: str  # alert | guard | rule | state | transition | machine
    name: str  # alert code, guard name, rule name, "machine.STATE", "machine.STATE -> TARGET #i"
    why: str
    span: Span


@dataclass(frozen=True)
class Activity:
    zone: str
    inactive: tuple[Inactive, ...]
    #: channels the rules use that the zone does not bind
    absent: frozenset[str]
    _alerts: frozenset[str]
    _guards: frozenset[str]
    _rules: frozenset[str]
    _machines: frozenset[str]
    _states: frozenset[tuple[str, str]]  # (machine, state) inactive
    _transitions: frozenset[tuple[str, str, int]]  # (machine, state, index) inactive

    def alert_active(self, code: str) -> bool:
        return code not in self._alerts

    def guard_active(self, name: str) -> bool:
        return name not in self._guards

    def rule_active(self, name: str) -> bool:
        return name not in self._rules

    def machine_active(self, machine: str) -> bool:
        return machine not in self._machines

    def state_active(self, machine: str, state: str) -> bool:
        return machine not in self._machines and (machine, state) not in self._states

    def transition_active(self, machine: str, state: str, index: int) -> bool:
        return self.state_active(machine, state) and (machine, state, index) not in self._transitions

    @property
    def key(self) -> tuple:
        """What tells this zone's activity from another's, for caches of compiled code."""
        return (self._alerts, self._guards, self._rules, self._machines, self._states, self._transitions)


# ---- what expressions and actions touch ------------------------------------------------------
def expr_channels(e) -> set[str]:
    """The channels an expression reads by name (a scope's own channel, written as None, is not one)."""
    out: set[str] = set()
    _walk(e, out)
    return out


def _walk(e, out: set[str]) -> None:
    if e is None or isinstance(e, str | int | float | bool):
        return
    if isinstance(e, M.ChannelRef | M.ChannelIs):
        if e.channel is not None:
            out.add(e.channel)
        return
    if isinstance(e, M.Func):
        if e.name in ("failures", "filled") and e.args and isinstance(e.args[0], str):
            out.add(e.args[0])
        for a in e.args:
            if a is not None and not isinstance(a, str | tuple):
                _walk(a, out)
        return
    if isinstance(e, M.Cmp | M.Arith):
        _walk(e.left, out)
        _walk(e.right, out)
    elif isinstance(e, M.Logic):
        for i in e.items:
            _walk(i, out)
    elif isinstance(e, M.Not | M.Neg | M.Known):
        _walk(e.operand, out)


def action_channels(a: M.Action) -> set[str]:
    """Channels an action starts, recirculates, opens or doses (its `then` doses too)."""
    out: set[str] = set()
    if a.verb in ACTIVATING and a.target is not None:
        out.add(a.target)
    for step in a.then or ():
        out.add(step[0])
    return out


def _action_reads(a: M.Action) -> set[str]:
    out = expr_channels(a.amount)
    for step in a.then or ():
        out |= expr_channels(step[1])
    return out


def _cond_channels(c: M.Condition | None) -> set[str]:
    return expr_channels(c.expr) if c is not None else set()


def used_channels(rs: M.RuleSet) -> set[str]:
    """Every channel the rule set names: in actions, expressions and named scopes."""
    used: set[str] = set()
    for a in rs.alerts.values():
        for c in a.when:
            used |= _cond_channels(c)
        used |= _cond_channels(a.clear)
        if a.scope is not None:
            used.update(a.scope.channels)
    for g in rs.guards.values():
        used.update(g.scope.channels)
        for d in g.denies:
            used |= expr_channels(d.expr)
    for m in rs.machines.values():
        for s in m.states.values():
            for a in (*s.enter, *s.exit):
                used |= _all_action_channels(a)
            for t in s.transitions:
                used |= _cond_channels(t.cond) | expr_channels(t.every) | expr_channels(t.at)
                for a in t.actions:
                    used |= _all_action_channels(a)
    for r in rs.rules.values():
        used |= _cond_channels(r.cond)
        for a in r.actions:
            used |= _all_action_channels(a)
    return {c for c in used if c in rs.channels}


def _all_action_channels(a: M.Action) -> set[str]:
    out = action_channels(a) | _action_reads(a)
    if a.target is not None and a.verb in RELEASING:
        out.add(a.target)
    return out


# ---- activity ------------------------------------------------------------------------------
_CACHE: dict[tuple[int, str], tuple[M.RuleSet, M.Zone, Activity]] = {}
_CACHE_MAX = 256


def zone_activity(rs: M.RuleSet, zone: M.Zone) -> Activity:
    """What is active in `zone` (cached per rule set object and zone)."""
    key = (id(rs), zone.uid)
    hit = _CACHE.get(key)
    if hit is not None and hit[0] is rs and hit[1] is zone:
        return hit[2]
    act = _compute(rs, zone)
    if len(_CACHE) >= _CACHE_MAX:
        _CACHE.clear()
    _CACHE[key] = (rs, zone, act)
    return act


def _names(chs) -> str:
    return ", ".join(sorted(chs))


def _compute(rs: M.RuleSet, zone: M.Zone) -> Activity:
    bound = set(zone.channels)
    absent_all = set(rs.channels) - bound
    absent_used = frozenset(used_channels(rs) - bound)
    uid = zone.uid
    inactive: list[Inactive] = []

    def missing(chs: set[str]) -> set[str]:
        return {c for c in chs if c in absent_all}

    def binds_no(chs: set[str]) -> str:
        return f"zone {uid} binds no {_names(chs)}"

    # alerts
    off_alerts: set[str] = set()
    for a in rs.alerts.values():
        why = None
        if a.scope is not None and not any(a.scope.covers(rs.channels[c]) for c in bound if c in rs.channels):
            what = a.scope.kind or _names(a.scope.channels)
            why = f"zone {uid} binds no {what}" if a.scope.kind is None else f"zone {uid} binds no {what} channel"
        else:
            reads = set()
            for c in a.when:
                reads |= _cond_channels(c)
            reads |= _cond_channels(a.clear)
            gone = missing(reads)
            if gone:
                why = binds_no(gone)
        if why:
            off_alerts.add(a.code)
            inactive.append(Inactive("alert", a.code, why, a.span))

    # guards
    off_guards: set[str] = set()
    for g in rs.guards.values():
        if not any(g.scope.covers(rs.channels[c]) for c in bound if c in rs.channels):
            what = f"{g.scope.kind} channel" if g.scope.kind else _names(g.scope.channels)
            off_guards.add(g.name)
            inactive.append(Inactive("guard", g.name, f"zone {uid} binds no {what}", g.span))

    # machines
    off_machines: set[str] = set()
    off_states: set[tuple[str, str]] = set()
    off_transitions: set[tuple[str, str, int]] = set()
    for mname, m in rs.machines.items():
        # states that need an absent channel
        own: dict[str, str] = {}
        for sname, s in m.states.items():
            needs = set()
            for a in (*s.enter, *s.exit):
                needs |= action_channels(a)
            gone = missing(needs)
            if gone:
                own[sname] = binds_no(gone)
        # transitions: their own reasons, then their target's
        tr_why: dict[tuple[str, int], str] = {}
        for sname, s in m.states.items():
            for i, t in enumerate(s.transitions):
                reads = _cond_channels(t.cond) | expr_channels(t.every) | expr_channels(t.at)
                needs = set()
                for a in t.actions:
                    needs |= action_channels(a)
                    reads |= _action_reads(a)
                gone = missing(reads | needs)
                if gone:
                    tr_why[(sname, i)] = binds_no(gone)
                elif t.target in own:
                    tr_why[(sname, i)] = f"its target state {t.target} is inactive"
        # reachability over active transitions
        reached: set[str] = set()
        if m.initial in m.states and m.initial not in own:
            todo = [m.initial]
            while todo:
                sname = todo.pop()
                if sname in reached:
                    continue
                reached.add(sname)
                for i, t in enumerate(m.states[sname].transitions):
                    if (sname, i) not in tr_why and t.target in m.states and t.target not in reached:
                        todo.append(t.target)
        if m.initial not in reached:
            off_machines.add(mname)
            why = own.get(m.initial, "unreachable in this zone")
            inactive.append(Inactive("machine", mname, f"its initial state {m.initial} is inactive: {why}", m.span))
            off_states.update((mname, s) for s in m.states)
            continue
        for sname, s in m.states.items():
            if sname not in reached:
                off_states.add((mname, sname))
                why = own.get(sname, "unreachable in this zone")
                inactive.append(Inactive("state", f"{mname}.{sname}", why, s.span))
                continue
            for i, t in enumerate(s.transitions):
                why = tr_why.get((sname, i))
                if why is None and t.target not in reached:
                    why = f"its target state {t.target} is inactive"
                if why is not None:
                    off_transitions.add((mname, sname, i))
                    inactive.append(Inactive("transition", f"{mname}.{sname} -> {t.target} #{i}", why, t.span))

    # rules
    off_rules: set[str] = set()
    for rname, r in rs.rules.items():
        needs = set()
        reads = _cond_channels(r.cond)
        for a in r.actions:
            needs |= action_channels(a)
            reads |= _action_reads(a)
        gone = missing(needs | reads)
        why = None
        if gone:
            why = binds_no(gone)
        elif r.states:
            dead = []
            for sn in r.states:
                st = rs.state(sn)
                if st is None or (st.machine, sn) in off_states:
                    dead.append(sn)
            if len(dead) == len(r.states):
                why = (
                    f"its states {', '.join(r.states)} are inactive"
                    if len(dead) > 1
                    else f"its state {dead[0]} is inactive"
                )
        if why:
            off_rules.add(rname)
            inactive.append(Inactive("rule", rname, why, r.span))

    return Activity(
        uid,
        tuple(inactive),
        absent_used,
        frozenset(off_alerts),
        frozenset(off_guards),
        frozenset(off_rules),
        frozenset(off_machines),
        frozenset(off_states),
        frozenset(off_transitions),
    )
