"""Typed expressions (lang.model) to Python source.

Values follow three-valued logic: None is "unknown" (a stale or missing
reading, no recipe target). A comparison with an unknown side is unknown;
`and` is False when either side is False, `or` True when either is True.
The generated code checks for None only where a value can be unknown.
"""

from __future__ import annotations

from ..lang import model as M
from .interp import percent_scale

_CMP = {"<", "<=", ">", ">=", "==", "!="}
#: channel attributes read from the pump's node, and the ZoneProgram dict that holds them per tick
_READ = {"current": "cur", "flow": "flw", "flow_flag": "flg"}


class ExprCompiler:
    """Compiles expressions of one function; `n` counts walrus temporaries.

    A scope's channel (`pump` in `for each pump`) is the function's argument `ch`,
    unless `channel` names it at compile time."""

    def __init__(
        self,
        settings: dict | None = None,
        hoist: dict | None = None,
        channel: str | None = None,
        channels: dict | None = None,
        absent: frozenset = frozenset(),
    ):
        self.n = 0
        #: channels the zone does not bind (language 1.2): their values are unknown, `is on` is false,
        #: `is off` true and `is locked` false
        self.absent = absent
        self.settings = settings  # a profile's settings: fold them into the code as constants
        self.hoist = hoist  # name -> source of per-tick values read once at the top of the function
        self.channel = channel  # the scope's channel, when the code is unrolled per channel
        self.channels = channels  # channel models, to fold what they declare

    def _local(self, name: str, init: str) -> str:
        if self.hoist is None:
            return init
        self.hoist.setdefault(name, init)
        return name

    def _tmp(self) -> str:
        self.n += 1
        return f"_t{self.n}"

    def compile(self, e) -> str:
        return self.emit(e)[0]

    def emit(self, e) -> tuple[str, bool]:
        """(source, may be None) of an expression."""
        return getattr(self, "_" + type(e).__name__)(e)

    def _ch(self, name: str | None) -> str:
        if name is None:
            return "ch" if self.channel is None else repr(self.channel)
        return repr(name)

    def _chname(self, name: str | None) -> str | None:
        """The channel's name when known at compile time."""
        return name if name is not None else self.channel

    def _chstate(self, name: str) -> str:
        return self._local(f"cs_{name}", f"st.channels[{name!r}]")

    # ---- leaves ---------------------------------------------------------------------
    def _Const(self, e: M.Const):
        v = e.value
        return (repr(bool(v)) if isinstance(v, bool) else repr(float(v))), False

    def _MetricRef(self, e: M.MetricRef):
        if e.attr == "value":
            return self._local(f"m_{e.metric}", f"mv[{e.metric!r}]"), True
        return f"x.{e.attr}({e.metric!r})", True

    def _ChannelRef(self, e: M.ChannelRef):
        if e.channel in self.absent:
            return "None", True
        ch = self._ch(e.channel)
        name = self._chname(e.channel)
        if e.attr in _READ:
            src = f"x.{_READ[e.attr]}.get({ch})"
            return (self._local(f"{_READ[e.attr]}_{name}", src) if name else src), True
        if e.attr == "moves_level" and name and self.channels is not None:
            return repr(self.channels[name].moves_level), False
        if name and self.hoist is not None and e.attr in ("on_for", "off_for"):
            cs = self._chstate(name)
            on = e.attr == "on_for"
            return f"((now - {cs}.since) if {'' if on else 'not '}{cs}.is_on else 0.0)", False
        return f"x.{e.attr}({ch})", False

    def _ChannelIs(self, e: M.ChannelIs):
        if e.channel in self.absent:
            return ("True" if e.word == "off" else "False"), False
        ch = self._ch(e.channel)
        name = self._chname(e.channel)
        if name and self.hoist is not None and e.word in ("on", "off"):
            cs = self._chstate(name)
            return (f"{cs}.is_on" if e.word == "on" else f"(not {cs}.is_on)"), False
        if e.word == "on":
            return f"x.is_on({ch})", False
        if e.word == "off":
            return f"(not x.is_on({ch}))", False
        return f"x.locked({ch})", False

    def _SettingRef(self, e: M.SettingRef):
        if self.settings is not None:
            v = self.settings[e.path]
            return (repr(bool(v)) if isinstance(v, bool) else repr(float(v))), False
        return f"S[{e.path!r}]", False

    def _TargetRef(self, e: M.TargetRef):
        key = f"{e.name}.{e.bound}" if e.bound else e.name
        return self._local("t_" + key.replace(".", "__"), f"T.get({key!r})"), True

    def _ZoneRef(self, e: M.ZoneRef):
        if e.name == "reservoir.volume":
            return "x.reservoir_l", False
        if e.name.startswith("solution.") and e.name != "solution.age":
            return f"x.solution_value({e.name.split('.', 1)[1]!r})", True
        method = {
            "solution.age": "solution_age",
            "last_dose.age": "last_dose_age",
            "recipe.day": "recipe_day",
            "time_of_day": "time_of_day",
        }[e.name]
        return f"x.{method}()", e.name in ("solution.age", "recipe.day")

    def _AlertIs(self, e: M.AlertIs):
        src = f"x.alert_active({e.code!r})"
        return (src if e.word == "active" else f"(not {src})"), False

    def _MetricIs(self, e: M.MetricIs):
        status = self._local(f"s_{e.metric}", f"x.mstat.get({e.metric!r}, 'stale')")  # metric_status(), inlined
        return f"({status} == {e.word!r})", False

    # ---- compound ---------------------------------------------------------------------
    def _Known(self, e: M.Known):
        src, nullable = self.emit(e.operand)
        if not nullable:
            return repr(e.known), False
        return (f"({src} is not None)" if e.known else f"({src} is None)"), False

    def _binary(self, left, right, op: str):
        a, an = self.emit(left)
        b, bn = self.emit(right)
        checks = []
        if an:
            a = self._check(a, checks)
        if bn:
            b = self._check(b, checks)
        if op == "/":
            body = f"({a} / {b} if {b} else None)"
            nullable = True
        else:
            body = f"{a} {op} {b}"
            nullable = bool(checks)
        if not checks:
            return f"({body})", nullable
        return f"(None if {' or '.join(checks)} else {body})", True

    def _check(self, src: str, checks: list) -> str:
        """Add the None check of a value that may be unknown; returns how to read it afterwards."""
        if src.isidentifier():  # a hoisted local: read it again rather than copy it
            checks.append(f"{src} is None")
            return src
        t = self._tmp()
        checks.append(f"({t} := {src}) is None")
        return t

    def _Cmp(self, e: M.Cmp):
        return self._binary(e.left, e.right, e.op)

    def _Arith(self, e: M.Arith):
        src, nullable = self._binary(e.left, e.right, e.op)
        scale = percent_scale(e)
        if scale == 1.0:
            return src, nullable
        if not nullable:
            return f"({src} * {scale!r})", False
        t = self._tmp()
        return f"(None if ({t} := {src}) is None else {t} * {scale!r})", True

    def _Neg(self, e: M.Neg):
        src, nullable = self.emit(e.operand)
        if not nullable:
            return f"(-{src})", False
        t = self._tmp()
        return f"(None if ({t} := {src}) is None else -{t})", True

    def _Not(self, e: M.Not):
        src, nullable = self.emit(e.operand)
        if src in ("True", "False"):
            return ("False" if src == "True" else "True"), False
        if not nullable:
            return f"(not {src})", False
        t = self._tmp()
        return f"(None if ({t} := {src}) is None else not {t})", True

    def _Logic(self, e: M.Logic):
        parts = [self.emit(i) for i in e.items]
        absorb, neutral = ("False", "True") if e.op == "and" else ("True", "False")
        if any(s == absorb for s, _ in parts):
            return absorb, False
        parts = [(s, n) for s, n in parts if s != neutral] or [(neutral, False)]
        if len(parts) == 1:
            return parts[0]
        if not any(n for _, n in parts):
            return "(" + f" {e.op} ".join(s for s, _ in parts) + ")", False
        stop, go = absorb, neutral
        temps = [(self._tmp(), s, nullable) for s, nullable in parts]
        unknowns = " or ".join(f"{t} is None" for t, _, n in temps if n)
        tail = f"(None if {unknowns} else {go})"
        for t, s, _ in reversed(temps):
            tail = f"({stop} if ({t} := {s}) is {stop} else {tail})"
        return tail, True

    def _Func(self, e: M.Func):
        name = e.name
        if name == "change":
            return f"x.change({e.args[0]!r}, {float(e.args[1].value)!r})", True
        if name == "drift":
            return f"x.drift({e.args[0]!r})", True
        if name in ("failures", "filled") and e.args[0] in self.absent:
            return "None", True
        if name == "failures":
            return f"x.failures({self._ch(e.args[0])}, {float(e.args[1].value)!r})", False
        if name == "filled":
            states = tuple(e.args[2]) if len(e.args) > 2 and e.args[2] else ()
            return f"x.filled({self._ch(e.args[0])}, {float(e.args[1].value)!r}, {states!r})", True
        if name == "abs":
            src, nullable = self.emit(e.args[0])
            if not nullable:
                return f"abs({src})", False
            t = self._tmp()
            return f"(None if ({t} := {src}) is None else abs({t}))", True
        srcs = [self.emit(a) for a in e.args]
        checks, vals = [], []
        for s, nullable in srcs:
            if nullable:
                t = self._tmp()
                checks.append(f"({t} := {s}) is None")
                vals.append(t)
            else:
                vals.append(s)
        body = f"{name}({', '.join(vals)})"
        if not checks:
            return body, False
        return f"(None if {' or '.join(checks)} else {body})", True
