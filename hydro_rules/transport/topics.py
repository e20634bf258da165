"""Topic names of the node protocol (node-mqtt-protocol.md): parsing what nodes publish, building what we send."""

from __future__ import annotations

import re
from dataclasses import dataclass

ROOT = "hydro"
HELLO = "hydro/node_hello"
#: the namespace of a node that knows no ids yet: hydro/gh-temp/zn-temp/{hardware_id}/...
TEMP_GREENHOUSE, TEMP_ZONE = "gh-temp", "zn-temp"
#: a hardware id becomes a topic segment and a broker login: no `/ + #`, no `:` (the password file's separator)
HARDWARE_ID_MAX = 64
HARDWARE_ID_PATTERN = rf"^[A-Za-z0-9][A-Za-z0-9_.-]{{0,{HARDWARE_ID_MAX - 1}}}$"
_HARDWARE_ID = re.compile(HARDWARE_ID_PATTERN)
TIME_REQUEST = "hydro/time/request"
TIME_RESPONSE = "hydro/time/response"
CHANNEL_TYPES = ("telemetry", "command_response", "event")
NODE_TYPES = ("status", "lwt", "heartbeat", "node_hello", "config_report", "error", "diagnostics")

#: what the ingest subscribes to: targeted wildcards, never hydro/#
SUBSCRIPTIONS = (
    *(f"{ROOT}/+/+/+/+/{t}" for t in CHANNEL_TYPES),
    *(f"{ROOT}/+/+/+/{t}" for t in NODE_TYPES),
    HELLO,
    TIME_REQUEST,
)


@dataclass(frozen=True, slots=True)
class Topic:
    """A parsed node topic. `channel` is None for node-level messages; ids are None for hydro/node_hello."""

    type: str
    greenhouse: str | None = None
    zone: str | None = None
    node: str | None = None
    channel: str | None = None

    @property
    def temporary(self) -> bool:
        """Published under hydro/gh-temp/zn-temp/{hardware_id}/...: `node` is a hardware id, not a node uid."""
        return self.greenhouse == TEMP_GREENHOUSE and self.zone == TEMP_ZONE


def hardware_id_problem(hardware_id: str) -> str | None:
    """Why this cannot be a hardware id, or None."""
    if len(hardware_id) > HARDWARE_ID_MAX:
        return f"hardware id {hardware_id[:20]!r}... is longer than {HARDWARE_ID_MAX} characters"
    if not _HARDWARE_ID.match(hardware_id):
        return f"hardware id {hardware_id!r} may hold only letters, digits and - _ . (starting with a letter or digit)"
    return None


def _ok(segment: str) -> bool:
    return bool(segment) and "+" not in segment and "#" not in segment and len(segment) <= 128


def parse(topic: str) -> Topic | None:
    """The topic's parts, or None when it is not a node-to-backend topic of the protocol."""
    if topic == HELLO:
        return Topic("node_hello")
    if topic == TIME_REQUEST:
        return Topic("time_request")
    parts = topic.split("/")
    if parts[0] != ROOT or not all(_ok(p) for p in parts[1:]):
        return None
    if len(parts) == 6 and parts[5] in CHANNEL_TYPES:
        return Topic(parts[5], parts[1], parts[2], parts[3], parts[4])
    if len(parts) == 5 and parts[4] in NODE_TYPES:
        return Topic(parts[4], parts[1], parts[2], parts[3])
    return None


def temp_config(hardware_id: str) -> str:
    """Where an unassigned node listens for the NodeConfig that binds it."""
    return f"{ROOT}/{TEMP_GREENHOUSE}/{TEMP_ZONE}/{hardware_id}/config"


def command(greenhouse: str, zone: str, node: str, channel: str) -> str:
    return f"{ROOT}/{greenhouse}/{zone}/{node}/{channel}/command"
