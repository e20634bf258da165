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
from .channels import INF, ChannelControl
from .decisions import AlertChange, Decisions, StateChange, ZoneEvent
from .safety import FROZEN, OK, STALE, SafetyMixin
from .state import ACTIVE, DUTY, OFF, ON, PENDING, RELEASED, AlertState, ChannelState, ZoneState

_TS = itemgetter(0)


class ZoneProgram(SafetyMixin, ChannelControl):
    """Rules compiled for one zone. Not thread-safe: one evaluation at a time."""

    def __init__(self, compiled, zone: M.Zone, tick_fn, guard_fns: dict):
        rs: M.RuleSet = compiled.ruleset
        self.compiled = compiled
        self.rs = rs
        self.zone = zone
        self.version = rs.ruleset_version
        self.profile = rs.profiles[zone.profile]
        self.S = self.profile.settings
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
        self._day_anchor: float | None = None
        self._day_from = self._day_until = 0.0
        self._offset_hour = None
        self._offset = 0.0
        self._due_cache: dict = {}
        self._init_safety()
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
        if not self.channels.keys() <= st.channels.keys():  # a state saved before the zone gained a channel
            for name, ch in self.channels.items():
                if name not in st.channels:
                    st.channels[name] = ChannelState(is_on=ch.fail_safe == "NC", since=now)
        self._read_metrics()
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
        self._check_doses()
        if len(st.entered_at) < len(self.rs.machines) or None in st.entered_at.values():
            for mname, m in self.rs.machines.items():
                if st.entered_at.get(mname) is None:  # not entered yet: run its enter actions
                    state = st.machines.get(mname) or m.initial
                    st.machines[mname] = state
                    st.entered_at[mname] = now
                    self.run_actions(m.states[state].enter, f"state {state}")
        self.tick_fn(self)
        self._reconcile()
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
        """The recipe phase's targets for today; worked out again only when the day changes."""
        anchor = self._planted_epoch if self._planted_epoch is not None else self.st.created_at
        if anchor == self._day_anchor and self._day_from <= self.now < self._day_until:
            return
        since = self._since_day_zero()
        into_day = since % 86400.0
        self._day_anchor = anchor
        self._day_from, self._day_until = self.now - into_day, self.now + 86400.0 - into_day
        day = int(since // 86400)
        if day == self._phase_day:
            return
        self._phase_day = day
        phase = self.recipe.phase_on(day) if day >= 0 else None
        T: dict = {}
        if phase:
            for metric, (lo, hi) in phase.targets.items():
                T[f"{metric}.min"], T[f"{metric}.max"] = lo, hi
            T.update(phase.values)
        self.T = T

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

    def on_for(self, channel: str) -> float:
        c = self.st.channels[channel]
        return self.now - c.since if c.is_on else 0.0

    def off_for(self, channel: str) -> float:
        c = self.st.channels[channel]
        return 0.0 if c.is_on else self.now - c.since

    def moves_level(self, channel: str) -> bool:
        return self.channels[channel].moves_level

    def timeouts(self, channel: str) -> float:
        return float(self.st.channels[channel].timeouts)

    def is_on(self, channel: str) -> bool:
        return self.st.channels[channel].is_on

    def locked(self, channel: str) -> bool:
        for (code, ch), a in self.st.alerts.items():
            if a.status == ACTIVE and (ch == channel or ch is None) and self.rs.alerts[code].locks:
                return True
        return False

    def failures(self, channel: str, window: float) -> float:
        since = self.now - window
        return float(sum(1 for t in self.st.channels[channel].failures if t >= since))

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
        anchor = self.st.solution_started_at
        if anchor is None:
            return False
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
        return self.now >= when

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
        self.run_actions(tr.model.actions, cause)
        st.machines[machine] = tr.model.target
        st.entered_at[machine] = now
        prefix = machine + "/"
        for k in [k for k in st.holds if k.startswith(prefix)]:
            del st.holds[k]
        index = tr.index if tr.model.source == source else -1  # -1: the fail of an earlier step of the change
        self.dec.transitions.append(StateChange(machine, source, tr.model.target, now, reason, index))
        self.run_actions(m.states[tr.model.target].enter, f"state {tr.model.target}")

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
        self.run_actions(spec.model.actions, f"rule {spec.name}")

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
        amount = self.compiled.value(self, a.amount)
        if amount is None or amount <= 0:
            return
        ml = round(amount * 1000.0, 3)
        why = self._dose_limited(a.target, c, ml)  # first: these hold for a while, the guards' reasons come and go
        if why is not None:
            self._refuse_dose(a.target, c, why)
            return
        verdict = self.guard_verdict(a.target, a.guards)
        if verdict is not None:
            self._refuse(a.target, c, verdict)
            return
        why = self._circulation_blocked()
        if why is not None:
            self._refuse_dose(a.target, c, why)
            return
        c.denied_by = None  # allowed: the next refusal is news again
        self._send(a.target, c, "dose", {"ml": ml}, where, "dose")
        self._dosed(a.target, c, ml)

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
