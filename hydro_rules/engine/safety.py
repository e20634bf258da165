"""Safety the engine enforces whatever the rules say (a mixin of ZoneProgram).

- Sensor readings: stale, frozen or implausible values are unknown to rules
  (`metric_status`), so no condition fires on them.
- Dosing: a per-doser budget, doses whose effect the sensor does not show stop
  the doser after a few in a row, no dose on an untrusted reading, and none
  unless circulation goes on for the mixing time (duty control then keeps it on).
- Water changes: a transition that starts one waits while the water path is not
  sound (a critical alert on it, a pump it must stop whose node does not answer).
- Nodes: one that is heard again after a silence (or that the daemon saw reboot)
  gets every relay re-asserted, and what timed out while it was away is forgotten.
"""

from __future__ import annotations

import math

from ..lang.model import CHANGE_WAITING, DOSE_INEFFECTIVE
from .channels import RENEW_S
from .decisions import Held, Refusal
from .state import ACTIVE, DUTY, ON

OK, STALE, FROZEN, IMPLAUSIBLE = "ok", "stale", "frozen", "implausible"


#: a node unheard for longer than this is silent; heard again, it has come back
SILENCE_S = 180.0
#: readings after a jump are believed once the jump is this old and no other came
SETTLE_S = 600.0
#: default dosing budget per doser, ml per litre of reservoir (dosing.max_per_hour / max_per_day unset)
BUDGET_ML_PER_L_HOUR = 0.15
BUDGET_ML_PER_L_DAY = 0.3
#: ... of a nutrient doser (one that `affects ec up`): a solution made from source water after a
#: change needs about 1 to 1.6 ml of concentrate per litre within an hour or two
NUTRIENT_ML_PER_L_HOUR = 1.2
NUTRIENT_ML_PER_L_DAY = 3.0
DAY_S = 86400.0


