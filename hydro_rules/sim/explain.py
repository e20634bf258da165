"""Why a zone did what it did at one moment of a dry run, in words.

At the requested tick, right before the engine evaluates, every transition of
the current state, every alert, every rule and the guards of every channel the
rules want on are evaluated again with the interpreter, which keeps the values
each condition read.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..engine import interp
from ..engine.state import ACTIVE, DUTY, OFF, ON, PENDING
from ..lang import units as U
from .times import stamp, timezone_name


@dataclass
class Line:
    verdict: str  # holds | does not hold | unknown | info
    title: str
    detail: str = ""


@dataclass
class Section:
    title: str
    lines: list[Line] = field(default_factory=list)


@dataclass
class Explanation:
    zone: str
    at: float
    start: float
    head: list[str]
    sections: list[Section]
    timezone: str = "UTC"  # the site's: every time in the words is in it (an ISO time with its offset)

    @property
    def when(self) -> str:
        """The moment explained, in the site's time zone (`2026-01-08T10:00:00+01:00`; `...Z` in UTC)."""
        return stamp(self.at, self.timezone)


def _at(prog, t: float) -> str:
    """A time in the words of an explanation: in the zone's site time zone."""
    return stamp(t, prog.zone.timezone)


def _verdict(value) -> str:
    if value is None:
        return "unknown"
    return "holds" if value else "does not hold"


def _and(a, b):
    """`a and b` where None is unknown: no when either is no, else unknown when either is."""
    if a is False or b is False:
        return False
    return None if a is None or b is None else True


def _cond(expr, prog, ch=None) -> tuple[object, str]:
    t = interp.trace(expr, prog, ch)
    return t.value, interp.values_seen(t)


def explain_tick(zr, now: float, start: float) -> Explanation:
    """Explain the zone run `zr` at `now` (its program is prepared for that tick)."""
    prog = zr.program
    st = zr.state
    prog.prepare(st, zr.snapshot, now)
    head = []
    for mname, sname in st.machines.items():
        since = st.entered_at.get(mname)
        how_long = f" since {_at(prog, since)} ({U.format_duration(now - since)})" if since is not None else ""
        head.append(f"{mname} is in {sname}{how_long}")
    sections = [
        _readings(prog),
        _transitions(prog, st),
        _alerts(prog, st),
        _rules(prog, st),
        _guards(prog, st),
    ]
    return Explanation(
        prog.zone.uid, now, start, head, [s for s in sections if s.lines], timezone_name(prog.zone.timezone)
    )


def _readings(prog) -> Section:
    sec = Section("Readings")
    for metric in sorted(prog.metric_src):
        v = prog.mv.get(metric)
        ts = prog.mts.get(metric)
        dim = prog.rs.metrics[metric].dim
        status = prog.metric_status(metric)
        if v is None and status in ("frozen", "implausible"):
            raw = U.describe(prog.rv[metric], dim)
            why = (
                f"reads {raw}, unchanged for {U.format_duration(prog.unchanged_for(metric) or 0.0)}: frozen"
                if status == "frozen"
                else f"reads {raw}: implausible (out of range, pinned, zero or a jump), rules do not use it"
            )
            sec.lines.append(Line("unknown", metric, why))
        elif v is None:
            why = (
                "no reading yet"
                if ts is None
                else f"last reading {U.format_duration(prog.now - ts)} old, "
                f"older than its limit {U.format_duration(prog.stale[metric])}"
            )
            sec.lines.append(Line("unknown", metric, why))
        else:
            sec.lines.append(Line("info", metric, f"{U.describe(v, dim)} ({U.format_duration(prog.now - ts)} old)"))
    for name, ch in prog.channels.items():
        c = prog.st.channels.get(name)
        if c is None or ch.kind == "sensor":
            continue
        bits = [f"{'on' if c.is_on else 'off'} for {U.format_duration(prog.now - c.since)}"]
        want = {ON: "wanted on", OFF: "wanted off", DUTY: "under recirculation duty"}.get(c.desired)
        if want:
            bits.append(want + (f" ({c.cause})" if c.cause else ""))
        for attr in ("current", "flow", "flow_flag"):
            metric = getattr(ch, attr)
            if metric:
                v = getattr(prog, attr)(name)
                if v is None and attr == "flow_flag":  # most nodes report a rate: an unknown flag says nothing
                    continue
                bits.append(f"{attr} " + (U.describe(v, prog.rs.metrics[metric].dim) if v is not None else "unknown"))
        sec.lines.append(Line("info", name, ", ".join(bits)))
    return sec


