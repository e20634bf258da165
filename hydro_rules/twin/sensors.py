"""Which node reports which metric, and the Gaussian noise table the readings draw from.

A node reports one value per metric: a channel's `current`/`flow` metric is read by
the node the channel is bound to (the sum when several of its channels share the
metric), or its `flow_flag` metric instead of `flow` when TwinConfig.pump_flow is
"flag" (1 while any of them moves water); a node in `zone.metric_nodes` reports the solution (ph, ec, temp_water,
water_level, water_level_switch); a standalone current or flow sensor there
measures the recirculation line; `temp_air` reads the twin's air temperature; metrics the twin does not model report the
TwinConfig.ambient constant, or nothing when there is none.
"""

from __future__ import annotations

import hashlib
from functools import cache
from statistics import NormalDist

SOLUTION = frozenset({"ph", "ec", "temp_water", "water_level", "water_level_switch"})
AIR = "temp_air"
NOISE_BITS = 16
MASK64 = (1 << 64) - 1


def reporters(zone, ruleset, cfg) -> dict[str, list[tuple[str, tuple]]]:
    """metric -> [(node uid, source)], source one of (metric,), ("current"|"flow"|"flag", channels),
    ("ambient", v)."""
    pairs: dict[tuple[str, str], tuple] = {}

    def add(node: str, metric: str, source: tuple) -> None:
        old = pairs.get((node, metric))
        if old is not None and old[0] in ("current", "flow", "flag") and source[0] == old[0]:
            source = (old[0], old[1] + tuple(c for c in source[1] if c not in old[1]))
        elif old is not None:
            return
        pairs[(node, metric)] = source

    channels = {name: ruleset.channels.get(name) for name in zone.channels}
    for metric, node in zone.metric_nodes.items():
        if metric in SOLUTION:
            add(node, metric, (metric,))
            continue
        if metric == AIR and metric not in cfg.ambient:
            add(node, metric, (metric,))  # the twin's air temperature (plant.air_temp and its swing)
            continue
        for attr in ("current", "flow"):
            line = tuple(n for n, c in channels.items() if c and getattr(c, attr) == metric and cfg.role(n) == "recirc")
            if line:
                add(node, metric, (attr, line))
                break
        else:
            value = cfg.ambient_value(metric)
            if value is not None:
                add(node, metric, ("ambient", value))
    for name, b in zone.channels.items():
        ch = channels[name]
        if ch is None:
            continue
        if ch.current:
            add(b.node_uid, ch.current, ("current", (name,)))
        if ch.flow_flag and cfg.pump_flow == "flag":
            add(b.node_uid, ch.flow_flag, ("flag", (name,)))
        elif ch.flow:
            add(b.node_uid, ch.flow, ("flow", (name,)))
        if ch.measures in SOLUTION:
            add(b.node_uid, ch.measures, (ch.measures,))
    out: dict[str, list[tuple[str, tuple]]] = {}
    for (node, metric), source in pairs.items():
        out.setdefault(metric, []).append((node, source))
    return out


def channel_key(zone, ruleset, node: str, metric: str) -> str | None:
    """The node channel a reading of `metric` comes from, as firmware names it: the channel the
    zone binds the metric to on that node, else the first channel the vocabulary declares for
    the metric (`channel pump_bus_current`), else None."""
    if zone.metric_nodes.get(metric) == node and metric in zone.metric_channels:
        return zone.metric_channels[metric]
    m = ruleset.metrics.get(metric)
    return m.channels[0] if m is not None and m.channels else None


def _hash64(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


def time_salt(seed: int) -> int:
    """The run's 64-bit salt of the instant key (see noise_index)."""
    return _hash64(f"hydro-rules twin noise|{seed}")


def noise_key(seed: int, node: str, metric: str, channel: str | None) -> int:
    """A publisher's 64-bit odd multiplier: its noise at an instant is table[noise_index(salt, key, t)]."""
    return _hash64(f"{seed}|{node}|{metric}|{channel}") | 1


def instant_hash(salt: int, t: float) -> int:
    """splitmix64 of the instant (in ms) plus the run's salt: the same for every publisher at `t`."""
    z = (int(t * 1000.0) + salt) & MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def noise_index(salt: int, key: int, t: float) -> int:
    """Which entry of the Gaussian table the reading of the publisher `key` at instant `t` draws:
    bits 48..63 of instant_hash * key. A pure function of (seed, publisher, t): skipping instants, or
    publishers going silent, changes no other reading. publish.py inlines this."""
    return ((instant_hash(salt, t) * key) >> 48) & 0xFFFF


@cache
def gaussian_table() -> tuple[float, ...]:
    """Standard normal quantiles at the midpoints of 2**16 equal-probability bins (inverse-transform sampling).

    A reading draws `table[noise_index(...)]`: exactly Gaussian up to the 16-bit quantisation
    (tails cut at 4.3 sigma: noise_max()), cheaper than random.gauss.
    """
    n = 1 << NOISE_BITS
    inv = NormalDist().inv_cdf
    return tuple(inv((i + 0.5) / n) for i in range(n))


@cache
def noise_max() -> float:
    """The largest |entry| of the table: a reading's noise never exceeds sigma times this."""
    return max(abs(x) for x in gaussian_table())
