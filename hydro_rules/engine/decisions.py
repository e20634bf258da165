"""What one evaluation decides: commands to send, alerts raised and cleared,
state transitions, zone events and guard refusals. Each says what caused it."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class Command:
    cmd_id: str
    zone_uid: str
    channel: str  # the zone's channel name (rules speak of it)
    node_uid: str
    channel_key: str  # the node's channel key (the wire speaks of it)
    cmd: str
    params: dict
    at: float
    rule: str  # what caused it: "state WATER_CHANGE_DRAIN (rules/water_cycle.hydro:29)"
    intent: str  # on | off | dose
    ruleset_version: str = ""  # name@version+hash of the rules that decided it
    renewal: bool = False  # a run_pump that extends a run under way (commands.run_chunk)

    def to_json(self) -> dict:
        return {
            "cmd_id": self.cmd_id,
            "at": self.at,
            "channel": self.channel,
            "node_uid": self.node_uid,
            "channel_key": self.channel_key,
            "cmd": self.cmd,
            "params": self.params,
            "rule": self.rule,
            "ruleset_version": self.ruleset_version,
        }


@dataclass(slots=True)
class AlertChange:
    code: str
    channel: str | None
    change: str  # raised | resolved
    at: float
    source: str
    severity: str
    text: str
    details: dict = field(default_factory=dict)
    by: str | None = None  # who resolved it (operator reset)
    why: str | None = None
    ruleset_version: str = ""


@dataclass(slots=True)
class StateChange:
    machine: str
    source: str
    target: str
    at: float
    reason: str
    index: int = -1  # which transition of the source state


@dataclass(slots=True)
class ZoneEvent:
    type: str
    at: float
    details: dict = field(default_factory=dict)


@dataclass(slots=True)
class Refusal:
    """A guard kept a channel off."""

    channel: str
    guard: str
    reason: str
    at: float


@dataclass(slots=True)
class Held:
    """A transition that would start a water change waits: the water path is not sound."""

    machine: str
    source: str
    target: str
    at: float
    reason: str


@dataclass(slots=True)
class Decisions:
    commands: list = field(default_factory=list)
    alerts: list = field(default_factory=list)
    transitions: list = field(default_factory=list)
    events: list = field(default_factory=list)
    refusals: list = field(default_factory=list)
    held: list = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.commands or self.alerts or self.transitions or self.events or self.refusals or self.held)
