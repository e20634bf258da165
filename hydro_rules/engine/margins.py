"""Conditions compiled in margin mode: how long each keeps the value it has now.

A number is an interval that widens with time: `(lo, hi, down, up)` says that from
now until now + dt the value lies in [lo - down·dt, hi + up·dt]. None is unknown, and
it stays unknown until a staleness or fault event, which the horizon times
separately; `(T,)` is unknown until T (change() before its window has a sample).
A reading of a metric whose twin bounds are (noise, rate) is
(v - 2·noise, v + 2·noise, rate, rate): two readings differ by at most both noises
and what the true value moved. Time-valued functions (an age, on_for) grow at rate
1 and never fall, constants do not move. Arithmetic propagates the intervals and
rates; a product or a quotient of two moving values is bounded over at most `DT_MAX`.

A condition is `(value, until)`: its value now (True, False, None for unknown,
or UNSTABLE when it may differ at the next instant) and the earliest instant it
may differ. `and` keeps a false value while any false item stays false; `or` a
true one likewise.
"""

from __future__ import annotations

import math

from ..lang import model as M
from .codegen import ExprCompiler
from .interp import percent_scale

INF = math.inf
#: the longest horizon the engine gives: products of moving values are bounded over this
DT_MAX = 86400.0
#: a condition that may differ at the very next instant
UNSTABLE = 2
#: a number about which nothing can be said (its bounds are unknown)
WIDE = (-INF, INF, INF, INF)

_CONST_NUM = (M.Const, M.SettingRef)


# ---- numbers -------------------------------------------------------------------------------------
def num(v):
    """A value that does not move until a decision or an edge the horizon times (a constant, a count)."""
    return None if v is None else (float(v), float(v), 0.0, 0.0)


def grows(v):
    """A time-valued function (an age, on_for of a running pump): it grows at rate 1."""
    if v is None:
        return None
    if v == INF:
        return (INF, INF, 0.0, 0.0)
    return (v, v, 0.0, 1.0)


def at_most(v):
    """unchanged_for: grows at rate 1, or falls to 0 at the next reading that differs."""
    return None if v is None else (0.0, v, 0.0, 1.0)


def reading(v, noise: float, rate: float):
    e = 2.0 * noise
    return (v - e, v + e, rate, rate)


def _later(*xs):
    """Unknown now, known from the earliest of these instants on: `(T,)`."""
    return (min(x[0] for x in xs if len(x) == 1),)


def add(a, b):
    if a is None or b is None:
        return None
    if len(a) == 1 or len(b) == 1:
        return _later(a, b)
    return (a[0] + b[0], a[1] + b[1], a[2] + b[2], a[3] + b[3])


def sub(a, b):
    if a is None or b is None:
        return None
    if len(a) == 1 or len(b) == 1:
        return _later(a, b)
    return (a[0] - b[1], a[1] - b[0], a[2] + b[3], a[3] + b[2])


def _rate(a) -> float:
    return max(a[2], a[3])


def mul(a, b):
    if a is None or b is None:
        return None
    if len(a) == 1 or len(b) == 1:
        return _later(a, b)
    c = (a[0] * b[0], a[0] * b[1], a[1] * b[0], a[1] * b[1])
    ra, rb = _rate(a), _rate(b)
    if ra == 0.0 and rb == 0.0:
        return (min(c), max(c), 0.0, 0.0)
    big_a = max(abs(a[0]), abs(a[1])) + ra * DT_MAX
    big_b = max(abs(b[0]), abs(b[1])) + rb * DT_MAX
    r = big_a * rb + big_b * ra
    return (min(c), max(c), r, r)


