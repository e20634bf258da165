"""The safety matrix: every fault kind of the twin at several moments of the water cycle, over seeds.

For each zone and seed a fault-free baseline dry run finds the moments (`between`
changes, the middle of the first drain, fill and stabilize); then every fault of
FAULTS is injected at each moment and the run is watched, at every evaluation
instant, on the twin's truth (not on readings) for the invariants a grower
states (see INVARIANTS and docs/safety.md):

- `bands`: pH and EC stay within bands around the recipe phase's targets;
- `dry_run`: no pump runs dry for longer than DRY_ALLOWANCE_S per episode;
- `recirc_off`: the NC recirculation pump never stands longer than max_recirc_off,
  unless a locking alert covers it, a state stops it on purpose, or its node is
  unreachable;
- `fill_after_leak`: no water goes into the tank while a leak alert is active;
- `alert`: the fault raises one of its alerts within a limit of its effect showing;
- `exception`: the engine raises no exception.

Runs go to a process pool; each result depends only on its task, so a parallel
matrix gives exactly what a serial one does.
"""

from __future__ import annotations

import json
import math
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from ..lang import model as M
from ..twin import DEFAULT_FIRMWARE
from ..twin.config import TwinConfig
from . import dryrun
from .dryrun import recirculated
from .times import DEFAULT_START, iso, parse_time

# ---- the bands, allowances and limits (docs/safety.md) ----------------------------------------
PH_BELOW = 1.0  #: pH may go this far below the phase's minimum...
PH_ABOVE = 1.0  #: ...and this far above its maximum
EC_LOW_FACTOR = 0.5  #: EC may go down to this times the phase's minimum...
EC_HIGH_FACTOR = 1.5  #: ...and up to this times its maximum
NEAR_EMPTY_PCT = 5.0  #: below this level (% of the reservoir) pH and EC are not judged: there is no solution
#: fresh water arrives at the source's EC and pH (plant.source_ec): pH and EC are not judged while water comes
#: in and for this long after, the time the rules have to dose the refilled reservoir back to its targets
FILL_SETTLE_S = 2 * 3600.0
DRY_ALLOWANCE_S = 15.0  #: powered-dry seconds a pump may accumulate in one episode
RECIRC_TOLERANCE_S = 1.0  #: rounding allowance on max_recirc_off
FILL_TOLERANCE_L = 0.05  #: water that may still come in after a leak alert (rounding)

BETWEEN_AT_S = 2 * 86400.0  #: the `between` moment: this far into the run...
AWAY_FROM_CHANGE_S = 6 * 3600.0  #: ...unless a water change is this close; then mid-way between changes

MOMENTS = ("between", "mid-drain", "mid-fill", "mid-stabilize")
MOMENT_STATES = {
    "mid-drain": "WATER_CHANGE_DRAIN",
    "mid-fill": "WATER_CHANGE_FILL",
    "mid-stabilize": "WATER_CHANGE_STABILIZE",
}

INVARIANTS = {
    "bands": "pH and EC stay within bands around the recipe targets",
    "dry_run": "no pump runs dry",
    "recirc_off": "the NC recirculation pump is never off past max_recirc_off",
    "fill_after_leak": "no water goes into a tank after its leak alert",
    "alert": "the fault raises its alert",
    "exception": "no exception",
}

#: words that make an alert a leak (or burst) alert: its code or its text holds one of them
LEAK_WORDS = ("leak", "burst", "water_level_falling")


@dataclass(frozen=True)
class MatrixFault:
    """One fault of the matrix. `target` is a role ("recirc", "drain") resolved per zone, or a metric."""

    id: str
    kind: str
    target: str | None
    for_s: float | None  # None: to the end of the run
    alerts: tuple[str, ...]  # acceptable alert codes; () none required
    limit_s: float  # the alert is due this long after the fault's effect shows
    text: str


FAULTS = (
    MatrixFault(
        "node_offline", "node_offline", "recirc", 2 * 86400.0, ("infra_node_offline",), 3600.0,
        "the recirculation pump's node offline for 2 days",
    ),
    MatrixFault("controller_crash", "controller_crash", None, 1800.0, (), 0.0, "the controller down for 30 minutes"),
    MatrixFault(
        "sensor_frozen_ph", "sensor_frozen", "ph", None, ("infra_sensor_frozen", "infra_sensor_implausible"),
        3 * 3600.0, "the pH sensor frozen",
    ),
    MatrixFault(
        "sensor_frozen_ec", "sensor_frozen", "ec", None, ("infra_sensor_frozen", "infra_sensor_implausible"),
        3 * 3600.0, "the EC sensor frozen",
    ),
    MatrixFault(
        "sensor_dead_level", "sensor_dead", "water_level", None, ("infra_sensor_stale",), 1800.0,
        "the level sensor dead",
    ),
    MatrixFault(
        "leak", "leak", None, None, ("biz_water_level_falling", "biz_reservoir_burst", "biz_topup_excess"), 3 * 3600.0,
        "a leak of 12 L/h",
    ),
    MatrixFault(
        "dry_reservoir", "dry_reservoir", None, None,
        ("biz_dry_run", "biz_water_level_falling", "biz_reservoir_burst"), 3600.0,
        "a burst reservoir (600 L/h)",
    ),
    MatrixFault(
        "stuck_relay_drain", "stuck_relay", "drain", None, ("biz_pump_stuck_on",), 1800.0,
        "the drain pump's relay stuck closed",
    ),
    MatrixFault(
        "stuck_relay_recirc", "stuck_relay", "recirc", None, ("biz_pump_stuck_on",), 1800.0,
        "the recirculation pump's relay stuck closed",
    ),
    MatrixFault(
        "no_flow_recirc", "no_flow", "recirc", None, ("biz_no_flow",), 1800.0, "the recirculation line blocked"
    ),
    MatrixFault(
        "overcurrent_recirc", "overcurrent", "recirc", None, ("biz_overcurrent",), 1800.0,
        "the recirculation pump draws overcurrent",
    ),
    # heating and cooling (docs/twin.md): only in zones with the device; the standard rules have no
    # temperature alert, so none is required: the run must stay safe
    MatrixFault("heater_stuck", "heater_stuck", "heater", None, (), 0.0, "the reservoir heater stuck on"),
    MatrixFault("heater_failed", "heater_failed", "heater", None, (), 0.0, "the reservoir heater failed"),
    MatrixFault("chiller_failed", "chiller_failed", "chiller", None, (), 0.0, "the reservoir chiller failed"),
)  # fmt: skip
FAULTS_BY_ID = {f.id: f for f in FAULTS}


