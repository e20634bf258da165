"""Engine and digital twin together in accelerated time: what a rule set would do.

Each tick the twin's nodes publish readings and answer commands, the engine
evaluates the zone exactly as the site daemon would, and its commands go back
to the twin's nodes. The run also plays the service's timeout sweep
(`sim.timeouts`): a command left without a terminal answer reaches the engine
as a TIMEOUT response. Everything that happened is kept as a timeline and
summed up per zone.

Fine stepping: while a pump or valve on an NO relay is powered in the twin, or
the engine believes one on, the zone is evaluated every `fine_tick` seconds
(5 s by default) between ticks, as a site's sample-driven safety path would
react: a drain stops within seconds of the level reaching empty, not a tick
later. The ticks themselves stay on their grid.
"""

from __future__ import annotations

import time
import zlib
from collections import Counter
from dataclasses import dataclass, field

from ..engine.api import compiled
from ..engine.state import DUTY
from ..lang import model as M
from ..messages import FAILED, TERMINAL, CommandResponse, WireCommand
from ..twin import DEFAULT_FIRMWARE, FIRMWARES, FaultError, TwinConfig, ZoneTwin, parse_fault
from ..twin.config import PUMP_FLOWS
from ..twin.faults import applies_to
from .timeouts import TimeoutSweep
from .times import DEFAULT_START, iso, local_iso, parse_time, timezone_name


def recirculated(rs: M.RuleSet, zone: M.Zone) -> str | None:
    """The zone's channel under recirculation duty (the target of a `recirculate` action), if any."""
    return next((ch for ch in compiled(rs).recirculated if ch in zone.channels), None)


def no_loads(rs: M.RuleSet, zone: M.Zone) -> frozenset[str]:
    """The zone's pumps and valves on NO relays: they stop only when told to, so fine stepping watches them."""
    return frozenset(
        name
        for name in zone.channels
        if (ch := rs.channels.get(name)) is not None and ch.kind in ("pump", "valve") and ch.fail_safe == "NO"
    )


def needs_fine(twin: ZoneTwin, st, watched: frozenset[str], prog=None, pumps: frozenset[str] = frozenset()) -> bool:
    """Is one of `watched` powered in the twin, or believed on by the engine (zone state `st`)? Or did
    one of `pumps` start less than FINE_AFTER_START_S ago while a reading the zone program uses is
    not trusted (stale, frozen, implausible), so that its dry-run protection rests on its flow,
    which a site samples within seconds?"""
    if twin.any_running(watched):
        return True
    channels = st.channels
    for name in watched:
        c = channels.get(name)
        if c is not None and c.is_on:
            return True
    if prog is not None and pumps and any(s != "ok" for s in prog.mstat.values()):
        now = twin.now
        for name in pumps:
            c = channels.get(name)
            if c is not None and c.is_on and now - c.since < FINE_AFTER_START_S:
                return True
    return False


#: how long after a pump start fine stepping goes on while readings are not trusted
FINE_AFTER_START_S = 30.0
#: how a dry run advances time: to the next instant where something can happen, or tick by tick
STEPS = ("event", "fixed")
#: at most this many ticks are evaluated before a horizon is asked again after horizons that skipped nothing
PATIENCE_MAX = 31


@dataclass
class Entry:
    """One line of the timeline."""

    at: float
    kind: str  # transition | command | alert | resolved | event | refused | held | response
    text: str
    routine: bool = False  # duty cycling: summed up, not listed, in the brief timeline