def div(a, b):
    if a is None or b is None:
        return None
    if len(a) == 1 or len(b) == 1:
        return _later(a, b)
    ra, rb = _rate(a), _rate(b)
    if b[0] == 0.0 and b[1] == 0.0 and rb == 0.0:
        return None  # `a / 0` is unknown, and stays so
    least = min(abs(b[0]), abs(b[1])) - rb * DT_MAX
    if b[0] <= 0.0 <= b[1] or least <= 0.0:
        return WIDE
    c = (a[0] / b[0], a[0] / b[1], a[1] / b[0], a[1] / b[1])
    big_a = max(abs(a[0]), abs(a[1])) + ra * DT_MAX
    r = ra / least + big_a * rb / (least * least)
    return (min(c), max(c), r, r)


def scale(a, k: float):
    if a is None or len(a) == 1:
        return a
    if k >= 0:
        return (a[0] * k, a[1] * k, a[2] * k, a[3] * k)
    return (a[1] * k, a[0] * k, -a[3] * k, -a[2] * k)


def neg(a):
    return a if a is None or len(a) == 1 else (-a[1], -a[0], a[3], a[2])


def absolute(a):
    if a is None or len(a) == 1:
        return a
    if a[0] >= 0.0:
        return a
    if a[1] <= 0.0:
        return neg(a)
    r = _rate(a)
    return (0.0, max(-a[0], a[1]), r, r)


def lowest(*xs):
    if any(x is None for x in xs):
        return None
    if any(len(x) == 1 for x in xs):
        return _later(*xs)
    return (min(x[0] for x in xs), min(x[1] for x in xs), max(x[2] for x in xs), max(x[3] for x in xs))


def highest(*xs):
    if any(x is None for x in xs):
        return None
    if any(len(x) == 1 for x in xs):
        return _later(*xs)
    return (max(x[0] for x in xs), max(x[1] for x in xs), max(x[2] for x in xs), max(x[3] for x in xs))


def drift(v, base):
    """drift(metric) = |v - base| / base × 100 %, base the value recorded for the solution."""
    if v is None or not base:
        return None
    return scale(absolute(sub(v, (base, base, 0.0, 0.0))), 100.0 / base)


# ---- conditions ------------------------------------------------------------------------------------
def less(a, b, now: float, unknown, strict: bool):
    """(value, until) of `a < b` (strict) or `a <= b`; `a > b` is `b < a`. `unknown` is what an unknown
    value reads as. NaN (unbounded values met) compares false either way: it may differ at once."""
    if a is None or b is None:
        return (unknown, INF)
    if len(a) == 1 or len(b) == 1:
        return (unknown, _later(a, b)[0])
    # a - b lies in [lo - down·dt, hi + up·dt]
    c = b[0] - a[1]  # -hi
    if c > 0.0 or (c == 0.0 and not strict):
        up = a[3] + b[2]
        return (True, now + c / up if up > 0.0 else INF)
    c = a[0] - b[1]  # lo
    if c > 0.0 or (c == 0.0 and strict):
        down = a[2] + b[3]
        return (False, now + c / down if down > 0.0 else INF)
    return (UNSTABLE, now)


def equal(a, b, now: float, unknown, same: bool):
    """(value, until) of `a == b` (same) or `a != b`."""
    if a is None or b is None:
        return (unknown, INF)
    if len(a) == 1 or len(b) == 1:
        return (unknown, _later(a, b)[0])
    lo, hi, down, up = a[0] - b[1], a[1] - b[0], a[2] + b[3], a[3] + b[2]
    if lo == hi == 0.0 and down == up == 0.0:
        return (same, INF)
    if lo > 0.0:
        return (not same, now + lo / down if down > 0.0 else INF)
    if hi < 0.0:
        return (not same, now - hi / up if up > 0.0 else INF)
    return (UNSTABLE, now)


def cmp(op: str, a, b, now: float, unknown=None):
    """(value, until) of `a op b` with a, b intervals."""
    if op == "<":
        return less(a, b, now, unknown, True)
    if op == "<=":
        return less(a, b, now, unknown, False)
    if op == ">":
        return less(b, a, now, unknown, True)
    if op == ">=":
        return less(b, a, now, unknown, False)
    return equal(a, b, now, unknown, op == "==")


