"""Running rule tests: scripted telemetry (or the twin) through the engine, tick by tick.

Without a twin, a reading written in the test holds (it is reported every tick)
until the test changes it, or writes `none` to silence the sensor; every command is answered DONE
unless a `respond` line says otherwise; a command left without an answer
times out after `commands.response_timeout`, as the service would time it
out (`sim.timeouts`). Expectations are checked after the tick at their time.

With a twin, its nodes run the firmware given to `run_case` (hydro2 by default) and,
as in a dry run, the engine is evaluated every `fine_tick` seconds between ticks while
an NO pump or valve runs (see `sim.dryrun`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from ..engine.api import compiled
from ..engine.state import ACTIVE, AlertState
from ..lang import model as M
from ..lang.units import format_duration
from ..messages import CommandResponse
from ..sim.dryrun import needs_fine, no_loads, to_twin, twin_step
from ..sim.timeouts import TimeoutSweep
from ..sim.times import DEFAULT_START, parse_time
from ..twin import DEFAULT_FIRMWARE, ZoneTwin, parse_fault
from .cases import Case, Expect, _show


@dataclass
class Result:
    case: Case
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0
    states: set = field(default_factory=set)  # (machine, state) visited
    transitions: set = field(default_factory=set)  # (machine, source, index) taken
    error: str | None = None

    @property
    def passed(self) -> bool:
        return not self.failures and self.error is None


@dataclass
class _Log:
    commands: list = field(default_factory=list)  # Command
    events: list = field(default_factory=list)  # ZoneEvent
    refusals: list = field(default_factory=list)  # Refusal
    resolved: set = field(default_factory=set)  # (code, channel) of every alert resolved so far


def run_case(case: Case, rs: M.RuleSet, firmware: str = DEFAULT_FIRMWARE, fine_tick: float | None = 5.0) -> Result:
    """Run one test. `firmware` and `fine_tick` matter only to tests with a twin (as in `sim.dryrun.run`)."""
    res = Result(case)
    t_wall = time.perf_counter()
    try:
        _run(case, rs, res, firmware, fine_tick)
    except Exception as e:  # a fault spec the twin refuses, or an engine bug: report, keep going
        res.error = f"{type(e).__name__}: {e}"
    res.seconds = time.perf_counter() - t_wall
    return res


def _run(case: Case, rs: M.RuleSet, res: Result, firmware: str, fine_tick: float | None) -> None:
    c = compiled(rs)
    prog = c.program(case.zone)
    zone = prog.zone
    t0 = parse_time(case.start or DEFAULT_START)
    st = prog.new_state(t0)
    if case.given_state:
        machine = rs.state(case.given_state).machine
        st.machines[machine] = case.given_state
    if case.given_solution_age is not None:
        st.solution_started_at = t0 - case.given_solution_age
    st.solution.update(case.given_solution)
    for code, ch in case.given_alerts:
        st.alerts[(code, ch)] = AlertState(code, ch, ACTIVE, t0)
    twin = None
    watched: frozenset = frozenset()
    if case.twin:
        twin = ZoneTwin(
            zone, rs, seed=case.seed, start=t0, faults=[parse_fault(f) for f in case.faults], firmware=firmware
        )
        if fine_tick is not None and 0 < fine_tick < case.tick_s:
            watched = no_loads(rs, zone)
    end = case.run_s if case.run_s is not None else max(e.at for e in case.expects)
    expects = sorted(case.expects, key=lambda e: e.at)
    resets = sorted(case.resets)
    samples = list(case.samples)
    script: dict = {}  # key -> value currently reported
    snap: dict = {}
    log = _Log()
    answers: list = []  # scripted responses to the commands of the tick before
    sweep = TimeoutSweep(prog.S["commands.response_timeout"])  # plays the service: commands time out
    k, si, ei, ri, j = 0, 0, 0, 0, 0
    offset = 0.0  # of the instant evaluated: a tick, or a fine step after the tick k
    while offset <= end + 1e-9:
        now = t0 + offset
        while si < len(samples) and samples[si].at <= offset + 1e-9:
            s = samples[si]
            script[s.key] = s.value
            si += 1
        responses = twin_step(twin, snap, now) if twin is not None else answers
        sweep.heard(responses, now)
        responses = responses + sweep.due(now)
        for key, value in script.items():
            if value is not None:  # `none`: the sensor falls silent and its last reading ages
                snap[_source(prog, key)] = (value, now)
        for r in responses:
            _log(log, prog.apply_response(st, r, now), res)
        while ri < len(resets) and resets[ri][0] <= offset + 1e-9:
            _log(log, prog.reset(st, "test", resets[ri][1], now), res)
            ri += 1
        d = prog.evaluate(st, snap, now)
        _log(log, d, res)
        for m, s in st.machines.items():
            res.states.add((m, s))
        sweep.sent(d.commands)
        if twin is not None:
            to_twin(twin, d.commands)
        else:
            answers = [r for cmd in d.commands if (r := _scripted(case, cmd, now - t0)) is not None]
        while j == 0 and ei < len(expects) and expects[ei].at <= offset + 1e-9:  # checked at ticks only
            failure = _check(expects[ei], st, log, prog, now, t0)
            if failure:
                res.failures.append(failure)
            ei += 1
        if watched and needs_fine(twin, st, watched):
            j += 1
            fine = k * case.tick_s + j * fine_tick
            if fine < (k + 1) * case.tick_s - 1e-9 and fine <= end + 1e-9:
                offset = fine
                continue
        k += 1
        j = 0
        offset = k * case.tick_s


def _source(prog, key: str) -> tuple[str, str]:
    if "." in key:
        ch, attr = key.split(".")
        return prog.bindings[ch].node_uid, getattr(prog.channels[ch], attr)
    node = prog.zone.metric_nodes.get(key)
    if node is None:
        node = prog.zone.nodes[0] if prog.zone.nodes else "test-node"
    return node, key


def _scripted(case: Case, cmd, offset: float) -> CommandResponse | None:
    """How the node answers `cmd` (at once) when no twin runs: DONE unless a `respond` line says otherwise."""
    status, code = "DONE", None
    for ch, s, c, lo, hi in case.responds:
        if ch == cmd.channel and lo <= offset < hi:
            if s is None:
                return None  # `respond ... never`
            status, code = s, c
            break
    return CommandResponse(cmd.cmd_id, status, cmd.at, code, {"channel": cmd.channel} if code else {})


def _log(log: _Log, d, res: Result) -> None:
    log.commands.extend(d.commands)
    log.events.extend(d.events)
    log.refusals.extend(d.refusals)
    log.resolved.update((a.code, a.channel) for a in d.alerts if a.change == "resolved")
    for t in d.transitions:
        res.transitions.add((t.machine, t.source, t.index))
        res.states.add((t.machine, t.target))


def _fmt_t(t: float, t0: float) -> str:
    return format_duration(t - t0) if t >= t0 else "before start"


def _check(e: Expect, st, log: _Log, prog, now: float, t0: float) -> str | None:
    at = _fmt_t(now, t0)
    if e.kind == "state":
        machine = prog.rs.state(e.name).machine
        got = st.machines[machine]
        ok = got == e.name
        if ok != e.negated:
            return None
        since = _fmt_t(st.entered_at.get(machine) or t0, t0)
        return (
            f"at {at}: expected {e.text}, got state {got} (since {since})"
            if not e.negated
            else f"at {at}: expected {e.text}, but it is in {got}"
        )
    if e.kind == "alert":
        got = _alert_status(e, st, log, prog.rs)
        matches = [g for g in got if _fields_match(e.fields, g)]
        if bool(matches) != e.negated:
            return None
        have = "; ".join(_describe_alert(g) for g in got) or "none"
        if e.negated:
            return f"at {at}: expected {e.text}, got {have}"
        return f"at {at}: expected {e.text}{'' if 'status' in e.fields else ' (active)'}, got {have}"
    if e.kind == "command":
        cmds = [c for c in log.commands if c.channel == e.name]
        if e.negated:
            if not cmds:
                return None
            last = cmds[-1]
            return f"at {at}: expected no command to {e.name}, got {len(cmds)}; last: {_describe_cmd(last, t0)}"
        if not cmds:
            return f"at {at}: expected {e.text}, got no command to {e.name}"
        last = cmds[-1]
        view = {"cmd": last.cmd, **last.params, "rule": last.rule}
        for k, want in e.fields.items():
            have = view.get(k)
            if not _equal(have, want):
                return (
                    f"at {at}: expected the last command to {e.name} to have {k} {_show(want)}; got "
                    f"{_describe_cmd(last, t0)}"
                )
        return None
    if e.kind == "running":
        c = st.channels[e.name]
        if c.is_on != e.negated:
            return None
        state = "running" if c.is_on else "off"
        return f"at {at}: expected {e.text}, but it is {state} since {_fmt_t(c.since, t0)}"
    if e.kind == "refused":
        got = [r for r in log.refusals if r.channel == e.name]
        match = [r for r in got if _fields_match(e.fields, {"guard": r.guard, "reason": r.reason})]
        if bool(match) != e.negated:
            return None
        if e.negated:
            return (
                f"at {at}: expected {e.text}, but {match[0].guard} refused it at {_fmt_t(match[0].at, t0)}: "
                f"{match[0].reason}"
            )
        have = "; ".join(f"{r.guard}: {r.reason}" for r in got) or "no refusal"
        return f"at {at}: expected {e.text}, got {have}"
    seen = [ev for ev in log.events if ev.type == e.name]
    if bool(seen) != e.negated:
        return None
    if e.negated:
        return f"at {at}: expected no event {e.name}, got it at {_fmt_t(seen[0].at, t0)}"
    kinds = ", ".join(dict.fromkeys(ev.type for ev in log.events)) or "none"
    return f"at {at}: expected event {e.name}, got events: {kinds}"


def _alert_status(e: Expect, st, log: _Log, rs: M.RuleSet) -> list[dict]:
    """The alerts of code e.name, active unless the expectation asks for a status, with every field it may name."""
    declared = rs.alerts[e.name]
    out = []
    for (code, ch), a in st.alerts.items():
        if code == e.name:
            out.append({"code": code, "channel": ch, "status": a.status})
    for code, ch in log.resolved:
        if code == e.name and (code, ch) not in st.alerts:
            out.append({"code": code, "channel": ch, "status": "resolved"})
    for g in out:
        g["severity"], g["source"] = declared.severity, declared.source
    if "status" not in e.fields:
        out = [g for g in out if g["status"] == "active"]
    return out


def _fields_match(fields: dict, got: dict) -> bool:
    return all(_equal(got.get(k), v) for k, v in fields.items())


def _equal(have, want) -> bool:
    if isinstance(want, bool) or isinstance(have, bool):
        return have is want or have == want
    if isinstance(want, float) and isinstance(have, int | float):
        return abs(have - want) < 1e-6
    return str(have) == str(want)


def _describe_alert(g: dict) -> str:
    return f"{g['code']}" + (f" on {g['channel']}" if g["channel"] else "") + f" ({g['status']}, {g['severity']})"


def _describe_cmd(c, t0: float) -> str:
    params = " ".join(f"{k} {_show(v)}" for k, v in c.params.items())
    return f"{c.cmd} {params} at {_fmt_t(c.at, t0)} ({c.rule})"