@dataclass
class ZoneRun:
    zone: M.Zone
    timeline: list[Entry] = field(default_factory=list)
    commands: list[dict] = field(default_factory=list)
    alerts: list[dict] = field(default_factory=list)
    transitions: list[dict] = field(default_factory=list)
    events: list[dict] = field(default_factory=list)
    outcomes: dict = field(default_factory=dict)  # cmd_id -> final status
    recirc_off_max_s: float = 0.0  # longest OFF stretch under duty control
    recirc_off_any_s: float = 0.0  # longest OFF stretch of any cause
    final_states: dict = field(default_factory=dict)
    drained_l: float = 0.0
    filled_l: float = 0.0
    engine_s: float = 0.0
    twin_s: float = 0.0
    ticks: int = 0
    fine_steps: int = 0  # evaluations between ticks (fine stepping)
    evaluations: int = 0  # instants the engine evaluated (event-driven time skips those where nothing can happen)
    state: object = None  # the engine's ZoneState at the end
    snapshot: dict = field(default_factory=dict)  # the engine's telemetry: (node, metric) -> (value, ts), latest
    program: object = None
    twin: object = None

    def summary(self) -> dict:
        kinds = Counter(e["type"] for e in self.events)
        by_code = Counter(a["code"] for a in self.alerts)
        by_channel: dict = {}
        for c in self.commands:
            outcome = self.outcomes.get(c["cmd_id"], "no response")
            by_channel.setdefault(c["channel"], Counter())[outcome] += 1
        return {
            "water_changes_started": kinds["WATER_CHANGE_STARTED"],
            "water_changes_completed": kinds["WATER_CHANGE_COMPLETED"],
            "water_changes_failed": kinds["WATER_CHANGE_FAILED"],
            "drained_l": round(self.drained_l, 1),
            "filled_l": round(self.filled_l, 1),
            "max_recirc_off_minutes": round(self.recirc_off_max_s / 60.0, 1),
            "max_recirc_off_any_cause_minutes": round(self.recirc_off_any_s / 60.0, 1),
            "alerts_by_code": dict(sorted(by_code.items())),
            "commands_by_channel": {ch: dict(sorted(c.items())) for ch, c in sorted(by_channel.items())},
            "final_state": dict(self.final_states),
        }


@dataclass
class DryRun:
    ruleset_version: str
    start: float
    end: float
    tick_s: float
    seed: int
    faults: list[str]
    zones: list[ZoneRun]
    wall_s: float = 0.0
    firmware: str = DEFAULT_FIRMWARE
    fine_tick_s: float | None = None  # None: no fine stepping
    pump_flow: str = "rate"  # what the twin's pump nodes report of their flow: rate or flag
    timezone: str = "UTC"  # the site's (`site.timezone`): times are shown in it

    def to_json(self) -> dict:
        return {
            "ruleset_version": self.ruleset_version,
            "start": iso(self.start),
            "end": iso(self.end),
            "timezone": self.timezone,
            "start_local": local_iso(self.start, self.timezone),
            "end_local": local_iso(self.end, self.timezone),
            "tick_seconds": self.tick_s,
            "fine_tick_seconds": self.fine_tick_s,
            "firmware": self.firmware,
            "pump_flow": self.pump_flow,
            "seed": self.seed,
            "faults": self.faults,
            "zones": [
                {
                    "zone": z.zone.uid,
                    "summary": z.summary(),
                    "alerts": z.alerts,
                    "transitions": z.transitions,
                    "events": z.events,
                    "commands": z.commands,
                }
                for z in self.zones
            ],
        }


def zone_seed(seed: int, zone_uid: str) -> int:
    return (seed * 1_000_003 + zlib.crc32(zone_uid.encode())) & 0x7FFFFFFF