def both(*items):
    """`and`: false while any false item stays false; otherwise as its items."""
    until, value, false_until = INF, True, None
    for v, u in items:
        if v is False:
            if false_until is None or u > false_until:
                false_until = u
        else:
            if u < until:
                until = u
            if v is not True and value is not UNSTABLE:
                value = v
    if false_until is not None:
        return (False, false_until)
    return (value, until)


def either(*items):
    """`or`: true while any true item stays true; otherwise as its items."""
    until, value, true_until = INF, False, None
    for v, u in items:
        if v is True:
            if true_until is None or u > true_until:
                true_until = u
        else:
            if u < until:
                until = u
            if v is not False and value is not UNSTABLE:
                value = v
    if true_until is not None:
        return (True, true_until)
    return (value, until)


def negate(item):
    v, u = item
    return ((not v) if v is True or v is False else v, u)


HELPERS = {
    "num": num, "grows": grows, "reading": reading, "at_most": at_most, "add": add, "sub": sub, "mul": mul, "div": div,
    "scale": scale, "neg": neg, "absolute": absolute, "lowest": lowest, "highest": highest, "drift": drift,
    "cmp": cmp, "less": less, "equal": equal, "both": both, "either": either, "negate": negate,
    "INF": INF, "WIDE": WIDE,
}  # fmt: skip


