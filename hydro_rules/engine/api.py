"""The engine as other parts of hydro-rules use it: guard checks and simulations.

Compiled rule sets are cached per rule-set version, so callers may pass the
same RuleSet over and over without compiling it again.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from .. import messages as W
from ..lang import model as M
from ..lang.settings import resolve
from .channels import refusal_reason
from .compiler import CompiledRuleSet
from .runtime import ZoneProgram
from .state import ACTIVE, AlertState, ChannelState, ZoneState

_CACHE: dict[str, CompiledRuleSet] = {}


def compiled(ruleset: M.RuleSet) -> CompiledRuleSet:
    """The compiled form of `ruleset`, compiled once per rule-set version."""
    c = _CACHE.get(ruleset.ruleset_version)
    if c is None:
        c = CompiledRuleSet(ruleset)
        if len(_CACHE) > 16:
            _CACHE.clear()
        _CACHE[ruleset.ruleset_version] = c
    return c


def telemetry_of(readings, zone: M.Zone | None = None) -> dict:
    """Readings (messages.Reading) as the engine reads them: (node, metric) -> (value, ts), newest wins.

    A metric the zone binds to one channel of its node (`water_level_switch from nd-irr-1
    channel level_solution_min`) is read only from that channel (matched case-insensitively):
    the same node's other channels that send the metric are other series.
    """
    pinned = pinned_channels(zone)
    out: dict = {}
    for r in readings:
        key = (r.node_uid, r.metric)
        want = pinned.get(key)
        if want is not None and M.fold_channel(r.channel or "") != want:
            continue
        prev = out.get(key)
        if prev is None or r.ts >= prev[1]:
            out[key] = (r.value, r.ts)
    return out


def pinned_channels(zone: M.Zone | None) -> dict:
    """(node, metric) -> the folded channel key the zone reads that metric from, for metrics bound to one."""
    if zone is None:
        return {}
    return {
        (zone.metric_nodes[m], m): M.fold_channel(ch)
        for m, ch in zone.metric_channels.items()
        if m in zone.metric_nodes
    }


def carry_state(old: dict | ZoneState, new_prog, now: float) -> ZoneState:
    """A zone's state carried over to a new rule set (hot reload), for `new_prog` (a ZoneProgram).

    What still exists is kept: machines in states that still exist (with their timers), channels
    the zone still has, alerts whose codes (and channels) still exist, holds and rule memories
    whose machine state or rule still exists, waits, the solution and its history. A machine
    whose state vanished (or a new machine) starts again at its initial state, entered at the
    next evaluation; guards that vanished are no longer asked of a channel. `old` is not changed.
    """
    st = _copy(old)
    rs = new_prog.rs
    for name in [n for n in st.machines if n not in rs.machines]:
        del st.machines[name]
        st.entered_at.pop(name, None)
        st.waiting.pop(name, None)
    act = new_prog.activity
    for name, m in rs.machines.items():
        # a state that vanished, or that the zone can no longer run (it lost a channel the state needs)
        if st.machines.get(name) not in m.states or not act.state_active(name, st.machines[name]):
            st.machines[name] = m.initial
            st.entered_at.pop(name, None)
            st.waiting.pop(name, None)
    for name, w in list(st.waiting.items()):
        if w[3] not in rs.machines[name].states:
            del st.waiting[name]
    for key, a in list(st.alerts.items()):
        if a.code not in rs.alerts or (a.channel is not None and a.channel not in new_prog.channels):
            del st.alerts[key]
    for name in [n for n in st.channels if n not in new_prog.channels]:
        del st.channels[name]
    for name, ch in new_prog.channels.items():
        c = st.channels.get(name)
        if c is None:
            st.channels[name] = ChannelState(is_on=ch.fail_safe == "NC", since=now)
        elif c.guards:
            c.guards = tuple(g for g in c.guards if g in rs.guards)
    g = st.dose_group
    if g is not None and not all(s[0] in new_prog.channels for s in g["steps"]):
        st.dose_group = None
    elif g is not None:
        g["guards"] = [n for n in g["guards"] if n in rs.guards]
        g["states"] = [n for n in g["states"] if rs.state(n) is not None]
    for key in list(st.holds):
        if not _hold_exists(rs, key, st.machines):
            del st.holds[key]
    for name in [n for n in st.fired if n not in rs.rules]:
        del st.fired[name]
    return st


def _copy(state: dict | ZoneState) -> ZoneState:
    """A ZoneState that shares nothing with `state` (to_json and from_json keep the lists and dicts)."""
    return ZoneState.from_json(copy.deepcopy(state.to_json() if isinstance(state, ZoneState) else state))


def _hold_exists(rs: M.RuleSet, key: str, machines: dict) -> bool:
    """Is the condition a hold key names still there? `rule/NAME` or `MACHINE/STATE/I`."""
    head, _, rest = key.partition("/")
    if head == "rule":
        return rest in rs.rules
    state, _, i = rest.partition("/")
    m = rs.machines.get(head)
    if m is None or machines.get(head) != state or state not in m.states:
        return False
    return i.isdigit() and int(i) < len(m.states[state].transitions)


def nc_off_deadlines(
    ruleset: M.RuleSet, zone_uid: str, engine_state: dict | ZoneState | None, now: float
) -> list[dict]:
    """For the dead-man (a process other than the daemon): each NC pump of the zone that the
    daemon's recorded state believes OFF, with when it went off and when it must run again:

    {"channel", "node_uid", "channel_key", "off_since", "deadline" (off_since + the max OFF of the zone's
    recirculation window now, or the end of the `off` window the pump is held off by: `off_deadline`),
    "locked" (a locking alert holds it off: the dead-man leaves it), "bounded_until" (the end of a
    bounded OFF its node ends by itself, else None)}. An OFF that a bounded-OFF node has already
    ended by itself (bounded_until <= now) is not listed. No state: every NC pump is believed on.
    """
    if not engine_state:
        return []
    prog = compiled(ruleset).program(zone_uid)
    st = engine_state if isinstance(engine_state, ZoneState) else ZoneState.from_json(engine_state)
    prog.now, prog.st = now, st
    prog._targets()  # the recipe phase's settings
    out = []
    for name, ch in prog.channels.items():
        c = st.channels.get(name)
        if ch.kind != "pump" or ch.fail_safe != "NC" or c is None or c.is_on:
            continue
        b = prog.bindings[name]
        bounded = c.commanded_until if b.node_uid in prog.bounded_off else None
        if bounded is not None and bounded <= now:
            continue
        out.append(
            {
                "channel": name,
                "node_uid": b.node_uid,
                "channel_key": b.channel_key,
                "off_since": c.since,
                "deadline": prog.off_deadline(name, c),
                "locked": prog.locked(name),
                "bounded_until": bounded,
            }
        )
    return out


@dataclass(frozen=True, slots=True)
class GuardVerdict:
    allowed: bool
    guard: str | None = None
    reason: str | None = None
    raises: str | None = None
    guards: tuple = ()  # every guard that protects the channel, all asked


def protecting_guards(ruleset: M.RuleSet, channel: M.Channel) -> tuple[str, ...]:
    return tuple(name for name, g in ruleset.guards.items() if g.scope.covers(channel))


def check_start(
    ruleset: M.RuleSet,
    zone_uid: str,
    channel: str,
    engine_state: dict | ZoneState | None,
    readings: list[W.Reading],
    now: float,
    *,
    active_alerts: list[tuple[str, str | None]] | None = None,
    failures: dict[str, list[float]] | None = None,
) -> GuardVerdict:
    """May `channel` of the zone be started now? Asks every guard that protects it.

    A deny that holds, or that cannot be decided because a value is unknown,
    refuses, exactly as in the engine's own starts. `active_alerts` (code, channel)
    and `failures` (channel -> times of failed or timed-out commands) are what the
    store knows beyond the engine's saved state: an alert the service raised from
    a node's answer locks the channel here too, and an alert an operator's reset
    resolved in the store no longer locks it. The state passed in is not changed.
    """
    c = compiled(ruleset)
    prog = c.program(zone_uid)
    if channel not in prog.channels:
        raise KeyError(f"zone {zone_uid} has no channel {channel!r}")
    if engine_state:
        st = _copy(engine_state)
    else:
        st = prog.new_state(now)
    if active_alerts is not None:  # the store is the record of alerts: resets happen there
        known = set(active_alerts)
        for key in [k for k, a in st.alerts.items() if a.status == ACTIVE and k not in known]:
            del st.alerts[key]
        for code, ch in known:
            a = st.alerts.get((code, ch))
            if code in ruleset.alerts and (a is None or a.status != ACTIVE):  # pending here, active there
                st.alerts[(code, ch)] = AlertState(code, ch, ACTIVE, now)
    for ch, times in (failures or {}).items():
        if ch in st.channels:
            st.channels[ch].failures = sorted(set(st.channels[ch].failures) | set(times))
    guards = protecting_guards(ruleset, prog.channels[channel])
    prog.prepare(st, telemetry_of(readings, prog.zone), now)
    verdict = prog.guard_verdict(channel, guards)
    if verdict is None:
        lock = prog.lock_of(channel)  # the engine's lock, whatever the guards say
        if lock is not None:
            return GuardVerdict(False, "lock", f"locked by {lock} until an operator reset", None, guards)
        return GuardVerdict(True, guards=guards)
    guard, deny, unknown = verdict
    return GuardVerdict(False, guard, refusal_reason(deny, unknown), None if unknown else deny.raises, guards)


def zone_now(ruleset: M.RuleSet, zone_uid: str, now: float) -> ZoneProgram:
    """A program of the zone prepared at `now` with no readings: its settings in effect then (profile,
    zone, recipe phase) and its recirculation window, for callers that need the zone's limits."""
    prog = compiled(ruleset).program(zone_uid)
    prog.prepare(prog.new_state(now), {}, now)
    return prog