class SafetyError(ValueError):
    """A matrix that cannot be run as asked (unknown fault or moment): a usage error."""


class CheckerBug(RuntimeError):
    """The checker itself failed: a bug in hydro-rules, not a broken invariant."""


def select_faults(names: list[str] | None) -> list[MatrixFault]:
    """The faults named by id or by kind (a kind selects all its faults); all when None."""
    if not names:
        return list(FAULTS)
    out: list[MatrixFault] = []
    for n in names:
        hit = [f for f in FAULTS if n in (f.id, f.kind)]
        if not hit:
            known = ", ".join(f.id for f in FAULTS)
            raise SafetyError(f"unknown fault {n!r}; known: {known} (or a kind: node_offline, sensor_frozen, ...)")
        out.extend(f for f in hit if f not in out)
    return out


def select_moments(names: list[str] | None) -> list[str]:
    if not names:
        return list(MOMENTS)
    for n in names:
        if n not in MOMENTS:
            raise SafetyError(f"unknown moment {n!r}; known: {', '.join(MOMENTS)}")
    return [m for m in MOMENTS if m in names]


# ---- what the rule set says ------------------------------------------------------------------
def leak_alerts(rs: M.RuleSet) -> tuple[str, ...]:
    """Alerts that say the tank leaks or burst: their code or text holds a LEAK_WORDS word."""
    return tuple(
        sorted(
            code
            for code, a in rs.alerts.items()
            if any(w in code.lower() or w in (a.text or "").lower() for w in LEAK_WORDS)
        )
    )


def stop_states(rs: M.RuleSet, channel: str) -> frozenset[str]:
    """States that hold `channel` off on purpose: their enter actions stop it, or they leave it alone
    and can only be entered from such states (the timeouts of these states bound the stretch)."""
    verbs_off, verbs_on = {"stop", "close"}, {"start", "open", "recirculate", "release"}

    def effect(actions):
        last = None
        for a in actions:
            if a.target == channel and a.verb in verbs_off | verbs_on:
                last = a.verb in verbs_off
        return last

    stopped: set[str] = set()
    for m in rs.machines.values():
        for s in m.states.values():
            if effect(s.enter) is True:
                stopped.add(s.name)
    changed = True
    while changed:  # states that inherit the OFF of every way in
        changed = False
        for m in rs.machines.values():
            incoming: dict[str, list] = {}
            for s in m.states.values():
                for tr in s.transitions:
                    incoming.setdefault(tr.target, []).append((s, tr))
            for s in m.states.values():
                if s.name in stopped or s.name == m.initial or effect(s.enter) is not None:
                    continue
                ways = incoming.get(s.name, [])
                if ways and all(
                    effect(tr.actions) is True or (effect(tr.actions) is None and src.name in stopped)
                    for src, tr in ways
                ):
                    stopped.add(s.name)
                    changed = True
    return frozenset(stopped)


def _role(channel: str) -> str:
    return TwinConfig().role(channel)


def resolve_target(fault: MatrixFault, rs: M.RuleSet, zone: M.Zone) -> str | None:
    """The zone's channel or metric the fault hits; None when the zone has none (the fault is skipped)."""
    if fault.target == "recirc":
        return recirculated(rs, zone)
    if fault.target == "drain":
        return next((n for n in zone.channels if _role(n) == "drain"), None)
    if fault.target is None:
        return ""
    if fault.target in ("heater", "chiller"):
        from ..twin.faults import has_device

        return "" if has_device(zone, rs, fault.target) else None
    return fault.target if fault.target in zone.metric_nodes or fault.target in _reported(rs, zone) else None


def _reported(rs: M.RuleSet, zone: M.Zone) -> set[str]:
    from ..twin.sensors import reporters

    return set(reporters(zone, rs, TwinConfig()))


