"""Checks of a built rule set that look across declarations (language 1.2).

The checker builds the model first; `run` then looks at the model and, for what the model
no longer shows as written (a time of day such as `7:75`), at the syntax trees:

- HR207: every time of day written anywhere is within 00:00 .. 23:59 (24:00 only ends a
  window or a light period), its minutes below 60;
- HR208: every duration where time must pass (a schedule's interval, a timeout, `after`,
  `repeat every`, a window's period, `stale after`, `frozen after`, a `max_step`'s period,
  the run of a `start ... for`) is longer than 0, also where it is a setting a zone sets;
- HR306: one output of a node (node and channel key) has one role in one zone;
- HR307: nothing doses in a state where the recirculated pump is stopped;
- HR406: no action resolves an alert that locks until reset;
- HR505: a zone binds a sensor for every metric its active rules, transitions and guards read;
- HR506: a water-change schedule comes before the solution-age limit pre-empts it;
- HR407 / HR604: the OFF stretches of an NC recirculation pump per zone (safety.py).
"""

from __future__ import annotations

import dataclasses

from . import ast as A
from . import model as M
from . import units as U
from .diagnostics import Diagnostics
from .safety import apply_switches, check_zone_off_stretches, pump_status, recirculated_pumps, zone_activity_of
from .source import Span


def run(rs: M.RuleSet, files: list[A.File], diags: Diagnostics) -> None:
    walked = [_walk(f.decls) for f in files]  # every check below reads the syntax nodes: walk once
    _times(walked, diags)
    _durations(rs, walked, diags)
    _outputs(rs, diags)
    _dosing_without_circulation(rs, diags)
    _resolved_locks(rs, diags)
    _preempted_schedules(rs, diags)
    _unsensed_metrics(rs, walked, diags)
    check_zone_off_stretches(rs, diags)


# ---- walking what was written ----------------------------------------------------------------------
_FIELDS: dict[type, tuple[str, ...]] = {}


def _fields(cls: type) -> tuple[str, ...]:
    """The fields of a syntax node's class that may hold nodes (not its span), worked out once per class."""
    names = _FIELDS.get(cls)
    if names is None:
        names = _FIELDS[cls] = tuple(f.name for f in dataclasses.fields(cls) if f.name != "span")
    return names


def _walk(root) -> list[tuple]:
    """Every syntax node below `root` as (node, its parent node, the parent's field holding it, index
    in that field's tuple or None), parents before their children."""
    out: list[tuple] = []
    leaf = (str, int, float, bool, Span, type(None))

    def visit(node, parent, field, index) -> None:
        if isinstance(node, tuple | list):
            for i, x in enumerate(node):
                visit(x, parent, field, i)
        elif not isinstance(node, leaf) and dataclasses.is_dataclass(node):
            out.append((node, parent, field, index))
            for name in _fields(type(node)):
                visit(getattr(node, name), node, name, None)

    visit(root, None, None, None)
    return out


def _inside(outer: Span, inner: Span) -> bool:
    return (
        outer.path == inner.path
        and (outer.line, outer.column) <= (inner.line, inner.column)
        and (inner.end_line, inner.end_column) <= (outer.end_line, outer.end_column)
    )


def _reported(diags: Diagnostics, span: Span, codes=("HR204",)) -> bool:
    """Has an earlier check reported a problem (of `codes`) covering `span`?"""
    return any(d.code in codes and _inside(d.span, span) for d in diags.items)


