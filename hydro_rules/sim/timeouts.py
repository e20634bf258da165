"""The service's end of a command, played where no service runs (dry runs, rule tests).

On a site the service is the one writer of `timeout` (`store.commands.mark_timeouts`):
a command with no terminal answer within `commands.response_timeout` of being sent
times out, and one the node acknowledged gets its own `duration_ms` on top, counted
from the ACK. The engine reads that outcome as a TIMEOUT response and keeps no sweep of
its own. `TimeoutSweep` applies the same rule to the commands of a simulation and
hands back the TIMEOUT responses the service would have written, at the first
evaluation at or after they fall due.
"""

from __future__ import annotations

import math

from ..messages import ACK, TERMINAL, TIMEOUT, CommandResponse


class TimeoutSweep:
    """Commands still waiting for a terminal answer, and when each times out."""

    __slots__ = ("limit", "_due", "_next")

    def __init__(self, response_timeout_s: float) -> None:
        self.limit = response_timeout_s
        self._due: dict[str, tuple[float, float]] = {}  # cmd_id -> (times out at, its own duration in s)
        self._next = math.inf  # no command times out before this (a lower bound)

    @property
    def next_due(self) -> float:
        """No command times out before this instant (a lower bound; inf when none waits)."""
        return self._next

    def sent(self, commands) -> None:
        """Engine commands (decisions.Command) as they leave, at their `at`."""
        for cmd in commands:
            at = cmd.at + self.limit
            self._due[cmd.cmd_id] = (at, _duration_s(cmd.params))
            if at < self._next:
                self._next = at

    def heard(self, responses, now: float) -> None:
        """Answers as they arrive: an ACK moves the deadline past the command's own duration,
        a terminal answer ends the command."""
        for r in responses:
            entry = self._due.get(r.cmd_id)
            if entry is None:
                continue
            if r.status == ACK:
                self._due[r.cmd_id] = (now + self.limit + entry[1], entry[1])
            elif r.status in TERMINAL:
                del self._due[r.cmd_id]

    def due(self, now: float) -> list[CommandResponse]:
        """TIMEOUT responses of the commands whose time is up at `now`; each comes once."""
        if now < self._next:
            return []
        out, nxt = [], math.inf
        for cmd_id, (at, _) in list(self._due.items()):
            if now >= at:
                del self._due[cmd_id]
                out.append(CommandResponse(cmd_id, TIMEOUT, now))
            elif at < nxt:
                nxt = at
        self._next = nxt
        return out

    @property
    def waiting(self) -> frozenset[str]:
        """cmd_ids still without a terminal answer."""
        return frozenset(self._due)


def _duration_s(params: dict) -> float:
    ms = params.get("duration_ms") if isinstance(params, dict) else None
    return ms / 1000.0 if isinstance(ms, int | float) and not isinstance(ms, bool) and ms > 0 else 0.0
