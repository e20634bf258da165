"""The daemon's infra alerts (§9): the broker or the database unreachable too long, a node silent.

`InfraWatch.observe` is called once per tick with what the daemon sees; it
returns the changes only (an alert raised, an alert resolved) as plain data,
which the daemon writes into the store (or its journal while the database is
down). It reads no database and sends nothing.

Boundaries: an alert is raised once its condition has lasted *longer* than
its threshold (down for exactly `broker_down_alert_s` is not yet an alert),
and resolved at the first observation where the condition is gone. A node's
silence is not judged while the broker is down (every node would look
silent: the broker alert says it), and counts from the broker's return at the
earliest.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

MQTT_UNREACHABLE = "infra_mqtt_unreachable"
DB_UNREACHABLE = "infra_db_unreachable"
NODE_SILENT = "infra_node_silent"
CODES = (MQTT_UNREACHABLE, DB_UNREACHABLE, NODE_SILENT)

RAISE, RESOLVE = "raise", "resolve"


@dataclass(frozen=True, slots=True)
class InfraAlert:
    """One change of an infra alert. `dedup_key` is the node uid for a silent node, else ""."""

    action: str  # raise | resolve
    code: str
    at: float  # epoch seconds of the observation that decided it
    text: str  # the alert's type line (raise) or the resolution's reason (resolve)
    severity: str = "warning"
    dedup_key: str = ""
    node_uid: str | None = None
    details: dict = field(default_factory=dict)


class InfraWatch:
    def __init__(self, settings, clock: Callable[[], float] = time.time) -> None:
        self.broker_down_alert_s = float(settings.broker_down_alert_s)
        self.db_down_alert_s = float(settings.db_down_alert_s)
        self.node_silent_after_s = float(settings.node_silent_after_s)
        self.clock = clock
        self.active: set[tuple[str, str]] = set()  # (code, dedup_key) raised and not resolved
        self.mqtt_down_since: float | None = None
        self.db_down_since: float | None = None
        self._mqtt_up_since: float | None = None  # node silence counts from here at the earliest

    def adopt(self, active: Iterable[tuple[str, str]]) -> None:
        """Infra alerts found active in the store at start (a previous run's): resolved when their condition is gone."""
        self.active |= {(code, key or "") for code, key in active if code in CODES}

    def observe(self, *, mqtt_connected: bool, db_ok: bool, node_last_seen: dict[str, float]) -> list[InfraAlert]:
        now = self.clock()
        out: list[InfraAlert] = []
        # the broker
        if mqtt_connected:
            if self._mqtt_up_since is None:
                self._mqtt_up_since = now
            back = "broker reachable again" + self._after(self.mqtt_down_since)
            out += self._resolve(MQTT_UNREACHABLE, "", now, back)
            self.mqtt_down_since = None
        else:
            self._mqtt_up_since = None
            if self.mqtt_down_since is None:
                self.mqtt_down_since = now
            down = now - self.mqtt_down_since
            if down > self.broker_down_alert_s:
                out += self._raise(
                    MQTT_UNREACHABLE,
                    "",
                    now,
                    f"MQTT broker unreachable for more than {self.broker_down_alert_s:g} s",
                    "critical",
                    details={"down_since": self.mqtt_down_since},
                )
        # the database
        if db_ok:
            back = "database reachable again" + self._after(self.db_down_since)
            out += self._resolve(DB_UNREACHABLE, "", now, back)
            self.db_down_since = None
        else:
            if self.db_down_since is None:
                self.db_down_since = now
            down = now - self.db_down_since
            if down > self.db_down_alert_s:
                out += self._raise(
                    DB_UNREACHABLE,
                    "",
                    now,
                    f"database unreachable for more than {self.db_down_alert_s:g} s:"
                    " the daemon controls from memory and queues its writes on disk",
                    "critical",
                    details={"down_since": self.db_down_since},
                )
        # the nodes
        if mqtt_connected:
            for node, seen in sorted(node_last_seen.items()):
                since = max(seen, self._mqtt_up_since)
                silent = now - since
                if silent > self.node_silent_after_s:
                    out += self._raise(
                        NODE_SILENT,
                        node,
                        now,
                        f"Node {node} silent for more than {self.node_silent_after_s:g} s",
                        "warning",
                        node_uid=node,
                        details={"node_uid": node, "last_seen": seen},
                    )
                elif (NODE_SILENT, node) in self.active and now - seen <= self.node_silent_after_s:
                    out += self._resolve(NODE_SILENT, node, now, f"node {node} heard again", node_uid=node)
        return out

    def _after(self, since: float | None) -> str:
        return f" after {self.clock() - since:.0f} s" if since is not None else ""

    def _raise(self, code, key, now, text, severity, *, node_uid=None, details=None) -> list[InfraAlert]:
        if (code, key) in self.active:
            return []
        self.active.add((code, key))
        return [InfraAlert(RAISE, code, now, text, severity, key, node_uid, details or {})]

    def _resolve(self, code, key, now, reason, *, node_uid=None) -> list[InfraAlert]:
        if (code, key) not in self.active:
            return []
        self.active.discard((code, key))
        return [InfraAlert(RESOLVE, code, now, reason, dedup_key=key, node_uid=node_uid)]