# ---- HR207 times of day ----------------------------------------------------------------------------
def _times(walked: list[list], diags: Diagnostics) -> None:
    for nodes in walked:
        for node, parent, field, index in nodes:
            if not isinstance(node, A.Literal) or node.dim != U.TIME_OF_DAY:
                continue
            hours, _, minutes = node.text.partition(":")
            if not (hours.isdigit() and minutes.isdigit()):
                continue
            h, m = int(hours), int(minutes)
            ends = field == "end" or (isinstance(parent, A.Item) and parent.keyword == "light" and index == 1)
            if m >= 60:
                why = f"`{node.text}` is not a time of day: minutes go from 00 to 59"
            elif h * 60 + m > 24 * 60 or (h * 60 + m == 24 * 60 and not ends):
                why = f"`{node.text}` is not a time of day (00:00 to 23:59" + ("; 24:00 may end it)" if ends else ")")
            else:
                continue
            if _reported(diags, node.span):
                continue  # the value check of a window or a setting said so already
            hint = "write the hours and minutes of a 24-hour clock, e.g. 07:30 or 23:00"
            diags.add("HR207", why, node.span, hint)


# ---- HR208 durations where time must pass ----------------------------------------------------------
#: keyword of an item -> index of its duration that must be longer than 0
_ITEM_DURATIONS = {"repeat every": 0, "stale after": 0, "frozen after": 0, "max_step": 1}


def _durations(rs: M.RuleSet, walked: list[list], diags: Diagnostics) -> None:
    for nodes in walked:
        for node, parent, field, index in nodes:
            if not isinstance(node, A.Literal) or node.dim != U.DURATION or node.value > 0:
                continue
            what = None
            if isinstance(parent, A.Trigger) and field == "after":
                what = "the time of `after` or `fail after`"
            elif isinstance(parent, A.Trigger) and field == "every":
                what = "a schedule's interval"
            elif isinstance(parent, A.Item) and _ITEM_DURATIONS.get(parent.keyword) == (index or 0):
                what = f"`{parent.keyword}`" if parent.keyword != "max_step" else "the period of `max_step`"
            elif isinstance(parent, A.Window) and field == "period" and not getattr(parent, "off", False):
                what = "a window's period"
            elif isinstance(parent, A.Action) and field == "amount" and parent.verb == "start":
                what = "the run of `start ... for`"
            if what is None or _reported(diags, node.span):
                continue
            example = "7d" if field == "every" else "10m"
            diags.add(
                "HR208",
                f"{what} must be longer than 0, not `{node.text}`",
                node.span,
                f"time must pass here: give a duration such as {example}",
            )
    for m in rs.machines.values():
        for s in m.states.values():
            for t in s.transitions:
                every = t.every
                if (
                    isinstance(every, M.Const)
                    and float(every.value) <= 0
                    and not _reported(diags, every.span, ("HR204", "HR208"))
                ):
                    diags.add(
                        "HR208",
                        "a schedule's interval must be longer than 0, not "
                        + U.describe(float(every.value), U.DURATION),
                        every.span,
                        "time must pass here: give a duration such as 7d",
                    )
                if isinstance(t.every, M.SettingRef):
                    _setting_positive(rs, t.every.path, "the schedule's interval", t.every.span, diags)
                if t.after_setting:
                    _setting_positive(rs, t.after_setting, "the timeout", t.span, diags)
    for r in rs.rules.values():
        if r.repeat_setting:
            _setting_positive(rs, r.repeat_setting, "`repeat every`", r.span, diags)


def _setting_positive(rs: M.RuleSet, path: str, what: str, span: Span, diags: Diagnostics) -> None:
    """A duration written as a setting, where time must pass: its value in every zone and phase."""
    where: dict[float, list[str]] = {}  # value -> the zones (and phases) that have it
    for zone, phase, settings in _zone_settings(rs):
        value = settings.get(path)
        if isinstance(value, int | float) and not isinstance(value, bool) and value <= 0:
            name = f"`{zone.uid}`" + (f" (phase `{phase.name}`)" if phase else "")
            where.setdefault(float(value), []).append(name)
    for value, names in where.items():
        diags.add(
            "HR208",
            f"{what} `{path}` is {U.describe(value, U.DURATION)} in zone{'s' if len(names) > 1 else ''} "
            f"{', '.join(names)}: it must be longer than 0",
            span,
            "time must pass here: set it to a duration such as 10m",
        )


