"""Simulated nodes: the digital twin of each zone in real time, speaking the node protocol over MQTT.

`NodeSim(ruleset, zone_uids, mqtt_url, secrets, *, firmware, faults, seed)` with
`await start()` / `await stop()`, `await reboot(node_uid)`, `inject(fault)` and
`counters`; `hydro-rules nodes simulate SITE` runs it. See docs/nodesim.md.
"""

from .config import settable, twin_config
from .firmware import REFUSALS, Checked, check_command
from .sim import Counters, NodeSim, Reboot, parse_reboot, read_secrets

__all__ = [
    "REFUSALS",
    "Checked",
    "Counters",
    "NodeSim",
    "Reboot",
    "check_command",
    "parse_reboot",
    "read_secrets",
    "settable",
    "twin_config",
]