class SafetyMixin:
    """Engine-side safety; ZoneProgram holds the attributes used here."""

    def _init_safety(self) -> None:
        rs, zone = self.rs, self.zone
        self.frozen_s = {m: rs.metrics[m].frozen_s for m in self.metric_src if rs.metrics[m].frozen_s}
        self.recirc = tuple(ch for ch in self.compiled.recirculated if ch in self.channels)
        #: metrics whose unchanged time is kept: for `unchanged_for` and for `frozen after`
        self.track_unchanged = frozenset(self.compiled.unchanged_metrics) | self.frozen_s.keys()
        self.affects: dict = {}  # doser channel -> (metric, direction, smallest change that shows)
        for name, ch in self.channels.items():
            aff = ch.affects
            if ch.kind == "doser" and aff and aff[0] in rs.metrics:
                m = rs.metrics[aff[0]]
                least = aff[2]
                if least is None:
                    span = m.high - m.low
                    least = 0.001 * span if math.isfinite(span) else 0.0
                self.affects[name] = (aff[0], aff[1], least)
        self.bounded_off = zone.bounded_off_nodes
        self.relay_nodes = frozenset(
            b.node_uid for name, b in zone.channels.items() if self.channels[name].kind in ("pump", "valve", "doser")
        )
        self._budgets()
        self._plaus = {
            name: (m.low, m.high, m.implausible_at_limits, m.implausible_zero, m.max_step)
            for name, m in rs.metrics.items()
        }
        self._node_keys: list = []  # (node, telemetry key) of the relay nodes, from the telemetry seen
        self._snap_len = -1
        self._plans: dict = {}
        self._last_now: float | None = None

    def _budgets(self) -> None:
        """The dosing budgets per doser, from the settings in effect (a recipe phase may set them)."""
        per_hour, per_day = self.S["dosing.max_per_hour"], self.S["dosing.max_per_day"]  # None: from the reservoir
        litres = self.zone.reservoir_l
        #: doser -> (ml per hour, ml per day): a setting applies to every doser; unset, a nutrient doser
        #: (`affects ec up`) gets NUTRIENT_ML_PER_L_*, any other BUDGET_ML_PER_L_*, per litre of reservoir
        self.budgets: dict = {}
        for name, ch in self.channels.items():
            if ch.kind != "doser":
                continue
            feeds = ch.affects is not None and ch.affects[0] == "ec" and ch.affects[1] > 0
            hour = NUTRIENT_ML_PER_L_HOUR if feeds else BUDGET_ML_PER_L_HOUR
            day = NUTRIENT_ML_PER_L_DAY if feeds else BUDGET_ML_PER_L_DAY
            self.budgets[name] = (
                per_hour * 1000.0 if per_hour else hour * litres,
                per_day * 1000.0 if per_day else day * litres,
            )

    def budget_ml(self, name: str) -> tuple[float, float]:
        """A doser's dosing budget: (ml per hour, ml per day)."""
        got = self.budgets.get(name)
        if got is None:
            per_hour, per_day = self.S["dosing.max_per_hour"], self.S["dosing.max_per_day"]
            litres = self.zone.reservoir_l
            got = (
                per_hour * 1000.0 if per_hour else BUDGET_ML_PER_L_HOUR * litres,
                per_day * 1000.0 if per_day else BUDGET_ML_PER_L_DAY * litres,
            )
        return got

    # ---- readings ---------------------------------------------------------------------------
    def metric_status(self, metric: str) -> str:
        """ok | stale (also never seen) | frozen | implausible, as of this tick."""
        return self.mstat.get(metric, STALE)

    def _plausibility(self, metric: str, v: float, ts: float) -> str:
        low, high, at_limits, zero, step = self._plaus[metric]
        if v < low or v > high or (at_limits and (v <= low or v >= high)) or (zero and v == 0):
            return IMPLAUSIBLE
        if step is None:
            return OK
        amount, per = step
        p = self.st.plausible.get(metric)  # [previous value, its ts, last trusted value, jumped at or None]
        if p is None:
            self.st.plausible[metric] = [v, ts, v, None]
            return OK
        if ts > p[1]:
            allowed = amount * max(1.0, (ts - p[1]) / per)
            if p[3] is not None and abs(v - p[2]) <= allowed:
                p[3] = None  # back where it was trusted: a glitch
            elif abs(v - p[0]) > allowed:
                p[3] = ts  # a jump no reservoir can make
            p[0], p[1] = v, ts
            if p[3] is not None and ts - p[3] >= SETTLE_S:
                p[3] = None  # the new level holds: a replaced or recalibrated probe
            if p[3] is None:
                p[2] = v
        return OK if p[3] is None else IMPLAUSIBLE

    # ---- nodes --------------------------------------------------------------------------------
    def _hear_nodes(self) -> None:
        if not self.relay_nodes:
            return
        snap = self.snap
        if len(snap) != self._snap_len:  # new series appeared: which of them come from relay nodes
            self._snap_len = len(snap)
            self._node_keys = [(key[0], key) for key in snap if key[0] in self.relay_nodes]
        latest: dict = {}
        for node, key in self._node_keys:
            r = snap.get(key)
            if r is None:  # a series went away: look again next time
                self._snap_len = -1
            elif r[1] > latest.get(node, -math.inf):
                latest[node] = r[1]
        heard, now = self.st.nodes_heard, self.now
        for node, ts in latest.items():
            h = heard.get(node)
            if h is None:
                heard[node] = [ts, None]
            elif ts > h[0]:
                if h[1] is not None:  # seen silent at an evaluation, now heard again
                    self._came_back(node, h[0])
                h[0], h[1] = ts, None
            elif h[1] is None and now - h[0] > SILENCE_S:
                h[1] = h[0]

    def node_came_back(self, st, node_uid: str, now: float, silent_since: float | None = None) -> None:
        """A node rebooted or was heard again (the daemon sees heartbeats, status and lwt): re-assert
        each of its relays at the next evaluation. Failures while it was away are forgotten."""
        self.now, self.st = now, st
        self._came_back(node_uid, now if silent_since is None else silent_since)

    def announce_bounded_off(self, node_uids) -> None:
        """Nodes that announced (in their hello) that they end a timed OFF by themselves: their NC pumps
        get bounded OFFs too, as if the rule set declared them `bounded_off`. The rule set's own
        declarations stay; an announcement withdrawn is forgotten at the next call."""
        self.bounded_off = self.zone.bounded_off_nodes | frozenset(n for n in node_uids if n in self.zone.nodes)

    def node_back(self, st, node_uid: str, now: float, why: str) -> None:
        """A node rebooted or came back (uptime went down, ONLINE after its lwt, a new session): its
        relays came up OPEN (hydro 2.0 firmware), so each of its channels is believed off since now
        (a node declared `bounded_off` comes up at its fail-safe defaults: an NC pump runs), and
        re-asserted at the next evaluation: an NC pump the rules want running is told ON again.
        `why` is for the caller's log; the engine's decisions name the rule that wants each state."""
        self.now, self.st = now, st
        self._came_back(node_uid, now)
        defaults = node_uid in self.bounded_off
        for name, b in self.bindings.items():
            c = st.channels.get(name)
            if b.node_uid == node_uid and c is not None:
                c.is_on = defaults and self.channels[name].fail_safe == "NC"
                c.commanded_until = None
                c.last_cmd = None

    def _came_back(self, node: str, silent_since: float) -> None:
        for name, b in self.bindings.items():
            c = self.st.channels.get(name)
            if b.node_uid != node or c is None:
                continue
            c.reassert = True
            c.since = self.now  # what its relay did while it was away is not known: on_for starts again
            c.retry_at = None
            c.timeouts = 0
            c.pending.clear()
            c.acked.clear()  # its answers to what it was told before are moot
            c.intents.clear()
            c.failures = [t for t in c.failures if t < silent_since]

    def _renew_window(self, span: float | None = None) -> float:
        """A bounded command is renewed when this little of it is left: RENEW_S, or half of a command
        that lasts at most `span` (a short max_recirc_off is not renewed at every evaluation), and at
        least two ticks."""
        tick = 60.0 if self._last_now is None else self.now - self._last_now
        return max(RENEW_S if span is None else min(RENEW_S, span / 2.0), 2.0 * tick)

    # ---- dosing ---------------------------------------------------------------------------------
    def _dose_limited(self, name: str, c, ml: float) -> str | None:
        """Why the engine refuses this dose whatever the guards say (streak, reading, budget), or None."""
        now, S = self.now, self.S
        aff = self.affects.get(name)
        if aff is not None:
            if c.ineffective >= S["dosing.ineffective_after"]:
                return (
                    f"dosing stopped: {c.ineffective} doses in a row did not move {aff[0]} "
                    "(frozen sensor, empty concentrate tank or blocked line?); an operator reset resumes it"
                )
            status = self.metric_status(aff[0])
            if status != OK:
                return f"the {aff[0]} reading is {status}: no dose on a reading that cannot be trusted"
        if c.doses and now - c.doses[0][0] >= DAY_S:
            c.doses = [d for d in c.doses if now - d[0] < DAY_S]
        per_hour, per_day = self.budget_ml(name)
        hour = sum(d[1] for d in c.doses if now - d[0] < 3600.0)
        if hour + ml > per_hour + 1e-9:
            return f"the dosing budget of {per_hour:g} ml per hour is used up ({hour:g} ml given)"
        day = sum(d[1] for d in c.doses)
        if day + ml > per_day + 1e-9:
            return f"the dosing budget of {per_day:g} ml per day is used up ({day:g} ml given)"
        return None

    def _circulation_blocked(self) -> str | None:
        """Why circulation will not go on for the mixing time of a dose given now, or None."""
        now, mixing = self.now, self.S["dosing.mixing_time"]
        for rc in self.recirc:
            heard = self.st.nodes_heard.get(self.bindings[rc].node_uid)
            if heard is not None and heard[1] is not None:
                return f"{rc} cannot be seen circulating: its node has gone silent"
            r = self.st.channels[rc]
            ends = r.desired_until is not None and r.desired_until < now + mixing
            if not r.is_on or r.desired not in (DUTY, ON) or ends:
                return f"{rc} will not keep the solution circulating for the mixing time"
            if r.desired == DUTY and self.windows:
                tod = self.time_of_day()
                for w in self.windows:
                    if w.off and (w.start_s - tod) % 86400.0 < mixing:
                        return f"{rc} stops for its off window before the dose has mixed"
        return None

    def _refuse_dose(self, name: str, c, why: str) -> None:
        key = "dosing safety" + why
        if c.denied_by != key:
            c.denied_by = key
            self.dec.refusals.append(Refusal(name, "dosing safety", why, self.now))

    def _dosed(self, name: str, c, ml: float, in_group: bool = False) -> None:
        now, st = self.now, self.st
        mixing = self.S["dosing.mixing_time"]
        if not in_group:  # a dose group counts as one dose once it is over
            st.last_dose_at = now
        c.doses.append([now, ml])
        aff = self.affects.get(name)
        if aff is not None:
            c.dose_checks.append([now + mixing, self.mv.get(aff[0])])
        st.mixing_until = max(st.mixing_until or now, now + mixing)

    def _check_doses(self) -> None:
        """After the mixing time, did the sensor show the dose? Count those it did not, in a row."""
        now, st = self.now, self.st
        for name, (metric, direction, least) in self.affects.items():
            c = st.channels.get(name)
            if c is None or not c.dose_checks:
                continue
            while c.dose_checks and c.dose_checks[0][0] <= now:
                _, before = c.dose_checks.pop(0)
                v = self.mv.get(metric)
                if v is None or before is None:
                    continue
                if (v - before) * direction >= least:
                    c.ineffective = 0
                    continue
                c.ineffective += 1
                if c.ineffective == self.S["dosing.ineffective_after"] and DOSE_INEFFECTIVE in self.rs.alerts:
                    scope = self.rs.alerts[DOSE_INEFFECTIVE].scope
                    self.raise_alert(
                        DOSE_INEFFECTIVE,
                        name if scope is not None else None,
                        {"metric": metric, "doses": c.ineffective, "before": before, "after": v},
                    )

    # ---- water changes ---------------------------------------------------------------------------
    def _plan(self, tr):
        """(channels the change touches, channels its first state stops, starts) of a transition that
        starts a water change, else None. A change starts where a state that runs no NO pump or valve
        is left for one that starts one; the fail path (FAILED and what follows it) is recovery, not a change."""
        key = (tr.machine, tr.index, tr.model.source)
        if key in self._plans:
            return self._plans[key]
        t = tr.model
        m = self.rs.machines[tr.machine]
        plan = None
        if not t.is_fail and t.source != "FAILED" and not self._starts_no(m.states[t.source]):
            first = m.states[t.target]
            if self._starts_no(first):
                seen, todo = {t.target}, [t.target]
                while todo:
                    for t2 in m.states[todo.pop()].transitions:
                        if not t2.is_fail and t2.target != t.source and t2.target not in seen:
                            seen.add(t2.target)
                            todo.append(t2.target)
                touched = {
                    a.target
                    for s in seen
                    for a in m.states[s].enter
                    if a.target in self.channels and self.channels[a.target].kind in ("pump", "valve")
                }
                stops = {a.target for a in first.enter if a.verb in ("stop", "close") and a.target in touched}
                starts = {a.target for a in first.enter if a.verb in ("start", "open") and a.target in touched}
                plan = (frozenset(touched), frozenset(stops), frozenset(starts))
        self._plans[key] = plan
        return plan

    def _starts_no(self, state) -> bool:
        return any(
            a.verb in ("start", "open")
            and a.target in self.channels
            and self.channels[a.target].kind in ("pump", "valve")
            and self.channels[a.target].fail_safe != "NC"
            for a in state.enter
        )

    def _change_blocked(self, plan) -> str | None:
        touched, stops, starts = plan
        rs, st = self.rs, self.st
        for (code, ch), a in st.alerts.items():
            if a.status == ACTIVE and rs.alerts[code].severity == "critical" and (ch is None or ch in touched):
                return f"{code}{' on ' + ch if ch else ''} is active"
        for ch in sorted(stops):
            c = st.channels[ch]
            if c.timeouts > 0 or c.reassert or c.retry_at is not None:
                return f"{ch} must stop, but its node does not answer"
            heard = st.nodes_heard.get(self.bindings[ch].node_uid)
            if heard is not None and heard[1] is not None:
                return f"{ch} must stop, but its node has gone silent"
            if heard is None and (self.channels[ch].current or self.channels[ch].flow or self.channels[ch].flow_flag):
                return f"{ch} must stop, but its node has not been heard from"
        for ch in sorted(starts):
            if self.locked(ch):
                return f"{ch} is locked until an operator reset"
        return None

    def _change_held(self, tr) -> bool:
        """Hold a transition that would start a water change while the water path is not sound."""
        plan = self._plan(tr)
        if plan is None:
            return False
        st, now, machine = self.st, self.now, tr.machine
        why = self._change_blocked(plan)
        if why is None:
            if machine in st.waiting:
                self._stop_waiting(machine, "the water change started")
            return False
        target = tr.model.target
        w = st.waiting.get(machine)
        if w is None or w[3] != target:
            w = st.waiting[machine] = [now, why, now, target]
            self.dec.held.append(Held(machine, tr.model.source, target, now, why))
        elif w[1] != why:
            w[1] = why
            self.dec.held.append(Held(machine, tr.model.source, target, now, why))
        w[2] = now
        if now - w[0] >= self.S["water_cycle.water_change.max_wait"] and CHANGE_WAITING in self.rs.alerts:
            self.raise_alert(CHANGE_WAITING, None, {"target": target, "reason": why, "waiting_since": w[0]})
        return True

    def _end_waits(self) -> None:
        """A held change whose transition no longer wants to go has stopped waiting."""
        if self.st.waiting:
            for machine, w in list(self.st.waiting.items()):
                if w[2] != self.now:
                    self._stop_waiting(machine, "the water change is no longer due")

    def _stop_waiting(self, machine: str, why: str) -> None:
        del self.st.waiting[machine]
        a = self.st.alerts.get((CHANGE_WAITING, None))
        if a is not None and a.status == ACTIVE and not self.st.waiting:
            self.resolve_alert(a, None, why)