class MarginCompiler:
    """Expressions to Python source in margin mode (see the module docstring). The generated code reads
    `x` (the zone program), `now`, `Mv` (metric -> interval of its reading) and `Cr` (a function of
    (dict name, channel) -> interval of a channel's reading); exact yes/no leaves (`is known`, alerts,
    channel states) come from the tick's own ExprCompiler."""

    def __init__(self, settings: dict, channel: str | None, channels: dict, absent: frozenset, const, top=True):
        #: what an unknown comparison reads as: where only "holds or not" matters (alerts, transitions,
        #: rules: `if cond`) unknown is no (yes under an odd number of `not`s); in guards it stays unknown
        self.unknown = False if top else None
        self.exact = ExprCompiler(settings, None, channel, channels, absent)
        self.settings = settings
        self.channel = channel
        self.channels = channels
        self.absent = absent
        self.const = const  # value -> the name of a constant of the generated module

    def _ch(self, name: str | None) -> str:
        return self.exact._ch(name)

    # ---- conditions -----------------------------------------------------------------------
    def cond(self, e) -> str:
        t = type(e)
        if t is M.Cmp:
            a, b, u = self.num(e.left), self.num(e.right), self.unknown
            if e.op in ("<", "<="):
                return f"less({a}, {b}, now, {u}, {e.op == '<'})"
            if e.op in (">", ">="):
                return f"less({b}, {a}, now, {u}, {e.op == '>'})"
            return f"equal({a}, {b}, now, {u}, {e.op == '=='})"
        if t is M.Logic:
            folded, _ = self.exact.emit(e)
            if folded in ("True", "False"):
                return f"({folded}, INF)"  # an item folds to the value that decides (a channel's moves_level)
            neutral = "True" if e.op == "and" else "False"
            items = [i for i in e.items if self.exact.emit(i)[0] != neutral] or list(e.items)
            if len(items) == 1:
                return self.cond(items[0])
            fn = "both" if e.op == "and" else "either"
            return f"{fn}({', '.join(self.cond(i) for i in items)})"
        if t is M.Not:
            was = self.unknown
            if was is not None:
                self.unknown = not was
            try:
                return f"negate({self.cond(e.operand)})"
            finally:
                self.unknown = was
        if t in (M.Known, M.MetricIs, M.AlertIs, M.ChannelIs) or (t in _CONST_NUM and self._is_bool(e)):
            src, nullable = self.exact.emit(e)
            return f"({src}, INF)"
        src, _ = self.exact.emit(e)
        if src in ("True", "False"):
            return f"({src}, INF)"  # folded: a channel's `moves_level`, say
        return "(2, now)"  # not understood: it may differ at the next instant

    def _is_bool(self, e) -> bool:
        if isinstance(e, M.Const):
            return isinstance(e.value, bool)
        v = self.settings.get(e.path) if self.settings is not None else None
        return isinstance(v, bool)

    # ---- numbers --------------------------------------------------------------------------------
    def num(self, e) -> str:
        t = type(e)
        if t is M.Const or t is M.SettingRef:
            src, _ = self.exact.emit(e)
            if src in ("True", "False") or src.startswith("S["):
                return "WIDE"
            v = float(src)
            return self.const((v, v, 0.0, 0.0))
        if t is M.MetricRef:
            if e.attr == "value":
                return f"Mv.get({e.metric!r})"
            if e.attr == "age":
                return f"grows(x.age({e.metric!r}))"
            return f"at_most(x.unchanged_for({e.metric!r}))"
        if t is M.ChannelRef:
            return self._channel(e)
        if t is M.TargetRef:
            key = f"{e.name}.{e.bound}" if e.bound else e.name
            return f"num(x.T.get({key!r}))"
        if t is M.ZoneRef:
            return self._zone(e)
        if t is M.Arith:
            op = {"+": "add", "-": "sub", "*": "mul", "/": "div"}[e.op]
            src = f"{op}({self.num(e.left)}, {self.num(e.right)})"
            k = percent_scale(e)
            return src if k == 1.0 else f"scale({src}, {k!r})"
        if t is M.Neg:
            return f"neg({self.num(e.operand)})"
        if t is M.Func:
            return self._func(e)
        return "WIDE"

    def _channel(self, e: M.ChannelRef) -> str:
        if e.channel in self.absent:
            return "None"
        ch = self._ch(e.channel)
        if e.attr in ("current", "flow", "flow_flag"):
            return f"Cr({e.attr!r}, {ch})"
        if e.attr == "on_for":
            return f"x.hz_on_for({ch})"
        if e.attr == "off_for":
            return f"x.hz_off_for({ch})"
        if e.attr == "timeouts":
            return f"num(x.timeouts({ch}))"
        if e.attr == "moves_level":
            return "WIDE"  # a yes/no in a number's place: not expected
        return "WIDE"

    def _zone(self, e: M.ZoneRef) -> str:
        if e.name == "reservoir.volume":
            return "num(x.reservoir_l)"
        if e.name.startswith("solution.") and e.name != "solution.age":
            return f"num(x.solution_value({e.name.split('.', 1)[1]!r}))"
        if e.name == "solution.age":
            return "grows(x.solution_age())"
        if e.name == "last_dose.age":
            return "grows(x.last_dose_age())"
        if e.name == "recipe.day":
            return "num(float(x.recipe_day()))"
        if e.name == "time_of_day":
            return "grows(x.time_of_day())"  # its wrap at local midnight is an edge of the horizon
        return "WIDE"

    def _func(self, e: M.Func) -> str:
        name = e.name
        if name == "change":
            return f"x.hz_change({e.args[0]!r}, {float(e.args[1].value)!r}, now)"
        if name == "drift":
            return f"drift(Mv.get({e.args[0]!r}), x.solution_value({e.args[0]!r}))"
        if name in ("failures", "filled") and e.args[0] in self.absent:
            return "None"
        if name in ("failures", "filled"):
            src, _ = self.exact.emit(e)
            return f"num({src})"  # moves only when a window lets an item go: an edge of the horizon
        if name == "abs":
            return f"absolute({self.num(e.args[0])})"
        if name in ("min", "max"):
            fn = "lowest" if name == "min" else "highest"
            return f"{fn}({', '.join(self.num(a) for a in e.args)})"
        return "WIDE"
