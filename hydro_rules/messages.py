"""What crosses between nodes, the engine and the twin: readings, commands, responses.

Times are UTC epoch seconds (float). Metric names are canonical (the ingest
core and the twin translate the upper-case names nodes send).
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: command_response statuses (node-mqtt-protocol.md); all but ACK are terminal
ACK, DONE, ERROR, INVALID, BUSY, NO_EFFECT, TIMEOUT = "ACK", "DONE", "ERROR", "INVALID", "BUSY", "NO_EFFECT", "TIMEOUT"
TERMINAL = frozenset({DONE, ERROR, INVALID, BUSY, NO_EFFECT, TIMEOUT})
FAILED = frozenset({ERROR, INVALID, BUSY, TIMEOUT})


@dataclass(frozen=True, slots=True)
class Reading:
    """One telemetry sample as stored in telemetry_last: node + channel + metric.

    `channel` is the node's channel key the sample came from (None when not known):
    a node may send one metric on several channels, each its own series.
    """

    node_uid: str
    metric: str
    value: float
    ts: float
    channel: str | None = None


@dataclass(frozen=True, slots=True)
class WireCommand:
    """A command as a node receives it (before signing): `cmd` with `params` on a channel."""

    cmd_id: str
    node_uid: str
    channel_key: str
    cmd: str  # run_pump | dose | set_relay | set_pwm | calibrate | test_sensor | restart
    params: dict = field(default_factory=dict)
    ts: float = 0.0


@dataclass(frozen=True, slots=True)
class CommandResponse:
    cmd_id: str
    status: str
    ts: float
    error_code: str | None = None
    details: dict = field(default_factory=dict)
