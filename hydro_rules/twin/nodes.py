"""Node firmware as the protocol describes it: relay contacts, run timers, doses and responses.

`set_relay.state` is the contact state (True = closed = load powered). A relay's
fail-safe default is closed for NC and open for NO: a node without power (a
`controller_crash`) leaves every output there. `run_pump` closes the contacts for
the (clamped) duration, then opens them. Every accepted command is answered ACK
and then DONE (run_pump: when the run ends or is cut short); `NO_EFFECT` when a
plain set_relay finds the contacts already so and no timer pending; `INVALID` for
an unknown command, channel or parameters. A start of a pump with the overcurrent
fault is answered ERROR `overcurrent` and the node opens the contacts. Pumps on
NO relays are clamped to `max_run_ms` (safe_limits.max_duration_ms) whatever asked
them to run.

Two firmware models (TwinConfig.firmware, or `ZoneTwin(..., firmware=...)`):

- `hydro2` (the default: the relay firmware of hydro 2.0 as the protocol page
  describes it). `set_relay {state:false}` ignores `duration_ms`: the contacts stay
  OPEN until told otherwise (ACK then DONE, or NO_EFFECT when already open with no
  timer). `set_relay {state:true, duration_ms}` is a timed run: the contacts close,
  ACK, and open again after min(duration_ms, 300 s), then DONE (cut short by
  another command: DONE at once). At start-up (the end of a `controller_crash`, a
  `restart`) the firmware drives EVERY relay to contacts OPEN, so an NC pump stands
  still until it is told `set_relay {state:true}`.
- `bounded-off` (the older, kinder model). `set_relay` with `duration_ms` answers
  ACK then DONE at once and returns to the fail-safe default when it expires (an NC
  OFF ends by itself); after a reboot every output is at its fail-safe default (an
  NC pump runs).
"""

from __future__ import annotations

import heapq

from ..messages import ACK, DONE, ERROR, INVALID, NO_EFFECT, CommandResponse, WireCommand
from .config import TIMED_RUN_CAP_MS

EV_TIMER, EV_CMD, EV_FAULT_ON, EV_FAULT_OFF = 0, 1, 2, 3


class Load:
    """A relay output of a node and the pump, valve or doser on it."""

    __slots__ = (
        "name", "role", "kind", "node", "key", "default", "contact", "stuck", "blocked", "over", "fault_ma",
        "gen", "until", "run_id", "run_s", "dry_s", "lpm", "cur", "flow",
    )  # fmt: skip

    def __init__(self, name: str, role: str, kind: str, node: Node, key: str, nc: bool, lpm: float) -> None:
        self.name, self.role, self.kind, self.node, self.key = name, role, kind, node, key
        self.default = self.contact = nc
        self.stuck = self.blocked = self.over = 0
        self.fault_ma = 0.0
        self.gen = 0  # bumps to cancel the pending timer
        self.until: float | None = None  # when the pending timer fires
        self.run_id: str | None = None  # the run_pump waiting for its DONE
        self.run_s = 0.0
        self.dry_s = 0.0  # powered while its intake had no water
        self.lpm = lpm  # nominal flow, L/min
        self.cur = self.flow = 0.0  # as last published

    @property
    def powered(self) -> bool:
        return self.contact or self.stuck > 0


class Node:
    __slots__ = ("uid", "channels", "offline")

    def __init__(self, uid: str) -> None:
        self.uid = uid
        self.channels: dict[str, Load | None] = {}  # channel key -> relay load, None for a sensor channel
        self.offline = 0


