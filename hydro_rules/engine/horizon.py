"""The horizon of a zone: after an evaluation, the earliest instant a decision could differ.

`ZoneProgram.horizon(state, now, bounds)` is what lets a dry run skip instants where
nothing can happen. It is the earliest of

- every condition the zone evaluates now (its alerts' `when` or `clear when`, the
  transitions out of its machines' current states, the rules of those states, the
  guards asked of its channels), compiled in margin mode (`margins`): how long
  each keeps its value while readings move no faster than `bounds`
  (metric -> (noise amplitude, rate per second));
- every timer the runtime holds: holds, alert raise and clear holds, `after` and
  timeouts, schedules, duty, window, light, local-midnight and recipe-day edges,
  command expiries and renewals, retries, dose checks, groups, mixing and budgets,
  staleness, frozen and silence deadlines, failures() and filled() windows, and
  when change() gets its first sample of a window.

When it cannot tell (a metric compared without bounds, a sensor settling after a
jump, a change held, a dose group due, a node to re-assert, a filled() channel on)
it answers `now`: evaluate at the next instant. A sound horizon makes evaluations at
fewer instants give the same decisions as evaluations at every instant.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from datetime import datetime
from operator import itemgetter

from ..lang import model as M
from ..lang.activity import zone_activity
from . import interp
from .channels import RENEW_S
from .margins import HELPERS, WIDE, MarginCompiler
from .state import DUTY, ON, PENDING

INF = math.inf
_TS = itemgetter(0)
#: a node unheard for longer than this is silent (safety.SILENCE_S)
_SILENCE_S = 180.0
_DAY = 86400.0
#: what a limit that is passed only once strictly exceeded (`now - ts > stale`) adds to its instant
_AFTER = 1e-3


# ---- generated code -----------------------------------------------------------------------------
def horizon_source(compiled, zone: M.Zone, settings: dict, hold_of) -> tuple[str, dict, int, list]:
    """(source, namespace, how many conditions, guard names): one `c_k(x, now, Mv, Cr)` per alert (per channel),
    machine and rule of the zone, the earliest instant its condition in the zone's current states may change
    value (inf when it is not evaluated now), and one `g_i(x, ch, now, Mv, Cr)` per guard."""
    rs = compiled.ruleset
    act = zone_activity(rs, zone)
    absent = frozenset(c for c in rs.channels if c not in zone.channels)
    env: dict = dict(HELPERS)
    env["PENDING"] = PENDING
    n = 0

    def const(value) -> str:
        nonlocal n
        n += 1
        env[f"K{n}"] = value
        return f"K{n}"

    head = "    st = x.st; mv = x.mv; S = x.S; T = x.T; alerts = st.alerts; machines = st.machines; h = INF"
    out: list[str] = []
    k = 0

    def new(what: str) -> None:
        nonlocal k
        out.append(f"def c_{k}(x, now, Mv, Cr):  # {what}")
        out.append(head)
        k += 1

    def take(indent: str, src: str) -> None:
        out.append(f"{indent}u = {src}[1]")
        out.append(f"{indent}if u < h: h = u")

    for a in rs.alerts.values():
        if (not a.when and a.clear is None) or not act.alert_active(a.code):
            continue
        channels = [None]
        if a.scope is not None:
            channels = [c for c in zone.channels if a.scope.covers(rs.channels[c])]
        for ch in channels:
            new(f"alert {a.code}" + (f" on {ch}" if ch else ""))
            mc = MarginCompiler(settings, ch, rs.channels, absent, const)
            out.append(f"    a = alerts.get({const((a.code, ch))})")
            when = a.when[0] if a.when else None
            if when is not None:
                out.append("    if a is None or a.status is PENDING:")
                take("        ", mc.cond(when.expr))
                branch = "    elif"
            else:
                branch = "    if a is not None and"
            if a.clear is not None:
                out.append(f"{branch} a.status is not PENDING:")
                take("        ", mc.cond(a.clear.expr))
            out.append("    return h")
    for mname, m in rs.machines.items():
        if not act.machine_active(mname):
            continue
        new(f"machine {mname}")
        out.append(f"    s = machines[{mname!r}]")
        first = True
        for sname, state in m.states.items():
            live = [t for i, t in enumerate(state.transitions) if act.transition_active(mname, sname, i) and t.cond]
            if not live:
                continue
            out.append(f"    {'if' if first else 'elif'} s == {sname!r}:")
            first = False
            for t in live:
                take("        ", MarginCompiler(settings, None, rs.channels, absent, const).cond(t.cond.expr))
        out.append("    return h")
    for rname, r in rs.rules.items():
        if not act.rule_active(rname):
            continue
        new(f"rule {rname}")
        states = tuple(sn for sn in r.states if (s_ := rs.state(sn)) is None or act.state_active(s_.machine, sn))
        indent = "    "
        if states:
            machines_of: dict = {}
            for sn in states:
                machines_of.setdefault(rs.state(sn).machine, []).append(sn)
            test = " or ".join(f"machines[{m!r}] in {tuple(v)!r}" for m, v in machines_of.items())
            out.append(f"    if {test}:")
            indent = "        "
        take(indent, MarginCompiler(settings, None, rs.channels, absent, const).cond(r.cond.expr))
        out.append("    return h")
    names = []
    for i, (name, g) in enumerate(rs.guards.items()):
        names.append(name)
        out.append(f"def g_{i}(x, ch, now, Mv, Cr):  # guard {name}")
        out.append(head)
        for d in g.denies:
            take("    ", MarginCompiler(settings, None, rs.channels, absent, const, top=False).cond(d.expr))
        out.append("    return h")
    return "\n".join(out) + "\n", env, k, names


def failure_windows(rs: M.RuleSet) -> tuple[float, ...]:
    """Every window `failures(CHANNEL, WINDOW)` is read over in the rule set."""
    from .compiler import _all_expressions, _children

    found: set = set()

    def walk(e) -> None:
        if isinstance(e, M.Func):
            if e.name == "failures":
                found.add(float(e.args[1].value))
            for a in e.args:
                if a is not None and not isinstance(a, str):
                    walk(a)
            return
        for c in _children(e):
            walk(c)

    for e in _all_expressions(rs):
        walk(e)
    return tuple(sorted(found))


# ---- the runtime part (a mixin of ZoneProgram) ---------------------------------------------------------
class HorizonMixin:
    """ZoneProgram.horizon and what it reads of the runtime."""

    #: the step of the grid the caller evaluates on (a dry run's tick): bounded OFFs are renewed two of them early
    hz_tick: float = 60.0

    def _init_horizon(self) -> None:
        self._hz_S = None
        self._hz_conds: list = []
        self._hz_guards: dict = {}
        self._hz_holds: dict = {}
        self._hz_bounds: dict = {}
        self._hz_span: dict = {}
        self._hz_t = INF
        self._hz_open = None  # (since, {metric: (value, deviation, rate)}): the stretch being skipped
        self._hz_env: dict = {}  # metric -> [(from, to, low, high)]: what readings skipped stretches could show
        self._hz_dst = (INF, INF)  # (checked until, next change of the UTC offset) of a zone with a time zone
        self._hz_fail_windows = self.compiled.failure_windows
        self._hz_metric_of = {  # (reading dict name, channel) -> metric
            (attr, name): getattr(ch, attr)
            for name, ch in self.channels.items()
            for attr in ("current", "flow", "flow_flag")
            if getattr(ch, attr) is not None
        }

    def _hz_compile(self) -> None:
        conds, guards, holds = self.compiled.horizon_for(self.zone, self.S)
        self._hz_conds, self._hz_guards, self._hz_holds, self._hz_S = list(conds), guards, holds, self.S

    # ---- skipped stretches and change() ------------------------------------------------------------
    def _hz_close(self, now: float) -> None:
        """An evaluation after a horizon: what the readings of the skipped stretch could have shown."""
        since, seen = self._hz_open
        self._hz_open = None
        span = now - since
        for metric, (v, e, rate) in seen.items():
            w = e + rate * span
            rows = self._hz_env.setdefault(metric, [])
            rows.append((since, now, v - w, v + w))
            h = self.st.history.get(metric)
            oldest = h[0][0] if h else now
            while rows and rows[0][1] < oldest:
                rows.pop(0)

    def hz_change(self, metric: str, window: float, now: float):
        """change(metric, window) in margin mode: a difference of two readings, each of them the one now or
        one of the window kept in the history (or a skipped stretch), or one yet to come."""
        v = self.mv.get(metric)
        if v is None:
            return None
        h = self.st.history.get(metric)
        if not h or bisect_right(h, now - window, key=_TS) == 0:
            return ((h[0][0] if h else now) + window,)  # unknown until a sample of the window is kept
        b = self._hz_bounds.get(metric)
        if b is None:
            return WIDE
        e, rate = b
        span = self._hz_span.get(metric)
        if span is None:
            values = [x for _, x in h]
            lo, hi = min(values), max(values)
            for _, _, a, z in self._hz_env.get(metric, ()):
                lo, hi = min(lo, a), max(hi, z)
            span = self._hz_span[metric] = (min(lo, v), max(hi, v))
        lo, hi = span
        # against a kept (or skipped) reading: v(t) lies within e + rate·dt of v; against one yet to come, taken
        # after now in the same stretch of the bounds: within e + rate·dt of v(t)
        return (min(v - e - hi, -e), max(v + e - lo, e), rate, rate)

    def hz_on_for(self, channel: str):
        c = self.st.channels.get(channel)
        if c is None:
            return None
        if c.is_on:
            v = self.now - c.since
            return (v, v, 0.0, 1.0)
        return (0.0, 0.0, 0.0, 0.0)

    def hz_off_for(self, channel: str):
        c = self.st.channels.get(channel)
        if c is None:
            return None
        if c.is_on:
            return (0.0, 0.0, 0.0, 0.0)
        v = self.now - c.since
        return (v, v, 0.0, 1.0)

    # ---- the horizon ----------------------------------------------------------------------------------
    def horizon(self, st, now: float, bounds: dict) -> float:
        """After `evaluate(st, telemetry, now)`: the earliest instant > now at which a decision of the zone could
        differ from "nothing happens", given readings move no faster than `bounds`: metric -> (noise amplitude,
        rate per second[, swing]), a reading differing from another by at most both noises, the swing (a bounded
        excursion, such as the water a pipe loop gives back) and the rate times the time between them. `now`
        means: evaluate at the next instant (the engine cannot tell)."""
        if st is not self.st or now != self.now:
            return now  # not right after an evaluation of this state
        if self._hz_S is not self.S:
            self._hz_compile()
        # metric -> (how far two readings may differ besides the drift: both noises and a swing, rate)
        bounds = {m: (2.0 * b[0] + (b[2] if len(b) > 2 else 0.0), b[1]) for m, b in bounds.items()}
        self._hz_bounds = bounds
        self._hz_span: dict = {}  # metric -> (lowest, highest) reading change() may compare with
        self._hz_t = INF
        t = self._hz_timers(now, bounds)
        if t <= now:
            return now
        Mv = {}
        for metric, v in self.mv.items():
            if v is not None:
                b = bounds.get(metric)
                if b is None:
                    Mv[metric] = WIDE
                else:
                    e = b[0]
                    Mv[metric] = (v - e, v + e, b[1], b[1])
        Cr = self._hz_reading
        floor = now + self.hz_tick  # at or before it the caller evaluates the next instant anyway
        conds = self._hz_conds
        for i, fn in enumerate(conds):
            u = fn(self, now, Mv, Cr)
            if u < t:
                t = u
                if t <= floor:
                    if i:  # it may well hold the horizon short next time too: ask it first
                        conds.insert(0, conds.pop(i))
                    return max(t, now)
        for name, c in st.channels.items():
            if c.guards and (c.desired in (ON, DUTY) or c.denied_by is not None):
                for g in c.guards:
                    t = min(t, self._hz_guards[g](self, name, now, Mv, Cr))
        t = min(t, self._hz_t)
        if t > now and self.tz is not None:
            t = min(t, self._hz_offset_change(now))
        if t > now and self.compiled.history_metrics:
            seen = {}
            for metric in self.compiled.history_metrics:
                v, b = self.mv.get(metric), bounds.get(metric)
                if v is not None and b is not None:
                    seen[metric] = (v, b[0], b[1])
            self._hz_open = (now, seen)
        return max(t, now)

    def _hz_reading(self, attr: str, channel: str):
        """A channel's current, flow or flow flag reading as an interval (see margins)."""
        v = {"current": self.cur, "flow": self.flw, "flow_flag": self.flg}[attr].get(channel)
        if v is None:
            return None
        b = self._hz_bounds.get(self._hz_metric_of.get((attr, channel)))
        if b is None:
            return WIDE
        e = b[0]
        return (v - e, v + e, b[1], b[1])

    def _hz_offset_change(self, now: float) -> float:
        """The next change of the zone's UTC offset (daylight saving) within two days, found hour by hour
        once a day."""
        checked, nxt = self._hz_dst
        if nxt > now and checked > now + _DAY:
            return nxt
        tz = self.tz
        base = datetime.fromtimestamp(now, tz).utcoffset()
        start = math.floor(now / 3600.0) * 3600.0
        nxt = INF
        for k in range(1, 49):
            t = start + k * 3600.0
            if datetime.fromtimestamp(t, tz).utcoffset() != base:
                nxt = t - 3600.0  # somewhere in the hour before: evaluate at its start
                break
        self._hz_dst = (start + 48 * 3600.0, nxt)
        return max(nxt, now)

    def _hz_timers(self, now: float, bounds: dict) -> float:
        """The earliest timer of the runtime after now; `now` when the engine cannot tell."""
        st, S, rs = self.st, self.S, self.rs
        times = []
        add = times.append
        if st.waiting:
            # a change held: it goes on waiting (the same reason: alerts, node answers and silences, locks, all
            # covered below) while its transition wants to go (a condition the horizon's conditions cover),
            # until the wait is long enough to be an alert
            wait = S["water_cycle.water_change.max_wait"]
            for w in st.waiting.values():
                add(w[0] + wait)
        g = st.dose_group
        if g is not None:
            if g["due"] <= now:
                return now
            add(g["due"])
        if st.mixing_until is not None:
            add(st.mixing_until)
        # alerts: raise and clear holds
        for (code, _), a in st.alerts.items():
            al = rs.alerts[code]
            if a.status == PENDING:
                if al.when:
                    add(a.since + self._hz_hold(al.when[0]))
            elif a.clear_since is not None and al.clear is not None:
                add(a.clear_since + self._hz_hold(al.clear))
        # holds of transitions and rules, repeats of rules
        holds = self._hz_holds
        for key, since in st.holds.items():
            add(since + holds.get(key, 0.0))
        for name, last in st.fired.items():
            r = rs.rules.get(name)
            if r is not None:
                rep = S.get(r.repeat_setting, r.repeat_s) if r.repeat_setting else r.repeat_s
                if rep:
                    add(last + rep)
        # transitions out of the current states: after, timeouts, schedules
        from .compiler import after_of

        for mname, sname in st.machines.items():
            if not self.activity.machine_active(mname):
                continue
            state = rs.machines[mname].states.get(sname)
            entered = st.entered_at.get(mname)
            if state is None or entered is None:
                return now
            for i, t in enumerate(state.transitions):
                if not self.activity.transition_active(mname, sname, i):
                    continue
                after = after_of(t, S)
                if after is not None:
                    add(entered + after)
                if t.every is not None:
                    every, at = interp.evaluate(t.every, self), interp.evaluate(t.at, self)
                    if every is None or at is None:
                        return now
                    add(self.due_at(every, at))
        # channels
        max_offs = {S["water_cycle.recirc.max_recirc_off"]}
        max_offs.update(w.max_off_s for w in self.windows if w.max_off_s is not None)
        chunk = S["commands.run_chunk"]
        for name, c in st.channels.items():
            ch = self.channels.get(name)
            if ch is None:
                continue
            if c.reassert:
                return now
            for x in (c.desired_until, c.retry_at, c.override_until, c.forced_on_until):
                if x is not None:
                    add(x)
            if c.commanded_until is not None:
                cu = c.commanded_until
                add(cu)
                add(cu - chunk / 2.0)
                add(cu - RENEW_S)
                add(cu - 2.0 * self.hz_tick)
                for m in max_offs:
                    add(cu - m / 2.0)
            if c.duty_off_since is not None:
                for m in max_offs:
                    add(c.duty_off_since + m)
            if ch.fail_safe == "NC" and not c.is_on:
                for m in max_offs:
                    add(c.since + m)
                add(self.off_deadline(name, c))
            for d in c.doses:
                add(d[0] + 3600.0)
                add(d[0] + _DAY)
            for dc in c.dose_checks:
                add(dc[0])
            for f in c.failures:
                for w in self._hz_fail_windows:
                    add(f + w + _AFTER)
            if name in self.compiled.filled_channels and c.is_on:
                return now  # filled() counts the level between every two instants while it runs
        for ch, rows in st.fills.items():
            w = self.compiled.filled_channels.get(ch, 3600.0)
            for row in rows:
                add(row[0] + w + _AFTER)
        if st.level_seen is not None:
            for w in self.compiled.filled_channels.values():
                add(st.level_seen + w + _AFTER)
        # the day: windows, duty phases, light, local midnight, the recipe day
        tod = self.time_of_day()
        mixing = S["dosing.mixing_time"]
        for w in self.windows:
            add(now + (w.start_s - tod) % _DAY)
            add(now + (w.end_s - tod) % _DAY)
            if w.off:
                add(now + (w.start_s - mixing - tod) % _DAY)
            elif w.contains(tod):
                phase = ((tod - w.start_s) % _DAY) % w.period_s
                add(now + w.period_s - phase)
                if phase < w.duty * w.period_s:
                    add(now + w.duty * w.period_s - phase)
        if self.zone.light is not None:
            for edge in self.zone.light:
                add(now + (edge - tod) % _DAY)
        add(now + _DAY - tod)
        add(self._day_until)
        # readings: staleness, frozen sensors, plausibility, silent nodes
        mts = self.mts
        for metric, (_, stale) in self.metric_src.items():
            ts = mts.get(metric)
            if ts is not None and ts < now:
                add(ts + stale + _AFTER)
        snap = self.snap
        for _, key, stale, _, _ in self.channel_src:
            r = snap.get(key)
            if r is not None and r[1] < now:
                add(r[1] + stale + _AFTER)
        for metric, frozen in self.frozen_s.items():
            u = st.unchanged.get(metric)
            ts = mts.get(metric)
            if u is not None and ts is not None and self.rv.get(metric) == u[0] and u[1] < ts:
                add(u[1] + frozen)
        plaus = self._plaus
        for metric in self.metric_src:
            low, high, at_limits, _, step = plaus[metric]
            if step is None and not at_limits:
                continue
            if self.rv.get(metric) is None:
                continue
            b = bounds.get(metric)
            if b is None:
                return now
            e, rate = b
            if step is not None:
                p = st.plausible.get(metric)
                if p is not None and p[3] is not None:
                    return now  # settling after a jump
                amount, per = step
                tick = self.hz_tick
                if e + rate * tick >= amount * max(1.0, tick / per) or rate > amount / per:
                    return now  # a jump could be seen at an instant skipped
            if at_limits:
                v = self.rv[metric]
                margin = min(v - low, high - v) - e
                out = max(low - v, v - high) - e  # at or past a limit by more than it can move: it stays there
                if out > 0.0 or (out == 0.0 and rate == 0.0):
                    if rate > 0.0:
                        add(now + out / rate)
                    continue
                if margin <= 0.0:
                    return now
                if rate > 0.0:
                    add(now + margin / rate)
        for h in st.nodes_heard.values():
            if h[1] is None and h[0] < now:
                add(h[0] + _SILENCE_S + _AFTER)
        best = INF
        for x in times:
            if now < x < best:
                best = x
        return best

    def _hz_hold(self, cond) -> float:
        from .compiler import hold_of

        return hold_of(cond, self.S)