def fault_spec(fault: MatrixFault, target: str, offset_s: float) -> str:
    """The dry run's `KIND@OFFSET[:ARGS]` text."""
    args = [target] if target else []
    if fault.for_s is not None:
        args.append(f"for={fault.for_s:g}s")
    return f"{fault.kind}@{offset_s:g}s" + (":" + ",".join(args) if args else "")


# ---- moments ------------------------------------------------------------------------------------
def find_moments(transitions: list[dict], t0: float, end: float, initial: str) -> dict[str, float]:
    """Epoch time of each moment found in a baseline run's transitions (a moment it lacks is absent)."""
    ts = [(parse_time(t["at"]), t["from"], t["to"]) for t in transitions]
    out: dict[str, float] = {}
    for moment, state in MOMENT_STATES.items():
        for i, (at, _, to) in enumerate(ts):
            if to == state:
                left = next((a for a, src, _ in ts[i + 1 :] if src == state), end)
                out[moment] = (at + left) / 2.0
                break
    # water changes: from leaving the initial state to coming back
    changes, since = [], None
    for at, src, to in ts:
        if src == initial and since is None:
            since = at
        if to == initial and since is not None:
            changes.append((since, at))
            since = None
    if since is not None:
        changes.append((since, end))
    between = t0 + min(BETWEEN_AT_S, (end - t0) / 2.0)
    if any(a - AWAY_FROM_CHANGE_S <= between <= b + AWAY_FROM_CHANGE_S for a, b in changes):
        edges = [t0] + [x for c in changes for x in c] + [end]
        gaps = [(edges[i + 1] - edges[i], (edges[i] + edges[i + 1]) / 2.0) for i in range(0, len(edges) - 1, 2)]
        between = max(gaps)[1]
    out["between"] = between
    return out


# ---- the checker -----------------------------------------------------------------------------
@dataclass
class Window:
    """When a fault acts: [start, end)."""

    kind: str
    node: str | None
    start: float
    end: float