def run(
    ruleset: M.RuleSet,
    zone_uids: list[str] | None = None,
    *,
    days: float,
    tick_s: float = 60.0,
    seed: int = 0,
    start: str | float | None = None,
    faults: list[str] = (),
    progress=None,
    stop_at: float | None = None,
    before_tick=None,
    resets: list[tuple[float, str]] = (),
    firmware: str = DEFAULT_FIRMWARE,
    fine_tick: float | None = 5.0,
    pump_flow: str = "rate",
    step: str = "event",
) -> DryRun:
    """Run the zones for `days`. `faults` are `KIND@OFFSET[:ARGS]` texts (FaultError when malformed).

    `progress(done_ticks, total_ticks)` is called now and then; `stop_at` ends the run early
    (explain uses it to stop at the moment it explains); `before_tick(zone_run, now)` is called
    at every evaluation (each tick and each fine step) after the telemetry and responses are in
    and before the engine evaluates. `resets` are operator safety resets: (offset from the start
    in seconds, reason), applied at the first evaluation at or after their time.
    `firmware` is the twin's node firmware ("hydro2" or "bounded-off"); `fine_tick` the step
    between ticks while an NO pump or valve runs (None, or not shorter than `tick_s`: never);
    `pump_flow` what the twin's pump nodes report of their flow ("rate", or "flag": the 0/1
    flow_flag metric of pumps that declare one, as hydro 2.0 pump nodes do).
    `step` "event" (default) evaluates only the instants of that grid where a decision could differ:
    the engine's horizon, the twin's next change, a response waiting, a timeout, a reset, the end (see
    `_run_zone_event`); "fixed" evaluates every instant of the grid, the reference. A `before_tick` hook is
    called at every instant evaluated; one that needs every instant of the grid (it integrates what the
    twin does between them) gets them unless it has an attribute `skips_ok` set true.
    ValueError for an unknown firmware, pump_flow or step, or a fine_tick that is not positive.
    """
    if step not in STEPS:
        raise ValueError(f"step {step!r}: one of {', '.join(STEPS)}")
    if firmware not in FIRMWARES:
        raise ValueError(f"firmware {firmware!r}: the twin models {', '.join(FIRMWARES)}")
    if pump_flow not in PUMP_FLOWS:
        raise ValueError(f"pump_flow {pump_flow!r}: pump nodes report {' or '.join(PUMP_FLOWS)}")
    if fine_tick is not None and not fine_tick > 0:
        raise ValueError(f"fine_tick {fine_tick!r}: it must be a positive number of seconds, or None")
    fine = fine_tick if fine_tick is not None and fine_tick < tick_s else None
    t0 = (
        parse_time(start)
        if isinstance(start, str)
        else float(start if start is not None else parse_time(DEFAULT_START))
    )
    parsed = [parse_fault(f) for f in faults]
    c = compiled(ruleset)
    zones = [ruleset.zone(u) for u in zone_uids] if zone_uids else list(ruleset.zones)
    for text, fault in zip(faults, parsed):
        if not any(applies_to(fault, z) for z in zones):
            raise FaultError(f"fault {text}: no zone of this run has {fault.node or fault.target!r}")
    n_ticks = int(round(days * 86400.0 / tick_s))
    end = t0 + n_ticks * tick_s if stop_at is None else min(stop_at, t0 + n_ticks * tick_s)
    result = DryRun(
        ruleset.ruleset_version,
        t0,
        end,
        tick_s,
        seed,
        list(faults),
        [],
        firmware=firmware,
        fine_tick_s=fine,
        pump_flow=pump_flow,
        timezone=timezone_name(zones[0].timezone if zones else None),
    )
    wall = time.perf_counter()
    total = n_ticks * len(zones)
    run_zone = _run_zone_event if step == "event" else _run_zone
    for i, zone in enumerate(zones):
        zr = run_zone(
            c,
            zone,
            t0,
            end,
            tick_s,
            zone_seed(seed, zone.uid),
            [f for f in parsed if applies_to(f, zone)],  # a fault naming a node belongs to that node's zone
            progress,
            i * n_ticks,
            total,
            before_tick,
            sorted(resets),
            firmware,
            fine,
            pump_flow,
        )
        result.zones.append(zr)
    result.wall_s = time.perf_counter() - wall
    return result


