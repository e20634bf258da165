"""Semantic checks: from the syntax trees of a rule set to the checked model.

Each problem is reported once, with its stable code, at the place it was
written; the model is built from whatever is valid so that one mistake does
not hide the next.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections import defaultdict
from datetime import date
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from . import ast as A
from . import checks
from . import model as M
from . import settings as S
from . import units as U
from .activity import action_channels, zone_activity
from .diagnostics import Diagnostics, closest, did_you_mean
from .exprs import Names, Typer, render
from .safety import check_machines, check_off_stretches, check_schedules
from .source import Span

KINDS = ("pump", "valve", "doser", "sensor")
#: the plausibility items of a metric (language 1.1), each given at most once
PLAUSIBILITY = ("frozen after", "implausible zero", "implausible at limits", "max_step")
#: the way a doser moves its metric (`affects ph down`)
DIRECTIONS = {"up": 1, "down": -1}
#: what a greenhouse may declare of a node (`node nd-1 { bounded_off yes }`): capability -> its values
NODE_CAPABILITIES = {"bounded_off": ("yes", "no")}
SEVERITIES = ("info", "warning", "critical")
ALERT_CODE = re.compile(r"^(biz|infra)_[a-z][a-z0-9_]*$")
PHASE_VALUES = {"ideal_change_interval": U.DURATION}


AMENDABLE = A.AMENDABLE


class Checker:
    def __init__(self, diags: Diagnostics, library: frozenset[str] | set[str] = frozenset()):
        self.d = diags
        #: paths of the files of used rule sets (`use "../rules"`): what `replace`/`extend` may amend
        self.library = frozenset(library)
        self.broken: set[str] = set()  # names of declarations that did not parse
        self.decls: dict[str, dict] = defaultdict(dict)  # kind -> name -> decl
        self.untyped: set[str] = set()  # alerts with a condition already reported as wrong
        self.amends: list[A.Amend] = []  # `replace`/`extend` (1.2), applied once every definition is known
        self.settings_decls: list[A.SettingsDecl] = []  # top-level `settings { }` (1.2)
        self.schema: dict = dict(S.SCHEMA)  # every setting: built in and declared (RuleSet.settings_schema)
        self.sections: set[str] = set(S.SECTIONS)

    # ---- helpers --------------------------------------------------------------------
    def _define(self, kind: str, ident: A.Ident, decl) -> bool:
        table = self.decls[kind]
        first = table.get(ident.name)
        if first is not None:
            self.d.add("HR107", f"{kind} `{ident.name}` is defined twice; first at {first.span}", ident.span)
            return False
        table[ident.name] = decl
        return True

    def _items(self, decl, once: tuple[str, ...]) -> dict[str, A.Item]:
        """Items of a block by keyword; a repeat of a keyword in `once` is reported and the first
        kept (the items that may repeat, such as `alias`, are read from the block itself)."""
        out: dict[str, A.Item] = {}
        for it in decl.items:
            if not isinstance(it, A.Item):
                continue
            if it.keyword in out and it.keyword in once:
                self.d.add("HR107", f"`{it.keyword}` is given twice", it.span)
                continue
            out[it.keyword] = it
        return out

    def _unknown(self, code: str, what: str, ident: A.Ident, candidates) -> None:
        if ident.name in self.broken or ident.name in self.decls.get(what, ()):
            return  # declared, with an error reported at the declaration
        self.d.add(code, f"unknown {what} `{ident.name}`", ident.span, did_you_mean(ident.name, candidates))

    # ---- replace and extend (language 1.2) --------------------------------------------------
    def _amend(self, rs: M.RuleSet) -> None:
        """`replace KIND NAME { }` takes the place of a used rule set's definition; `extend KIND NAME { }`
        adds to it. What no used rule set defines cannot be amended (HR115)."""
        origin: dict[tuple[str, str], object] = {}  # (kind, name) -> the used rule set's definition
        replaced: set[tuple[str, str]] = set()
        for am in self.amends:
            kind = AMENDABLE[type(am.decl)]
            ident = am.decl.code if kind == "alert" else am.decl.name
            name = ident.name
            current = self.decls[kind].get(name)
            first = origin.get((kind, name), current)
            if first is None or first.span.path not in self.library:
                where = f"; `{name}` is defined here at {first.span}" if first is not None else ""
                self.d.add(
                    "HR115",
                    f"`{am.how} {kind} {name}`: no used rule set defines {kind} `{name}`{where}",
                    ident.span,
                    "to define it, drop the word; to amend a standard definition, `use` its rule set"
                    if first is not None
                    else did_you_mean(name, [n for n, x in self.decls[kind].items() if x.span.path in self.library]),
                )
                continue
            if am.how == "replace" and (kind, name) in replaced:
                self.d.add("HR107", f"{kind} `{name}` is replaced twice", ident.span)
                continue
            origin[(kind, name)] = first
            if am.how == "replace":
                replaced.add((kind, name))
                new = am.decl
            else:
                new = self._extended(kind, current, am.decl)
                if new is None:
                    continue
            self.decls[kind][name] = new
            done = "replaced" if am.how == "replace" else "extended"
            self.d.add("HR602", f"{kind} `{name}` of {first.span.path}:{first.span.line} {done} here", ident.span)
            rs.replaced.append((am.how, kind, name, ident.span, _name_span(first)))

    def _extended(self, kind: str, old, new):
        """`old` with what `extend` adds: items (aliases, channels, ...), denies, phases, or states."""
        if kind == "guard":
            return dataclasses.replace(old, denies=old.denies + new.denies)
        if kind == "recipe":
            return dataclasses.replace(old, phases=old.phases + new.phases)
        if kind != "machine":
            return dataclasses.replace(old, items=old.items + new.items)
        if new.initial:
            self.d.add(
                "HR107",
                f"machine `{old.name.name}` has its initial state; `extend` adds states and transitions",
                new.initial[0].span,
            )
        states = {s.name.name: s for s in old.states}
        for s in new.states:
            was = states.get(s.name.name)
            states[s.name.name] = (
                s
                if was is None
                else dataclasses.replace(
                    was,
                    enter=was.enter + s.enter,
                    exit=was.exit + s.exit,
                    transitions=was.transitions + s.transitions,
                    order=was.order + s.order,
                )
            )
        return dataclasses.replace(old, states=tuple(states.values()), order=old.order + new.order)

    # ---- dose groups (language 1.2) ------------------------------------------------------------
    def dose_group(self, a: A.Action, actions) -> tuple | None:
        """The doses that follow `dose CH AMOUNT` (`then CH2 AMOUNT after WAIT`), as Action.then:
        ((channel, amount, wait seconds, wait setting or None), ...). Every channel of a group is a doser,
        and the group's guards protect each. `actions` is safety's _Actions (usage, guard coverage)."""
        out, ok = [], True
        typer = actions.typer
        guards = [g.name for g in a.guards if g.name in self.decls["guard"]]
        for step in a.then:
            name = step.channel.name
            ch = actions.rs.channels.get(name)
            if ch is None:
                if name not in self.decls["channel"]:
                    self._unknown("HR102", "channel", step.channel, actions.rs.channels)
                ok = False
                continue
            actions.usage.channels.setdefault(name, step.channel.span)
            if ch.kind != "doser":
                self.d.add(
                    "HR113",
                    f"a dose group doses one doser after another; `{name}` is a {ch.kind}",
                    step.channel.span,
                    "every channel of `dose ... then ...` is a doser",
                )
                ok = False
                continue
            amount = typer.expr(step.amount)
            if amount is not None and amount.dim != U.VOLUME:
                self.d.add("HR201", f"`dose` takes a volume such as 2 ml, not {amount.dim}", step.amount.span)
                amount = None
            wait = typer.duration(step.wait, "the wait before a dose")
            if amount is None or wait is None:
                ok = False
                continue
            named = []
            for g in a.guards:
                guard = actions.rs.guards.get(g.name)
                if guard is not None and not guard.scope.covers(ch):
                    self.d.add("HR113", f"guard `{g.name}` does not protect `{name}`", g.span)
                elif guard is not None:
                    named.append(g.name)
            if len(named) == len(guards):
                actions._guard_coverage(a, ch, named)
            out.append((name, amount, wait[0], wait[1]))
        return tuple(out) if ok else None

    # ---- declared settings (language 1.2) -----------------------------------------------------
    def _schema(self) -> dict:
        """The built-in settings and those `settings { }` blocks declare, each with the dimension and
        default of the value it is declared with."""
        schema = dict(S.SCHEMA)
        where: dict[str, Span] = {}
        for sd in self.settings_decls:
            self._declare(sd.items, "", schema, where)
        self.schema = schema
        self.sections = {p.rsplit(".", i)[0] for p in schema for i in range(1, p.count(".") + 1)}
        return schema

    def _declare(self, items, prefix, schema, where) -> None:
        for it in items:
            if isinstance(it, A.Window):
                self.d.add("HR111", "a `window` belongs in a profile or a zone's `settings`", it.span)
                continue
            path = S.resolve(it.key.name) if not prefix else prefix + it.key.name
            if isinstance(it, A.Section):
                if path in schema:
                    self.d.add("HR107", f"`{it.key.name}` is a setting already, not a section", it.key.span)
                    continue
                self._declare(it.items, path + ".", schema, where)
                continue
            if path in schema or any(p.startswith(path + ".") for p in schema):
                first = f"declared at {where[path]}" if path in where else "built in"
                if path not in schema:
                    first = "a section of settings"
                self.d.add("HR107", f"setting `{path}` exists already ({first})", it.key.span)
                continue
            value = it.value
            if isinstance(value, A.Ident):
                schema[path] = (U.TEXT, value.name, None)
            elif not isinstance(value, A.Literal) or value.dim in ("date", "datetime"):
                self.d.add(
                    "HR201",
                    f"the default of `{it.key.name}` is a value with its unit, such as 30m, 8 ml or yes",
                    value.span,
                )
                continue
            elif value.dim == U.TIME_OF_DAY and not 0 <= value.value < 86400:
                self.d.add("HR204", f"`{value.text}` is not a time of day (00:00 to 23:59)", value.span)
                continue
            elif value.dim == U.PERCENT and not 0 <= value.value <= 100:
                self.d.add("HR204", f"`{it.key.name}` is a percentage between 0% and 100%", value.span)
                continue
            else:
                v = value.value
                schema[path] = (value.dim, v if isinstance(v, bool) else float(v), None)
            where[path] = it.key.span

    # ---- entry point ------------------------------------------------------------------
    def check(self, files: list[A.File], rs: M.RuleSet) -> M.RuleSet:
        for f in files:
            self.broken.update(f.broken)
            for decl in f.decls:
                self._collect(decl)
        self._amend(rs)
        rs.settings_schema = self._schema()
        rs.metrics = self._metrics()
        rs.aliases = self._aliases(rs.metrics)
        rs.channels = self._channels(rs.metrics)
        names = Names(rs.metrics, rs.channels, self.decls["alert"])
        # declared, but with an error reported at the declaration
        names.broken = set(self.broken) | (set(self.decls["metric"]) - set(rs.metrics))
        names.broken |= set(self.decls["channel"]) - set(rs.channels)
        names.versions = {f.path: f.header.version.text for f in files if f.header is not None}
        names.schema = rs.settings_schema
        names.states = frozenset(s.name.name for m in self.decls["machine"].values() for s in m.states)
        typer = Typer(names, self.d)
        rs.profiles = self._profiles()
        rs.recipes = self._recipes(rs.metrics)
        rs.alerts = self._alerts(typer, rs)
        rs.guards = self._guards(typer, rs)
        rs.machines, rs.rules, usage = check_machines(self, typer, rs)
        rs.sites = self._sites(rs, usage)
        check_schedules(self.d, rs, usage)
        check_off_stretches(self.d, rs, usage)
        self._unused(rs, usage)
        self._activity(rs)
        checks.run(rs, files, self.d)
        return rs

    def _activity(self, rs: M.RuleSet) -> None:
        """A zone binds only what it has (language 1.2): what needs a channel it lacks is inactive there.
        One information per zone lists those items (HR603); a machine that cannot run at all in a zone,
        its initial state needing what the zone lacks, is an error (HR305)."""
        for site in rs.sites:
            for zone in site.zones:
                act = zone_activity(rs, zone)
                for item in act.inactive:
                    if item.kind == "machine":
                        m = rs.machines[item.name]
                        first = m.states[m.initial]
                        needs = sorted(
                            {c for a in (*first.enter, *first.exit) for c in action_channels(a)} - set(zone.channels)
                        )
                        self.d.add(
                            "HR305",
                            f"machine `{item.name}` cannot run in zone `{zone.uid}`: {item.why}",
                            zone.span,
                            ("bind " + ", ".join(f"`{c} on NODE-UID`" for c in needs)) if needs else None,
                        )
                listed = [i for i in act.inactive if i.kind != "machine"]
                if listed and len(listed) < len(act.inactive):
                    continue  # a machine that cannot run (HR305) makes the rest follow: fix that first
                if listed:
                    n = len(listed)
                    self.d.add(
                        "HR603",
                        f"in zone `{zone.uid}`, {n} item{'s are' if n > 1 else ' is'} inactive: "
                        + "; ".join(f"{i.kind} {i.name} ({i.why})" for i in listed),
                        zone.span,
                    )

    def _collect(self, decl) -> None:
        if isinstance(decl, A.Amend):
            self.amends.append(decl)
            return
        if isinstance(decl, A.SettingsDecl):
            self.settings_decls.append(decl)
            return
        kinds = {
            A.MetricDecl: "metric",
            A.ChannelDecl: "channel",
            A.RecipeDecl: "recipe",
            A.ProfileDecl: "profile",
            A.AlertDecl: "alert",
            A.GuardDecl: "guard",
            A.MachineDecl: "machine",
            A.RuleDecl: "rule",
            A.SiteDecl: "site",
        }
        kind = kinds.get(type(decl))
        if kind is None:
            return
        ident = decl.uid if kind == "site" else (decl.code if kind == "alert" else decl.name)
        self._define(kind, ident, decl)

    # ---- metrics and channels -----------------------------------------------------------
    def _metrics(self) -> dict[str, M.Metric]:
        out = {}
        for name, d in self.decls["metric"].items():
            items = self._items(d, ("unit", "range", "stale after", "text", *PLAUSIBILITY))
            unit, dim = "", U.NUMBER
            if "unit" in items:
                uid = items["unit"].values[0]
                if uid.name in U.UNITS:
                    unit, dim = uid.name, U.UNITS[uid.name][0]
                else:
                    self.d.add(
                        "HR108",
                        f"unknown unit `{uid.name}`",
                        uid.span,
                        did_you_mean(uid.name, U.UNITS) or "units: " + ", ".join(U.UNITS),
                    )
                    continue
            low = high = None
            if "range" not in items:
                why = ": `implausible at limits` reads its limits" if "implausible at limits" in items else ""
                self.d.add(
                    "HR206", f"metric `{name}` needs its physical `range`, e.g. `range 0 .. 14`{why}", d.name.span
                )
            else:
                lo, hi = items["range"].values
                if self._dims_ok((lo, hi), dim, f"the range of {name}"):
                    low, high = float(lo.value), float(hi.value)
                    if low > high:
                        self.d.add(
                            "HR203",
                            f"range of `{name}` goes from {lo.text} down to {hi.text}",
                            items["range"].span,
                            f"write it as {hi.text} .. {lo.text}",
                        )
            if "stale after" not in items:
                self.d.add(
                    "HR206", f"metric `{name}` needs `stale after`: a reading older than that is unknown", d.name.span
                )
                stale = None
            else:
                stale = float(items["stale after"].values[0].value)
                if stale <= 0:
                    self.d.add("HR204", "`stale after` must be longer than 0", items["stale after"].span)
            aliases = tuple(a.name for it in d.items if it.keyword == "alias" for a in it.values)
            text = items["text"].values[0].value if "text" in items else ""
            plausible = self._plausibility(name, items, dim)
            conversions = self._conversions(name, unit, d)
            if low is None or high is None or stale is None or plausible is None:
                continue
            channels = tuple(k.name for it in d.items if it.keyword == "channel" for k in it.values)
            out[name] = M.Metric(
                name,
                unit,
                dim,
                low,
                high,
                stale,
                aliases,
                text,
                d.name.span,
                **plausible,
                channels=channels,
                conversions=conversions,
            )
        self._claimed_channels()
        return out

    def _conversions(self, name: str, unit: str, d: A.MetricDecl) -> dict[str, float]:
        """The `convert UNIT by N` items of a metric (language 1.1): unit, lower case -> factor."""
        out: dict[str, float] = {}
        for it in (i for i in d.items if i.keyword == "convert"):
            word, by = it.values
            spelled = word.name if isinstance(word, A.Ident) else word.value
            if not spelled.strip():
                self.d.add("HR204", "`convert` needs the unit a node sends", word.span)
            elif U.unit_key(spelled) in {U.unit_key(u) for u in out}:
                self.d.add("HR107", f"`convert {spelled}` is given twice", it.span)
            elif U.same_unit(spelled, unit):
                self.d.add("HR204", f"`{spelled}` is the unit of `{name}` itself: it needs no `convert`", word.span)
            elif by.dim != U.NUMBER:
                self.d.add("HR201", f"`convert` multiplies by a plain number, `{by.text}` is a {by.dim}", by.span)
            elif not (math.isfinite(by.value) and by.value > 0):
                self.d.add("HR204", f"`convert` multiplies by a number above 0, not `{by.text}`", by.span)
            else:
                out[spelled.strip().lower()] = float(by.value)
        return out

    def _claimed_channels(self) -> None:
        """Each channel key a metric declares (`channel solution_temp_c`) decides one metric only."""
        claimed: dict[str, tuple[str, A.Ident]] = {}  # key, lower case -> (metric, where)
        for name, d in self.decls["metric"].items():
            for key in (k for it in d.items if it.keyword == "channel" for k in it.values):
                first = claimed.setdefault(key.name.lower(), (name, key))
                if first[1] is key:
                    continue
                if first[0] == name:
                    self.d.add("HR107", f"channel `{key.name}` is given twice", key.span)
                else:
                    self.d.add(
                        "HR114",
                        f"channel `{key.name}` already carries metric `{first[0]}` (at {first[1].span})",
                        key.span,
                        "a reading from one channel is one metric: keep the channel in one of them",
                    )

    def _plausibility(self, name, items, dim) -> dict | None:
        """The language 1.1 plausibility items of a metric as Metric fields, or None after an error."""
        out: dict = {
            "implausible_at_limits": "implausible at limits" in items,
            "implausible_zero": "implausible zero" in items,
        }
        ok = True
        if "frozen after" in items:
            lit = items["frozen after"].values[0]
            if lit.value <= 0:
                self.d.add("HR204", "`frozen after` must be longer than 0", lit.span)
                ok = False
            out["frozen_s"] = float(lit.value)
        if "max_step" in items:
            amount, per = items["max_step"].values
            if not self._dims_ok((amount,), dim, f"the max_step of {name}"):
                ok = False
            elif amount.value <= 0:
                self.d.add("HR204", "the `max_step` amount must be more than 0", amount.span)
                ok = False
            if per.value <= 0:
                self.d.add("HR204", "the `max_step` duration must be longer than 0", per.span)
                ok = False
            out["max_step"] = (float(amount.value), float(per.value))
        return out if ok else None

    def _dims_ok(self, lits, dim, what) -> bool:
        ok = True
        for lit in lits:
            if not U.compatible(lit.dim, dim) or lit.dim in (U.DURATION, U.BOOL):
                unit = U.BASE_UNIT.get(dim) or "a plain number"
                self.d.add("HR201", f"{what} is in {unit}, `{lit.text}` is a {lit.dim}", lit.span)
                ok = False
        return ok

    def _aliases(self, metrics) -> dict[str, str]:
        out: dict[str, str] = {}
        for name, d in self.decls["metric"].items():
            if name not in metrics:
                continue
            out[name] = name
            for it in d.items:
                if it.keyword != "alias":
                    continue
                for a in it.values:
                    prev = out.get(a.name)
                    if prev is not None and prev != name:
                        self.d.add("HR107", f"alias `{a.name}` already names metric `{prev}`", a.span)
                        continue
                    out[a.name] = name
        return out

    def _channels(self, metrics) -> dict[str, M.Channel]:
        out = {}
        for name, d in self.decls["channel"].items():
            items = self._items(
                d, ("kind", "fail_safe", "current", "flow", "measures", "moves_level", "text", "affects", "flow_flag")
            )
            kind = items["kind"].values[0].name if "kind" in items else None
            if kind is None:
                self.d.add("HR206", f"channel `{name}` needs a `kind` ({', '.join(KINDS)})", d.name.span)
                continue
            if kind not in KINDS:
                self.d.add(
                    "HR204",
                    f"unknown channel kind `{kind}`",
                    items["kind"].values[0].span,
                    did_you_mean(kind, KINDS) or "kinds: " + ", ".join(KINDS),
                )
                continue
            fail_safe = items["fail_safe"].values[0].name if "fail_safe" in items else None
            if fail_safe is not None and fail_safe not in ("NC", "NO"):
                self.d.add("HR204", f"`fail_safe` is NC or NO, not `{fail_safe}`", items["fail_safe"].span)
                fail_safe = None
            if fail_safe is None and kind != "sensor":
                if "fail_safe" not in items:
                    self.d.add(
                        "HR206",
                        f"channel `{name}` needs `fail_safe NC` or `fail_safe NO`: what the "
                        "load does when its node's outputs drop",
                        d.name.span,
                    )
                continue
            refs = {}
            for key in ("current", "flow", "measures"):
                if key in items:
                    ident = items[key].values[0]
                    if ident.name not in metrics:
                        self._unknown("HR101", "metric", ident, metrics)
                        refs[key] = None
                    else:
                        refs[key] = ident.name
                else:
                    refs[key] = None
            moves = items.get("moves_level")
            word = moves.values[0].name if moves and isinstance(moves.values[0], A.Ident) else None
            if word is not None and word not in ("yes", "no"):
                self.d.add("HR204", f"`moves_level` is yes or no, not `{word}`", moves.values[0].span)
            moves_level = word == "yes"
            text = items["text"].values[0].value if "text" in items else ""
            affects = self._affects(name, kind, items["affects"], metrics) if "affects" in items else None
            flow_flag = self._flow_flag(name, kind, items["flow_flag"], metrics) if "flow_flag" in items else None
            out[name] = M.Channel(
                name,
                kind,
                fail_safe,
                refs["current"],
                refs["flow"],
                refs["measures"],
                moves_level,
                text,
                d.name.span,
                affects,
                flow_flag,
            )
        return out

    def _flow_flag(self, name, kind, it: A.Item, metrics) -> str | None:
        """`flow_flag flow_present` (language 1.1): a pump's 0/1 flow-presence metric."""
        (ident,) = it.values
        if kind != "pump":
            self.d.add(
                "HR113",
                f"`flow_flag` tells whether water flows past a pump; `{name}` is a {kind}",
                it.span,
                "remove the line, or make the channel `kind pump`",
            )
            return None
        if ident.name not in metrics:
            self._unknown("HR101", "metric", ident, metrics)
            return None
        m = metrics[ident.name]
        if m.unit:
            self.d.add(
                "HR201",
                f"`flow_flag` names a 0/1 flag; metric `{m.name}` is in {m.unit}",
                ident.span,
                f"use `flow {m.name}` for a flow rate",
            )
            return None
        if (m.low, m.high) != (0.0, 1.0):
            self.d.add(
                "HR204",
                f"`flow_flag` names a 0/1 flag; metric `{m.name}` has the range {m.low:g} .. {m.high:g}",
                ident.span,
                f"give metric `{m.name}` `range 0 .. 1`",
            )
            return None
        return m.name

    def _affects(self, name, kind, it: A.Item, metrics) -> tuple[str, int, float | None] | None:
        """`affects ec up by 0.01 mS/cm` (language 1.1) as (metric, +1 or -1, smallest change or None)."""
        metric, direction, *amount = it.values
        if kind != "doser":
            self.d.add(
                "HR113",
                f"`affects` tells what a doser does to the solution; `{name}` is a {kind}",
                it.span,
                "remove the line, or make the channel `kind doser`",
            )
            return None
        ok = True
        if direction.name not in DIRECTIONS:
            self.d.add(
                "HR204",
                f"a doser moves its metric `up` or `down`, not `{direction.name}`",
                direction.span,
                did_you_mean(direction.name, DIRECTIONS),
            )
            ok = False
        if metric.name not in metrics:
            self._unknown("HR101", "metric", metric, metrics)
            return None
        m = metrics[metric.name]
        least = None
        if amount:
            (lit,) = amount
            if not self._dims_ok((lit,), m.dim, f"`{metric.name}`"):
                return None
            if lit.value <= 0:
                self.d.add("HR204", "the smallest change a dose shows must be more than 0", lit.span)
                return None
            least = float(lit.value)
        return (metric.name, DIRECTIONS[direction.name], least) if ok else None

    # ---- profiles and recipes -------------------------------------------------------------
    def _profiles(self) -> dict[str, M.Profile]:
        out = {}
        for name, d in self.decls["profile"].items():
            settings = {path: default for path, (_, default, _) in self.schema.items()}
            windows: list[M.Window] = []
            seen: dict[str, A.Setting] = {}
            self._settings(d.items, "", settings, windows, seen)
            self._levels(settings, seen, d)
            out[name] = M.Profile(name, settings, tuple(windows), d.name.span)
        return out

    def _settings(self, items, prefix, settings, windows, seen) -> None:
        for it in items:
            if isinstance(it, A.Window):
                if prefix != "water_cycle.recirc.":
                    self.d.add("HR111", "a `window` belongs in `water_cycle { recirc { ... } }`", it.span)
                    continue
                w = self._window(it)
                if w:
                    windows.append(w)
                continue
            path = S.resolve(prefix + it.key.name) if not prefix else prefix + it.key.name
            if isinstance(it, A.Section):
                if path not in self.sections:
                    self._unknown_setting(it.key, prefix)
                    continue
                self._settings(it.items, path + ".", settings, windows, seen)
                continue
            if path not in self.schema:
                self._unknown_setting(it.key, prefix)
                continue
            if path in seen:
                self.d.add("HR107", f"setting `{it.key.name}` is given twice; first at {seen[path].span}", it.key.span)
                continue
            seen[path] = it
            value = self._setting_value(path, it)
            if value is not None:
                settings[path] = value

    def _unknown_setting(self, key: A.Ident, prefix: str) -> None:
        here = [p[len(prefix) :].split(".")[0] for p in list(self.schema) + list(self.sections) if p.startswith(prefix)]
        hint = None
        if key.name in S.PLAN_NAMES:
            hint = f"write it as `{S.PLAN_NAMES[key.name]}`: durations carry their unit"
        self.d.add(
            "HR111",
            f"unknown setting `{key.name}`" + (f" in `{prefix[:-1]}`" if prefix else ""),
            key.span,
            hint
            or did_you_mean(key.name, set(here))
            or ("settings here: " + ", ".join(sorted(set(here))) if here else None),
        )

    def _setting_value(self, path, it: A.Setting):
        dim, _default, allowed = self.schema[path]
        v = it.value
        name = path.rsplit(".", 1)[-1]
        if dim == U.TEXT:
            if isinstance(v, A.Ident) and (allowed is None or v.name in allowed):
                return v.name
            if allowed is None:
                self.d.add("HR201", f"`{name}` is a name such as `{_default}`", v.span)
            else:
                self.d.add("HR204", f"`{name}` is one of {', '.join(sorted(allowed))}", v.span)
            return None
        if not isinstance(v, A.Literal) or not (
            v.dim == dim or (dim in U.NUMERIC and v.dim == U.NUMBER and dim not in (U.PERCENT, U.VOLUME))
        ):
            want = {
                U.DURATION: "a duration such as 7d",
                U.TIME_OF_DAY: "a time of day such as 09:00",
                U.BOOL: "yes or no",
                U.PERCENT: "a percentage such as 30%",
                U.VOLUME: "a volume such as 2 ml",
                U.NUMBER: "a number such as 3",
            }.get(dim, dim)
            self.d.add(
                "HR201",
                f"`{name}` is {want}",
                v.span,
                "durations carry their unit" if dim == U.DURATION and getattr(v, "dim", "") == U.NUMBER else None,
            )
            return None
        value = v.value
        if dim == U.TIME_OF_DAY and not 0 <= value < 86400:
            self.d.add("HR204", f"`{v.text}` is not a time of day (00:00 to 23:59)", v.span)
            return None
        if dim == U.PERCENT and not 0 <= value <= 100:
            self.d.add("HR204", f"`{name}` is a percentage between 0% and 100%", v.span)
            return None
        if dim in (U.DURATION, U.VOLUME) and value <= 0:
            self.d.add("HR204", f"`{name}` must be more than 0", v.span)
            return None
        if path in S.COUNTS and (value < 1 or value != int(value)):
            self.d.add("HR204", f"`{name}` counts something: a whole number of at least 1", v.span)
            return None
        return value

    def _levels(self, settings, seen, decl) -> None:
        order = ["levels.empty", "levels.min", "levels.target", "levels.max"]
        vals = [settings[p] for p in order]
        if not (vals[0] < vals[1] < vals[2] <= vals[3]):
            # at the first pair out of order, the level this profile wrote (the later one if both)
            i = next(i for i in range(3) if not (vals[i] < vals[i + 1] or (i == 2 and vals[i] == vals[i + 1])))
            pair = [p for p in (order[i + 1], order[i]) if p in seen]
            where = seen[pair[0]] if pair else next((seen[p] for p in order if p in seen), None)
            self.d.add(
                "HR203",
                "levels must rise: empty < min < target <= max (now "
                + ", ".join(f"{p.split('.')[1]} {v:g}%" for p, v in zip(order, vals))
                + ")",
                where.span if where else (decl.uid if isinstance(decl, A.ZoneDecl) else decl.name).span,
            )

    def _day_span(self, start: A.Literal, end: A.Literal, what: str) -> bool:
        """Are `FROM to TO` times of day (TO may be 24:00)? Reports each that is not (HR204)."""
        ok = True
        if not 0 <= float(start.value) < 86400:
            self.d.add("HR204", f"`{start.text}` is not a time of day", start.span)
            ok = False
        if not 0 <= float(end.value) <= 86400:
            self.d.add("HR204", f"`{end.text}` is not a time of day (24:00 may end {what})", end.span)
            ok = False
        return ok

    def _window(self, w: A.Window) -> M.Window | None:
        start, end = float(w.start.value), float(w.end.value)
        ok = self._day_span(w.start, w.end, "a window")
        if ok and start == end % 86400 and end != 86400:
            self.d.add(
                "HR204", "a window that starts where it ends is empty; use 00:00 to 24:00 for the whole day", w.span
            )
            ok = False
        end = end % 86400 if end != 86400 else 86400.0
        if w.off:  # `window 20:00 to 06:00 off` (1.2): the pump is held off from start to end
            return M.Window(start, end, 0.0, 0.0, w.span, off=True) if ok else None
        duty = float(w.duty.value)
        if not 0 <= duty <= 100:
            self.d.add("HR204", "duty is a percentage between 0% and 100%", w.duty.span)
            ok = False
        period = float(w.period.value)
        if not 0 < period <= S.MAX_PERIOD_S:
            self.d.add("HR204", "period must be longer than 0 and at most 24h", w.period.span)
            ok = False
        max_off = None
        if w.max_off is not None:
            max_off = float(w.max_off.value)
            if max_off <= 0:
                self.d.add("HR204", "`max_off` must be longer than 0", w.max_off.span)
                ok = False
        if not ok:
            return None
        return M.Window(start, end, duty / 100.0, period, w.span, max_off_s=max_off)

    def _recipes(self, metrics) -> dict[str, M.Recipe]:
        out = {}
        for name, d in self.decls["recipe"].items():
            phases = []
            seen_phase: set[str] = set()
            for p in d.phases:
                if p.name.name in seen_phase:
                    self.d.add("HR107", f"phase `{p.name.name}` is defined twice", p.name.span)
                    continue
                seen_phase.add(p.name.name)
                phase = self._phase(p, metrics)
                if phase:
                    phases.append(phase)
            phases.sort(key=lambda p: p.day_from)
            if len(phases) == len(d.phases):  # a phase with an error would show as a gap
                self._phase_coverage(name, phases, d)
            title = d.title.value if d.title else name
            out[name] = M.Recipe(name, title, tuple(phases), d.name.span)
        return out

    def _phase(self, p: A.PhaseDecl, metrics) -> M.Phase | None:
        lo = p.day_from.value
        hi = p.day_to.value if p.day_to is not None else None
        for lit in (p.day_from, p.day_to):
            if lit is not None and (lit.value != int(lit.value) or lit.value < 0):
                self.d.add("HR204", "days are whole numbers counted from planting (day 0)", lit.span)
                return None
        if hi is not None and hi < lo:
            self.d.add("HR203", f"phase `{p.name.name}` ends (day {hi:g}) before it starts (day {lo:g})", p.span)
            return None
        targets, values, night_targets, night_values, settings = {}, {}, {}, {}, {}
        items = list(p.targets)
        sections = [t for t in items if isinstance(t, A.Section)]
        if sections:  # `dosing { nutrient_dose 8 ml }` (1.2): settings while the phase lasts
            windows: list = []
            self._settings(sections, "", settings, windows, {})
            if windows:
                self.d.add("HR111", "a phase cannot change the recirculation windows", windows[0].span)
        for i, t in enumerate(items):
            if isinstance(t, A.Section):
                continue
            if isinstance(t, A.TargetRange):
                if t.name.name not in metrics:
                    self._unknown("HR101", "metric", t.name, metrics)
                    continue
                m = metrics[t.name.name]
                if not self._dims_ok((t.low, t.high), m.dim, f"the target for {m.name}"):
                    continue
                a, b = float(t.low.value), float(t.high.value)
                if a > b:
                    self.d.add(
                        "HR203",
                        f"target range of `{m.name}` goes from {t.low.text} down to {t.high.text}",
                        t.span,
                        f"write it as {t.high.text} .. {t.low.text}",
                    )
                    continue
                if t.name.name in targets:
                    self.d.add("HR107", f"target `{t.name.name}` is given twice", t.name.span)
                    continue
                targets[t.name.name] = (a, b)
                if t.night is not None:
                    night = self._night_range(m, t)
                    if night is not None:
                        night_targets[t.name.name] = night
            else:
                key = t.key.name
                if key not in PHASE_VALUES:
                    prev, nxt = items[i - 1] if i else None, items[i + 1] if i + 1 < len(items) else None
                    if key == "to" and isinstance(prev, A.Setting) and prev.key.name in metrics:
                        continue  # `ph 5.8 to 6.2`: reported once, at `ph`
                    message, hint = f"unknown phase value `{key}`", did_you_mean(key, PHASE_VALUES)
                    if key in metrics:
                        high = nxt.value.text if isinstance(nxt, A.Setting) and nxt.key.name == "to" else "HIGH"
                        message = f"the target of `{key}` is a range, not one value"
                        hint = f"write `{key} {t.value.text} .. {high}`"
                    self.d.add("HR111", message, t.key.span, hint)
                    continue
                if t.value.dim != PHASE_VALUES[key]:
                    self.d.add("HR201", f"`{key}` is a duration such as 7d", t.value.span)
                    continue
                values[key] = t.value.value
                if t.night is not None:
                    if t.night.dim != PHASE_VALUES[key]:
                        self.d.add("HR201", f"`{key}` is a duration such as 7d", t.night.span)
                        continue
                    night_values[key] = t.night.value
        return M.Phase(
            p.name.name,
            int(lo),
            None if hi is None else int(hi),
            targets,
            values,
            p.span,
            night_targets,
            night_values,
            settings,
        )

    def _night_range(self, m: M.Metric, t: A.TargetRange) -> tuple[float, float] | None:
        """The `night LOW .. HIGH` of a recipe target (language 1.2), checked as the day's range is."""
        low, high = t.night
        if not self._dims_ok((low, high), m.dim, f"the night target for {m.name}"):
            return None
        a, b = float(low.value), float(high.value)
        if a > b:
            self.d.add(
                "HR203",
                f"night target range of `{m.name}` goes from {low.text} down to {high.text}",
                low.span.to(high.span),
                f"write it as {high.text} .. {low.text}",
            )
            return None
        return (a, b)

    def _phase_coverage(self, name, phases, decl) -> None:
        expect = 0
        for i, p in enumerate(phases):
            if p.day_from > expect:
                where = "before" if i == 0 else "after the previous phase and before"
                self.d.add(
                    "HR403",
                    f"recipe `{name}` has no phase for days {expect} to {p.day_from - 1}: gap {where} `{p.name}`",
                    p.span,
                )
            elif p.day_from < expect:
                self.d.add(
                    "HR403",
                    f"phase `{p.name}` starts on day {p.day_from}, inside the previous phase "
                    f"(which runs to day {expect - 1})",
                    p.span,
                )
            if p.day_to is None:
                if i + 1 < len(phases):
                    self.d.add(
                        "HR403", f"phase `{p.name}` has no last day, but `{phases[i + 1].name}` follows it", p.span
                    )
                return
            expect = max(expect, p.day_to + 1)

    # ---- alerts and guards -------------------------------------------------------------------
    def scope(self, s: A.Scope, channels) -> M.Scope | None:
        if s.each:
            kind = s.names[0]
            if kind.name not in KINDS:
                self.d.add(
                    "HR204",
                    f"unknown channel kind `{kind.name}`",
                    kind.span,
                    did_you_mean(kind.name, KINDS) or "kinds: " + ", ".join(KINDS),
                )
                return None
            return M.Scope(kind.name, (), kind.name)
        names = []
        for n in s.names:
            if n.name not in channels:
                self._unknown("HR102", "channel", n, channels)
                return None
            names.append(n.name)
        return M.Scope(None, tuple(names), "channel")

    def _alerts(self, typer: Typer, rs: M.RuleSet) -> dict[str, M.Alert]:
        out = {}
        for code, d in self.decls["alert"].items():
            items = self._items(d, ("source", "severity", "text", "lock until reset", "clear on reset"))
            m = ALERT_CODE.match(code)
            if not m:
                self.d.add(
                    "HR404",
                    f"alert code `{code}` is outside the taxonomy",
                    d.code.span,
                    "codes start with biz_ (the crop and its water) or infra_ (machines and "
                    "services), then lower-case words joined by _",
                )
                continue
            source = items["source"].values[0].name if "source" in items else None
            if source is None:
                self.d.add("HR206", f"alert `{code}` needs `source {m.group(1)}`", d.code.span)
            elif source != m.group(1):
                self.d.add(
                    "HR404",
                    f"alert `{code}` has source `{source}`, but {m.group(1)}_ codes are source {m.group(1)}",
                    items["source"].span,
                )
            severity = items["severity"].values[0].name if "severity" in items else "warning"
            if severity not in SEVERITIES:
                self.d.add(
                    "HR204",
                    f"unknown severity `{severity}`",
                    items["severity"].span,
                    did_you_mean(severity, SEVERITIES) or "severities: " + ", ".join(SEVERITIES),
                )
            scope = self.scope(d.scope, rs.channels) if d.scope else None
            if d.scope and scope is None:
                continue
            typer.scope = scope
            when, clear = [], None
            for it in d.items:
                if isinstance(it, A.AlertCond):
                    c = typer.condition(it.cond)
                    if c is None:
                        self.untyped.add(code)
                        continue
                    if it.clear:
                        if clear is not None:
                            self.d.add("HR107", "`clear when` is given twice", it.span)
                        clear = c
                    else:
                        when.append(c)
            typer.scope = None
            if len(when) > 1:
                self.d.add(
                    "HR107",
                    f"alert `{code}` has more than one `when`",
                    when[1].span,
                    "combine the conditions with `or`",
                )
            locks = "lock until reset" in items
            on_error = tuple(
                v.name for it in d.items if isinstance(it, A.Item) and it.keyword == "on error" for v in it.values
            )
            if locks and clear is not None:
                self.d.add(
                    "HR405",
                    f"alert `{code}` locks until an operator reset, so it cannot clear by itself",
                    clear.span,
                    "remove `clear when`, or remove `lock until reset`",
                )
            text = items["text"].values[0].value if "text" in items else code
            if "text" not in items:
                self.d.add("HR206", f"alert `{code}` needs a `text` for the people who read it", d.code.span)
            out[code] = M.Alert(
                code,
                source or m.group(1),
                severity,
                text,
                scope,
                tuple(when),
                clear,
                "clear on reset" in items or locks,
                on_error,
                locks,
                d.code.span,
            )
        return out

    def _guards(self, typer: Typer, rs: M.RuleSet) -> dict[str, M.Guard]:
        out = {}
        for name, d in self.decls["guard"].items():
            scope = self.scope(d.scope, rs.channels)
            if scope is None:
                continue
            typer.scope = scope
            denies = []
            for deny in d.denies:
                e = typer.boolean(deny.expr)
                raises = None
                if deny.raises is not None:
                    alert = rs.alerts.get(deny.raises.name)
                    if alert is None:
                        if deny.raises.name not in self.decls["alert"]:
                            self._unknown("HR104", "alert", deny.raises, self.decls["alert"])
                    elif alert.scope is not None and not _scope_within(scope, alert.scope, rs.channels):
                        self.d.add(
                            "HR113",
                            f"alert `{alert.code}` is raised per channel of its own scope, "
                            f"which does not cover every channel guard `{name}` protects",
                            deny.raises.span,
                        )
                    else:
                        raises = alert.code
                if e is not None:
                    denies.append(M.Deny(deny.reason.value, e, raises, render(deny.expr), deny.span))
            typer.scope = None
            out[name] = M.Guard(name, scope, tuple(denies), d.name.span)
        return out

    # ---- sites -------------------------------------------------------------------------------
    def _sites(self, rs: M.RuleSet, usage) -> list[M.Site]:
        sites = []
        zone_uids: dict[str, A.Ident] = {}
        for uid, d in self.decls["site"].items():
            items = self._items(d, ("timezone",))
            tz = items["timezone"].values[0].value if "timezone" in items else "UTC"
            try:
                ZoneInfo(tz)
            except (ZoneInfoNotFoundError, ValueError):
                self.d.add(
                    "HR204",
                    f"unknown time zone `{tz}`",
                    items["timezone"].span,
                    "use an IANA name such as Europe/Amsterdam or UTC",
                )
                tz = "UTC"
            light = self._light([i for i in d.items if isinstance(i, A.Light)])
            greenhouses = []
            gh_uids: set[str] = set()
            for g in (i for i in d.items if isinstance(i, A.GreenhouseDecl)):
                if g.uid.name in gh_uids:
                    self.d.add("HR107", f"greenhouse `{g.uid.name}` is defined twice", g.uid.span)
                    continue
                gh_uids.add(g.uid.name)
                bounded = self._nodes(g)
                zones = []
                for z in g.zones:
                    if z.uid.name in zone_uids:
                        self.d.add(
                            "HR107",
                            f"zone `{z.uid.name}` is defined twice; first at {zone_uids[z.uid.name].span}",
                            z.uid.span,
                        )
                        continue
                    zone_uids[z.uid.name] = z.uid
                    zone = self._zone(z, uid, g.uid.name, tz, rs, usage, bounded, light)
                    if zone:
                        zones.append(zone)
                greenhouses.append(
                    M.Greenhouse(g.uid.name, g.title.value if g.title else g.uid.name, tuple(zones), g.uid.span)
                )
            sites.append(M.Site(uid, d.title.value if d.title else uid, tz, tuple(greenhouses), d.uid.span, light))
        return sites

    def _light(self, lights: list[A.Light]) -> tuple[float, float] | None:
        """`light 06:00 to 20:00` (language 1.2) as (on, off) in seconds of the local day."""
        if not lights:
            return None
        for extra in lights[1:]:
            self.d.add("HR107", f"`light` is given twice; first at {lights[0].span}", extra.span)
        li = lights[0]
        start, end = float(li.start.value), float(li.end.value)
        ok = self._day_span(li.start, li.end, "the light")
        if ok and start == end % 86400:
            self.d.add("HR204", "the light goes off when it comes on: give the hours it is on", li.span)
            ok = False
        return (start, end) if ok else None

    def _zone_settings(self, z: A.ZoneDecl, rs: M.RuleSet, profile: str | None):
        """A zone's own `settings { }` (language 1.2): (values over the profile's, windows or None)."""
        blocks = [i for i in z.items if isinstance(i, A.SettingsDecl)]
        values: dict = {}
        windows: list[M.Window] = []
        seen: dict[str, A.Setting] = {}
        for extra in blocks[1:]:
            self.d.add("HR107", f"a zone has one `settings` block; first at {blocks[0].span}", extra.span)
        if not blocks:
            return values, None
        self._settings(blocks[0].items, "", values, windows, seen)
        base = rs.profiles[profile].settings if profile in rs.profiles else None
        if base is not None and any(p.startswith("levels.") for p in seen):
            self._levels({**base, **values}, seen, z)
        written = any(isinstance(i, A.Window) for i in _walk_settings(blocks[0].items))
        return values, (tuple(windows) if written else None)

    def _nodes(self, g: A.GreenhouseDecl) -> frozenset[str]:
        """The nodes a greenhouse declares able to end an OFF by themselves (`bounded_off yes`)."""
        bounded: set[str] = set()
        declared: dict[str, A.NodeDecl] = {}
        bound = {b.node.name for z in g.zones for b in z.items if isinstance(b, A.Binding)}
        for n in g.nodes:
            uid = n.uid.name
            if uid in declared:
                self.d.add("HR107", f"node `{uid}` is declared twice; first at {declared[uid].span}", n.uid.span)
                continue
            declared[uid] = n
            caps: dict[str, str] = {}
            for it in n.items:
                cap, value = it.keyword, it.values[0]
                if cap not in NODE_CAPABILITIES:
                    self.d.add(
                        "HR204",
                        f"unknown node capability `{cap}`",
                        Span(it.span.path, it.span.line, it.span.column, it.span.line, it.span.column + len(cap)),
                        did_you_mean(cap, NODE_CAPABILITIES) or "capabilities: " + ", ".join(NODE_CAPABILITIES),
                    )
                elif cap in caps:
                    self.d.add("HR107", f"`{cap}` is given twice", it.span)
                elif value.name not in NODE_CAPABILITIES[cap]:
                    self.d.add(
                        "HR204", f"`{cap}` is {' or '.join(NODE_CAPABILITIES[cap])}, not `{value.name}`", value.span
                    )
                else:
                    caps[cap] = value.name
            if caps.get("bounded_off") == "yes":
                bounded.add(uid)
            if uid not in bound:
                self.d.add(
                    "HR502",
                    f"node `{uid}` is declared in greenhouse `{g.uid.name}`, but no zone of it binds the node",
                    n.uid.span,
                    "bind one of its outputs or sensors in a zone of this greenhouse, or remove the declaration",
                )
        return frozenset(bounded)

    def _zone(
        self, z: A.ZoneDecl, site, gh, tz, rs: M.RuleSet, usage, bounded=frozenset(), site_light=None
    ) -> M.Zone | None:
        items = self._items(z, ("profile", "recipe", "planted", "reservoir"))
        ok = True
        refs = {}
        for key, table in (("profile", rs.profiles), ("recipe", rs.recipes)):
            if key not in items:
                self.d.add("HR206", f"zone `{z.uid.name}` needs a `{key}`", z.uid.span)
                ok = False
                continue
            ident = items[key].values[0]
            if ident.name not in table:
                if ident.name not in self.decls[key]:
                    self._unknown("HR112", key, ident, table)
                ok = False
            refs[key] = ident.name
        planted = None
        if "planted" in items:
            lit = items["planted"].values[0]
            try:
                planted = date.fromisoformat(str(lit.value))
            except ValueError:
                self.d.add("HR204", f"`{lit.text}` is not a date", lit.span)
        reservoir = None
        if "reservoir" not in items:
            self.d.add("HR206", f"zone `{z.uid.name}` needs its `reservoir` volume, e.g. `reservoir 120 L`", z.uid.span)
            ok = False
        else:
            lit = items["reservoir"].values[0]
            if lit.dim != U.VOLUME or lit.value <= 0:
                self.d.add("HR201", "the reservoir is a volume such as 120 L", lit.span)
                ok = False
            else:
                reservoir = float(lit.value)
        channels, metric_nodes, metric_channels, metric_units = {}, {}, {}, {}
        for b in (i for i in z.items if isinstance(i, A.Binding)):
            name = b.name.name
            if b.is_metric:
                if name not in rs.metrics:
                    self._unknown("HR101", "metric", b.name, rs.metrics)
                    continue
                if name in metric_nodes:
                    self.d.add("HR107", f"metric `{name}` is bound twice in this zone", b.name.span)
                    continue
                metric_nodes[name] = b.node.name
                if b.channel_key is not None and self._bound_channel(b, rs, metric_channels, metric_nodes):
                    metric_channels[name] = b.channel_key.name
                if b.unit is not None and self._bound_unit(b, rs.metrics[name]):
                    metric_units[name] = b.unit.name if isinstance(b.unit, A.Ident) else b.unit.value
            else:
                if name not in rs.channels:
                    hint = (
                        f"`{name}` is a metric: bind it with `{name} from NODE`"
                        if name in rs.metrics
                        else did_you_mean(name, rs.channels)
                    )
                    if name not in self.broken:
                        self.d.add("HR102", f"unknown channel `{name}`", b.name.span, hint)
                    continue
                if name in channels:
                    self.d.add("HR107", f"channel `{name}` is bound twice in this zone", b.name.span)
                    continue
                key = b.channel_key.name if b.channel_key else name
                channels[name] = M.Binding(name, b.node.name, key, b.span)
        settings, windows = self._zone_settings(z, rs, refs.get("profile"))
        light = self._light([i for i in z.items if isinstance(i, A.Light)]) or site_light
        recipe = rs.recipes.get(refs.get("recipe"))
        if recipe is not None and light is None:
            night = next((p for p in recipe.phases if p.night_targets or p.night_values), None)
            if night is not None:
                self.d.add(
                    "HR206",
                    f"zone `{z.uid.name}` needs `light` (here or in its site): recipe `{recipe.name}` has night "
                    f"targets (phase `{night.name}`), and night is when the light is off",
                    z.uid.span,
                    "add e.g. `light 06:00 to 20:00`",
                )
        if not ok:
            return None
        return M.Zone(
            z.uid.name,
            z.title.value if z.title else z.uid.name,
            site,
            gh,
            refs["profile"],
            refs["recipe"],
            planted,
            reservoir,
            channels,
            metric_nodes,
            tz,
            z.uid.span,
            bounded & ({b.node_uid for b in channels.values()} | set(metric_nodes.values())),
            metric_channels,
            metric_units,
            settings,
            windows,
            light,
        )

    def _bound_channel(self, b: A.Binding, rs: M.RuleSet, metric_channels, metric_nodes) -> bool:
        """Is the channel of `ph from nd-1 channel ph_sensor` free to carry that metric? Not when the
        vocabulary gives the channel to another metric, nor when the zone binds it already."""
        key, name = b.channel_key, b.name.name
        owner = rs.reading_channels.get(key.name.lower(), name)
        if owner != name:
            self.d.add(
                "HR114",
                f"channel `{key.name}` carries metric `{owner}`, not `{name}`",
                key.span,
                f"metric `{owner}` declares `channel {key.name}`; bind the channel that carries `{name}`",
            )
            return False
        for other, k in metric_channels.items():
            if k.lower() == key.name.lower() and metric_nodes[other] == b.node.name:
                self.d.add(
                    "HR114",
                    f"channel `{key.name}` of `{b.node.name}` already carries metric `{other}` in this zone",
                    key.span,
                    "a reading from one channel is one metric: bind another channel",
                )
                return False
        return True

    def _bound_unit(self, b: A.Binding, m: M.Metric) -> bool:
        """Can metric `m` take readings in the unit its binding says its node sends?"""
        unit = b.unit.name if isinstance(b.unit, A.Ident) else b.unit.value
        if M.unit_factor(m, unit)[0] is not None:
            return True
        self.d.add(
            "HR201",
            f"metric `{m.name}` is in {m.unit or 'no unit'} and converts no `{unit}`",
            b.unit.span,
            f"add `convert {unit} by FACTOR` to metric `{m.name}`, or name the unit the node sends",
        )
        return False

    # ---- unused ------------------------------------------------------------------------------
    def _unused(self, rs: M.RuleSet, usage) -> None:
        for name, g in rs.guards.items():
            if name not in usage.guards:
                self.d.add("HR502", f"guard `{name}` is never used by a `guarded by`", g.span)
        raised = usage.raised | {d.raises for g in rs.guards.values() for d in g.denies if d.raises}
        for code, a in rs.alerts.items():
            if code in self.untyped or code in M.ENGINE_ALERTS:
                continue  # its condition has an error (what it lacks is not yet known), or the engine raises it
            if not a.when and not a.on_error and code not in raised:
                self.d.add(
                    "HR503",
                    f"nothing raises alert `{code}`: it has no `when`, no `on error`, and no guard or action raises it",
                    a.span,
                )
            elif not a.clear and not a.clear_on_reset:
                self.d.add(
                    "HR501",
                    f"alert `{code}` has no clear condition: once raised it stays active",
                    a.span,
                    "add `clear when ...` (with a hysteresis) or `clear on reset`",
                )
        if not rs.sites and not self.decls["site"]:
            return
        # zones as written, so that a zone with an error does not make its recipe look unused
        zones = [
            z for s in self.decls["site"].values() for g in s.items if isinstance(g, A.GreenhouseDecl) for z in g.zones
        ]
        for kind, table in (("profile", rs.profiles), ("recipe", rs.recipes)):
            used = {it.values[0].name for z in zones for it in z.items if isinstance(it, A.Item) and it.keyword == kind}
            used |= {closest(n, table) for n in used if n not in table}  # a misspelling is reported as HR112
            for name, obj in table.items():
                if name not in used:
                    self.d.add("HR502", f"{kind} `{name}` is not used by any zone", obj.span)
        bound = {b.name.name for z in zones for b in z.items if isinstance(b, A.Binding) and not b.is_metric}
        for name, ch in rs.channels.items():
            if name not in bound and name not in usage.channels:  # (which holds the channels expressions use)
                self.d.add("HR502", f"channel `{name}` is neither bound by a zone nor used by a rule", ch.span)


def _walk_settings(items):
    """Every item of a settings block, sections opened."""
    for it in items:
        yield it
        if isinstance(it, A.Section):
            yield from _walk_settings(it.items)


def _name_span(decl) -> Span:
    """Where a declaration's name is written."""
    return (decl.code if isinstance(decl, A.AlertDecl) else decl.name).span


def _scope_within(inner: M.Scope, outer: M.Scope, channels) -> bool:
    """Does `outer` cover every channel `inner` covers?"""
    if inner.kind:
        return outer.kind == inner.kind
    return all(outer.covers(channels[c]) for c in inner.channels if c in channels)