def _positive(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


class NodeLogic:
    """Command handling of ZoneTwin (which holds the slots used here)."""

    __slots__ = ()

    def _silent(self, node: Node) -> bool:
        return node.offline > 0 or self._crashed > 0

    def _respond(self, node: Node, cmd_id: str, status: str, t: float, error_code=None, details=None) -> None:
        if not self._silent(node):
            self._responses.append(CommandResponse(cmd_id, status, t, error_code, details or {}))

    def _push(self, t: float, kind: int, a, b=None, c=None) -> None:
        self._seq += 1
        heapq.heappush(self._events, (t, self._seq, kind, a, b, c))

    def _set(self, ld: Load, contact: bool, t: float, until: float | None = None, revert: bool = False) -> None:
        """Switch the contacts; a pending run_pump is cut short (DONE) and a pending timer cancelled."""
        if ld.run_id is not None:
            self._respond(ld.node, ld.run_id, DONE, t, details={"result": "stopped"})
            ld.run_id = None
        ld.gen += 1
        ld.contact = contact
        ld.until = until
        if until is not None:
            self._push(until, EV_TIMER, ld, ld.gen, revert)
        self._refresh()

    def _timer(self, ld: Load, gen: int, revert: bool, t: float) -> None:
        if gen != ld.gen:
            return
        run_id, ld.run_id = ld.run_id, None
        ld.gen += 1
        ld.until = None
        ld.contact = revert
        if run_id is not None:
            self._respond(ld.node, run_id, DONE, t)
        self._refresh()

    def _reset_outputs(self, nodes, contact: bool | None = None) -> None:
        """Outputs drop to `contact` (None: their fail-safe default); pending runs and timers die with the firmware."""
        for node in nodes:
            for ld in node.channels.values():
                if ld is not None:
                    ld.run_id = ld.until = None
                    ld.gen += 1
                    ld.contact = ld.default if contact is None else contact
        self._refresh()

    def _reboot(self, nodes) -> None:
        """The firmware starts: hydro2 opens every relay (an NC pump stops), bounded-off leaves the defaults."""
        self._reset_outputs(nodes, False if self._hydro2 else None)

    def _overcurrent(self, ld: Load, cmd: WireCommand, t: float) -> None:
        self._respond(ld.node, cmd.cmd_id, ACK, t)
        self._set(ld, False, t)
        details = {"channel": ld.key, "current_ma": round(ld.fault_ma), "threshold_ma": round(self._cfg.threshold_ma)}
        self._respond(ld.node, cmd.cmd_id, ERROR, t, "overcurrent", details)

    def _execute(self, cmd: WireCommand, t: float) -> None:
        node = self._nodes.get(cmd.node_uid)
        if node is None or self._silent(node):
            return  # nobody listens on that topic, or the node is down: the command is lost
        skew = self._cfg.max_clock_skew_s
        if skew is not None and abs(t - cmd.ts) >= skew:
            self._respond(node, cmd.cmd_id, ERROR, t, "timestamp_expired", {"ts": cmd.ts, "node_time": t})
            return
        if cmd.channel_key not in node.channels:
            return self._invalid(node, cmd, t, "unknown_channel", f"no channel {cmd.channel_key!r} on {node.uid}")
        ld = node.channels[cmd.channel_key]
        p = cmd.params if isinstance(cmd.params, dict) else {}
        name = cmd.cmd
        if name == "set_relay":
            self._set_relay(node, ld, cmd, p, t)
        elif name == "run_pump":
            if ld is None or ld.kind == "doser":
                return self._invalid(node, cmd, t, "not_a_pump", f"{cmd.channel_key} is not a pump")
            if not _positive(p.get("duration_ms")):
                return self._invalid(node, cmd, t, "bad_params", "run_pump needs duration_ms > 0")
            if ld.over:
                return self._overcurrent(ld, cmd, t)
            self._respond(node, cmd.cmd_id, ACK, t)
            self._set(ld, True, t, t + min(p["duration_ms"], self._cfg.max_run_ms) / 1000.0, False)
            ld.run_id = cmd.cmd_id
        elif name == "dose":
            if ld is None or (ld.kind != "doser" and ld.role not in ("acid", "base", "nutrient")):
                return self._invalid(node, cmd, t, "not_a_doser", f"{cmd.channel_key} does not dose")
            if not _positive(p.get("ml")):
                return self._invalid(node, cmd, t, "bad_params", "dose needs ml > 0")
            self._respond(node, cmd.cmd_id, ACK, t)
            self._water.dose(ld.role, float(p["ml"]))
            self._respond(node, cmd.cmd_id, DONE, t, details={"ml": p["ml"]})
        elif name == "restart":
            self._respond(node, cmd.cmd_id, ACK, t)
            self._reboot((node,))
            self._respond(node, cmd.cmd_id, DONE, t)
        elif name in ("test_sensor", "calibrate"):
            self._respond(node, cmd.cmd_id, ACK, t)
            self._respond(node, cmd.cmd_id, DONE, t)
        else:
            self._invalid(node, cmd, t, "unknown_command", f"{name!r} is not supported on {cmd.channel_key}")

    def _set_relay(self, node: Node, ld: Load | None, cmd: WireCommand, p: dict, t: float) -> None:
        if ld is None:
            return self._invalid(node, cmd, t, "not_a_relay", f"{cmd.channel_key} has no relay")
        state, duration = p.get("state"), p.get("duration_ms")
        if not isinstance(state, bool) or (duration is not None and not _positive(duration)):
            return self._invalid(node, cmd, t, "bad_params", "set_relay needs state: bool and duration_ms > 0")
        if state and ld.over:
            return self._overcurrent(ld, cmd, t)
        if self._hydro2:
            return self._set_relay_hydro2(node, ld, cmd, state, duration, t)
        until = None
        if duration is not None:
            until = t + duration / 1000.0
        if state and ld.kind == "pump" and not ld.default:
            until = min(until or float("inf"), t + self._cfg.max_run_ms / 1000.0)  # a pump run is clamped
        if until is None and ld.contact == state and ld.until is None:
            self._respond(node, cmd.cmd_id, NO_EFFECT, t)
            return
        self._respond(node, cmd.cmd_id, ACK, t)
        self._set(ld, state, t, until, ld.default)
        self._respond(node, cmd.cmd_id, DONE, t)

    def _set_relay_hydro2(self, node: Node, ld: Load, cmd: WireCommand, state: bool, duration, t: float) -> None:
        """An OFF holds until told otherwise; an ON with duration_ms is a timed run that ends OPEN, DONE then."""
        clamp = self._cfg.max_run_ms if state and ld.kind == "pump" and not ld.default else None
        if not state or duration is None:
            until = None if clamp is None else t + clamp / 1000.0  # an NO pump still stops at the node's limit
            if until is None and ld.contact == state and ld.until is None:
                self._respond(node, cmd.cmd_id, NO_EFFECT, t)
                return
            self._respond(node, cmd.cmd_id, ACK, t)
            self._set(ld, state, t, until, False)
            self._respond(node, cmd.cmd_id, DONE, t)
            return
        run_ms = min(duration, TIMED_RUN_CAP_MS, clamp if clamp is not None else TIMED_RUN_CAP_MS)
        self._respond(node, cmd.cmd_id, ACK, t)
        self._set(ld, True, t, t + run_ms / 1000.0, False)
        ld.run_id = cmd.cmd_id  # DONE when the run ends or is cut short

    def _invalid(self, node: Node, cmd: WireCommand, t: float, code: str, message: str) -> None:
        self._respond(node, cmd.cmd_id, INVALID, t, code, {"message": message})
