"""What binding tells a node: the NodeConfig's channels, from its zone's bindings in the rule set.

The firmware's channel entries: `{"name": KEY, "type": "ACTUATOR", "actuator_type": "PUMP"}`
for outputs (with `relay_type` NC/NO where the channel declares a fail-safe state) and
`{"name": KEY, "type": "SENSOR"}` for inputs; `metric` names what a sensor measures.
"""

from __future__ import annotations

from ..lang.model import RuleSet

#: the rule language's channel kinds as the firmware's actuator types (a doser is a peristaltic pump)
ACTUATOR_TYPES = {"pump": "PUMP", "doser": "PUMP", "valve": "VALVE"}


def config_channels(rs: RuleSet, zone_uid: str, node_uid: str) -> list[dict]:
    """The channels of `node_uid` that zone `zone_uid` binds, in NodeConfig form (empty: none bound)."""
    zone = rs.zone(zone_uid)
    if zone is None:
        return []
    out: dict[str, dict] = {}
    for name, b in sorted(zone.channels.items()):
        if b.node_uid != node_uid:
            continue
        spec = rs.channels.get(name)
        kind = spec.kind if spec else ""
        entry = {"name": b.channel_key, "kind": kind}
        if kind == "sensor":
            entry["type"] = "SENSOR"
        else:
            entry["type"] = "ACTUATOR"
            entry["actuator_type"] = ACTUATOR_TYPES.get(kind, "RELAY")
            if spec is not None and spec.fail_safe:
                entry["relay_type"] = spec.fail_safe
        out[b.channel_key] = entry
    for metric, uid in sorted(zone.metric_nodes.items()):
        if uid != node_uid:
            continue
        key = zone.metric_channels.get(metric) or metric
        out.setdefault(key, {"name": key, "type": "SENSOR", "kind": "sensor"})["metric"] = metric
    return list(out.values())