def _transitions(prog, st) -> Section:
    out = Section("Transitions (the first that holds is taken)")
    rs = prog.rs
    for mname, sname in st.machines.items():
        state = rs.machines[mname].states[sname]
        for i, t in enumerate(state.transitions):
            parts, value = [], True
            if t.every is not None:
                every = interp.evaluate(t.every, prog)
                at = interp.evaluate(t.at, prog)
                due = prog.due(every, at)
                anchor = st.solution_started_at
                parts.append(
                    f"every {U.format_duration(every)} at {U.describe(at, U.TIME_OF_DAY)} counted from "
                    f"the solution started {_at(prog, anchor) if anchor else 'never'}: "
                    + ("due" if due else "not due yet")
                )
                value = _and(value, due)
            if t.cond is not None:
                v, vals = _cond(t.cond.expr, prog)
                hold = ""
                if t.cond.hold_s:
                    since = st.holds.get(f"{mname}/{sname}/{i}")
                    held = U.format_duration(prog.now - since) if since is not None else "0s"
                    hold = f"; must hold {U.format_duration(t.cond.hold_s)}, has held {held}"
                    if v and (since is None or prog.now - since < t.cond.hold_s):
                        v = False
                parts.append(f"{t.cond.text}: {_verdict(v)} ({vals}{hold})")
                value = _and(value, v)
            if t.after_s is not None:
                elapsed = prog.now - (st.entered_at.get(mname) or prog.now)
                ok = elapsed >= t.after_s
                label = "timeout" if t.is_fail else "after"
                parts.append(
                    f"{label} {U.format_duration(t.after_s)}: {U.format_duration(elapsed)} in the state so far"
                )
                value = _and(value, ok)
            w = st.waiting.get(mname)
            if w is not None and w[3] == t.target and value:
                parts.append(f"held since {_at(prog, w[0])}: {w[1]}")
                value = False
            out.lines.append(Line(_verdict(value), f"{sname} → {t.target}", "; ".join(parts)))
    return out


def _alerts(prog, st) -> Section:
    out = Section("Alerts")
    rs = prog.rs
    for a in rs.alerts.values():
        channels = [None]
        if a.scope is not None:
            channels = [c for c in prog.channels if a.scope.covers(rs.channels[c])]
        for ch in channels:
            title = a.code + (f" on {ch}" if ch else "")
            cur = st.alerts.get((a.code, ch))
            if cur is not None and cur.status == ACTIVE:
                if a.clear is not None:
                    v, vals = _cond(a.clear.expr, prog, ch)
                    out.lines.append(
                        Line(
                            "holds",
                            title,
                            f"active since {_at(prog, cur.since)}; clears when {a.clear.text}: {_verdict(v)} ({vals})",
                        )
                    )
                else:
                    out.lines.append(
                        Line(
                            "holds",
                            title,
                            f"active since {_at(prog, cur.since)}; cleared only by an operator reset",
                        )
                    )
                continue
            if not a.when:
                continue
            v, vals = _cond(a.when[0].expr, prog, ch)
            pending = ""
            if cur is not None and cur.status == PENDING:
                held, needed = U.format_duration(prog.now - cur.since), U.format_duration(a.when[0].hold_s)
                pending = f"; pending for {held} of {needed}"
            out.lines.append(
                Line(
                    _verdict(v),
                    title,
                    f"raised when {a.when[0].text}: {_verdict(v)} ({vals}){pending}",
                )
            )
    return out


def _rules(prog, st) -> Section:
    out = Section("Rules")
    for r in prog.rs.rules.values():
        if r.states and not any(st.machines.get(prog.rs.state(s).machine) == s for s in r.states):
            out.lines.append(Line("does not hold", r.name, f"only in {', '.join(r.states)}"))
            continue
        v, vals = _cond(r.cond.expr, prog)
        last = st.fired.get(r.name)
        fired = f"; last ran {_at(prog, last)}" if last is not None else ""
        out.lines.append(Line(_verdict(v), r.name, f"{r.cond.text}: {_verdict(v)} ({vals}){fired}"))
    return out


def _guards(prog, st) -> Section:
    out = Section("Guards of the channels the rules want on")
    for name, c in st.channels.items():
        if c.desired not in (ON, DUTY) or not c.guards:
            continue
        for g in c.guards:
            guard = prog.rs.guards[g]
            for d in guard.denies:
                v, vals = _cond(d.expr, prog, name)
                refuse = v is not False
                verdict = "does not hold" if not refuse else ("unknown" if v is None else "holds")
                note = " — keeps it off" if refuse else ""
                out.lines.append(
                    Line(
                        verdict,
                        f"{name}: {g}",
                        f'deny "{d.reason}" when {d.text}: {_verdict(v)} ({vals}){note}',
                    )
                )
    return out