def _run_zone(
    c,
    zone: M.Zone,
    t0: float,
    end: float,
    tick_s: float,
    seed: int,
    faults,
    progress,
    done,
    total,
    before_tick=None,
    resets=(),
    firmware: str = DEFAULT_FIRMWARE,
    fine: float | None = None,
    pump_flow: str = "rate",
):
    prog = c.program(zone.uid)
    config = TwinConfig(firmware=firmware, pump_flow=pump_flow)
    twin = ZoneTwin(zone, c.ruleset, seed=seed, start=t0, faults=faults, config=config)
    st = prog.new_state(t0)
    snap: dict = {}
    zr = ZoneRun(zone, state=st, snapshot=snap, program=prog, twin=twin)
    open_alerts: dict = {}
    sent: dict = {}
    sweep = TimeoutSweep(prog.S["commands.response_timeout"])  # the service's part: it times commands out
    recirc = recirculated(c.ruleset, zone)
    watched = no_loads(c.ruleset, zone) if fine is not None else frozenset()
    pumps = frozenset(n for n in zone.channels if (ch := c.ruleset.channels.get(n)) is not None and ch.kind == "pump")
    off_any, off_duty = _Longest(), _Longest()  # the recirculation pump stands: of any cause, by duty control
    perf = time.perf_counter
    engine_s = twin_s = 0.0
    now = tick_at = t0  # the instant evaluated, and the tick it follows
    k = j = fine_steps = 0  # ticks done, fine steps since the tick, fine steps in all
    last = t0
    while now <= end + 1e-9:
        a = perf()
        responses = twin_step(twin, snap, now)
        sweep.heard(responses, now)
        responses += sweep.due(now)
        b = perf()
        for resp in responses:
            d = prog.apply_response(st, resp, now)
            if zr.outcomes.get(resp.cmd_id) not in TERMINAL:  # a command ends once: later answers are late
                zr.outcomes[resp.cmd_id] = resp.status
            if resp.status in FAILED:
                cmd = sent.get(resp.cmd_id)
                zr.timeline.append(Entry(now, "response", response_words(cmd.channel if cmd else None, resp)))
            _record(zr, d, open_alerts, sent)
        while resets and t0 + resets[0][0] <= now + 1e-9:
            _record(zr, prog.reset(st, "operator", resets[0][1], now), open_alerts, sent)
            zr.timeline.append(Entry(now, "event", reset_words(resets[0][1])))
            resets = resets[1:]
        if before_tick is not None:
            before_tick(zr, now)
        d = prog.evaluate(st, snap, now)
        engine_s += perf() - b
        to_twin(twin, d.commands)
        sweep.sent(d.commands)
        _record(zr, d, open_alerts, sent)
        twin_s += b - a
        if recirc is not None:
            rc = st.channels[recirc]
            stopped = not twin.running(recirc)
            off_any.see(stopped, now)
            off_duty.see(stopped and rc.desired == DUTY and rc.denied_by is None, now)  # not held off by a guard
        last = now
        if watched and needs_fine(twin, st, watched, prog, pumps):
            j += 1
            nxt = tick_at + j * fine
            if nxt < tick_at + tick_s - 1e-9 and nxt <= end + 1e-9:
                now = nxt
                fine_steps += 1
                continue
        k += 1
        if progress is not None and k % 5000 == 0:
            progress(done + k, total)
        now = tick_at = t0 + k * tick_s
        j = 0
    off_any.see(False, last)
    off_duty.see(False, last)
    zr.recirc_off_any_s, zr.recirc_off_max_s = off_any.longest, off_duty.longest
    zr.final_states = dict(st.machines)
    zr.drained_l, zr.filled_l = twin.drained_l, twin.filled_l
    zr.engine_s, zr.twin_s, zr.ticks, zr.fine_steps = engine_s, twin_s, k, fine_steps
    zr.evaluations = k + fine_steps
    return zr


