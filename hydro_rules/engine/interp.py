"""A tree-walking evaluator of typed expressions that also says why.

The generated code is what runs each tick; this evaluator gives the same
answers (tests check that) and keeps every sub-value, so `explain` and the
reasons of transitions can show what a rule saw.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field

from ..lang import model as M
from ..lang import units as U

_OPS = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
}


@dataclass
class Trace:
    """An evaluated expression: its text, its value and the parts it was made of."""

    text: str
    value: object
    dim: str
    parts: list = field(default_factory=list)

    def shown(self) -> str:
        return show(self.value, self.dim)


def show(value, dim: str) -> str:
    if value is None:
        return "unknown"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value == float("inf"):
        return "never"
    return U.describe(float(value), dim)


def evaluate(e, x, ch: str | None = None):
    return trace(e, x, ch).value


def trace(e, x, ch: str | None = None) -> Trace:
    return _T[type(e)](e, x, ch)


def _const(e: M.Const, x, ch):
    return Trace(show(e.value, e.dim), e.value, e.dim)


def _metric(e: M.MetricRef, x, ch):
    if e.attr == "value":
        return Trace(e.metric, x.mv[e.metric], e.dim)
    return Trace(f"{e.metric}.{e.attr}", getattr(x, e.attr)(e.metric), e.dim)


def _channel(e: M.ChannelRef, x, ch):
    name = e.channel or ch
    return Trace(f"{name}.{e.attr}", getattr(x, e.attr)(name), e.dim)


def _channel_is(e: M.ChannelIs, x, ch):
    name = e.channel or ch
    if e.word == "locked":
        v = x.locked(name)
    else:
        v = x.is_on(name) == (e.word == "on")
    return Trace(f"{name} is {e.word}", v, U.BOOL)


def _setting(e: M.SettingRef, x, ch):
    short = e.path.replace("water_cycle.", "")
    return Trace(short, x.S[e.path], e.dim)


def _target(e: M.TargetRef, x, ch):
    key = f"{e.name}.{e.bound}" if e.bound else e.name
    return Trace(f"target.{key}", x.T.get(key), e.dim)


def _zone(e: M.ZoneRef, x, ch):
    if e.name == "reservoir.volume":
        return Trace(e.name, x.reservoir_l, e.dim)
    if e.name.startswith("solution.") and e.name != "solution.age":
        v = x.solution_value(e.name.split(".", 1)[1])
    else:
        v = {
            "solution.age": x.solution_age,
            "last_dose.age": x.last_dose_age,
            "recipe.day": x.recipe_day,
            "time_of_day": x.time_of_day,
        }[e.name]()
    return Trace(e.name, v, e.dim)


def _alert_is(e: M.AlertIs, x, ch):
    active = x.alert_active(e.code)
    return Trace(f"{e.code} is {e.word}", active if e.word == "active" else not active, U.BOOL)


def _metric_is(e: M.MetricIs, x, ch):
    return Trace(f"{e.metric} is {e.word}", x.metric_status(e.metric) == e.word, U.BOOL)


def _known(e: M.Known, x, ch):
    t = trace(e.operand, x, ch)
    v = (t.value is not None) == e.known
    return Trace(f"{t.text} is {'known' if e.known else 'unknown'}", v, U.BOOL, [t])


def percent_scale(e) -> float:
    """What the raw product or quotient of an Arith is multiplied by where a percentage (stored as 30.0
    for 30 %) stands for a fraction: `reservoir.volume * 8%` is 0.08 of the volume, `target.ec.max *
    115%` 1.15 of it; a percentage times a number stays a percentage; `x / 50%` is twice x."""
    if not isinstance(e, M.Arith) or e.op not in ("*", "/"):
        return 1.0
    lp, rp = _dim(e.left) == U.PERCENT, _dim(e.right) == U.PERCENT
    if e.dim == U.PERCENT or not (lp or rp):
        return 1.0
    if e.op == "*":
        return 0.01 ** (lp + rp)
    if rp and not lp:
        return 100.0
    if lp and not rp:
        return 0.01
    return 1.0  # a percentage over a percentage: their ratio


def _dim(e) -> str | None:
    return getattr(e, "dim", None)


def _binary(e, x, ch):
    a, b = trace(e.left, x, ch), trace(e.right, x, ch)
    if a.value is None or b.value is None:
        v = None
    elif e.op == "/":
        v = a.value / b.value if b.value else None
    else:
        v = _OPS[e.op](a.value, b.value)
    if v is not None and isinstance(e, M.Arith):
        scale = percent_scale(e)
        if scale != 1.0:
            v = v * scale
    return Trace(f"{_wrap(a)} {e.op} {_wrap(b)}", v, e.dim, [a, b])


def _wrap(t: Trace) -> str:
    return f"({t.text})" if " " in t.text and not t.text.startswith("(") and t.parts else t.text


def _neg(e: M.Neg, x, ch):
    t = trace(e.operand, x, ch)
    return Trace(f"-{_wrap(t)}", None if t.value is None else -t.value, e.dim, [t])


def _not(e: M.Not, x, ch):
    t = trace(e.operand, x, ch)
    return Trace(f"not {_wrap(t)}", None if t.value is None else not t.value, U.BOOL, [t])


def _logic(e: M.Logic, x, ch):
    parts, stop = [], e.op == "or"
    unknown = False
    value = None
    for item in e.items:
        t = trace(item, x, ch)
        parts.append(t)
        if t.value is stop:
            value = stop
            break
        if t.value is None:
            unknown = True
    else:
        value = None if unknown else (not stop)
    return Trace(f" {e.op} ".join(_wrap(p) for p in parts), value, U.BOOL, parts)


def _func(e: M.Func, x, ch):
    if e.name == "change":
        w = float(e.args[1].value)
        return Trace(f"change({e.args[0]}, {U.format_duration(w)})", x.change(e.args[0], w), e.dim)
    if e.name == "drift":
        return Trace(f"drift({e.args[0]})", x.drift(e.args[0]), e.dim)
    if e.name == "failures":
        name = e.args[0] or ch
        w = float(e.args[1].value)
        return Trace(f"failures({name}, {U.format_duration(w)})", x.failures(name, w), e.dim)
    if e.name == "filled":
        name = e.args[0] or ch
        w = float(e.args[1].value)
        states = tuple(e.args[2]) if len(e.args) > 2 and e.args[2] else ()
        text = ", ".join([name, U.format_duration(w), *states])
        return Trace(f"filled({text})", x.filled(name, w, states), e.dim)
    args = [trace(a, x, ch) for a in e.args]
    vals = [a.value for a in args]
    v = None if any(v is None for v in vals) else {"abs": abs, "min": min, "max": max}[e.name](*vals)
    return Trace(f"{e.name}(" + ", ".join(a.text for a in args) + ")", v, e.dim, args)


_T = {
    M.Const: _const,
    M.MetricRef: _metric,
    M.ChannelRef: _channel,
    M.ChannelIs: _channel_is,
    M.SettingRef: _setting,
    M.TargetRef: _target,
    M.ZoneRef: _zone,
    M.AlertIs: _alert_is,
    M.MetricIs: _metric_is,
    M.Known: _known,
    M.Cmp: _binary,
    M.Arith: _binary,
    M.Neg: _neg,
    M.Not: _not,
    M.Logic: _logic,
    M.Func: _func,
}


def leaves(t: Trace) -> list[Trace]:
    """The values a condition read (names, not constants), in order, without repeats."""
    out, seen = [], set()

    def walk(n: Trace):
        if not n.parts:
            if n.text not in seen and not _is_literal(n):
                seen.add(n.text)
                out.append(n)
            return
        for p in n.parts:
            walk(p)

    walk(t)
    return out


def values_seen(t: Trace) -> str:
    """The values a condition read, for people: `ph = 6.2 pH, water_level = 85%`."""
    return ", ".join(f"{leaf.text} = {leaf.shown()}" for leaf in leaves(t))


def _is_literal(t: Trace) -> bool:
    return bool(t.text) and (t.text[0].isdigit() or t.text[0] == "-" or t.text in ("yes", "no"))
