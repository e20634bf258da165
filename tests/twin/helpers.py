"""Shared set-up of the twin tests: the example zone, commands addressed by channel name."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from functools import cache

from hydro_rules.lang.loader import load
from hydro_rules.messages import WireCommand
from hydro_rules.twin import TwinConfig, ZoneTwin, parse_fault

T0 = datetime(2026, 1, 10, tzinfo=UTC).timestamp()  # zn-1 planted 2025-12-20: day 21, growth phase
MIN, HOUR, DAY = 60.0, 3600.0, 86400.0
_ids = itertools.count(1)


@cache
def ruleset():
    return load("examples").ruleset


def zone(uid: str = "zn-1"):
    return ruleset().zone(uid)


def make(*faults: str, seed: int = 1, start: float = T0, zone_=None, **config) -> ZoneTwin:
    """A twin of zn-1 (or `zone_`), advanced to its start; the readings published at the start are dropped."""
    twin = ZoneTwin(
        zone_ or zone(),
        ruleset(),
        seed=seed,
        start=start,
        faults=[parse_fault(f) for f in faults],
        config=TwinConfig(**config),
    )
    twin.advance(start)
    twin.drain_telemetry()
    return twin


def command(twin: ZoneTwin, channel: str, cmd: str, ts: float | None = None, **params) -> WireCommand:
    b = twin.zone.channels[channel]
    ts = twin.now if ts is None else ts
    return WireCommand(f"cmd-{next(_ids)}", b.node_uid, b.channel_key, cmd, params, ts)


def send(twin: ZoneTwin, channel: str, cmd: str, ts: float | None = None, **params) -> WireCommand:
    c = command(twin, channel, cmd, ts, **params)
    twin.send(c)
    return c


def run(twin: ZoneTwin, seconds: float, tick: float = MIN) -> list:
    """Advance by `seconds` in steps of `tick`; the readings published meanwhile."""
    end = twin.now + seconds
    out = []
    while twin.now < end - 1e-9:
        twin.advance(min(twin.now + tick, end))
        out += twin.drain_telemetry()
    return out


def statuses(twin: ZoneTwin, cmd: WireCommand) -> list[str]:
    return [r.status for r in twin.drain_responses() if r.cmd_id == cmd.cmd_id]


def values(readings, node: str, metric: str) -> list[float]:
    return [r.value for r in readings if r.node_uid == node and r.metric == metric]