def _run_zone_event(
    c,
    zone: M.Zone,
    t0: float,
    end: float,
    tick_s: float,
    seed: int,
    faults,
    progress,
    done,
    total,
    before_tick=None,
    resets=(),
    firmware: str = DEFAULT_FIRMWARE,
    fine: float | None = None,
    pump_flow: str = "rate",
):
    """`_run_zone` in event-driven time: the same grid (ticks, and fine steps while `needs_fine`), but a
    tick is evaluated only when something may happen at it. After an evaluation outside fine stepping
    the run jumps to the first tick at or after the earliest of: the engine's horizon
    (`ZoneProgram.horizon` under the twin's `bounds()`), the twin's `next_change()`, the next timeout
    of the service's sweep, the next reset and the end; it takes the next tick when the twin has
    output waiting, had an event at this instant (a sensor that froze then shows it at the next
    reading), or cannot bound its readings (a twin without `bounds`). The ticks skipped are those where
    the fixed run decides nothing, so both runs make the same decisions at the same instants."""
    prog = c.program(zone.uid)
    prog.hz_tick = tick_s
    config = TwinConfig(firmware=firmware, pump_flow=pump_flow)
    twin = ZoneTwin(zone, c.ruleset, seed=seed, start=t0, faults=faults, config=config)
    st = prog.new_state(t0)
    snap: dict = {}
    zr = ZoneRun(zone, state=st, snapshot=snap, program=prog, twin=twin)
    open_alerts: dict = {}
    sent: dict = {}
    sweep = TimeoutSweep(prog.S["commands.response_timeout"])
    recirc = recirculated(c.ruleset, zone)
    watched = no_loads(c.ruleset, zone) if fine is not None else frozenset()
    pumps = frozenset(n for n in zone.channels if (ch := c.ruleset.channels.get(n)) is not None and ch.kind == "pump")
    off_any, off_duty = _Longest(), _Longest()
    bounds = getattr(twin, "bounds", None)
    next_change = getattr(twin, "next_change", None)
    has_output = getattr(twin, "has_output", None)
    skips = (
        bounds is not None
        and next_change is not None
        and has_output is not None
        and (before_tick is None or getattr(before_tick, "skips_ok", False))
    )
    last_tick = int((end - t0) / tick_s + 1e-9)  # the fixed run's last tick
    # change(METRIC, W) compares with the sample kept at or before W ago: before the twin changes (a fault,
    # a level crossing), every tick of the longest such window is evaluated, so that the samples a change()
    # reads after it are those of the fixed run
    dense = max(c.history_metrics.values(), default=0.0) + 2.0 * tick_s if c.history_metrics else 0.0
    inf = float("inf")
    perf = time.perf_counter
    engine_s = twin_s = 0.0
    now = tick_at = t0
    k = j = fine_steps = evaluations = 0
    last = t0
    jumped = False
    twin_event = inf  # when the twin said its next change would come
    carried: list = []  # responses the twin gave at the tick before its next change, evaluated there
    wait = patience = 0  # ticks to evaluate before asking for a horizon again (it costs more than a tick)
    fwait = fpatience = 0  # the same for fine steps
    prev = t0  # the instant the fixed run evaluates before the one the loop jumps to
    # fine steps are skipped only in whole ticks, on a grid where a tick is a whole number of fine steps (so
    # the history change() keeps is sampled at the instants of the fixed run)
    fine_skips = skips and fine is not None and abs(tick_s / fine - round(tick_s / fine)) < 1e-9
    while now <= end + 1e-9:
        a = perf()
        responses = carried + twin_step(twin, snap, now)
        carried = []
        sweep.heard(responses, now)
        responses += sweep.due(now)
        b = perf()
        for resp in responses:
            d = prog.apply_response(st, resp, now)
            if zr.outcomes.get(resp.cmd_id) not in TERMINAL:
                zr.outcomes[resp.cmd_id] = resp.status
            if resp.status in FAILED:
                cmd = sent.get(resp.cmd_id)
                zr.timeline.append(Entry(now, "response", response_words(cmd.channel if cmd else None, resp)))
            _record(zr, d, open_alerts, sent)
        while resets and t0 + resets[0][0] <= now + 1e-9:
            _record(zr, prog.reset(st, "operator", resets[0][1], now), open_alerts, sent)
            zr.timeline.append(Entry(now, "event", reset_words(resets[0][1])))
            resets = resets[1:]
        if before_tick is not None:
            before_tick(zr, now)
        if jumped:
            prog._last_now = prev  # the instant the fixed run evaluated before this one
        d = prog.evaluate(st, snap, now)
        evaluations += 1
        engine_s += perf() - b
        to_twin(twin, d.commands)
        sweep.sent(d.commands)
        _record(zr, d, open_alerts, sent)
        twin_s += b - a
        if recirc is not None:
            rc = st.channels[recirc]
            stopped = not twin.running(recirc)
            off_any.see(stopped, now)
            off_duty.see(stopped and rc.desired == DUTY and rc.denied_by is None, now)
        last = now
        jumped = False
        fine_now = bool(watched) and needs_fine(twin, st, watched, prog, pumps)
        if fine_now:
            if fpatience:
                fpatience -= 1
            elif fine_skips and k + 2 < last_tick and not has_output() and _fine_for_sure(twin, st, watched):
                c0 = perf()
                kt = _fine_skip(prog, st, twin, sweep, bounds(), next_change(), now, t0, tick_s, fine, dense, resets)
                engine_s += perf() - c0
                if kt > k + 1:
                    k = min(kt, last_tick)
                    now = tick_at = t0 + k * tick_s
                    prev = (t0 + (k - 1) * tick_s) + (round(tick_s / fine) - 1) * fine  # its last fine step
                    j = 0
                    jumped = True
                    fwait = 0
                    continue
                fwait = min(2 * fwait + 1, PATIENCE_MAX)
                fpatience = fwait
            j += 1
            nxt = tick_at + j * fine
            if nxt < tick_at + tick_s - 1e-9 and nxt <= end + 1e-9:
                now = nxt
                fine_steps += 1
                continue
        k0 = k
        k += 1
        if patience:  # the last horizons fell on the next tick: try again a few ticks later
            patience -= 1
        elif skips and not fine_now and k < last_tick and not has_output():  # fine steps: skipped above, or not
            changed, twin_event = twin_event <= now + 1e-9, next_change()
            if not changed and twin_event > now:
                c0 = perf()
                target = min(prog.horizon(st, now, bounds()), twin_event, sweep.next_due)
                engine_s += perf() - c0
                if resets:
                    target = min(target, t0 + resets[0][0])
                if dense:  # change() reads the sample kept a window ago: keep them all before the twin changes
                    target = min(target, twin_event - dense)
                if target == inf:
                    k = last_tick
                else:
                    k = min(max(k, int(-(-(target - t0 - 1e-6) // tick_s))), last_tick)
                before = int(-(-(twin_event - t0 - 1e-6) // tick_s)) - 1  # the tick before the twin's change
                if k0 < before < k:
                    # what the twin's nodes last published before it (a sensor that dies then) is what the
                    # fixed run reads: advance the twin there; nothing else happens at that tick
                    carried = twin_step(twin, snap, t0 + before * tick_s)
                    if carried:
                        k = before
                jumped = k > k0 + 1
                if jumped:
                    prev = t0 + k * tick_s - tick_s
                    wait = 0
                else:
                    wait = min(2 * wait + 1, PATIENCE_MAX)
                    patience = wait
        if progress is not None and k // 5000 != k0 // 5000:
            progress(done + k, total)
        now = tick_at = t0 + k * tick_s
        j = 0
    off_any.see(False, last)
    off_duty.see(False, last)
    zr.recirc_off_any_s, zr.recirc_off_max_s = off_any.longest, off_duty.longest
    zr.final_states = dict(st.machines)
    zr.drained_l, zr.filled_l = twin.drained_l, twin.filled_l
    zr.engine_s, zr.twin_s, zr.ticks, zr.fine_steps = engine_s, twin_s, k, fine_steps
    zr.evaluations = evaluations
    return zr


def _fine_for_sure(twin: ZoneTwin, st, watched: frozenset[str]) -> bool:
    """Does `needs_fine` hold for a reason only a twin event or a decision ends (a watched load powered, or
    believed on), not a pump's start a moment ago?"""
    if twin.any_running(watched):
        return True
    return any((c := st.channels.get(name)) is not None and c.is_on for name in watched)


def _fine_skip(
    prog,
    st,
    twin,
    sweep,
    bounds: dict,
    twin_event: float,
    now: float,
    t0: float,
    tick_s: float,
    fine: float,
    dense: float,
    resets,
) -> int:
    """While fine stepping for a reason that lasts (`_fine_for_sure`): the tick to go on from, skipping the
    fine steps before it, or -1. It is the last tick at or before the engine's horizon, the twin's next change,
    the sweep's next timeout and the next reset, but no later than the last tick before the twin's next change
    (every fine step from there is evaluated) and only while the history change() reads was last sampled at a
    tick (so the samples fall on the fixed run's instants)."""
    if twin_event <= now:
        return -1
    for metric in prog.compiled.history_metrics:
        h = st.history.get(metric)
        if not h:
            return -1
        r = (h[-1][0] - t0) / tick_s
        if abs(r - round(r)) > 1e-9:
            return -1
    hz = prog.hz_tick
    prog.hz_tick = fine  # the fixed run evaluates every fine step here
    try:
        target = min(prog.horizon(st, now, bounds), twin_event, sweep.next_due)
    finally:
        prog.hz_tick = hz
    if resets:
        target = min(target, t0 + resets[0][0])
    if dense:
        target = min(target, twin_event - dense)
    if target <= now:
        return -1
    last = _LAST if twin_event == INF else int(-(-(twin_event - t0 - 1e-6) // tick_s)) - 1  # the tick before it
    # the tick at or before the target: the fixed run evaluates the fine steps between it and the target
    return last if target == INF else min(int((target - t0 + 1e-6) // tick_s), last)


INF = float("inf")
_LAST = 1 << 62  # a tick past any run's end (the caller caps it at its last tick)


class _Longest:
    """The longest stretch of evaluations (ticks and fine steps) during which something held."""

    __slots__ = ("since", "longest")

    def __init__(self) -> None:
        self.since: float | None = None
        self.longest = 0.0

    def see(self, holds: bool, now: float) -> None:
        if holds:
            if self.since is None:
                self.since = now
        elif self.since is not None:
            self.longest = max(self.longest, now - self.since)
            self.since = None


def twin_step(twin: ZoneTwin, snap: dict, now: float) -> list[CommandResponse]:
    """Advance the twin to `now`; what its nodes published goes into the engine's telemetry `snap`
    ((node, metric) -> (value, ts)); returns what they answered to commands."""
    twin.advance(now, snap)  # published straight into snap: no Reading objects
    return twin.drain_responses()


def to_twin(twin: ZoneTwin, commands) -> None:
    """The engine's commands, sent to the twin's nodes as they receive them."""
    for cmd in commands:
        twin.send(WireCommand(cmd.cmd_id, cmd.node_uid, cmd.channel_key, cmd.cmd, cmd.params, cmd.at))


def _record(zr: ZoneRun, d, open_alerts: dict, sent: dict) -> None:
    if not d:
        return
    tz = zr.zone.timezone
    for kind, item, text, routine in words(d):
        if kind == "alert":
            rec = {
                "code": item.code,
                "channel": item.channel,
                "severity": item.severity,
                "raised_at": iso(item.at),
                "resolved_at": None,
                "raised_at_local": local_iso(item.at, tz),
                "resolved_at_local": None,
                "details": item.details,
            }
            open_alerts[(item.code, item.channel)] = rec
            zr.alerts.append(rec)
        elif kind == "resolved":
            rec = open_alerts.pop((item.code, item.channel), None)
            if rec is not None:
                rec["resolved_at"] = iso(item.at)
                rec["resolved_at_local"] = local_iso(item.at, tz)
        elif kind == "transition":
            zr.transitions.append(
                {"at": iso(item.at), "at_local": local_iso(item.at, tz), "machine": item.machine,
                 "from": item.source, "to": item.target, "reason": item.reason}
            )  # fmt: skip
        elif kind == "event":
            zr.events.append(
                {
                    "at": iso(item.at),
                    "at_local": local_iso(item.at, tz),
                    "type": item.type,
                    "details": _jsonable(item.details),
                }
            )
        elif kind == "command":
            sent[item.cmd_id] = item
            zr.commands.append(
                {
                    "at": iso(item.at),
                    "at_local": local_iso(item.at, tz),
                    "cmd_id": item.cmd_id,
                    "channel": item.channel,
                    "node": item.node_uid,
                    "cmd": item.cmd,
                    "params": item.params,
                    "rule": item.rule,
                }
            )
        zr.timeline.append(Entry(item.at, kind, text, routine))


# ---- the wording of decisions: the dry-run timeline and the site daemon's decision log ----------------
def words(d):
    """Each decision of `d` (engine Decisions) as (kind, the decision, one line of text, routine?), in the
    timeline's order. kind: alert | resolved | transition | event | refused | held | command; routine:
    duty cycling and renewals of an OFF a guard holds (summed up, not listed, in a brief timeline)."""
    for a in d.alerts:
        yield ("alert" if a.change == "raised" else "resolved"), a, alert_words(a), False
    for t in d.transitions:
        yield "transition", t, transition_words(t), False
    for e in d.events:
        yield "event", e, event_words(e), False
    for r in d.refusals:
        yield "refused", r, refusal_words(r), False
    for h in d.held:
        yield "held", h, held_words(h), False
    for cmd in d.commands:
        yield "command", cmd, command_words(cmd), routine_command(cmd)


def alert_words(a) -> str:
    where = f" on {a.channel}" if a.channel else ""
    if a.change == "raised":
        return f"{a.code}{where} raised ({a.severity}): {a.text}"
    by = f" by {a.by}" if a.by else ""
    return f"{a.code}{where} resolved{by}: {a.why}"


def transition_words(t) -> str:
    return f"{t.source} → {t.target}: {t.reason}"


def event_words(e) -> str:
    return e.type + _event_details(e.details)


def refusal_words(r) -> str:
    return f"{r.channel} kept off by {r.guard}: {r.reason}"


def held_words(h) -> str:
    return f"{h.source} → {h.target} waits: {h.reason}"


def command_words(cmd) -> str:
    return f"{cmd.channel} {cmd.cmd} {_params(cmd.params)}  ← {cmd.rule}"


def routine_command(cmd) -> bool:
    """Duty cycling, renewals of an OFF a guard holds, and renewals of a run (commands.run_chunk)."""
    return (
        cmd.rule.startswith("recirculation duty")
        or (cmd.rule.startswith(("guard ", "locked")) and cmd.params.get("state") is False)
        or getattr(cmd, "renewal", False)
    )


def reset_words(why: str, by: str | None = None) -> str:
    return f"operator safety reset{f' by {by}' if by else ''}: {why}"


def response_words(channel: str | None, resp) -> str:
    """A failed answer to a command (or the sweep's TIMEOUT)."""
    return f"{channel or '?'}: {resp.status}" + (f" {resp.error_code}" if resp.error_code else "")


def _params(p: dict) -> str:
    return " ".join(f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in p.items())


def _jsonable(d: dict) -> dict:
    out = {}
    for k, v in d.items():
        out[k] = iso(v) if k.endswith("_at") and isinstance(v, float) else (round(v, 3) if isinstance(v, float) else v)
    return out


def _event_details(d: dict) -> str:
    shown = [f"{k} {v:.2f}" for k, v in d.items() if isinstance(v, float) and not k.endswith("_at")]
    return f" ({', '.join(shown)})" if shown else ""
