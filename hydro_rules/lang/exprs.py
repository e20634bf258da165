"""Typing of expressions: resolve names, check units, fold constants.

`Typer.expr` turns an AST expression into the typed IR of model.py, or None
after reporting why it cannot.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field

from . import ast as A
from . import model as M
from . import settings as S
from . import units as U
from .diagnostics import Diagnostics, did_you_mean
from .grammar import SUPPORTED_VERSIONS, version_key

CHANNEL_ATTRS = {
    "current": U.CURRENT,
    "flow": U.FLOW,
    "flow_flag": U.NUMBER,  # 0 or 1 (language 1.1)
    "on_for": U.DURATION,
    "off_for": U.DURATION,
    "timeouts": U.NUMBER,
    "moves_level": U.BOOL,
}
#: channel attributes of language 1.1
NEWER_CHANNEL_ATTRS = frozenset({"flow_flag"})
METRIC_ATTRS = {"age": U.DURATION, "unchanged_for": U.DURATION}
CHANNEL_WORDS = {"on", "off", "locked"}
ALERT_WORDS = {"active", "resolved"}
KNOWN_WORDS = {"known", "unknown"}
#: the status of a metric's latest reading (language 1.1): `ph is stale`
METRIC_WORDS = {"stale", "frozen", "implausible"}
#: first words of the profile settings rules read: `levels.min`, `water_change.interval` (short for
#: `water_cycle.water_change.interval`), ...
SETTING_HEADS = frozenset(S.SHORT) | {p.split(".", 1)[0] for p in S.SCHEMA}
ZONE_NAMESPACES = ("target", "solution", "last_dose", "recipe", "time_of_day", "reservoir")
NAMESPACES = (*ZONE_NAMESPACES[:-1], *sorted(SETTING_HEADS))
#: function -> how many arguments it takes (`filled` takes 2 or more: channel, window, states...)
FUNCTIONS = {"change": 2, "drift": 1, "failures": 2, "abs": 1, "min": 2, "max": 2, "filled": 2}
#: functions that take more arguments than FUNCTIONS says (the extra ones are states)
VARIADIC = frozenset({"filled"})
#: functions of later language versions -> the version
FUNCTION_SINCE = {"filled": "1.2"}
#: comparison -> the same comparison with its operands swapped
_SWAP = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}
_CMP = frozenset(_SWAP)
_ARITH = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv}


@dataclass
class Names:
    """What the rule set declares, gathered before expressions are typed."""

    metrics: dict  # name -> Metric
    channels: dict  # name -> Channel
    alerts: dict  # code -> AlertDecl (AST)
    channels_used: dict = field(default_factory=dict)  # channel -> span of its first use in an expression
    #: names declared with an error already reported: a use of one is not "unknown"
    broken: set = field(default_factory=set)
    #: file path -> the language version its header states (`1`, `1.1`); the latest when not known
    versions: dict = field(default_factory=dict)
    #: every setting rules may read: the built-in SCHEMA and the declared ones (RuleSet.settings_schema)
    schema: dict = field(default_factory=lambda: dict(S.SCHEMA))
    #: every state of every machine (as written), which `filled(CHANNEL, WINDOW, STATE...)` may name
    states: frozenset = frozenset()

    @property
    def setting_heads(self) -> frozenset:
        """First words of the settings rules read: `levels.min`, `water_change.interval` (short for
        `water_cycle.water_change.interval`), and those of declared settings."""
        return frozenset(S.SHORT) | {p.split(".", 1)[0] for p in self.schema}

    @property
    def namespaces(self) -> tuple:
        return (*ZONE_NAMESPACES, *sorted(self.setting_heads))

    def use_channel(self, name: str, span) -> None:
        self.channels_used.setdefault(name, span)


class Typer:
    def __init__(self, names: Names, diags: Diagnostics):
        self.n = names
        self.d = diags
        self.scope: M.Scope | None = None

    # ---- entry points ---------------------------------------------------------------
    def condition(self, cond: A.Cond) -> M.Condition | None:
        e = self.boolean(cond.expr)
        if e is None:
            return None
        hold, setting = 0.0, None
        if cond.hold is not None:
            got = self.duration(cond.hold, "a hold")
            if got is None:
                return None
            hold, setting = got
        return M.Condition(e, hold, cond.span, render(cond.expr), setting)

    def duration(self, node, what: str = "a duration") -> tuple[float, str | None] | None:
        """A duration written as a literal (`30m`) or, in language 1.2, as a setting's path
        (`water_change.fill_timeout`): (seconds, the full setting path or None). A setting gives its
        rule-set default; each zone reads its own value. None after reporting why it cannot be one."""
        if isinstance(node, A.Literal):
            if node.dim != U.DURATION:
                self.d.add("HR201", f"{what} is a duration such as 10m, not `{node.text}`", node.span)
                return None
            return float(node.value), None
        if not isinstance(node, A.Path):
            self.d.add("HR201", f"{what} is a duration such as 10m or a duration setting", node.span)
            return None
        dotted = node.dotted
        path = S.resolve(dotted)
        if path not in self.n.schema:
            t = self._Path(node)  # reports what the name is (unknown setting, metric, ...)
            if t is not None:
                self.d.add(
                    "HR201", f"{what} is a duration or a duration setting; `{dotted}` is {_dim_words(t)}", node.span
                )
            return None
        dim, default, _ = self.n.schema[path]
        if dim != U.DURATION or default is None:
            self.d.add(
                "HR201",
                f"{what} is a duration; setting `{dotted}` is {_dim_words(M.Const(0, dim, node.span))}",
                node.span,
            )
            return None
        return float(default), path

    def boolean(self, e) -> object | None:
        t = self.expr(e)
        if t is not None and t.dim != U.BOOL:
            self.d.add(
                "HR205", f"`{render(e)}` is a {t.dim}, not a yes/no condition", e.span, "compare it, e.g. `ph > 6.5`"
            )
            return None
        return t

    def expr(self, e) -> object | None:
        method = getattr(self, "_" + type(e).__name__)
        return method(e)

    # ---- leaves -------------------------------------------------------------------
    def _Literal(self, e: A.Literal):
        if e.dim in ("date", "datetime"):
            self.d.add("HR201", "a date cannot be used in a condition", e.span)
            return None
        return M.Const(e.value, e.dim, e.span)

    def _Path(self, e: A.Path):
        names = [p.name for p in e.parts]
        head, rest = names[0], names[1:]
        scope = self.scope
        if scope is not None and head in (scope.var, "channel"):
            return self._channel_attr(None, rest, e)
        if head in self.n.metrics:
            return self._metric(head, rest, e)
        if head in self.n.channels:
            self.n.use_channel(head, e.span)
            return self._channel_attr(head, rest, e)
        if head in self.n.alerts:
            self.d.add("HR205", f"`{head}` is an alert; ask `{head} is active` or `{head} is resolved`", e.span)
            return None
        if head in self.n.namespaces:
            return self._namespace(head, rest, e)
        self._unknown(head, e.parts[0])
        return None

    def _unknown(self, name: str, ident: A.Ident):
        if name in self.n.broken:
            return
        metric_hint = did_you_mean(name, self.n.metrics)
        channel_hint = did_you_mean(name, self.n.channels)
        if metric_hint:
            self.d.add("HR101", f"unknown metric `{name}`", ident.span, metric_hint)
        elif channel_hint:
            self.d.add("HR102", f"unknown channel `{name}`", ident.span, channel_hint)
        else:
            others = list(self.n.namespaces) + ([self.scope.var] if self.scope else [])
            self.d.add(
                "HR106",
                f"unknown name `{name}`",
                ident.span,
                did_you_mean(name, others) or did_you_mean(name, self.n.alerts),
            )

    def _metric(self, name, rest, e):
        m = self.n.metrics[name]
        if not rest:
            return M.MetricRef(name, "value", m.dim, e.span)
        if len(rest) == 1 and rest[0] in METRIC_ATTRS:
            return M.MetricRef(name, rest[0], METRIC_ATTRS[rest[0]], e.span)
        self.d.add(
            "HR106",
            f"metric `{name}` has no `{'.'.join(rest)}`",
            e.parts[1].span,
            did_you_mean(rest[0], METRIC_ATTRS) or "a metric has `.age` and `.unchanged_for`",
        )
        return None

    def _channel_attr(self, channel, rest, e):
        label = channel or (self.scope.var if self.scope else "channel")
        if len(rest) != 1 or rest[0] not in CHANNEL_ATTRS:
            if not rest:
                self.d.add(
                    "HR205",
                    f"`{label}` is a channel, not a value",
                    e.span,
                    f"ask `{label} is on`, or use `{label}.current`, `{label}.flow`, `{label}.on_for`",
                )
            else:
                self.d.add(
                    "HR106",
                    f"channel `{label}` has no `{'.'.join(rest)}`",
                    e.parts[1].span,
                    did_you_mean(rest[0], CHANNEL_ATTRS)
                    or "a channel has " + ", ".join(f"`.{a}`" for a in CHANNEL_ATTRS),
                )
            return None
        attr = rest[0]
        if attr in NEWER_CHANNEL_ATTRS and not self._newer_ok(f".{attr}", e.parts[1].span):
            return None
        if channel is not None and attr in ("current", "flow", "flow_flag"):
            ch = self.n.channels[channel]
            if getattr(ch, attr) is None:
                self.d.add("HR106", f"channel `{channel}` declares no `{attr}` metric", e.span)
                return None
        return M.ChannelRef(channel, attr, CHANNEL_ATTRS[attr], e.span)

    def _namespace(self, head, rest, e):
        dotted = ".".join([head, *rest])
        if head == "target":
            if len(rest) == 2 and rest[0] in self.n.metrics and rest[1] in ("min", "max"):
                return M.TargetRef(rest[0], rest[1], self.n.metrics[rest[0]].dim, e.span)
            if len(rest) == 1 and rest[0] == "ideal_change_interval":
                return M.TargetRef(rest[0], None, U.DURATION, e.span)
            self.d.add(
                "HR106",
                f"unknown recipe target `{dotted}`",
                e.span,
                "targets are `target.<metric>.min`, `target.<metric>.max` and `target.ideal_change_interval`",
            )
            return None
        if head == "solution":
            if rest == ["age"]:
                return M.ZoneRef("solution.age", U.DURATION, e.span)
            if len(rest) == 1 and rest[0] in self.n.metrics:
                return M.ZoneRef(f"solution.{rest[0]}", self.n.metrics[rest[0]].dim, e.span)
            self.d.add(
                "HR106", f"unknown `{dotted}`", e.span, "use `solution.age` or a recorded metric such as `solution.ec`"
            )
            return None
        if head == "last_dose" and rest == ["age"]:
            return M.ZoneRef("last_dose.age", U.DURATION, e.span)
        if head == "recipe" and rest == ["day"]:
            return M.ZoneRef("recipe.day", U.NUMBER, e.span)
        if head == "time_of_day" and not rest:
            return M.ZoneRef("time_of_day", U.TIME_OF_DAY, e.span)
        if head == "reservoir":
            if rest != ["volume"]:
                self.d.add("HR106", f"unknown name `{dotted}`", e.span, "the reservoir has `reservoir.volume`")
                return None
            if not self._newer_ok("reservoir.volume", e.span, "1.2"):
                return None
            return M.ZoneRef("reservoir.volume", U.VOLUME, e.span)
        if head in self.n.setting_heads:
            path = S.resolve(dotted)
            schema = self.n.schema
            if path in schema:
                dim, default, _ = schema[path]
                if default is None:
                    self.d.add(
                        "HR111",
                        f"setting `{dotted}` cannot be read by rules: when a profile does not set it, "
                        "the engine computes it",
                        e.span,
                    )
                    return None
                return M.SettingRef(path, dim, e.span)
            known = [p for p in schema if p.startswith(S.resolve(head) + ".")]
            short = [k.rsplit(".", 1)[1] for k in known]
            self.d.add(
                "HR111",
                f"unknown setting `{dotted}`",
                e.span,
                did_you_mean(rest[-1] if rest else head, short)
                or ("settings here: " + ", ".join(short) if short else None),
            )
            return None
        self.d.add("HR106", f"unknown name `{dotted}`", e.span)
        return None

    # ---- compound ---------------------------------------------------------------------
    def _IsCheck(self, e: A.IsCheck):
        word = e.word.name
        subj = e.subject
        if word in KNOWN_WORDS:
            t = self.expr(subj)
            if t is None:
                return None
            return M.Known(t, word == "known", e.span)
        if word in METRIC_WORDS:
            return self._metric_is(e, word)
        if not isinstance(subj, A.Path) or len(subj.parts) != 1:
            self.d.add(
                "HR106",
                f"`is {word}` needs a channel, an alert or a value",
                e.span,
                "e.g. `pump_recirc is on`, `biz_dry_run is active`, `ph is unknown`",
            )
            return None
        name = subj.parts[0].name
        scope = self.scope
        if word in CHANNEL_WORDS:
            if scope is not None and name in (scope.var, "channel"):
                return M.ChannelIs(None, word, e.span)
            if name in self.n.channels:
                self.n.use_channel(name, e.span)
                return M.ChannelIs(name, word, e.span)
            if name not in self.n.broken:
                self.d.add("HR102", f"unknown channel `{name}`", subj.span, did_you_mean(name, self.n.channels))
            return None
        if word in ALERT_WORDS:
            if name in self.n.alerts:
                return M.AlertIs(name, word, e.span)
            if name not in self.n.broken:
                self.d.add("HR104", f"unknown alert `{name}`", subj.span, did_you_mean(name, self.n.alerts))
            return None
        self.d.add(
            "HR106",
            f"unknown state word `{word}`",
            e.word.span,
            did_you_mean(word, CHANNEL_WORDS | ALERT_WORDS | KNOWN_WORDS | METRIC_WORDS)
            or "use on, off, locked, active, resolved, known, unknown, stale, frozen or implausible",
        )
        return None

    def _newer_ok(self, words: str, span, since: str = "1.1") -> bool:
        """Is a construct of language `since` allowed where it is written? Reported (HR007) when not."""
        version = self.n.versions.get(span.path, SUPPORTED_VERSIONS[-1])
        if version_key(version) >= version_key(since):
            return True
        self.d.add(
            "HR007",
            f"`{words}` is language {since}, but this file starts with `hydro {version}`",
            span,
            f"write `hydro {since}` on the first line",
        )
        return False

    def _metric_is(self, e: A.IsCheck, word: str):
        """`ph is stale`, `ec is frozen`, `ec is implausible`: language 1.1, and only of a metric."""
        if not self._newer_ok(f"is {word}", e.word.span):
            return None
        subj = e.subject
        name = subj.parts[0].name if isinstance(subj, A.Path) else None
        if name is not None and len(subj.parts) == 1 and name in self.n.metrics:
            return M.MetricIs(name, word, e.span)
        if name is not None and name in self.n.broken:
            return None
        self.d.add(
            "HR101",
            f"`is {word}` asks about a metric's readings; `{render(subj)}` is not a metric",
            subj.span,
            (did_you_mean(name, self.n.metrics) if name is not None and len(subj.parts) == 1 else None)
            or f"ask about a metric, e.g. `ph is {word}`",
        )
        return None

    def _Unary(self, e: A.Unary):
        if e.op == "not":
            t = self.boolean(e.operand)
            return None if t is None else M.Not(t, e.span)
        t = self.expr(e.operand)
        if t is None:
            return None
        if t.dim not in U.NUMERIC and t.dim != U.DURATION:
            self.d.add("HR201", f"cannot negate a {t.dim}", e.span)
            return None
        if isinstance(t, M.Const):
            return M.Const(-t.value, t.dim, e.span)
        return M.Neg(t, t.dim, e.span)

    def _Binary(self, e: A.Binary):
        op = e.op
        if op in ("and", "or"):
            items, ok = [], True
            for side in (e.left, e.right):  # both sides, so that every mistake is reported
                t = self.boolean(side)
                if t is None:
                    ok = False
                    continue
                items.extend(t.items if isinstance(t, M.Logic) and t.op == op else [t])
            return M.Logic(op, tuple(items), e.span) if ok else None
        left, right = self.expr(e.left), self.expr(e.right)
        if left is None or right is None:
            return None
        if op in _CMP:
            return self._compare(op, left, right, e)
        return self._arith(op, left, right, e)

    def _compare(self, op, left, right, e):
        if not U.compatible(left.dim, right.dim) or left.dim == U.TEXT:
            self.d.add(
                "HR201",
                f"cannot compare {_what(e.left, left)} with {_what(e.right, right)}",
                e.span,
                _unit_hint(left, right),
            )
            return None
        if left.dim == U.BOOL and op not in ("==", "!="):
            self.d.add("HR201", "yes/no values can only be compared with == or !=", e.span)
            return None
        cmp = M.Cmp(op, left, right, e.span)
        self._range_check(cmp, e)
        return cmp

    def _range_check(self, cmp: M.Cmp, e):
        """A metric compared with a constant outside its physical range is always true or false."""
        left, right, op = cmp.left, cmp.right, cmp.op
        if isinstance(left, M.Const) and isinstance(right, M.MetricRef):
            left, right, op = right, left, _SWAP[op]
        if not (isinstance(left, M.MetricRef) and left.attr == "value" and isinstance(right, M.Const)):
            return
        m = self.n.metrics[left.metric]
        c = float(right.value)
        lo, hi = m.low, m.high
        verdict = None
        if op in (">", ">="):
            if c > hi or (op == ">" and c == hi):
                verdict = "never true"
            elif c < lo or (op == ">=" and c == lo):
                verdict = "always true"
        elif op in ("<", "<="):
            if c < lo or (op == "<" and c == lo):
                verdict = "never true"
            elif c > hi or (op == "<=" and c == hi):
                verdict = "always true"
        elif op in ("==", "!=") and not lo <= c <= hi:
            verdict = "never true" if op == "==" else "always true"
        if verdict:
            self.d.add(
                "HR202",
                f"`{render(e)}` is {verdict}: {m.name} reads {U.describe(lo, m.dim)} to {U.describe(hi, m.dim)}",
                e.span,
            )

    def _arith(self, op, left, right, e):
        ld, rd = left.dim, right.dim
        if op in ("+", "-"):
            ok = U.compatible(ld, rd) or (ld == rd == U.DURATION) or (ld == U.TIME_OF_DAY and rd == U.DURATION)
            if not ok or ld == U.BOOL:
                self.d.add(
                    "HR201",
                    f"cannot {'add' if op == '+' else 'subtract'} {_what(e.right, right)} "
                    f"{'to' if op == '+' else 'from'} {_what(e.left, left)}",
                    e.span,
                    _unit_hint(left, right),
                )
                return None
            dim = U.join(ld, rd) if ld != U.TIME_OF_DAY else ld
        elif op == "*":
            if rd == U.NUMBER and (ld in U.NUMERIC or ld == U.DURATION or _compound(ld)):
                dim = ld
            elif ld == U.NUMBER and (rd in U.NUMERIC or rd == U.DURATION or _compound(rd)):
                dim = rd
            elif ld == rd == U.PERCENT:
                dim = U.NUMBER  # `50% * 30%` is the fraction 0.15
            elif U.PERCENT in (ld, rd) and {ld, rd} - {U.PERCENT} <= _ALGEBRAIC - {U.NUMBER}:
                dim = rd if ld == U.PERCENT else ld  # `reservoir.volume * 8%`: 8% of the volume (1.2)
            elif _algebraic(ld) and _algebraic(rd):  # `dosing.per_100l * reservoir.volume / 100 L` (1.2)
                dim = _product(ld, rd, 1)
            else:
                self.d.add(
                    "HR201",
                    f"cannot multiply {_what(e.left, left)} by {_what(e.right, right)}",
                    e.span,
                    "multiply by a plain number, e.g. `target.ec.max * 1.1`",
                )
                return None
        else:
            if rd == U.NUMBER and (ld in U.NUMERIC or ld == U.DURATION or _compound(ld)):
                dim = ld
            elif ld == rd and (ld in U.NUMERIC | {U.DURATION} or _compound(ld)):
                dim = U.NUMBER
            elif _algebraic(ld) and _algebraic(rd) and ld != U.NUMBER:
                dim = _product(ld, rd, -1)
            else:
                self.d.add("HR201", f"cannot divide {_what(e.left, left)} by {_what(e.right, right)}", e.span)
                return None
        if isinstance(left, M.Const) and isinstance(right, M.Const):
            a, b = float(left.value), float(right.value)
            if op == "/" and b == 0:
                self.d.add("HR204", "division by zero", e.span)
                return None
            return M.Const(_ARITH[op](a, b) * percent_scale(op, ld, rd, dim), dim, e.span)
        return M.Arith(op, left, right, dim, e.span)

    def _Call(self, e: A.Call):
        name = e.func.name
        if name not in FUNCTIONS:
            version = version_key(self.n.versions.get(e.span.path, SUPPORTED_VERSIONS[-1]))
            known = [f for f in FUNCTIONS if version >= version_key(FUNCTION_SINCE.get(f, "1"))]
            self.d.add(
                "HR109",
                f"unknown function `{name}`",
                e.func.span,
                did_you_mean(name, known) or "functions: " + ", ".join(known),
            )
            return None
        want = FUNCTIONS[name]
        if len(e.args) != want and not (name in VARIADIC and len(e.args) > want):
            more = " or more" if name in VARIADIC else ""
            self.d.add(
                "HR109", f"`{name}` takes {want}{more} argument(s), not {len(e.args)}", e.span, _SIGNATURES[name]
            )
            return None
        if name == "filled":
            return self._filled(e)
        if name == "failures":
            chan = e.args[0]
            ch_name = chan.parts[0].name if isinstance(chan, A.Path) and len(chan.parts) == 1 else None
            window = self.expr(e.args[1])
            if ch_name is None:
                self.d.add("HR109", "the first argument of `failures` is a channel", chan.span, _SIGNATURES[name])
                return None
            if self.scope is not None and ch_name in (self.scope.var, "channel"):
                target = None
            elif ch_name in self.n.channels:
                target = ch_name
                self.n.use_channel(ch_name, e.span)
            else:
                if ch_name not in self.n.broken:
                    self.d.add(
                        "HR102", f"unknown channel `{ch_name}`", chan.span, did_you_mean(ch_name, self.n.channels)
                    )
                return None
            if window is None or not self._window(window, e.args[1]):
                return None
            return M.Func(name, (target, window), U.NUMBER, e.span)
        if name in ("change", "drift"):
            m = e.args[0]
            if not (isinstance(m, A.Path) and len(m.parts) == 1 and m.parts[0].name in self.n.metrics):
                mname = m.parts[0].name if isinstance(m, A.Path) else render(m)
                if mname in self.n.broken:
                    return None
                self.d.add(
                    "HR101",
                    f"`{name}` needs a metric, `{mname}` is not one",
                    m.span,
                    did_you_mean(mname, self.n.metrics) or _SIGNATURES[name],
                )
                return None
            metric = m.parts[0].name
            if name == "drift":
                return M.Func(name, (metric,), U.PERCENT, e.span)
            window = self.expr(e.args[1])
            if window is None or not self._window(window, e.args[1]):
                return None
            return M.Func(name, (metric, window), self.n.metrics[metric].dim, e.span)
        args = [self.expr(a) for a in e.args]
        if any(a is None for a in args):
            return None
        if name == "abs":
            if args[0].dim not in U.NUMERIC and args[0].dim != U.DURATION:
                self.d.add("HR201", f"`abs` needs a number, not {_dim_words(args[0])}", e.span)
                return None
            return M.Func(name, tuple(args), args[0].dim, e.span)
        a, b = args
        if not U.compatible(a.dim, b.dim):
            self.d.add(
                "HR201",
                f"cannot take the {name} of {_what(e.args[0], a)} and {_what(e.args[1], b)}",
                e.span,
                "both values need the same unit",
            )
            return None
        return M.Func(name, tuple(args), U.join(a.dim, b.dim), e.span)

    def _filled(self, e: A.Call):
        """`filled(pump_fill, 1d)`, `filled(pump_fill, 1d, TOPUP)` (language 1.2): the litres the water
        level rose while a channel was on (in one of the states, when given) in the last window."""
        if not self._newer_ok("filled(...)", e.func.span, "1.2"):
            return None
        chan, win, *states = e.args
        ch_name = chan.parts[0].name if isinstance(chan, A.Path) and len(chan.parts) == 1 else None
        if ch_name is None:
            self.d.add("HR109", "the first argument of `filled` is a channel", chan.span, _SIGNATURES["filled"])
            return None
        if ch_name not in self.n.channels:
            if ch_name not in self.n.broken:
                self.d.add("HR102", f"unknown channel `{ch_name}`", chan.span, did_you_mean(ch_name, self.n.channels))
            return None
        self.n.use_channel(ch_name, chan.span)
        window = self.expr(win)
        if window is None or not self._window(window, win):
            return None
        names, ok = [], True
        for st in states:
            sname = st.parts[0].name if isinstance(st, A.Path) and len(st.parts) == 1 else None
            if sname is None:
                self.d.add("HR109", "after the window, `filled` takes states", st.span, _SIGNATURES["filled"])
                ok = False
            elif sname not in self.n.states:
                if sname not in self.n.broken:
                    self.d.add("HR103", f"unknown state `{sname}`", st.span, did_you_mean(sname, self.n.states))
                ok = False
            else:
                names.append(sname)
        if not ok:
            return None
        return M.Func("filled", (ch_name, window, tuple(names)), U.VOLUME, e.span)

    def _window(self, t, e) -> bool:
        if t.dim != U.DURATION or not isinstance(t, M.Const):
            self.d.add("HR201", "the time window must be a duration literal such as 1h", e.span)
            return False
        if not 0 < float(t.value) <= 7 * 86400:
            self.d.add("HR204", "the time window must be longer than 0 and at most 7d", e.span)
            return False
        return True


_SIGNATURES = {
    "change": "change(metric, window), e.g. change(water_level, 1h)",
    "drift": "drift(metric), e.g. drift(ec): percent away from the value recorded at the last water change",
    "failures": "failures(channel, window), e.g. failures(pump, 1h)",
    "abs": "abs(value)",
    "min": "min(a, b)",
    "max": "max(a, b)",
    "filled": "filled(channel, window[, state...]), e.g. filled(pump_fill, 1d, TOPUP): litres the level rose",
}


def percent_scale(op: str, ld: str, rd: str, dim: str) -> float:
    """What `a op b` of values in base units is multiplied by when a percentage (stored as 30.0 for
    30 %) stands for its share: `reservoir.volume * 8%` is 0.08 of the volume, `x / 50%` twice x,
    `50% * 30%` the fraction 0.15; a percentage times a number stays a percentage. (The engine scales
    alike: engine/interp.percent_scale.)"""
    if dim == U.PERCENT:
        return 1.0
    if op == "*":
        return 0.01 ** ((ld == U.PERCENT) + (rd == U.PERCENT))
    if op == "/" and rd == U.PERCENT and ld != U.PERCENT:
        return 100.0
    if op == "/" and ld == U.PERCENT and rd != U.PERCENT:
        return 0.01
    return 1.0


def _compound(dim: str) -> bool:
    """Is `dim` a product or quotient of dimensions (`volume*conductivity`), met only inside arithmetic?"""
    return dim not in _SIMPLE and ("*" in dim or "/" in dim)


_SIMPLE = U.NUMERIC | {U.DURATION, U.TIME_OF_DAY, U.BOOL, U.TEXT}


#: dimensions that multiply and divide with one another (not percentages: 50% is 50, not 0.5)
_ALGEBRAIC = (U.NUMERIC - {U.PERCENT}) | {U.DURATION}


def _algebraic(dim: str) -> bool:
    return dim in _ALGEBRAIC or _compound(dim)


def _powers(dim: str) -> dict:
    """`volume*volume/conductivity` -> {volume: 2, conductivity: -1}; a plain number -> {}."""
    out: dict = {}
    if dim == U.NUMBER:
        return out
    num, _, den = dim.partition("/")
    for part, sign in ((num, 1), (den, -1)):
        for d in filter(None, part.split("*")):
            if d != "1":
                out[d] = out.get(d, 0) + sign
    return out


def _product(a: str, b: str, sign: int) -> str:
    """The dimension of `a * b` (sign 1) or `a / b` (sign -1)."""
    powers = _powers(a)
    for d, n in _powers(b).items():
        powers[d] = powers.get(d, 0) + sign * n
    num = [d for d, n in sorted(powers.items()) for _ in range(n)]
    den = [d for d, n in sorted(powers.items()) for _ in range(-n)]
    if not den and len(num) == 1:
        return num[0]
    if not num and not den:
        return U.NUMBER
    return ("*".join(num) or "1") + ("/" + "*".join(den) if den else "")


def _dim_words(t) -> str:
    """What kind of value `t` is, in words: `a pH value`, `a conductivity in mS/cm`."""
    dim = t.dim
    unit = U.BASE_UNIT.get(dim)
    special = {
        U.NUMBER: "a plain number",
        U.PH: "a pH value",
        U.PERCENT: "a percentage",
        U.DURATION: "a duration",
        U.TIME_OF_DAY: "a time of day",
        U.BOOL: "a yes/no value",
        U.TEXT: "a text",
    }
    if dim in special:
        return special[dim]
    article = "an" if dim[:1] in "aeiou" else "a"
    return f"{article} {dim} in {unit}" if unit else f"{article} {dim}"


def _what(e, t) -> str:
    """An operand for a message: its text and what kind of value it is."""
    text = render(e)
    return f"`{text}` ({_dim_words(t)})" if len(text) <= 40 else _dim_words(t)


def _unit_hint(a, b) -> str | None:
    dims = {a.dim, b.dim}
    if U.DURATION in dims and U.NUMBER in dims:
        return "durations need a unit, e.g. `10m`"
    for t in (a, b):
        if isinstance(t, M.MetricRef):
            unit = U.BASE_UNIT.get(t.dim)
            if unit:
                return f"{t.metric} is measured in {unit}"
    return None


# ---- rendering --------------------------------------------------------------------------
_PREC = {
    "or": 1,
    "and": 2,
    "not": 3,
    "<": 4,
    "<=": 4,
    ">": 4,
    ">=": 4,
    "==": 4,
    "!=": 4,
    "is": 4,
    "+": 5,
    "-": 5,
    "*": 6,
    "/": 6,
    "neg": 7,
}


def render(e, parent: int = 0) -> str:
    """An expression in canonical source form (used by fmt and in messages)."""
    if isinstance(e, A.Literal):
        return e.text
    if isinstance(e, A.Path):
        return e.dotted
    if isinstance(e, A.Call):
        return f"{e.func.name}(" + ", ".join(render(a) for a in e.args) + ")"
    if isinstance(e, A.IsCheck):
        s = f"{render(e.subject, _PREC['+'])} is {e.word.name}"
        p = _PREC["is"]
    elif isinstance(e, A.Unary):
        if e.op == "not":
            # `not (pump is on)` reads as meant; `not pump is on` is the same to the parser, not to people
            clear = isinstance(e.operand, A.IsCheck) or (isinstance(e.operand, A.Binary) and e.operand.op in _CMP)
            s, p = "not " + render(e.operand, _PREC["is"] + 10 if clear else _PREC["not"]), _PREC["not"]
        else:
            s, p = "-" + render(e.operand, _PREC["neg"]), _PREC["neg"]
    elif isinstance(e, A.Binary):
        p = _PREC[e.op]
        # the parser folds to the left, so a right operand of the same precedence keeps its
        # parentheses (`a + (b + c)`); only and/or chains may drop them (the model flattens those)
        right_p = p if e.op in ("and", "or") else p + 1
        left_p = p + 1 if e.op in _CMP else p  # `a < b < c` does not parse
        s = f"{render(e.left, left_p)} {e.op} {render(e.right, right_p)}"
    else:  # pragma: no cover
        raise TypeError(type(e))
    return f"({s})" if p < parent else s