class Checker:
    """Watches one zone run through `before_tick(zr, now)` and records broken invariants."""

    def __init__(
        self,
        rs: M.RuleSet,
        zone: M.Zone,
        *,
        t0: float,
        end: float,
        fault: MatrixFault | None,
        target: str,
        onset: float,
        baseline_drained: float = 0.0,
    ) -> None:
        self.rs, self.zone, self.t0, self.end = rs, zone, t0, end
        self.fault, self.target, self.onset = fault, target, onset
        self.baseline_drained = baseline_drained
        settings = rs.zone_settings(zone)
        self.max_off_default = self.max_off = settings["water_cycle.recirc.max_recirc_off"]
        self.recirc_windows = tuple(rs.zone_windows(zone))  # a window's own max_off, an `off` window (1.2)
        self.source_ec = float(settings.get("plant.source_ec") or 0.0)  # the fill water's EC (docs/twin.md)
        self.recirc = recirculated(rs, zone)
        if self.recirc is not None and rs.channels[self.recirc].fail_safe != "NC":
            self.recirc = None  # an NO pump that stands is not a hazard this invariant is about
        self.stop_states = stop_states(rs, self.recirc) if self.recirc else frozenset()
        self.pumps = [(n, _role(n)) for n in zone.channels if rs.channels.get(n) and rs.channels[n].kind == "pump"]
        self.leak_codes = frozenset(leak_alerts(rs))
        self.locking = frozenset(c for c, a in rs.alerts.items() if a.locks)
        self.waiting = frozenset(c for c, a in rs.alerts.items() if a.locks or a.clear_on_reset)
        self.recipe = rs.recipes.get(zone.recipe)
        self.tz = None if zone.timezone in ("UTC", "Etc/UTC") else ZoneInfo(zone.timezone)
        self.planted = (
            datetime(zone.planted.year, zone.planted.month, zone.planted.day, tzinfo=UTC).timestamp()
            if zone.planted
            else None
        )
        self.recirc_node = zone.channels[self.recirc].node_uid if self.recirc else None
        self.windows: list[Window] = []
        if fault is not None:
            fend = onset + fault.for_s if fault.for_s is not None else math.inf
            node = None
            if fault.kind == "node_offline":
                b = zone.channels.get(target)
                node = b.node_uid if b is not None else target
            self.windows.append(Window(fault.kind, node, onset, fend))
        self.fault_node = self.windows[0].node if self.windows else None
        self.fault_end = self.windows[0].end if self.windows else math.inf
        # state
        self.broken: list[dict] = []
        self.prev: float | None = None
        self.run_prev: dict = {}
        self.filled_prev = 0.0
        self.last_fill: float | None = None  # when the twin last took in water
        self.leaked_onset: float | None = None
        self.episodes: dict[str, list] = {}  # pump -> [dry seconds, violation or None]
        self.off = 0.0  # the current unexcused OFF stretch of the NC pump
        self.off_violation: dict | None = None
        self.off_longest = 0.0
        self.leak_base: float | None = None
        self.leak_violation: dict | None = None
        self.band_broken: set[str] = set()
        self.ph = [math.inf, -math.inf]
        self.ec = [math.inf, -math.inf]
        self.n_alerts = self.n_cmds = 0
        self.first_alert: float | None = None
        self.exercised: float | None = None
        self.last_unsafe: float | None = None
        self.first_after_unsafe: float | None = None
        self.seen_onset = False
        self._day_key: int | None = None
        self.twin = None
        self._targets: dict = {}

    # -- the hook ------------------------------------------------------------------------------
    def __call__(self, zr, now: float) -> None:
        try:
            self._see(zr, now)
        except Exception as e:  # a bug here is ours, not the engine's
            raise CheckerBug(f"safety checker failed at {iso(now)}: {type(e).__name__}: {e}") from e

    def _violate(self, invariant: str, at: float, reason: str) -> dict:
        v = {"invariant": invariant, "at": iso(at), "offset_s": round(at - self.t0, 1), "reason": reason}
        self.broken.append(v)
        return v

    def _see(self, zr, now: float) -> None:
        tw, st = zr.twin, zr.state
        self.twin = tw
        run_s = dict(tw.run_seconds)  # a copy: the next instant compares with it
        if self.prev is None:
            self.prev, self.run_prev, self.filled_prev = now, run_s, tw.filled_l
            self.dry_prev = dict(tw.dry_seconds)
            self._bands(tw, now)
            return
        prev, dt = self.prev, now - self.prev
        after_onset = now > self.onset
        active = [(code, ch) for (code, ch), a in st.alerts.items() if a.status == "active"]
        self._alerts(zr, now)
        self._exercise(zr, tw, run_s, prev, now)
        if after_onset and not self.seen_onset:
            self.seen_onset = True
            if self.leaked_onset is None:
                self.leaked_onset = tw.leaked_l
        self._bands(tw, now)
        dry_any = self._dry(tw, run_s, prev, now)
        off_ok = self._recirc(tw, st, run_s, active, prev, now, dt)
        self._leak_fill(tw, active, now)
        if after_onset:
            self._safe(tw, st, active, dry_any, off_ok, now)
        self.prev, self.run_prev, self.filled_prev = now, run_s, tw.filled_l

    # -- 1. bands --------------------------------------------------------------------------------
    def targets(self, now: float) -> dict:
        local = now
        if self.tz is not None:
            off = datetime.fromtimestamp(now, self.tz).utcoffset()
            local = now + (off.total_seconds() if off else 0.0)
        zero = self.planted if self.planted is not None else self.t0
        day = int((local - zero) // 86400)
        if day != self._day_key:
            self._day_key = day
            phase = self.recipe.phase_on(day) if self.recipe is not None and day >= 0 else None
            self._targets = dict(phase.targets) if phase else {}
        return self._targets

    def _bands(self, tw, now: float) -> None:
        if tw.filled_l > self.filled_prev + 1e-9:
            self.last_fill = now
        if tw.level_pct < NEAR_EMPTY_PCT or (self.last_fill is not None and now - self.last_fill < FILL_SETTLE_S):
            return
        ph, ec = tw.ph, tw.ec
        if now >= self.onset:
            self.ph[0], self.ph[1] = min(self.ph[0], ph), max(self.ph[1], ph)
            self.ec[0], self.ec[1] = min(self.ec[0], ec), max(self.ec[1], ec)
        T = self.targets(now)
        for metric, value in (("ph", ph), ("ec", ec)):
            if metric not in T or metric in self.band_broken:
                continue
            lo, hi = band(metric, T[metric])
            if metric == "ec":
                lo = min(lo, self.source_ec)  # fresh water is no hazard: mixing never takes EC below the source's
            if not lo <= value <= hi:
                self.band_broken.add(metric)
                self._violate(
                    "bands",
                    now,
                    f"{metric} {value:.2f} outside {lo:.2f} .. {hi:.2f} (targets {T[metric][0]:g} .. {T[metric][1]:g})",
                )

    # -- 2. dry pumps -----------------------------------------------------------------------------
    def _dry(self, tw, run_s: dict, prev: float, now: float) -> bool:
        """Accumulate, per episode, the seconds the twin counted each pump powered with nothing to pump;
        True when any pump ran dry in (prev, now]."""
        any_dry = False
        dry = tw.dry_seconds
        for name, role in self.pumps:
            dry_s = dry.get(name, 0.0) - self.dry_prev.get(name, 0.0)
            ep = self.episodes.get(name)
            if dry_s <= 0.0:
                self.episodes.pop(name, None)
                continue
            any_dry = True
            if ep is None:
                ep = self.episodes[name] = [0.0, None, now]
            ep[0] += dry_s
            if ep[0] > DRY_ALLOWANCE_S and not self._dry_excused(name, role, now):
                if ep[1] is None:
                    ep[1] = self._violate("dry_run", now, "")
                ep[1]["reason"] = f"{name} ran dry for {ep[0]:.0f} s (allowance {DRY_ALLOWANCE_S:g} s)"
        self.dry_prev = dict(dry)
        return any_dry

    def _dry_excused(self, name: str, role: str, now: float) -> bool:
        """A drain pump stuck on by the fault under test empties the tank itself; nothing can stop it."""
        return (
            self.fault is not None
            and self.fault.kind == "stuck_relay"
            and self.target == name
            and role == "drain"
            and self.onset <= now
        )

    # -- 3. the NC pump's OFF stretches ------------------------------------------------------
    def _window_now(self, now: float):
        """The recirculation window the zone's local time `now` falls in, or None."""
        if not self.recirc_windows:
            return None
        local = now
        if self.tz is not None:
            off = datetime.fromtimestamp(now, self.tz).utcoffset()
            local = now + (off.total_seconds() if off else 0.0)
        tod = local % 86400.0
        return next((w for w in self.recirc_windows if w.contains(tod)), None)

    def _recirc_excused(self, st, active, prev: float, now: float) -> bool:
        rc = self.recirc
        w = self._window_now(now)
        if w is not None and w.off:
            return True  # an `off` window holds the pump off until its end, by design; the stretch counts from there
        self.max_off = w.max_off_s if w is not None and w.max_off_s is not None else self.max_off_default
        if any(code in self.locking and ch in (rc, None) for code, ch in active):
            return True
        if any(s in self.stop_states for s in st.machines.values()):
            return True
        for w in self.windows:
            unreachable = w.kind == "controller_crash" or (w.kind == "node_offline" and w.node == self.recirc_node)
            if unreachable and w.start < now and prev < w.end:
                return True
        return False

    def _recirc(self, tw, st, run_s, active, prev: float, now: float, dt: float) -> bool:
        """Track the NC pump's unexcused OFF stretch; False while it is past the limit."""
        rc = self.recirc
        if rc is None:
            return True
        off_s = max(0.0, dt - (run_s.get(rc, 0.0) - self.run_prev.get(rc, 0.0)))
        powered = tw.running(rc)
        if self._recirc_excused(st, active, prev, now):
            self._close_off()
            return True
        if off_s <= 1e-9:
            self._close_off()
            return True
        if powered:  # off at the start of the interval, running at its end
            self.off += off_s
            self._check_off(now)
            self._close_off()
            return True
        if off_s < dt - 1e-9:  # it stopped within the interval: a new stretch
            self._close_off()
        self.off += off_s
        return self._check_off(now)

    def _check_off(self, now: float) -> bool:
        self.off_longest = max(self.off_longest, self.off)
        if self.off <= self.max_off + RECIRC_TOLERANCE_S:
            return True
        if self.off_violation is None:
            self.off_violation = self._violate("recirc_off", now, "")
        self.off_violation["reason"] = (
            f"{self.recirc} off for {self.off / 60:.1f} min ({self._bound_name()} {self.max_off / 60:g} min) "
            "with no locking alert, no state that stops it and its node reachable"
        )
        return False

    def _bound_name(self) -> str:
        return "max_recirc_off" if self.max_off == self.max_off_default else "the window's max_off"

    def _close_off(self) -> None:
        self.off = 0.0
        self.off_violation = None

    # -- 4. no water into a leaking tank ---------------------------------------------------------
    def _leak_fill(self, tw, active, now: float) -> None:
        if not any(code in self.leak_codes for code, _ in active):
            self.leak_base = None
            self.leak_violation = None
            return
        if self.leak_base is None:
            self.leak_base = self.filled_prev  # raised at the previous evaluation at the latest
        grown = tw.filled_l - self.leak_base
        if grown > FILL_TOLERANCE_L:
            if self.leak_violation is None:
                self.leak_violation = self._violate("fill_after_leak", now, "")
            codes = ", ".join(sorted({c for c, _ in active if c in self.leak_codes}))
            self.leak_violation["reason"] = f"{grown:.1f} L filled while {codes} was active"

    # -- 5. the fault's alert ----------------------------------------------------------------------
    def _matches(self, code: str, channel: str | None) -> bool:
        f = self.fault
        if f is None or code not in f.alerts:
            return False
        if channel is None:
            return True
        if f.kind in ("stuck_relay", "no_flow", "overcurrent"):
            return channel == self.target
        if f.kind == "node_offline":
            b = self.zone.channels.get(channel)
            return b is not None and b.node_uid == self.fault_node
        return True

    def _alerts(self, zr, now: float) -> None:
        if self.fault is None or self.first_alert is not None:
            self.n_alerts = len(zr.alerts)
            return
        if not self.seen_onset and now > self.onset:
            for (code, ch), a in zr.state.alerts.items():
                if a.status == "active" and self._matches(code, ch) and a.since <= self.onset:
                    self.first_alert = self.onset
                    return
        for rec in zr.alerts[self.n_alerts :]:
            at = parse_time(rec["raised_at"])
            if at >= self.onset and self._matches(rec["code"], rec["channel"]):
                self.first_alert = at
                break
        self.n_alerts = len(zr.alerts)

    def _exercise(self, zr, tw, run_s, prev: float, now: float) -> None:
        f = self.fault
        new_cmds = zr.commands[self.n_cmds :]
        self.n_cmds = len(zr.commands)
        if f is None or self.exercised is not None or now <= self.onset or prev >= self.fault_end:
            return
        at = max(prev, self.onset)
        kind = f.kind
        if kind in ("sensor_frozen", "sensor_dead", "controller_crash"):
            self.exercised = self.onset
        elif kind == "stuck_relay":
            if tw.running(self.target) and not tw.contact(self.target):
                self.exercised = at
        elif kind in ("no_flow", "overcurrent"):
            if run_s.get(self.target, 0.0) > self.run_prev.get(self.target, 0.0) or any(
                c["channel"] == self.target and c["params"].get("state") is not False for c in new_cmds
            ):
                self.exercised = at
        elif kind == "node_offline":
            if any(c["node"] == self.fault_node for c in new_cmds):
                self.exercised = at
        elif kind in ("leak", "dry_reservoir"):
            base = self.leaked_onset if self.leaked_onset is not None else 0.0
            if tw.leaked_l > base + 1e-6:
                self.exercised = at

    # -- safe state ---------------------------------------------------------------------------
    def _safe(self, tw, st, active, dry_any: bool, off_ok: bool, now: float) -> None:
        waiting = any(code in self.waiting for code, _ in active)
        safe = waiting
        if not safe:
            safe = not dry_any and off_ok
            if safe:
                for name, _ in self.pumps:
                    if name == self.recirc or not tw.running(name):
                        continue
                    c = st.channels.get(name)
                    wanted = c is not None and c.desired == "on" and c.denied_by is None
                    if not wanted:
                        safe = False
                        break
        if not safe:
            self.last_unsafe = now
            self.first_after_unsafe = None
        elif self.first_after_unsafe is None:
            self.first_after_unsafe = now

    # -- the end ------------------------------------------------------------------------------
    def finish(self, tw, end: float, error: str | None = None) -> dict:
        """The run's result: figures and broken invariants."""
        at = self.prev if self.prev is not None else self.t0
        tw = tw if tw is not None else self.twin  # after an exception: the twin as last seen
        if error is not None:
            self._violate("exception", at, error)
        f = self.fault
        alert_status, time_to_alert = "not required", None
        if f is not None and f.alerts:
            if self.first_alert is not None:
                time_to_alert = self.first_alert - self.onset
            if self.exercised is None:
                alert_status = "not exercised"
            elif self.first_alert is not None and self.first_alert <= self.exercised + f.limit_s:
                alert_status = "raised"
            elif self.first_alert is None and at < self.exercised + f.limit_s:
                alert_status = "not exercised"  # the run ended before the alert was due
            elif error is None:
                alert_status = "missing"
                known = [c for c in f.alerts if c in self.rs.alerts]
                due = self.exercised + f.limit_s
                if not known:
                    why = f"the rule set has none of the alerts {', '.join(f.alerts)}"
                elif self.first_alert is None:
                    why = f"none of {', '.join(known)} raised by {iso(due)}"
                else:
                    why = f"{', '.join(known)} raised only {(self.first_alert - self.exercised) / 60:.0f} min after"
                self._violate(
                    "alert",
                    min(due, at),
                    f"{why} ({_minutes(f.limit_s)} after its effect showed at {iso(self.exercised)})",
                )
        elif f is not None and self.first_alert is not None:
            time_to_alert = self.first_alert - self.onset
        if self.prev is None or self.prev < self.onset:
            time_to_safe = None
        elif self.last_unsafe is None:
            time_to_safe = 0.0
        elif self.first_after_unsafe is None or error is not None:
            time_to_safe = None  # unsafe at the end
        else:
            time_to_safe = self.first_after_unsafe - self.onset
        drained = tw.drained_l if tw is not None else 0.0
        leaked = tw.leaked_l if tw is not None else 0.0
        overflow = tw.overflow_l if tw is not None else 0.0
        extra = max(0.0, drained - self.baseline_drained)
        return {
            "onset": iso(self.onset),
            "alert": alert_status,
            "time_to_alert_s": _r(time_to_alert),
            "exercised_at": iso(self.exercised) if self.exercised is not None else None,
            "time_to_safe_s": _r(time_to_safe),
            "ph": [_r(x, 2) for x in self.ph] if self.ph[0] <= self.ph[1] else None,
            "ec": [_r(x, 2) for x in self.ec] if self.ec[0] <= self.ec[1] else None,
            "lost_l": _r(leaked + overflow + extra, 1),
            "leaked_l": _r(leaked, 1),
            "overflow_l": _r(overflow, 1),
            "drained_l": _r(drained, 1),
            "drained_beyond_plan_l": _r(extra, 1),
            "filled_l": _r(tw.filled_l if tw is not None else 0.0, 1),
            "recirc_off_longest_s": _r(self.off_longest),
            "broken": sorted(self.broken, key=lambda v: (v["offset_s"], v["invariant"])),
        }


def band(metric: str, target: tuple[float, float]) -> tuple[float, float]:
    lo, hi = target
    if metric == "ph":
        return lo - PH_BELOW, hi + PH_ABOVE
    return lo * EC_LOW_FACTOR, hi * EC_HIGH_FACTOR


def _r(x, nd: int = 0):
    if x is None or not math.isfinite(x):
        return None
    return round(x, nd) if nd else round(x)


def _minutes(s: float) -> str:
    return f"{s / 3600:g} h" if s >= 3600 else f"{s / 60:g} min"


# ---- one run -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Task:
    site: str
    zone: str
    seed: int
    days: float
    tick_s: float
    firmware: str
    fault: str | None  # MatrixFault id; None: the baseline
    moment: str | None
    onset: float | None  # epoch; None: the baseline
    baseline_drained: float = 0.0
    start: float | None = None

    @property
    def key(self) -> tuple:
        return (self.zone, self.seed, self.fault or "", self.moment or "")


_LOADED: dict[str, M.RuleSet] = {}


def ruleset_at(site: str) -> M.RuleSet:
    """The rule set at `site`, loaded once per process (the matrix's and diff's worker processes)."""
    rs = _LOADED.get(site)
    if rs is None:
        from ..lang.loader import load

        loaded = load(Path(site))
        if not runnable(loaded):
            raise SafetyError(f"{site} has errors; run `hydro-rules check {site}`")
        rs = _LOADED[site] = loaded.ruleset
    return rs


#: errors about safety itself (an unguarded start, a state without a way out, an unreachable state,
#: an OFF schedule past max_recirc_off): the rule set still runs, and the matrix shows what they do
RUNNABLE_ERRORS = frozenset({"HR301", "HR302", "HR303", "HR401", "HR402"})


def runnable(loaded) -> bool:
    """Can the matrix run this rule set: no errors, or only errors about safety?"""
    return loaded.ruleset is not None and all(d.code in RUNNABLE_ERRORS for d in loaded.diags.errors)


def without_timings(report: dict) -> dict:
    """A copy of a matrix report without what depends on the machine (times, process count)."""
    r = json.loads(json.dumps(report))
    r.pop("wall_s"), r.pop("cpu_s"), r.pop("jobs")
    for z in r["zones"]:
        for c in z["cells"]:
            for run in c["runs"]:
                run.pop("wall_s"), run.pop("cpu_s")
    return r


def run_task(task: Task) -> dict:
    """One zone run (the baseline, or one fault at one moment) and what its checker found."""
    rs = ruleset_at(task.site)
    zone = rs.zone(task.zone)
    t0 = task.start if task.start is not None else parse_time(DEFAULT_START)
    end = t0 + int(round(task.days * 86400.0 / task.tick_s)) * task.tick_s
    fault = FAULTS_BY_ID[task.fault] if task.fault else None
    target = resolve_target(fault, rs, zone) if fault else ""
    onset = task.onset if task.onset is not None else t0
    spec = fault_spec(fault, target, round(onset - t0)) if fault else None
    if fault:
        onset = t0 + round(onset - t0)
    checker = Checker(
        rs, zone, t0=t0, end=end, fault=fault, target=target or "", onset=onset,
        baseline_drained=task.baseline_drained,
    )  # fmt: skip
    error = None
    zr = None
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        result = dryrun.run(
            rs, [zone.uid], days=task.days, tick_s=task.tick_s, seed=task.seed, start=t0,
            faults=[spec] if spec else [], before_tick=checker, firmware=task.firmware,
        )  # fmt: skip
        zr = result.zones[0]
    except CheckerBug:
        raise
    except Exception as e:  # the engine (or twin) failed: that is a broken invariant
        error = f"{type(e).__name__}: {e}"
    out = checker.finish(zr.twin if zr is not None else None, end, error)
    out.update(
        zone=task.zone,
        seed=task.seed,
        fault=task.fault or "none",
        moment=task.moment or "-",
        spec=spec,
        wall_s=round(time.perf_counter() - wall, 2),
        cpu_s=round(time.process_time() - cpu, 2),
    )
    if fault is None:
        out["transitions"] = zr.transitions if zr is not None else []
        out["initial"] = {m: rs.machines[m].initial for m in rs.machines}
        out["drained_plan_l"] = zr.twin.drained_l if zr is not None else 0.0
    return out


def _phase(progress, name: str, total: int):
    """A per-run callback that reports (phase, done, total) to `progress`."""
    if progress is None:
        return None
    done = [0]
    progress(name, 0, total)

    def step(n: int) -> None:
        done[0] += n
        progress(name, done[0], total)

    return step


def _map(tasks: list[Task], jobs: int, progress=None) -> list[dict]:
    """run_task over tasks, in `jobs` processes; results in task order whatever finished first."""
    out: dict[int, dict] = {}
    if jobs <= 1 or len(tasks) <= 1:
        for i, t in enumerate(tasks):
            out[i] = run_task(t)
            if progress:
                progress(1)
    else:
        with ProcessPoolExecutor(max_workers=min(jobs, len(tasks))) as pool:
            futures = {pool.submit(run_task, t): i for i, t in enumerate(tasks)}
            for fut in as_completed(futures):
                out[futures[fut]] = fut.result()
                if progress:
                    progress(1)
    return [out[i] for i in range(len(tasks))]


# ---- the matrix -----------------------------------------------------------------------------------
def run_matrix(
    site: str,
    *,
    zones: list[str] | None = None,
    seeds: int = 3,
    days: float = 12.0,
    tick_s: float = 60.0,
    firmware: str = DEFAULT_FIRMWARE,
    faults: list[str] | None = None,
    moments: list[str] | None = None,
    jobs: int | None = None,
    progress=None,
    start: float | None = None,
) -> dict:
    """Run the matrix on a rule-set directory; the report as one JSON-able dict (see docs/safety.md)."""
    chosen = select_faults(faults)
    when = select_moments(moments)
    rs = ruleset_at(str(site))
    uids = zones or [z.uid for z in rs.zones]
    jobs = jobs or os.cpu_count() or 1
    site = str(site)
    t0 = start if start is not None else parse_time(DEFAULT_START)
    wall = time.perf_counter()
    base_tasks = [
        Task(site, z, s, days, tick_s, firmware, None, None, None, start=t0) for z in uids for s in range(seeds)
    ]
    baselines = _map(base_tasks, jobs, _phase(progress, "baselines", len(base_tasks)))
    tasks: list[Task] = []
    skipped: list[dict] = []
    found: dict = {}
    for b in baselines:
        zone = rs.zone(b["zone"])
        end = t0 + int(round(days * 86400.0 / tick_s)) * tick_s
        initial = next(iter(b["initial"].values())) if b["initial"] else ""
        ms = find_moments(b["transitions"], t0, end, initial)
        found[(b["zone"], b["seed"])] = {m: iso(t) for m, t in ms.items()}
        for f in chosen:
            target = resolve_target(f, rs, zone)
            if target is None:
                if b["seed"] == 0:
                    skipped.append({"zone": b["zone"], "fault": f.id, "why": f"the zone has no {f.target}"})
                continue
            for m in when:
                if m not in ms:
                    if b["seed"] == 0 and f is chosen[0]:
                        skipped.append({"zone": b["zone"], "moment": m, "why": "no water change in the baseline run"})
                    continue
                tasks.append(
                    Task(site, b["zone"], b["seed"], days, tick_s, firmware, f.id, m, ms[m], b["drained_plan_l"], t0)
                )
    results = _map(tasks, jobs, _phase(progress, "matrix", len(tasks)))
    wall = time.perf_counter() - wall
    return build_report(
        rs, site, uids, seeds, days, tick_s, firmware, chosen, when, baselines, results, found, skipped, jobs, wall
    )


def build_report(
    rs, site, uids, seeds, days, tick_s, firmware, chosen, when, baselines, results, found, skipped, jobs, wall
) -> dict:
    for b in baselines:
        b.pop("transitions", None)
        b.pop("initial", None)
        b.pop("drained_plan_l", None)
    runs = baselines + results
    broken = [
        {
            "zone": r["zone"],
            "fault": r["fault"],
            "moment": r["moment"],
            "seed": r["seed"],
            **v,
        }
        for r in runs
        for v in r["broken"]
    ]
    zones = []
    for z in uids:
        cells = []
        for fid in ["none"] + [f.id for f in chosen]:
            for m in ["-"] if fid == "none" else when:
                rs_ = [r for r in runs if r["zone"] == z and r["fault"] == fid and r["moment"] == m]
                if rs_:
                    cells.append(aggregate(fid, m, rs_))
        zones.append(
            {
                "zone": z,
                "moments": {str(s): found.get((z, s), {}) for s in range(seeds)},
                "cells": cells,
            }
        )
    return {
        "site": site,
        "ruleset_version": rs.ruleset_version,
        "firmware": firmware,
        "seeds": seeds,
        "days": days,
        "tick_seconds": tick_s,
        "jobs": jobs,
        "runs": len(runs),
        "wall_s": round(wall, 1),
        "cpu_s": round(sum(r["cpu_s"] for r in runs), 1),
        "bands": {
            "ph": f"[min - {PH_BELOW:g}, max + {PH_ABOVE:g}]",
            "ec": f"[{EC_LOW_FACTOR:g} x min, {EC_HIGH_FACTOR:g} x max]",
            "not_judged_below_level_pct": NEAR_EMPTY_PCT,
            "not_judged_after_fill_seconds": FILL_SETTLE_S,
        },
        "limits": {
            "dry_allowance_s": DRY_ALLOWANCE_S,
            "recirc_tolerance_s": RECIRC_TOLERANCE_S,
            "fill_tolerance_l": FILL_TOLERANCE_L,
            "leak_alerts": list(leak_alerts(rs)),
        },
        "faults": [
            {
                "id": f.id,
                "kind": f.kind,
                "target": f.target,
                "for_s": f.for_s,
                "alerts": list(f.alerts),
                "alert_limit_s": f.limit_s,
                "text": f.text,
            }
            for f in chosen
        ],
        "moments": list(when),
        "invariants": INVARIANTS,
        "skipped": skipped,
        "zones": zones,
        "broken": sorted(broken, key=lambda v: (v["zone"], v["fault"], v["moment"], v["seed"], v["offset_s"])),
        "ok": not broken,
    }


def aggregate(fault: str, moment: str, runs: list[dict]) -> dict:
    """One cell of the table: the worst over seeds."""

    def worst(key):
        vals = [r[key] for r in runs]
        return None if any(v is None for v in vals) else max(vals)

    statuses = {r["alert"] for r in runs}
    ph = [r["ph"] for r in runs if r["ph"]]
    ec = [r["ec"] for r in runs if r["ec"]]
    return {
        "fault": fault,
        "moment": moment,
        "seeds": len(runs),
        "alert": "missing" if "missing" in statuses else ("raised" if "raised" in statuses else sorted(statuses)[0]),
        "time_to_alert_s": max((r["time_to_alert_s"] for r in runs if r["time_to_alert_s"] is not None), default=None),
        "time_to_safe_s": worst("time_to_safe_s"),
        "ph": [min(p[0] for p in ph), max(p[1] for p in ph)] if ph else None,
        "ec": [min(p[0] for p in ec), max(p[1] for p in ec)] if ec else None,
        "lost_l": max(r["lost_l"] for r in runs),
        "broken": sorted({v["invariant"] for r in runs for v in r["broken"]}),
        "runs": runs,
    }