def _zone_settings(rs: M.RuleSet):
    """(zone, recipe phase or None, the zone's settings then) for every zone and each of its phases."""
    for zone in rs.zones:
        yield zone, None, rs.zone_settings(zone)
        recipe = rs.recipes.get(zone.recipe)
        for phase in recipe.phases if recipe else ():
            if phase.settings:
                yield zone, phase, rs.zone_settings(zone, phase)


# ---- HR306 one node output, one role -----------------------------------------------------------------
def _outputs(rs: M.RuleSet, diags: Diagnostics) -> None:
    seen: dict[tuple[str, str], list] = {}  # (node, channel key) -> [(zone, role, kind, span)]
    for zone in rs.zones:
        for name, b in zone.channels.items():
            ch = rs.channels.get(name)
            kind = ch.kind if ch else "sensor"
            seen.setdefault((b.node_uid, M.fold_channel(b.channel_key)), []).append((zone, name, kind, b.span))
        for metric, key in zone.metric_channels.items():
            node = zone.metric_nodes.get(metric)
            if node is not None:
                seen.setdefault((node, M.fold_channel(key)), []).append((zone, metric, "metric", zone.span))
    for (node, key), uses in seen.items():
        if len(uses) < 2 or all(kind in ("sensor", "metric") for _, _, kind, _ in uses):
            continue  # one role; or sensors, which may be read by several
        first_zone, first_role, first_kind, first_span = next(u for u in uses if u[2] not in ("sensor", "metric"))
        for zone, role, _kind, span in uses:
            if (zone, role) == (first_zone, first_role):
                continue
            where = "in this zone" if zone is first_zone else f"in zone `{first_zone.uid}`"
            diags.add(
                "HR306",
                f"output `{key}` of node `{node}` is already bound to {first_kind} `{first_role}` {where} "
                f"(at {first_span}); here it would also be `{role}` of zone `{zone.uid}`",
                span,
                "one relay or pump output drives one thing: bind another output (`... on NODE channel KEY`)",
            )


# ---- HR307 dosing where nothing circulates ---------------------------------------------------------
def _doses(actions) -> list:
    return [a for a in actions if a.verb == "dose"]


def _dosing_without_circulation(rs: M.RuleSet, diags: Diagnostics) -> None:
    for pump in recirculated_pumps(rs):
        for m in rs.machines.values():
            found = pump_status(m, pump)
            if found is None:
                continue  # this machine never switches the pump
            entry, status = found
            for s in m.states.values():
                if s.name not in status:
                    continue  # not reached
                now = status[s.name]
                _dose_actions(diags, s.enter, set(entry[s.name]), pump, f"entering state `{s.name}`")
                _dose_actions(diags, s.exit, set(now), pump, f"leaving state `{s.name}`")
                for t in s.transitions:
                    after_exit = apply_switches(s.exit, set(now), pump)
                    _dose_actions(diags, t.actions, after_exit, pump, f"going from `{s.name}` to `{t.target}`")
            for r in rs.rules.values():
                doses = _doses(r.actions)
                if not doses:
                    continue
                listed = [n for n in r.states if n in m.states and n in status]
                if not listed:
                    continue  # no `in` (the author did not say where), or states of another machine
                stopped = [n for n in listed if "off" in status[n]]
                if not stopped:
                    continue  # every state it doses in keeps the pump running
                n = stopped[0]
                why = (
                    f"its state `{n}` stops {pump}"
                    if _stops(m.states[n], pump)
                    else f"{pump} is stopped in its state `{n}` on some way into it"
                )
                diags.add(
                    "HR307",
                    f"rule `{r.name}` doses while nothing circulates: {why}",
                    doses[0].span,
                    f"list only states that recirculate {pump} after `in`",
                )


def _stops(state: M.State, pump: str) -> bool:
    return any(a.verb == "stop" and a.target == pump for a in state.enter)


def _dose_actions(diags, actions, status: set, pump: str, where: str) -> None:
    for a in actions:
        if a.target == pump and a.verb in ("start", "recirculate"):
            status = {"on"}
        elif a.target == pump and a.verb == "stop":
            status = {"off"}
        elif a.verb == "dose" and "off" in status:
            diags.add(
                "HR307",
                f"`dose {a.target}` {where}, where {pump} is stopped: the dose would not mix",
                a.span,
                f"dose only where {pump} recirculates",
            )