def setting_now(ruleset: M.RuleSet, zone_uid: str, path: str, now: float) -> float:
    """A setting's value in the zone at `now`: its recipe phase's, else the zone's, its profile's, the default."""
    return float(zone_now(ruleset, zone_uid, now).S[resolve(path)])


def nc_run_by(ruleset: M.RuleSet, zone_uid: str, off_since: float, now: float) -> float:
    """When an NC pump of the zone that has been off since `off_since` must run again (epoch): that plus
    the window's own `max_off` or max_recirc_off; inside an `off` window, its end plus the next limit."""
    prog = zone_now(ruleset, zone_uid, now)
    end = prog.off_window_end()
    if end is None:
        return off_since + prog.max_off()
    return end + zone_now(ruleset, zone_uid, end + 1.0).max_off()


def simulate(
    ruleset: M.RuleSet,
    zone_uid: str,
    *,
    days: float,
    tick_s: float = 60.0,
    seed: int = 0,
    start: str | None = None,
    faults: list[str] = (),
    firmware: str = "hydro2",
) -> dict:
    """A dry run of one zone against the digital twin, as the JSON document `dry-run --json` prints.

    Raises KeyError for an unknown zone and twin.FaultError for a malformed fault.
    """
    from ..sim.dryrun import run  # the dry run sits on top of the engine

    if ruleset.zone(zone_uid) is None:
        raise KeyError(f"no zone {zone_uid!r}")
    return run(
        ruleset, [zone_uid], days=days, tick_s=tick_s, seed=seed, start=start, faults=list(faults), firmware=firmware
    ).to_json()
