"""The engine as other parts of hydro-rules use it: guard checks and simulations.

Compiled rule sets are cached per rule-set version, so callers may pass the
same RuleSet over and over without compiling it again.
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import messages as W
from ..lang import model as M
from .channels import refusal_reason
from .compiler import CompiledRuleSet
from .state import ACTIVE, AlertState, ZoneState

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
    if isinstance(engine_state, ZoneState):
        st = ZoneState.from_json(engine_state.to_json())
    elif engine_state:
        st = ZoneState.from_json(engine_state)
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
        return GuardVerdict(True, guards=guards)
    guard, deny, unknown = verdict
    return GuardVerdict(False, guard, refusal_reason(deny, unknown), None if unknown else deny.raises, guards)


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