# ---- HR406 resolving a lock ------------------------------------------------------------------------
def _resolved_locks(rs: M.RuleSet, diags: Diagnostics) -> None:
    def look(actions, who: str) -> None:
        for a in actions:
            alert = rs.alerts.get(a.target) if a.verb == "resolve" else None
            if alert is not None and alert.locks:
                diags.add(
                    "HR406",
                    f"{who} resolves `{alert.code}`, which locks until reset: only the operator's reset clears a lock",
                    a.span,
                    f"remove `resolve {alert.code}`, or remove `lock until reset` from the alert",
                )

    for m in rs.machines.values():
        for s in m.states.values():
            look(s.enter, f"state `{s.name}`")
            look(s.exit, f"state `{s.name}`")
            for t in s.transitions:
                look(t.actions, f"the transition from `{s.name}` to `{t.target}`")
    for r in rs.rules.values():
        look(r.actions, f"rule `{r.name}`")


# ---- HR506 a schedule the solution-age limit pre-empts ---------------------------------------------
def _value(e, settings: dict):
    if isinstance(e, M.Const) and isinstance(e.value, int | float):
        return float(e.value)
    if isinstance(e, M.SettingRef):
        v = settings.get(e.path)
        return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None
    return None


def _age_limits(expr):
    """The right-hand sides of `solution.age > X` / `X < solution.age` in a condition, through `and`."""
    if isinstance(expr, M.Logic) and expr.op == "and":
        for it in expr.items:
            yield from _age_limits(it)
    elif isinstance(expr, M.Cmp):
        age = lambda e: isinstance(e, M.ZoneRef) and e.name == "solution.age"  # noqa: E731
        if age(expr.left) and expr.op in (">", ">="):
            yield expr.right
        elif age(expr.right) and expr.op in ("<", "<="):
            yield expr.left


def _switched_off(cond: M.Condition | None, settings: dict) -> bool:
    """Does a yes/no setting the condition requires (a conjunct `SETTING` or `not SETTING`) make it
    false with these settings (`water_change.enabled no`, `water_change.by_schedule no`)?"""
    if cond is None:
        return False
    items = cond.expr.items if isinstance(cond.expr, M.Logic) and cond.expr.op == "and" else (cond.expr,)
    for it in items:
        negated = isinstance(it, M.Not)
        ref = it.operand if negated else it
        if isinstance(ref, M.SettingRef) and isinstance(settings.get(ref.path), bool) and settings[ref.path] == negated:
            return True
    return False


def _short(path: str) -> str:
    return path.replace("water_cycle.", "")


def _preempted_schedules(rs: M.RuleSet, diags: Diagnostics) -> None:
    for m in rs.machines.values():
        for s in m.states.values():
            for t in (t for t in s.transitions if t.every is not None):
                limits = [
                    (u, lim)
                    for u in s.transitions
                    if u is not t and u.target == t.target and u.cond is not None
                    for lim in _age_limits(u.cond.expr)
                ]
                for u, lim in limits:
                    for zone, phase, settings in _zone_settings(rs):
                        if _switched_off(t.cond, settings) or _switched_off(u.cond, settings):
                            continue  # the schedule (or the age limit) is turned off there
                        interval, limit = _value(t.every, settings), _value(lim, settings)
                        if interval is None or limit is None or interval < limit:
                            continue
                        paths = {e.path for e in (t.every, lim) if isinstance(e, M.SettingRef)}
                        if phase is not None and paths & set(phase.settings):
                            where, span = f"phase `{phase.name}` of recipe `{zone.recipe}`", phase.span
                        elif paths & set(zone.settings):
                            where, span = f"zone `{zone.uid}`", zone.span
                        elif zone.profile in rs.profiles:
                            where, span = f"profile `{zone.profile}`", rs.profiles[zone.profile].span
                        else:
                            where, span = f"zone `{zone.uid}`", zone.span
                        every = _short(t.every.path) if isinstance(t.every, M.SettingRef) else "the schedule"
                        age = _short(lim.path) if isinstance(lim, M.SettingRef) else "the age limit"
                        diags.add(
                            "HR506",
                            f"in {where}, the schedule of `{s.name} -> {t.target}` never fires: "
                            f"{every} {U.format_duration(interval)} is not shorter than {age} "
                            f"{U.format_duration(limit)}, so `solution.age > {age}` (at {u.span}) always "
                            "comes first",
                            span,
                            f"make {every} shorter than {age}, or {age} longer",
                        )


