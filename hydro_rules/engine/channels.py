"""Channels: guards, commands and what the engine believes each node did.

Every tick each channel is brought to what the rules want: guards are asked
before a start and while a load runs, and the wanted state becomes the
protocol's command for the channel's fail-safe wiring. An NC load's OFF ends
by itself only on a node declared able to (`bounded_off`); on any other node
the engine ends it with an explicit ON. A deny that does not lock never holds
an NC pump off longer than `max_recirc_off`.
"""

from __future__ import annotations

import math

from .. import messages as W
from ..lang import model as M
from .decisions import Command, Decisions, Refusal
from .state import DUTY, OFF, ON, RELEASED, ChannelState, ZoneState

#: a bounded OFF of an NC pump is renewed when less than this is left of it (at least two ticks)
RENEW_S = 90.0
#: longest wait before a command is sent again to a node that does not answer
RETRY_MAX_S = 600.0
#: the back-off doubles per timeout up to RETRY_MAX_S; the exponent stops growing here
_RETRY_MAX_DOUBLINGS = 30
#: failure times older than this are forgotten
FAILURE_MEMORY_S = 7 * 86400.0
INF = math.inf


class ChannelControl:
    """The part of the zone program that talks to channels (a mixin of ZoneProgram)."""

    # ---- guards -----------------------------------------------------------------------------
    def guard_verdict(self, channel: str, guards) -> tuple | None:
        """(guard, deny, unknown) of the first deny that holds, or cannot be decided (unknown=True)
        because a value it needs is unknown; None when every guard allows."""
        for g in guards:
            hit = self.guard_fns[g](self, channel)
            if hit is not None:
                return g, self.rs.guards[g].denies[hit[0]], hit[1]
        return None

    def _refuse(self, name: str, c: ChannelState, verdict) -> None:
        guard, deny, unknown = verdict
        if deny.raises and not unknown:  # an alert says what is known; an unknown value only keeps it off
            self.raise_alert(
                deny.raises,
                name if self.rs.alerts[deny.raises].scope else None,
                {"guard": guard, "reason": deny.reason, "condition": deny.text},
            )
        reason = refusal_reason(deny, unknown)
        if c.denied_by != guard + reason:
            c.denied_by = guard + reason
            self.dec.refusals.append(Refusal(name, guard, reason, self.now))

    # ---- responses and timeouts -----------------------------------------------------------------
    def apply_response(self, st: ZoneState, r: W.CommandResponse, now: float) -> Decisions:
        """Fold a node's command_response, or the service's TIMEOUT, into the zone state.

        A command ends once: the first terminal answer (DONE, a failure, TIMEOUT) takes it
        off the channel's books, so a late or duplicate answer after it changes nothing and
        `failures(...)` counts it once. The engine never times a command out by itself: the
        service (or, in a simulation, its stand-in `sim.timeouts`) sends TIMEOUT.
        """
        self.now, self.st = now, st
        self.dec = dec = Decisions()
        name = next((n for n, ch in st.channels.items() if r.cmd_id in ch.pending or r.cmd_id in ch.acked), None)
        if name is None:
            return dec  # unknown, late or duplicate: nothing to move
        c = st.channels[name]
        was_pending = c.pending.pop(r.cmd_id, None) is not None
        if r.status != W.ACK:
            c.intents.pop(r.cmd_id, None)
        if r.status == W.TIMEOUT:
            if r.cmd_id in c.acked:
                c.acked.remove(r.cmd_id)
            if name in self.channels:  # still bound: the node may or may not have done it
                self._timed_out(c, self.channels[name], now)
            return dec
        c.timeouts = 0
        c.retry_at = None
        if r.status == W.ACK:
            if was_pending:
                c.acked.append(r.cmd_id)
            return dec
        if r.cmd_id in c.acked:
            c.acked.remove(r.cmd_id)
        if r.status in W.FAILED:
            _failed(c, r.ts)
            if c.last_cmd == "on":  # the node did not start it, or stopped it again
                _believe(c, False, r.ts)
                c.last_cmd = None
            for code in self.compiled.alerts_on_error.get(r.error_code or "", ()):
                scope = self.rs.alerts[code].scope
                if scope is None or scope.covers(self.channels[name]):
                    self.raise_alert(
                        code,
                        name if scope else None,
                        {"error_code": r.error_code, "cmd_id": r.cmd_id, **(r.details or {})},
                    )
        return dec

    def _expire_commands(self) -> None:
        """A command's duration is over: its node has fallen back to the fail-safe default by itself.
        (A run renewed only at the instant it ends has stopped, however briefly: evaluations must
        come more often than half a `commands.run_chunk` for a pump to run on without a break.
        A run that ends at this very instant keeps `last_cmd`: if the rules now want the pump off,
        the OFF is still sent, for the node may not have ended it yet.)"""
        now = self.now
        for name, c in self.st.channels.items():
            if c.commanded_until is not None and now >= c.commanded_until and name in self.channels:
                ch = self.channels[name]
                nc = ch.fail_safe == "NC"
                _believe(c, nc, c.commanded_until)
                if nc:  # the node ended the OFF: a deny that does not lock may not start another at once
                    c.override_until = c.commanded_until + self.S["water_cycle.recirc.min_on"]
                if nc or now > c.commanded_until:
                    c.last_cmd = None
                c.commanded_until = None

    def _timed_out(self, c: ChannelState, ch: M.Channel, now: float) -> None:
        """A command got no terminal answer in time: count a failure, back off before asking the
        node again, and take its output to be at the fail-safe default until told otherwise."""
        limit = self.S["commands.response_timeout"]
        c.timeouts += 1
        c.retry_at = now + min(RETRY_MAX_S, limit * 2.0 ** min(c.timeouts - 1, _RETRY_MAX_DOUBLINGS))
        c.reassert = True  # the node may or may not have done it
        _failed(c, now)
        default_on = ch.fail_safe == "NC"
        if c.is_on != default_on:
            _believe(c, default_on, now)
        c.commanded_until = None

    # ---- channels ---------------------------------------------------------------------------------
    # ---- the OFF bound of an NC pump (windows with their own max_off, `off` windows: language 1.2) --------
    def window_now(self) -> M.Window | None:
        """The recirculation window the zone's local time falls in, or None."""
        windows = self.windows
        if not windows:
            return None
        tod = self.time_of_day()
        for w in windows:
            if w.contains(tod):
                return w
        return None

    def max_off(self) -> float:
        """The longest OFF stretch allowed now: the window's own `max_off`, else recirc.max_recirc_off."""
        w = self.window_now()
        if w is not None and w.max_off_s is not None:
            return w.max_off_s
        return self.S["water_cycle.recirc.max_recirc_off"]

    def off_window_end(self) -> float | None:
        """When the `off` window the zone is in now ends (epoch), or None outside one."""
        w = self.window_now()
        if w is None or not w.off:
            return None
        return self.now + (w.end_s - self.time_of_day()) % 86400.0

    def _last_off_window_end(self) -> float | None:
        """The most recent end of an `off` window, within the last day (epoch), or None."""
        best = None
        tod = self.time_of_day()
        for w in self.windows:
            if w.off:
                end = self.now - (tod - w.end_s) % 86400.0
                best = end if best is None else max(best, end)
        return best

    def _off_since(self, c: ChannelState) -> float:
        """Where the OFF stretch of an NC pump under duty is counted from: when it went off, or the end
        of the `off` window that held it off, whichever is later."""
        since = self.now if c.is_on else c.since
        if c.desired == DUTY and self.windows:
            end = self._last_off_window_end()
            if end is not None and end > since:
                since = end
        return since

    def off_deadline(self, name: str, c: ChannelState) -> float:
        """When an NC pump believed off must run again at the latest: the end of the `off` window it is
        held off by, else its OFF-since (or the end of the last `off` window) plus the window's max OFF."""
        if c.desired == DUTY:
            end = self.off_window_end()
            if end is not None:
                return end
        return self._off_since(c) + self.max_off()

    def _nc_must_run(self, name: str, c: ChannelState) -> bool:
        """Must an NC pump run although a guard denies? Yes once it has been off for the max OFF of the
        window (max_recirc_off), for min_on, unless it is locked: only a locking alert holds it off
        longer. In an `off` window the window holds it off until its end."""
        if self.locked(name) or (c.desired == DUTY and self.off_window_end() is not None):
            c.override_until = None
            return False
        now = self.now
        if c.override_until is not None:
            if now < c.override_until:
                return True
            c.override_until = None
        if not c.is_on and now - self._off_since(c) >= self.max_off() - 1e-6:
            c.override_until = now + self.S["water_cycle.recirc.min_on"]
            return True
        return False

    def _nc_off_end(self, name: str, c: ChannelState) -> float | None:
        """When an OFF that a guard asks of an NC pump must end: at the max OFF unless it is locked."""
        if self.locked(name):
            return None
        return self.off_deadline(name, c)

    def _reconcile(self) -> None:
        now = self.now
        for name, c in self.st.channels.items():
            ch = self.channels.get(name)
            if ch is None or ch.kind in ("sensor", "doser"):
                continue
            desired = c.desired
            if desired == RELEASED:
                continue
            off_until = None
            if desired == ON:
                want = True
                if c.desired_until is not None and now >= c.desired_until:
                    c.desired, c.desired_until = OFF, None
                    want = False
            elif desired == OFF:
                want = False
            else:
                want, off_until = self._duty(c)
                if want is None:
                    continue
            cause = c.cause if desired != DUTY else f"recirculation duty, {c.cause}"
            lock = self.lock_of(name)  # the engine's lock, whatever guards the action names
            if c.guards and (want or c.denied_by is not None):  # while refused, keep asking until allowed
                verdict = self.guard_verdict(name, c.guards)
                if verdict is not None:
                    self._refuse(name, c, verdict)
                    cause = f"guard {verdict[0]}: {verdict[1].reason}" + (" (unknown)" if verdict[2] else "")
                    nc = ch.fail_safe == "NC"
                    if nc and self._nc_must_run(name, c):
                        want, off_until = True, None
                        cause = f"max_recirc_off reached: {cause} does not lock, so it may not hold the pump off longer"
                    else:
                        want, off_until = False, self._nc_off_end(name, c) if nc else None
                elif lock is None:
                    c.denied_by = None
            if lock is not None:  # held off with no bound, whatever duty or guards would end it
                if want:
                    cause = f"locked by {lock} until an operator reset"
                    self._refuse_locked(name, c, lock)
                want, off_until = False, None
            if want:
                self._switch_on(name, c, ch, cause)
            else:
                self._switch_off(name, c, ch, off_until, cause)

    def _duty(self, c: ChannelState):
        """Duty control of an NC pump: (want on?, OFF may last until) or (None, None) to leave it alone."""
        S, now = self.S, self.now
        if not S["water_cycle.recirc.enabled"]:
            return None, None
        windows = self.windows
        if not windows:
            c.duty_off_since = None
            return True, None
        max_off = S["water_cycle.recirc.max_recirc_off"]
        tod = self.time_of_day()
        want, off_end = True, None
        for w in windows:
            if w.contains(tod):
                if w.off:  # held off until the window ends; the next OFF bound counts from its end
                    end = now + (w.end_s - tod) % 86400.0
                    c.duty_off_since = end
                    c.forced_on_until = None
                    return False, end
                if w.max_off_s is not None:
                    max_off = w.max_off_s
                phase = ((tod - w.start_s) % 86400.0) % w.period_s
                if phase >= w.duty * w.period_s:
                    want, off_end = False, now + (w.period_s - phase)
                break
        else:
            want, off_end = False, now + _until_next_window(windows, tod)
        if want:
            c.duty_off_since = None
            c.forced_on_until = None
            return True, None
        if c.forced_on_until is not None:
            if now < c.forced_on_until:
                return True, None
            c.forced_on_until = None
        if self.st.mixing_until is not None:
            if now < self.st.mixing_until:  # a dose mixes: keep circulating
                c.duty_off_since = None
                return True, None
            self.st.mixing_until = None
        if c.duty_off_since is None or c.duty_off_since > now:
            c.duty_off_since = min(c.duty_off_since or now, now)
        limit = c.duty_off_since + max_off
        if now >= limit:
            c.duty_off_since = None
            c.forced_on_until = min(off_end, now + S["water_cycle.recirc.min_on"])
            return True, None
        return False, min(off_end, limit)

    def _switch_on(self, name: str, c: ChannelState, ch: M.Channel, cause: str) -> None:
        now = self.now
        if c.retry_at is not None and now < c.retry_at:
            return  # the node does not answer: back off
        if c.intents and any(i == "off" and cid in c.pending for cid, i in c.intents.items()):
            return  # an OFF has not been answered yet: never two commands of opposite effect in flight
        if ch.fail_safe == "NC":
            if c.is_on and not c.reassert:
                return
            self._send(name, c, "set_relay", {"state": True}, cause, "on")
            _believe(c, True, now)
            c.commanded_until = None
            return
        until = c.desired_until
        chunk = self.S["commands.run_chunk"]
        if not c.reassert:  # a run is renewed once less than half a chunk of it is left
            if c.is_on and (c.commanded_until is None or c.commanded_until - now >= chunk / 2.0):
                return
            if c.is_on and until is not None and c.commanded_until >= until:
                return
        run = chunk if until is None else min(chunk, until - now)
        if run <= 0:
            return
        if ch.kind == "valve":
            self._send(name, c, "set_relay", {"state": True}, cause, "on")
            _believe(c, True, now)
            c.commanded_until = None
            return
        renewal = c.is_on and not c.reassert and c.commanded_until is not None
        cmd = self._send(name, c, "run_pump", {"duration_ms": int(round(run * 1000))}, cause, "on")
        cmd.renewal = renewal
        _believe(c, True, now)
        c.commanded_until = now + run

    def _switch_off(self, name: str, c: ChannelState, ch: M.Channel, off_until: float | None, cause: str) -> None:
        now = self.now
        if ch.fail_safe == "NC":
            if c.retry_at is not None and now < c.retry_at:
                return  # the node does not answer: nothing can reach it
            if self.bindings[name].node_uid not in self.bounded_off:  # the OFF lasts until the engine ends it
                if c.is_on or c.reassert:
                    self._send(name, c, "set_relay", {"state": False}, cause, "off")
                    _believe(c, False, now)
                    c.commanded_until = None
                return
            cap = self.max_off()
            end = off_until if off_until is not None else now + cap
            span = min(end - now, cap)
            held = not c.is_on and not c.reassert and c.commanded_until is not None
            if held and (c.commanded_until - now > self._renew_window(cap) or c.commanded_until >= end - 1e-6):
                return
            if span < 1.0:
                return
            self._send(name, c, "set_relay", {"state": False, "duration_ms": int(round(span * 1000))}, cause, "off")
            _believe(c, False, now)
            c.commanded_until = now + span
            return
        ended_now = c.last_cmd == "on" and c.since == now  # its run ends at this instant: make sure
        if not c.is_on and (not (c.reassert or ended_now) or (c.retry_at is not None and now < c.retry_at)):
            return
        self._send(name, c, "set_relay", {"state": False}, cause, "off")
        _believe(c, False, now)
        c.commanded_until = None

    def _send(self, name: str, c: ChannelState, cmd: str, params: dict, cause: str, intent: str) -> Command:
        st = self.st
        st.seq += 1
        b = self.bindings[name]
        cmd_id = f"{self.zone.uid}-{int(self.now)}-{st.seq}"
        command = Command(
            cmd_id,
            self.zone.uid,
            name,
            b.node_uid,
            b.channel_key,
            cmd,
            params,
            self.now,
            cause or "engine",
            intent,
            self.version,
        )
        self.dec.commands.append(command)
        if intent == "off" and c.intents:  # an OFF supersedes every ON still without a terminal answer
            for old in [cid for cid, i in c.intents.items() if i == "on"]:
                del c.intents[old]
                c.pending.pop(old, None)
                if old in c.acked:
                    c.acked.remove(old)
        c.pending[cmd_id] = self.now
        if intent != "dose":
            c.intents[cmd_id] = intent
        if intent != "dose":
            c.reassert = False
        c.last_cmd = intent if intent != "dose" else c.last_cmd
        return command


def refusal_reason(deny: M.Deny, unknown: bool) -> str:
    """Why a guard keeps a channel off, in words."""
    return deny.reason + (" (cannot tell: a value it needs is unknown)" if unknown else "")


def _believe(c: ChannelState, on: bool, at: float) -> None:
    """What the engine now takes the node's output to be, from `at` on."""
    if c.is_on != on:
        c.is_on = on
        c.since = at
    if not on and c.desired != DUTY:
        c.duty_off_since = None


def _failed(c: ChannelState, at: float) -> None:
    """Remember a failed command; forget those older than FAILURE_MEMORY_S."""
    if c.failures and at - c.failures[0] > FAILURE_MEMORY_S:
        c.failures = [t for t in c.failures if at - t <= FAILURE_MEMORY_S]
    c.failures.append(at)


def _until_next_window(windows, tod: float) -> float:
    best = 86400.0
    for w in windows:
        d = (w.start_s - tod) % 86400.0
        if 0 < d < best:
            best = d
    return best
