"""Fault specifications `KIND@OFFSET[:ARGS]` and their checks against a zone.

ARGS are comma-separated: one bare word names the target (a channel, a metric or
a node), `key=value` sets a parameter. See the package docstring for each kind.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..lang import units as U
from .config import TwinConfig
from .sensors import reporters

KINDS = (
    "dry_reservoir",
    "leak",
    "stuck_relay",
    "overcurrent",
    "no_flow",
    "sensor_frozen",
    "sensor_dead",
    "node_offline",
    "controller_crash",
    "heater_stuck",
    "heater_failed",
    "chiller_stuck",
    "chiller_failed",
)
#: faults of the solution's heating and cooling: the zone must have the device (plant.heater, plant.chiller)
THERMAL_KINDS = {"heater_stuck": "heater", "heater_failed": "heater", "chiller_stuck": "chiller",
                 "chiller_failed": "chiller"}  # fmt: skip
CHANNEL_KINDS = frozenset({"stuck_relay", "overcurrent", "no_flow"})
METRIC_KINDS = frozenset({"sensor_frozen", "sensor_dead"})

#: default target of each kind that takes one
DEFAULT_TARGET = {
    "stuck_relay": "pump_recirc",
    "overcurrent": "pump_recirc",
    "no_flow": "pump_recirc",
    "sensor_frozen": "ph",
    "sensor_dead": "water_level",
    "node_offline": "pump_recirc",  # a channel name stands for the node it is bound to
}
DEFAULT_RATE_L_H = {"dry_reservoir": 600.0, "leak": 12.0}
DEFAULT_FOR_S = {"controller_crash": 1800.0}

#: parameters each kind accepts besides `for`
PARAMS = {"dry_reservoir": {"rate"}, "leak": {"rate"}, "overcurrent": {"current"}}
PARAMS.update({k: {"node"} for k in METRIC_KINDS})

_DURATION = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|s|m|h|d|w))+")
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]*")
_NUMBER = re.compile(r"(\d+(?:\.\d+)?)\s*([A-Za-z/]*)")


class FaultError(ValueError):
    """A fault specification that cannot be used; the message is one line for a usage error."""


@dataclass(frozen=True, slots=True)
class Fault:
    kind: str
    offset_s: float
    target: str | None = None  # channel, metric or node (a channel for node_offline means its node)
    for_s: float | None = None  # None: until the end of the run
    rate_l_h: float | None = None  # dry_reservoir, leak
    current_ma: float | None = None  # overcurrent; None: TwinConfig.fault_ma
    node: str | None = None  # sensor faults: only this node's reading of the metric
    text: str = ""

    def __str__(self) -> str:
        return self.text or f"{self.kind}@{self.offset_s:g}s"


def parse_duration(text: str) -> float:
    """Seconds in a duration written as in rules (`6d`, `36h`, `90m`, `45s`, `1h30m`) or `0`; ValueError otherwise."""
    if text == "0":
        return 0.0
    if not _DURATION.fullmatch(text):
        raise ValueError(text)
    return U.parse_duration(text)


def _number(text: str, units: dict[str, float], what: str, spec: str) -> float:
    m = _NUMBER.fullmatch(text)
    if not m or m.group(2) not in units:
        shown = ", ".join(u for u in units if u) or "none"
        raise FaultError(f"bad fault {spec!r}: {what} {text!r} is not a positive number (units: {shown})")
    value = float(m.group(1)) * units[m.group(2)]
    if value <= 0:
        raise FaultError(f"bad fault {spec!r}: {what} must be positive")
    return value


def parse_fault(text: str) -> Fault:
    """A Fault from `KIND@OFFSET[:ARGS]`, e.g. `leak@36h:rate=20`, `node_offline@2d:nd-pump-1,for=2h`."""
    spec = text.strip()
    head, _, args = spec.partition(":")
    kind, at, offset = head.partition("@")
    kind = kind.strip()
    if kind not in KINDS:
        raise FaultError(f"bad fault {spec!r}: unknown kind {kind!r} (known: {', '.join(KINDS)})")
    if not at:
        raise FaultError(f"bad fault {spec!r}: expected KIND@OFFSET[:ARGS], e.g. {kind}@6d")
    try:
        offset_s = parse_duration(offset.strip())
    except ValueError:
        raise FaultError(
            f"bad fault {spec!r}: offset {offset.strip()!r} is not a duration like 6d, 36h, 90m, 1h30m"
        ) from None
    target = None
    params: dict[str, str] = {}
    if ":" in spec:
        for raw in args.split(","):
            arg = raw.strip()
            key, eq, value = arg.partition("=")
            key, value = key.strip(), value.strip()
            if not arg or (eq and (not key or not value)):
                raise FaultError(f"bad fault {spec!r}: empty argument in {args!r}")
            if eq:
                if key != "for" and key not in PARAMS.get(kind, ()):
                    allowed = ", ".join(sorted(PARAMS.get(kind, set()) | {"for"}))
                    raise FaultError(f"bad fault {spec!r}: {kind} has no parameter {key!r} (it takes: {allowed})")
                if key in params:
                    raise FaultError(f"bad fault {spec!r}: parameter {key!r} given twice")
                params[key] = value
            elif kind not in DEFAULT_TARGET:
                raise FaultError(f"bad fault {spec!r}: {kind} takes no target, got {arg!r}")
            elif target is not None:
                raise FaultError(f"bad fault {spec!r}: more than one target ({target!r}, {arg!r})")
            elif not _NAME.fullmatch(arg):
                raise FaultError(f"bad fault {spec!r}: target {arg!r} is not a channel, metric or node name")
            else:
                target = arg
    for_s = DEFAULT_FOR_S.get(kind)
    if "for" in params:
        try:
            for_s = parse_duration(params["for"])
        except ValueError:
            raise FaultError(f"bad fault {spec!r}: for={params['for']!r} is not a duration like 30m, 2h, 1d") from None
        if for_s <= 0:
            raise FaultError(f"bad fault {spec!r}: for= must be longer than 0")
    rate = DEFAULT_RATE_L_H.get(kind)
    if "rate" in params:
        rate = _number(params["rate"], {"": 1.0, "L/h": 1.0, "L/min": 60.0}, "rate", spec)
    current = (
        _number(params["current"], {"": 1.0, "mA": 1.0, "A": 1000.0}, "current", spec) if "current" in params else None
    )
    node = params.get("node")
    if node is not None and not _NAME.fullmatch(node):
        raise FaultError(f"bad fault {spec!r}: node {node!r} is not a node uid")
    return Fault(kind, offset_s, target or DEFAULT_TARGET.get(kind), for_s, rate, current, node, spec)


def check_fault(fault: Fault, zone, ruleset, config=None) -> None:
    """Raise FaultError when the fault's target does not exist in the zone or cannot have that fault."""
    if config is None:
        config = TwinConfig()
    where = f"zone {zone.uid}"
    if fault.kind in CHANNEL_KINDS:
        name = fault.target
        if name not in zone.channels:
            raise FaultError(f"fault {fault}: {where} has no channel {name!r} (it has: {', '.join(zone.channels)})")
        ch = ruleset.channels.get(name)
        if ch is None or ch.kind not in ("pump", "valve"):
            raise FaultError(f"fault {fault}: {fault.kind} needs a pump or valve channel, {name!r} is not one")
    elif fault.kind in METRIC_KINDS:
        nodes = [n for n, _ in reporters(zone, ruleset, config).get(fault.target, ())]
        if not nodes:
            raise FaultError(f"fault {fault}: no node of {where} reports metric {fault.target!r}")
        if fault.node is not None and fault.node not in nodes:
            raise FaultError(f"fault {fault}: node {fault.node!r} does not report {fault.target!r} in {where}")
    elif fault.kind == "node_offline" and fault.target not in zone.nodes and fault.target not in zone.channels:
        raise FaultError(f"fault {fault}: {fault.target!r} is neither a node nor a channel of {where}")
    elif fault.kind in THERMAL_KINDS:
        device = THERMAL_KINDS[fault.kind]
        if not has_device(zone, ruleset, device):
            raise FaultError(f"fault {fault}: {where} has no {device} (set `plant {{ {device} yes }}` in its settings)")


def has_device(zone, ruleset, device: str) -> bool:
    """Does the zone have a heater (chiller): plant.heater (plant.chiller) in its settings or a recipe phase's?"""
    path = f"plant.{device}"
    if ruleset.zone_settings(zone).get(path):
        return True
    recipe = ruleset.recipes.get(zone.recipe)
    return recipe is not None and any(ph.settings.get(path) for ph in recipe.phases)


def applies_to(fault: Fault, zone) -> bool:
    """False when the fault names a node the zone lacks (node_offline:UID, node=UID): a site-wide run skips it there."""
    if fault.kind == "node_offline" and fault.target not in zone.channels:
        return fault.target in zone.nodes
    return fault.node is None or fault.node in zone.nodes


def fault_node(fault: Fault, zone) -> str:
    """The node uid a node_offline fault silences."""
    b = zone.channels.get(fault.target)
    return b.node_uid if b is not None and fault.target not in zone.nodes else fault.target