# ---- HR505 metrics a zone cannot read --------------------------------------------------------------
def _metrics_read(expr, out: dict) -> dict:
    """metric -> span of the first place `expr` reads it from a sensor."""
    if isinstance(expr, M.MetricRef | M.MetricIs):
        out.setdefault(expr.metric, expr.span)
    elif isinstance(expr, M.Func) and expr.name in ("change", "drift") and expr.args and isinstance(expr.args[0], str):
        out.setdefault(expr.args[0], expr.span)
    if dataclasses.is_dataclass(expr) and not isinstance(expr, Span):
        for f in dataclasses.fields(expr):
            v = getattr(expr, f.name)
            for x in v if isinstance(v, tuple) else (v,):
                if dataclasses.is_dataclass(x) and not isinstance(x, Span):
                    _metrics_read(x, out)
    return out


def _readers(rs: M.RuleSet, act) -> list:
    """(what, expression) of every rule, transition and guard deny active where `act` says."""
    out = []
    for r in rs.rules.values():
        if act is None or act.rule_active(r.name):
            out.append((f"rule `{r.name}`", r.cond.expr))
    for m in rs.machines.values():
        if act is not None and not act.machine_active(m.name):
            continue
        for s in m.states.values():
            if act is not None and not act.state_active(m.name, s.name):
                continue
            for i, t in enumerate(s.transitions):
                if t.cond is not None and (act is None or act.transition_active(m.name, s.name, i)):
                    out.append((f"the transition `{s.name} -> {t.target}`", t.cond.expr))
    for g in rs.guards.values():
        if act is None or act.guard_active(g.name):
            for deny in g.denies:
                out.append((f"guard `{g.name}`", deny.expr))
    return out


def _misbound_zones(rs: M.RuleSet, walked: list[list]) -> set[str]:
    """Zones that bind a name neither a metric nor a channel (reported already, HR101/HR102): what it
    was meant to be is not known, so no metric is said to be missing there."""
    out = set()
    for nodes in walked:
        for node, *_ in nodes:
            if isinstance(node, A.ZoneDecl) and any(
                isinstance(b, A.Binding) and b.name.name not in rs.metrics and b.name.name not in rs.channels
                for b in node.items
            ):
                out.add(node.uid.name)
    return out


def _unsensed_metrics(rs: M.RuleSet, walked: list[list], diags: Diagnostics) -> None:
    misbound = _misbound_zones(rs, walked)
    for zone in rs.zones:
        if zone.uid in misbound:
            continue
        measured = set(zone.metric_nodes)
        measured |= {rs.channels[c].measures for c in zone.channels if c in rs.channels and rs.channels[c].measures}
        missing: dict[str, tuple[str, Span]] = {}
        for who, expr in _readers(rs, zone_activity_of(rs, zone)):
            for metric, span in _metrics_read(expr, {}).items():
                if metric not in measured and metric in rs.metrics:
                    missing.setdefault(metric, (who, span))
        for metric, (who, span) in sorted(missing.items()):
            diags.add(
                "HR505",
                f"zone `{zone.uid}` binds no sensor for `{metric}`, which {who} reads (at {span}): "
                f"there it is always unknown",
                zone.span,
                f"bind it with `{metric} from NODE`, or leave out what reads it",
            )
