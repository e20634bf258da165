"""The zone program: one zone's compiled rules and the runtime they call.

`ZoneProgram.evaluate(state, telemetry, now)` runs one tick: it reads the
telemetry (stale values become unknown), advances alerts, state machines and
rules (generated code, see compiler.py), then reconciles every channel: what
the rules want, what its guards allow, and which wire command makes the node
do it given the channel's fail-safe wiring.
"""

from __future__ import annotations

from bisect import bisect_right
from datetime import UTC, datetime
from operator import itemgetter
from zoneinfo import ZoneInfo

from ..lang import model as M
from ..lang.activity import zone_activity
from .channels import INF, ChannelControl
from .decisions import AlertChange, Decisions, Refusal, StateChange, ZoneEvent
from .horizon import HorizonMixin
from .safety import FROZEN, OK, STALE, SafetyMixin
from .state import ACTIVE, DUTY, OFF, ON, PENDING, RELEASED, AlertState, ChannelState, ZoneState

_TS = itemgetter(0)
#: the metric `filled(...)` reads the zone's water level from
LEVEL_METRIC = "water_level"


class ZoneProgram(SafetyMixin, ChannelControl, HorizonMixin):
    """Rules compiled for one zone. Not thread-safe: one evaluation at a time."""

    def __init__(self, compiled, zone: M.Zone, tick_fn, guard_fns: dict):
        rs: M.RuleSet = compiled.ruleset
        self.compiled = compiled
        self.rs = rs
        self.zone = zone
        self.version = rs.ruleset_version
        self.profile = rs.profiles[zone.profile]
        #: what of the rule set is active in this zone (language 1.2: a zone binds only what it has)
        self.activity = zone_activity(rs, zone)
        #: the zone's settings without a recipe phase: defaults, its profile's, its own
        self._zone_S = rs.zone_settings(zone)
        #: the settings in effect now: the zone's, and its recipe phase's while it lasts (see _use_phase)
        self.S = dict(self._zone_S)
        self._phase_settings: dict = {}
        #: the recirculation windows of the zone: its own, else its profile's
        self.windows = rs.zone_windows(zone)
        self.reservoir_l = zone.reservoir_l
        self.recipe = rs.recipes[zone.recipe]
        self.channels = {name: rs.channels[name] for name in zone.channels}
        self.bindings = zone.channels
        self.tick_fn = tick_fn
        self.guard_fns = guard_fns
        self.tz = None if zone.timezone in ("UTC", "Etc/UTC") else ZoneInfo(zone.timezone)
        # metric -> (node or None, stale limit); None node: the freshest of the zone's nodes
        self.metric_src = {m: (zone.metric_nodes.get(m), rs.metrics[m].stale_s) for m in compiled.metrics_used}
        self.zone_nodes = zone.nodes
        self.stale = {m: rs.metrics[m].stale_s for m in rs.metrics}
        self.cur: dict = {}
        self.flw: dict = {}
        self.flg: dict = {}
        into = {"current": self.cur, "flow": self.flw, "flow_flag": self.flg}
        # (channel, (node, metric), stale limit, (low, high), readings dict) of every current, flow and
        # flow flag a channel reports
        self.channel_src = [
            (
                name,
                (zone.channels[name].node_uid, metric),
                self.stale[metric],
                (rs.metrics[metric].low, rs.metrics[metric].high),
                readings,
            )
            for name, ch in self.channels.items()
            for attr, readings in into.items()
            if (metric := getattr(ch, attr)) is not None
        ]
        self._planted_epoch = (
            datetime(zone.planted.year, zone.planted.month, zone.planted.day, tzinfo=UTC).timestamp()
            if zone.planted
            else None
        )
        self._phase_day: int | None = None
        self._phase: M.Phase | None = None
        self._night: bool | None = None  # the zone's lights are off (None: not worked out yet)
        self._night_aware = False  # the phase has night targets or values and the zone has a light schedule
        self._day_anchor: float | None = None
        self._day_from = self._day_until = 0.0
        self._offset_hour = None
        self._offset = 0.0
        self._due_cache: dict = {}
        self._init_safety()
        self._init_horizon()
        # per-tick
        self.now = 0.0
        self.mv: dict = {}  # metric -> value rules may use, None when stale, frozen or implausible
        self.rv: dict = {}  # metric -> fresh reading as sent, plausible or not
        self.mstat: dict = {}  # metric -> ok | stale | frozen | implausible
        self.mts: dict = {}
        self.T: dict = {}
        self.st: ZoneState | None = None
        self.snap: dict = {}
        self.dec = Decisions()
        self._fails: dict = {}  # machine -> state -> the fail transition a restart takes there
        self._acting_states: tuple = ()  # the states of the rule or machine whose actions run (dose groups)

    # ---- the tick ---------------------------------------------------------------------
    def new_state(self, now: float) -> ZoneState:
        """A fresh zone: machines at their initial states (entered on the first tick),
        outputs at their fail-safe defaults, the solution counted from now."""
        st = ZoneState(self.zone.uid, now, solution_started_at=now)
        for name, m in self.rs.machines.items():
            st.machines[name] = m.initial
        for name, ch in self.channels.items():
            st.channels[name] = ChannelState(is_on=ch.fail_safe == "NC", since=now)
        return st

    def prepare(self, st: ZoneState, telemetry: dict, now: float) -> None:
        """Bring the zone up to `now`: the telemetry (stale values become unknown), the recipe
        targets, and the commands whose duration is over (their node has fallen back by itself)."""
        self.now, self.st, self.snap = now, st, telemetry
        if self._hz_open is not None:
            self._hz_close(now)
        if not self.channels.keys() <= st.channels.keys():  # a state saved before the zone gained a channel
            for name, ch in self.channels.items():
                if name not in st.channels:
                    st.channels[name] = ChannelState(is_on=ch.fail_safe == "NC", since=now)
        self._read_metrics()
        if self.compiled.filled_channels:
            self._track_fills()
        self._read_channels()
        self._hear_nodes()
        self._targets()
        self._expire_commands()
        if self.compiled.drift_metrics:
            self._baseline()

    def evaluate(self, st: ZoneState, telemetry: dict, now: float) -> Decisions:
        """One tick. `telemetry` maps (node uid, metric) to (value, ts); `st` is updated in place."""
        self.prepare(st, telemetry, now)
        self.dec = dec = Decisions()
        phase = self._phase
        if (phase.name if phase is not None else None) != st.phase:
            self._phase_changed(phase)
        self._check_doses()
        if len(st.entered_at) < len(self.rs.machines) or None in st.entered_at.values():
            for mname, m in self.rs.machines.items():
                if not self.activity.machine_active(mname):
                    continue
                if st.entered_at.get(mname) is None:  # not entered yet: run its enter actions
                    state = st.machines.get(mname) or m.initial
                    st.machines[mname] = state
                    st.entered_at[mname] = now
                    self._acting_states = (state,)
                    try:
                        self.run_actions(m.states[state].enter, f"state {state}")
                    finally:
                        self._acting_states = ()
        self.tick_fn(self)
        if st.dose_group is not None:
            self._advance_dose_group()
        self._reconcile()
        if self.compiled.filled_channels:
            self._note_fills()
        self._end_waits()
        self._last_now = now
        return dec

    # ---- telemetry ------------------------------------------------------------------------
    def _read_metrics(self) -> None:
        snap, now, mv, rv, mts, mstat = self.snap, self.now, self.mv, self.rv, self.mts, self.mstat
        st = self.st
        for metric, (node, stale) in self.metric_src.items():
            r = snap.get((node, metric)) if node else self._freshest(metric)
            if r is not None and now - r[1] <= stale:
                v = rv[metric] = r[0]
                mts[metric] = r[1]
                status = self._plausibility(metric, v, r[1])
                if metric in self.track_unchanged:
                    u = st.unchanged.get(metric)
                    if u is None or u[0] != v:
                        st.unchanged[metric] = [v, r[1]]
                    elif status == OK and metric in self.frozen_s and now - u[1] >= self.frozen_s[metric]:
                        status = FROZEN
                mstat[metric] = status
                mv[metric] = v if status == OK else None
            else:
                mv[metric] = rv[metric] = None
                mts[metric] = r[1] if r is not None else None
                mstat[metric] = STALE
        for metric, window in self.compiled.history_metrics.items():
            v = mv.get(metric)
            if v is None:
                continue
            h = st.history.setdefault(metric, [])
            if not h or now - h[-1][0] >= 60.0:
                h.append([now, v])
                horizon = now - window - 120.0
                while len(h) > 2 and h[1][0] <= horizon:
                    h.pop(0)

    def _freshest(self, metric: str):
        best = None
        for node in self.zone_nodes:
            r = self.snap.get((node, metric))
            if r is not None and (best is None or r[1] > best[1]):
                best = r
        return best

    def _read_channels(self) -> None:
        """A pump's current, flow and flow flag as they are now: fresh, inside the metric's range
        (a flag of 7 is no flag), and read after its last switch (a reading from before it
        describes the pump as it was)."""
        snap, now, channels = self.snap, self.now, self.st.channels
        for name, key, stale, (low, high), into in self.channel_src:
            r = snap.get(key)
            c = channels.get(name)
            fresh = r is not None and now - r[1] <= stale and (c is None or r[1] > c.since or c.since == now)
            into[name] = r[0] if fresh and low <= r[0] <= high else None

    def _targets(self) -> None:
        """The recipe phase's targets (and settings) for today, worked out again only when the day
        changes; its night targets while the zone's lights are off."""
        anchor = self._planted_epoch if self._planted_epoch is not None else self.st.created_at
        if not (anchor == self._day_anchor and self._day_from <= self.now < self._day_until):
            since = self._since_day_zero()
            into_day = since % 86400.0
            self._day_anchor = anchor
            self._day_from, self._day_until = self.now - into_day, self.now + 86400.0 - into_day
            day = int(since // 86400)
            if day != self._phase_day:
                self._phase_day = day
                phase = self.recipe.phase_on(day) if day >= 0 else None
                self._phase = phase
                self._use_phase(phase)
                self._night_aware = bool(
                    phase and (phase.night_targets or phase.night_values) and self.zone.light is not None
                )
                self._night = None
        night = self._night_aware and self.is_night()
        if night is not self._night:
            self._night = night
            phase = self._phase
            T: dict = {}
            if phase:
                for metric, (lo, hi) in phase.targets.items():
                    T[f"{metric}.min"], T[f"{metric}.max"] = lo, hi
                T.update(phase.values)
                if night:
                    for metric, (lo, hi) in phase.night_targets.items():
                        T[f"{metric}.min"], T[f"{metric}.max"] = lo, hi
                    T.update(phase.night_values)
            self.T = T

    def _phase_changed(self, phase: M.Phase | None) -> None:
        """The recipe entered another phase: what drift() measures from moves with the targets. A
        recorded value of a metric both phases target is scaled by the ratio of their targets' middles
        (an EC recorded at 1.2 under 1.0..1.4 is 1.6 under 1.4..1.8); any other is forgotten and taken
        again from the next reading. An event says so. A zone seen for the first time only notes it."""
        st = self.st
        old_name, name = st.phase, (phase.name if phase is not None else None)
        st.phase = name
        if old_name is None or phase is None:
            return
        old = next((p for p in self.recipe.phases if p.name == old_name), None)
        moved = {}
        for metric in sorted(self.compiled.drift_metrics):
            base = st.solution.get(metric)
            if base is None:
                continue
            if old is not None and metric in old.targets and metric in phase.targets:
                mid_old, mid_new = sum(old.targets[metric]) / 2.0, sum(phase.targets[metric]) / 2.0
                if mid_old:
                    st.solution[metric] = moved[metric] = base * mid_new / mid_old
                    continue
            del st.solution[metric]
            moved[metric] = None
        self.dec.events.append(
            ZoneEvent(
                "RECIPE_PHASE_CHANGED",
                self.now,
                {
                    "from": old_name,
                    "to": name,
                    "drift_baseline": moved,
                    "cause": f"recipe {self.recipe.name} day {self._phase_day}",
                    "ruleset_version": self.version,
                },
            )
        )

    def is_night(self) -> bool:
        """Are the zone's lights off now (its local time outside `light`)? False without a light schedule."""
        light = self.zone.light
        if light is None:
            return False
        on, off = light
        tod = self.time_of_day()
        if on <= off:
            return not (on <= tod < off)
        return off <= tod < on

    def _use_phase(self, phase: M.Phase | None) -> None:
        """The settings of the recipe phase apply while it lasts (language 1.2): those of the phase
        left go back to the zone's, the new phase's apply, the tick folding them in is swapped."""
        new = phase.settings if phase is not None else {}
        old = self._phase_settings
        if new == old:
            return
        S = dict(self.S)
        for k in old:
            S[k] = self._zone_S.get(k)
        S.update(new)
        self._phase_settings = dict(new)
        self.S = S
        self.tick_fn = self.compiled.tick_for(self.zone, S)[0]
        self._budgets()

    def _baseline(self) -> None:
        """The first reading of a solution nobody recorded is its baseline for drift()."""
        for metric in self.compiled.drift_metrics:
            if metric not in self.st.solution and self.mv.get(metric) is not None:
                self.st.solution[metric] = self.mv[metric]

    # ---- values the generated code asks for --------------------------------------------------
    def age(self, metric: str):
        ts = self.mts.get(metric)
        return None if ts is None else self.now - ts

    def unchanged_for(self, metric: str):
        if self.rv.get(metric) is None:
            return None
        u = self.st.unchanged.get(metric)
        return None if u is None else self.now - u[1]

    def current(self, channel: str):
        return self.cur.get(channel)

    def flow(self, channel: str):
        return self.flw.get(channel)

    def flow_flag(self, channel: str):
        return self.flg.get(channel)

    # A channel the zone does not bind (language 1.2) reads unknown, is not on, is off, is not locked.
    def on_for(self, channel: str) -> float | None:
        c = self.st.channels.get(channel)
        if c is None:
            return None
        return self.now - c.since if c.is_on else 0.0

    def off_for(self, channel: str) -> float | None:
        c = self.st.channels.get(channel)
        if c is None:
            return None
        return 0.0 if c.is_on else self.now - c.since

    def moves_level(self, channel: str) -> bool | None:
        ch = self.channels.get(channel)
        return None if ch is None else ch.moves_level

    def timeouts(self, channel: str) -> float | None:
        c = self.st.channels.get(channel)
        return None if c is None else float(c.timeouts)

    def is_on(self, channel: str) -> bool:
        c = self.st.channels.get(channel)
        return c is not None and c.is_on

    def locked(self, channel: str) -> bool:
        return self.lock_of(channel) is not None

    def lock_of(self, channel: str) -> str | None:
        """The code of an active locking alert on `channel` (or on the whole zone), or None."""
        alerts = self.st.alerts
        if not alerts or channel not in self.st.channels:
            return None
        for (code, ch), a in alerts.items():
            if a.status == ACTIVE and (ch == channel or ch is None) and self.rs.alerts[code].locks:
                return code
        return None

    def failures(self, channel: str, window: float) -> float | None:
        c = self.st.channels.get(channel)
        if c is None:
            return None
        since = self.now - window
        return float(sum(1 for t in c.failures if t >= since))

    def filled(self, channel: str, window: float, states: tuple = ()) -> float | None:
        """Litres the water level rose while `channel` was on (in one of `states`, when given) in
        the last `window`; unknown while the level was unknown for the whole window."""
        st = self.st
        if channel not in st.channels or st.level_seen is None or self.now - st.level_seen > window:
            return None
        since = self.now - window
        total = 0.0
        for ts, litres, where in st.fills.get(channel, ()):
            if ts >= since and (not states or any(s in where for s in states)):
                total += litres
        return total

    def _track_fills(self) -> None:
        """What `filled(...)` counts: each rise (or fall) of the water level between two ticks, in
        litres, put down to the channels that were on and the machine states the zone was in."""
        st, now = self.st, self.now
        level = self.mv.get(LEVEL_METRIC)
        if level is None:
            st.fill_prev = None
            return
        st.level_seen = now
        prev = st.fill_prev
        if prev is not None and prev[3] and prev[0] < now:
            litres = (level - prev[1]) / 100.0 * self.reservoir_l
            for ch in prev[3]:
                window = self.compiled.filled_channels.get(ch, 3600.0)
                bucket = max(60.0, window / 500.0)
                rows = st.fills.setdefault(ch, [])
                if rows and now - rows[-1][0] < bucket and rows[-1][2] == prev[2]:
                    rows[-1][1] += litres
                else:
                    rows.append([now, litres, prev[2]])
                horizon = now - window - bucket
                while rows and rows[0][0] < horizon:
                    rows.pop(0)
        st.fill_prev = [now, level, [], []]

    def _note_fills(self) -> None:
        """At the end of a tick: the channels on and the states the zone is in until the next one."""
        st = self.st
        if st.fill_prev is not None and st.fill_prev[0] == self.now:
            on = [ch for ch in self.compiled.filled_channels if (c := st.channels.get(ch)) is not None and c.is_on]
            st.fill_prev[2], st.fill_prev[3] = list(st.machines.values()), on

    def alert_active(self, code: str) -> bool:
        return any(a.status == ACTIVE for (c, _), a in self.st.alerts.items() if c == code)

    def solution_age(self):
        s = self.st.solution_started_at
        return None if s is None else self.now - s

    def solution_value(self, metric: str):
        return self.st.solution.get(metric)

    def last_dose_age(self) -> float:
        t = self.st.last_dose_at
        return INF if t is None else self.now - t

    def local(self, t: float) -> float:
        """Seconds of local wall time at epoch `t` (UTC plus the zone's offset)."""
        if self.tz is None:
            return t
        hour = int(t // 3600)
        if hour != self._offset_hour:
            self._offset_hour = hour
            off = datetime.fromtimestamp(t, self.tz).utcoffset()
            self._offset = off.total_seconds() if off else 0.0
        return t + self._offset

    def time_of_day(self) -> float:
        return self.local(self.now) % 86400.0

    def _since_day_zero(self) -> float:
        """Local seconds since the zone's day 0: midnight of `planted`, else when its state was created."""
        zero = self._planted_epoch if self._planted_epoch is not None else self.local(self.st.created_at)
        return self.local(self.now) - zero

    def recipe_day(self) -> int:
        return int(self._since_day_zero() // 86400)

    def change(self, metric: str, window: float):
        v = self.mv.get(metric)
        h = self.st.history.get(metric)
        if v is None or not h:
            return None
        i = bisect_right(h, self.now - window, key=_TS)
        return None if i == 0 else v - h[i - 1][1]

    def drift(self, metric: str):
        v = self.mv.get(metric)
        base = self.st.solution.get(metric)
        if v is None or not base:
            return None
        return abs(v - base) / base * 100.0

    def due(self, every: float, at: float) -> bool:
        """Is a schedule `every D at T`, counted from the day the solution was started, due?"""
        return self.now >= self.due_at(every, at)

    def due_at(self, every: float, at: float) -> float:
        """When a schedule `every D at T`, counted from the day the solution was started, falls due (inf: never)."""
        anchor = self.st.solution_started_at
        if anchor is None:
            return INF
        key = (anchor, every, at)
        when = self._due_cache.get(key)
        if when is None:
            local_anchor = self.local(anchor)
            midnight_local = local_anchor - local_anchor % 86400.0
            due_local = midnight_local + every + at
            when = due_local - (self.local(due_local) - due_local)
            if len(self._due_cache) > 64:
                self._due_cache.clear()
            self._due_cache[key] = when
        return when

    # ---- holds, alerts, transitions, rules (called by generated code) ----------------------------
    def hold(self, key, cond, hold_s: float) -> bool:
        holds = self.st.holds
        if cond:
            since = holds.setdefault(key, self.now)
            return self.now - since >= hold_s
        holds.pop(key, None)
        return False

    def alert_true(self, spec, a: AlertState | None) -> None:
        now = self.now
        if a is None:
            a = AlertState(spec.code, spec.channel, PENDING, now)
            self.st.alerts[spec.key] = a
        if now - a.since >= spec.hold:
            self.raise_alert(spec.code, spec.channel, {"condition": spec.when_text}, existing=a)

    def alert_clear(self, spec, a: AlertState) -> None:
        if a.clear_since is None:
            a.clear_since = self.now
        if self.now - a.clear_since >= spec.clear_hold:
            self.resolve_alert(a, None, f"cleared: {spec.clear_text}")

    def raise_alert(self, code: str, channel: str | None, details: dict, existing: AlertState | None = None):
        key = (code, channel)
        a = existing or self.st.alerts.get(key)
        if a is not None and a.status == ACTIVE:
            return
        if a is None:
            a = AlertState(code, channel, ACTIVE, self.now)
            self.st.alerts[key] = a
        a.status, a.since, a.clear_since, a.details = ACTIVE, self.now, None, details
        al = self.rs.alerts[code]
        self.dec.alerts.append(
            AlertChange(
                code,
                channel,
                "raised",
                self.now,
                al.source,
                al.severity,
                al.text,
                details,
                ruleset_version=self.version,
            )
        )

    def resolve_alert(self, a: AlertState, by: str | None, why: str) -> None:
        del self.st.alerts[(a.code, a.channel)]
        al = self.rs.alerts[a.code]
        self.dec.alerts.append(
            AlertChange(
                a.code,
                a.channel,
                "resolved",
                self.now,
                al.source,
                al.severity,
                al.text,
                dict(a.details),
                by,
                why,
                self.version,
            )
        )

    def go(self, tr, why: str | None = None) -> None:
        """Take transition `tr` of the machine's current state; `why` (a restart) overrides its trigger."""
        st, now = self.st, self.now
        machine = tr.machine
        source = st.machines[machine]
        m = self.rs.machines[machine]
        if why is None and self._change_held(tr):
            return
        if why is None:
            reason, cause = self.compiled.explain_transition(self, tr), f"transition {source} -> {tr.model.target}"
        else:
            reason = f"restart during {source}: {why}"
            cause = f"transition {source} -> {tr.model.target} on {why}"
        self.run_actions(m.states[source].exit, f"state {source} (exit)")
        self._acting_states = (tr.model.target,)
        try:
            self.run_actions(tr.model.actions, cause)
        finally:
            self._acting_states = ()
        st.machines[machine] = tr.model.target
        st.entered_at[machine] = now
        prefix = machine + "/"
        for k in [k for k in st.holds if k.startswith(prefix)]:
            del st.holds[k]
        index = tr.index if tr.model.source == source else -1  # -1: the fail of an earlier step of the change
        self.dec.transitions.append(StateChange(machine, source, tr.model.target, now, reason, index))
        g = st.dose_group
        if g is not None and source in g["states"] and not self._group_states_on(g):
            self._drop_dose_group(
                g["steps"][0][0], st.channels.get(g["steps"][0][0]), f"its states ({', '.join(g['states'])}) were left"
            )
        self._acting_states = (tr.model.target,)
        try:
            self.run_actions(m.states[tr.model.target].enter, f"state {tr.model.target}")
        finally:
            self._acting_states = ()

    # ---- restarts ---------------------------------------------------------------------------------
    def recover(self, st: ZoneState, now: float, why: str) -> Decisions:
        """After a daemon restart or a zone takeover (§13): a timed step that was under way is not
        resumed. Every machine in a state with `fail after`, or in a later step of a water change
        (whose fail is that of the step before it), takes that fail transition now, its reason naming
        `why`, raising what it raises; the failure state's rules then run as usual. Every channel is
        re-asserted at the next evaluation: the node may have done anything meanwhile."""
        self.now, self.st = now, st
        self.dec = dec = Decisions()
        for mname in self.rs.machines:
            state = st.machines.get(mname)
            if not self.activity.machine_active(mname):
                continue  # never run in this zone
            tr = self.fail_of(mname, state) if state is not None else None
            if tr is not None:
                self.go(tr, why)
        for c in st.channels.values():
            c.reassert = True
        return dec

    def fail_of(self, machine: str, state: str):
        """The fail transition a restart in `state` takes (a TransitionSpec), or None: the state's own
        `fail after`, else, for a step of a water change that has none (a stabilization), the fail
        of the step that led to it."""
        fails = self._fails.get(machine)
        if fails is None:
            fails = self._fails[machine] = self._fail_map(machine)
        return fails.get(state)

    def _fail_map(self, machine: str) -> dict:
        from .compiler import TransitionSpec  # the compiler imports this module

        m = self.rs.machines[machine]
        own = {}
        for sname, s in m.states.items():
            for i, t in enumerate(s.transitions):
                if t.is_fail:
                    own[sname] = TransitionSpec(machine, i, t)
                    break
        fails = dict(own)
        for sname, s in m.states.items():
            for i, t in enumerate(s.transitions):
                if self._plan(TransitionSpec(machine, i, t)) is None:
                    continue  # not the start of a water change
                todo = [(t.target, own.get(t.target))]
                seen = {t.target}
                while todo:
                    name, inherited = todo.pop()
                    if inherited is not None:
                        fails.setdefault(name, inherited)
                    for t2 in m.states[name].transitions:
                        if not t2.is_fail and t2.target != sname and t2.target not in seen:
                            seen.add(t2.target)
                            todo.append((t2.target, own.get(t2.target) or inherited))
        return fails

    def fire(self, spec) -> None:
        last = self.st.fired.get(spec.name)
        if last is not None and (spec.repeat is None or self.now - last < spec.repeat):
            return
        self.st.fired[spec.name] = self.now
        self._acting_states = spec.model.states
        try:
            self.run_actions(spec.model.actions, f"rule {spec.name}")
        finally:
            self._acting_states = ()

    def rule_idle(self, spec) -> None:
        self.st.fired.pop(spec.name, None)
        self.st.holds.pop(spec.hold_key, None)

    # ---- actions --------------------------------------------------------------------------
    def run_actions(self, actions, cause: str) -> None:
        recorded: dict = {}
        for a in actions:
            where = f"{cause} ({a.span.path}:{a.span.line})"
            verb = a.verb
            if verb in ("start", "open", "stop", "close", "recirculate", "release"):
                if a.target not in self.st.channels:
                    continue
                c = self.st.channels[a.target]
                c.cause = where
                c.guards = a.guards
                c.desired_until = None
                c.denied_by = None
                if verb in ("start", "open"):
                    c.desired = ON
                    if a.amount is not None:
                        dur = self.compiled.value(self, a.amount)
                        c.desired_until = self.now + dur if dur is not None else self.now
                elif verb in ("stop", "close"):
                    c.desired = OFF
                elif verb == "recirculate":
                    c.desired = DUTY
                else:
                    c.desired = RELEASED
            elif verb == "dose":
                self._dose(a, where)
            elif verb == "raise":
                self.raise_alert(a.target, None, {"by": where})
            elif verb == "resolve":
                if self.rs.alerts[a.target].locks:
                    for al in [al for (code, _), al in self.st.alerts.items() if code == a.target]:
                        if al.status == ACTIVE:
                            self.dec.refusals.append(
                                Refusal(
                                    al.channel or a.target,
                                    "lock",
                                    f"`resolve {a.target}` by {where} ignored: only the operator's reset clears a lock",
                                    self.now,
                                )
                            )
                    continue
                for al in [al for (code, _), al in self.st.alerts.items() if code == a.target]:
                    self.resolve_alert(al, None, f"resolved by {where}")
            elif verb == "record":
                for m in a.names:
                    recorded[m] = self.st.solution[m] = self.mv.get(m)
            elif verb == "reset_solution":
                self.st.solution_started_at = self.now
                recorded["solution_started_at"] = self.now
            elif verb == "event":
                self.dec.events.append(
                    ZoneEvent(a.target, self.now, {**recorded, "cause": where, "ruleset_version": self.version})
                )

    def _dose(self, a: M.Action, where: str) -> None:
        if a.target not in self.st.channels:
            return
        c = self.st.channels[a.target]
        if self.st.dose_group is not None:
            self._refuse_dose(a.target, c, f"a dose group is under way ({self.st.dose_group['cause']})")
            return
        if a.then:
            self._start_dose_group(a, where)
            return
        ml = self._dose_ml(a.target, c, a.amount)
        if ml is None or not self._may_dose(a.target, c, ml, a.guards):
            return
        self._give_dose(a.target, c, ml, where)

    def _dose_ml(self, name: str, c, amount_expr) -> float | None:
        """A dose's amount in ml, or None (and a refusal saying why) when it is unknown or not above 0."""
        amount = self.compiled.value(self, amount_expr)
        if amount is None:
            self._refuse_dose(name, c, "the dose amount is unknown (a value it is worked out from is unknown)")
            return None
        ml = round(amount * 1000.0, 3)
        if ml <= 0:
            self._refuse_dose(name, c, f"the dose amount is {ml:g} ml: nothing to give")
            return None
        return ml

    def _may_dose(self, name: str, c, ml: float, guards) -> bool:
        """May `ml` be dosed on `name` now? Records the refusal when not."""
        why = self._dose_limited(name, c, ml)  # first: these hold for a while, the guards' reasons come and go
        if why is not None:
            self._refuse_dose(name, c, why)
            return False
        verdict = self.guard_verdict(name, guards)
        if verdict is not None:
            self._refuse(name, c, verdict)
            return False
        lock = self.lock_of(name)
        if lock is not None:
            self._refuse_locked(name, c, lock)
            return False
        why = self._circulation_blocked()
        if why is not None:
            self._refuse_dose(name, c, why)
            return False
        return True

    def _give_dose(self, name: str, c, ml: float, where: str, in_group: bool = False) -> None:
        c.denied_by = None  # allowed: the next refusal is news again
        self._send(name, c, "dose", {"ml": ml}, where, "dose")
        self._dosed(name, c, ml, in_group)

    def _refuse_locked(self, name: str, c, code: str) -> None:
        key = "lock" + code
        if c.denied_by != key:
            c.denied_by = key
            self.dec.refusals.append(
                Refusal(name, "lock", f"locked by {code} until an operator reset, whatever the guards say", self.now)
            )

    # ---- dose groups (language 1.2: `dose A x then B y after W`) ------------------------------------
    def _start_dose_group(self, a: M.Action, where: str) -> None:
        """The guards are asked for every doser of the group before the first dose; the later doses
        follow, each after its wait (see _advance_dose_group). The amounts are worked out now."""
        steps = [(a.target, a.amount, 0.0, None), *a.then]
        planned = []
        for ch, amount, wait, wait_setting in steps:
            c = self.st.channels.get(ch)
            if c is None:
                return
            ml = self._dose_ml(ch, c, amount)
            if ml is None:
                return
            if wait_setting:
                wait = float(self.S.get(wait_setting, wait))
            planned.append([ch, ml, float(wait)])
        for ch, ml, _ in planned:
            if not self._may_dose(ch, self.st.channels[ch], ml, a.guards):
                return
        first, rest = planned[0], planned[1:]
        self._give_dose(first[0], self.st.channels[first[0]], first[1], where, in_group=True)
        if not rest:
            self.st.last_dose_at = self.now
            return
        self.st.dose_group = {
            "cause": where,
            "states": list(self._acting_states),
            "guards": list(a.guards),
            "steps": rest,
            "due": self.now + rest[0][2],
            "last_at": self.now,
        }

    def _advance_dose_group(self) -> None:
        """The next dose of the group in flight, once its wait is over and its doser may dose. The
        group is dropped (a refusal says so) when the states its rule runs in are left or a doser of
        it is locked. `last_dose.age` counts from the end of the group: it is one correction."""
        st, g = self.st, self.st.dose_group
        ch, ml, _ = g["steps"][0]
        c = st.channels.get(ch)
        if not self._group_states_on(g):
            self._drop_dose_group(ch, c, f"its states ({', '.join(g['states'])}) were left")
            return
        if c is None:
            self._drop_dose_group(ch, c, f"the zone does not bind {ch}")
            return
        if self.now < g["due"]:
            return
        lock = self.lock_of(ch)
        if lock is not None:
            self._drop_dose_group(ch, c, f"{ch} is locked by {lock}")
            return
        if not self._may_dose(ch, c, ml, tuple(g["guards"])):
            return  # asked again at the next tick
        self._give_dose(ch, c, ml, g["cause"] + " (then)", in_group=True)
        g["steps"].pop(0)
        g["last_at"] = self.now
        if g["steps"]:
            g["due"] = self.now + g["steps"][0][2]
        else:
            st.dose_group = None
            st.last_dose_at = self.now

    def _group_states_on(self, g) -> bool:
        """Is the zone in one of the states of the rule (or state) that started the group? Yes without states."""
        if not g["states"]:
            return True
        machines = self.st.machines
        return any((s := self.rs.state(name)) is not None and machines.get(s.machine) == name for name in g["states"])

    def _drop_dose_group(self, ch: str, c, why: str) -> None:
        g = self.st.dose_group
        left = ", ".join(f"{s[0]} {s[1]:g} ml" for s in g["steps"])
        self.dec.refusals.append(
            Refusal(ch, "dose group", f"dropped: {why}; not given: {left} ({g['cause']})", self.now)
        )
        self.st.dose_group = None
        self.st.last_dose_at = max(self.st.last_dose_at or g["last_at"], g["last_at"])

    # ---- operator reset -------------------------------------------------------------------------
    def reset(self, st: ZoneState, who: str, why: str, now: float) -> Decisions:
        """The operator's safety reset (§16.2): resolve every alert that waits for one."""
        self.now, self.st = now, st
        self.dec = dec = Decisions()
        for a in [a for (code, _), a in st.alerts.items() if self.rs.alerts[code].clear_on_reset]:
            self.resolve_alert(a, who, why)
        for c in st.channels.values():
            c.failures.clear()
            c.timeouts = 0
            c.retry_at = None
            c.denied_by = None
            c.ineffective = 0
            c.dose_checks.clear()
        return dec
