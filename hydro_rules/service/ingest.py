"""The one ingest core behind both doors (HTTP and MQTT), §2.1.

For each sample: the node must be known, validated and bound to a zone
(§6.4); the metric name goes through the rule set's vocabulary (§7.3); the
value must be a finite number inside the metric's physical range and the time
plausible. Accepted samples are written in one transaction (COPY) and
telemetry_last keeps the newest per (zone, node, metric). Every rejected
sample gets an outcome and a reason; nothing rejected is written.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import asyncpg

from ..lang.model import RuleSet
from ..store import Database
from ..store import alerts as alert_store
from ..store import nodes as node_store
from ..store import telemetry as telemetry_store
from ..store.db import without_nan
from ..store.nodes import NodeInfo
from ..store.partitions import Partitions
from .config import Settings
from .logs import Throttled

log = logging.getLogger(__name__)

ACCEPTED = "accepted"
UNKNOWN_NODE = "unknown_node"
NOT_VALIDATED = "not_validated"
UNKNOWN_METRIC = "unknown_metric"
INVALID_VALUE = "invalid_value"
OUTCOMES = (ACCEPTED, UNKNOWN_NODE, NOT_VALIDATED, UNKNOWN_METRIC, INVALID_VALUE)

UNKNOWN_METRIC_ALERT = "infra_unknown_metric"


@dataclass(slots=True)
class Sample:
    """One reading as a door received it; `metric` is the name the node sent, `ts` epoch seconds."""

    node_uid: str
    metric: str
    value: float
    ts: float
    zone_uid: str | None = None
    channel: str | None = None
    raw: dict | None = None


@dataclass(frozen=True, slots=True)
class Rejection:
    index: int
    outcome: str
    reason: str


@dataclass(slots=True)
class IngestResult:
    counts: dict = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    rejections: list = field(default_factory=list)
    stored: int = 0  # new rows (accepted minus samples that were already stored)

    @property
    def outcomes(self) -> list[str]:
        """The outcome of each sample, in order (for callers that need one per sample)."""
        out = [ACCEPTED] * sum(self.counts.values())
        for r in self.rejections:
            out[r.index] = r.outcome
        return out


def _ts(value: float) -> datetime:
    return datetime.fromtimestamp(value, UTC)


class Vocabulary:
    """Canonical metric names for what nodes send, including the channel and zone binding rules.

    A generic name (TEMPERATURE is temp_air) yields to a more specific metric
    of the same unit when the channel key names that metric (`temp_water`), or
    when the node's zone binds exactly one metric of that unit to this node
    and not the generic one ("temp_water from nd-ec-1").
    """

    def __init__(self, rs: RuleSet) -> None:
        self.rs = rs
        self.bound: dict[tuple[str, str], set[str]] = {}  # (zone, node) -> metrics bound to it
        for z in rs.zones:
            for metric, node in z.metric_nodes.items():
                self.bound.setdefault((z.uid, node), set()).add(metric)

    def canonical(self, name: str, zone_uid: str | None, node_uid: str, channel: str | None) -> str | None:
        m = self.rs.normalize_metric(name)
        if m is None:
            return None
        unit = self.rs.metrics[m].unit
        if channel:
            cm = self.rs.normalize_metric(channel)
            if cm and cm != m and self.rs.metrics[cm].unit == unit:
                return cm
        bound = self.bound.get((zone_uid, node_uid), set())
        if unit and m not in bound:
            same = [b for b in bound if self.rs.metrics[b].unit == unit]
            if len(same) == 1:
                return same[0]
        return m


class IngestCore:
    """Resolves, checks and stores telemetry batches; shared by the HTTP and MQTT doors."""

    def __init__(
        self,
        db: Database,
        ruleset: RuleSet,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.time,
        node_cache_s: float = 5.0,
    ) -> None:
        self.db = db
        self.rs = ruleset
        self.vocab = Vocabulary(ruleset)
        self.settings = settings
        self.clock = clock
        self.partitions = Partitions()
        self.node_cache_s = node_cache_s
        self._nodes: dict[str, tuple[NodeInfo | None, float]] = {}
        self._canonical: dict[tuple, str | None] = {}  # (name, zone, node, channel) -> metric
        self._ranges = {name: (m.low, m.high) for name, m in ruleset.metrics.items()}
        self._log = Throttled(log)

    # ---- nodes -----------------------------------------------------------------------
    def forget_node(self, uid: str | None = None) -> None:
        """Drop cached node facts (after a registration or sync)."""
        if uid is None:
            self._nodes.clear()
        else:
            self._nodes.pop(uid, None)

    async def node(self, uid: str) -> NodeInfo | None:
        """The node's registry facts (None: unknown), from the cache while they are fresh."""
        return (await self._lookup({uid}))[uid]

    async def _lookup(self, uids: set[str]) -> dict[str, NodeInfo | None]:
        now = time.monotonic()
        out: dict[str, NodeInfo | None] = {}
        missing = []
        for uid in uids:
            hit = self._nodes.get(uid)
            if hit is not None and now - hit[1] < self.node_cache_s:
                out[uid] = hit[0]
            else:
                missing.append(uid)
        if missing:
            async with self.db.acquire() as conn:
                found = await node_store.lookup(conn, missing)
            for uid in missing:
                out[uid] = found.get(uid)
                self._nodes[uid] = (out[uid], now)
        return out

    # ---- checks ----------------------------------------------------------------------
    def check_value(self, metric: str, value: float, ts: float, now: float) -> str | None:
        """Why this value cannot be stored, or None."""
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"value {value!r} is not a number"
        if not math.isfinite(value):
            return f"value {value} is not a finite number"
        spec = self.rs.metrics[metric]
        if not spec.low <= value <= spec.high:
            unit = f" {spec.unit}" if spec.unit else ""
            return f"value {value:g} is outside the physical range of {metric} ({spec.low:g} .. {spec.high:g}{unit})"
        if not isinstance(ts, int | float) or isinstance(ts, bool) or not math.isfinite(ts):
            return f"ts {ts!r} is not a time"
        if ts > now + self.settings.max_clock_skew_s:
            return f"ts {_ts(ts).isoformat()} is {ts - now:.0f} s in the future"
        if ts < now - self.settings.max_sample_age_s:
            return f"ts {_ts(ts).isoformat()} is older than {self.settings.max_sample_age_s / 86400:g} days"
        return None

    # ---- the batch ---------------------------------------------------------------------
    async def ingest(self, samples: Sequence[Sample]) -> IngestResult:
        """Check every sample and store the accepted ones in one transaction.

        Raises store.DatabaseUnavailable when the database cannot be reached;
        then nothing of the batch was stored and the caller may retry it whole.
        """
        now = self.clock()
        result = IngestResult()
        nodes = await self._lookup({s.node_uid for s in samples})
        rows = []
        seen: dict[int, datetime] = {}
        unknown_metrics: dict[tuple[NodeInfo, str], int] = {}
        oldest, newest = now - self.settings.max_sample_age_s, now + self.settings.max_clock_skew_s
        canonical, ranges = self._canonical, self._ranges
        for i, s in enumerate(samples):
            node = nodes.get(s.node_uid)
            outcome, reason = None, None
            if node is None:
                outcome, reason = UNKNOWN_NODE, f"node {s.node_uid} is not registered"
            elif not node.validated:
                outcome, reason = NOT_VALIDATED, f"node {s.node_uid} is registered but not validated"
            elif node.zone_id is None:
                outcome, reason = UNKNOWN_NODE, f"node {s.node_uid} is not bound to a zone"
            elif s.zone_uid is not None and s.zone_uid != node.zone_uid:
                outcome, reason = UNKNOWN_NODE, f"node {s.node_uid} belongs to zone {node.zone_uid}, not {s.zone_uid}"
            else:
                key = (s.metric, node.zone_uid, s.node_uid, s.channel)
                metric = canonical.get(key, False)
                if metric is False:
                    metric = canonical[key] = self.vocab.canonical(*key)
                    if len(canonical) > 100_000:
                        canonical.clear()
                if metric is None:
                    outcome, reason = UNKNOWN_METRIC, f"metric {s.metric!r} is not in the vocabulary"
                    key = (node, s.metric)
                    unknown_metrics[key] = unknown_metrics.get(key, 0) + 1
                else:
                    v, ts = s.value, s.ts
                    low, high = ranges[metric]
                    fast = type(v) in (float, int) and type(ts) in (float, int)  # exact types: a bool is no number here
                    if fast and low <= v <= high and oldest <= ts <= newest:  # NaN fails every comparison
                        reason = None
                    else:
                        reason = self.check_value(metric, v, ts, now)
                    if reason:
                        outcome = INVALID_VALUE
                    else:
                        at = _ts(s.ts)
                        raw = without_nan(s.raw) if s.raw else None  # JSON has no NaN: null in the record
                        rows.append((at, node.zone_id, node.id, metric, float(s.value), s.channel, raw, False))
                        if node.id not in seen or seen[node.id] < at:
                            seen[node.id] = at
                        continue
            result.counts[outcome] += 1
            result.rejections.append(Rejection(i, outcome, reason))
            self._log.warning((outcome, s.node_uid), "telemetry not stored: %s", reason)
        result.counts[ACCEPTED] = len(rows)
        if rows or unknown_metrics:
            result.stored = await self._write(rows, seen, unknown_metrics)
        return result

    async def _write(self, rows: list, seen: dict, unknown_metrics: dict) -> int:
        days = {r[0].date() for r in rows}  # UTC datetimes: their date is the partition's day
        dedupe = False
        for _ in range(3):
            async with self.db.acquire() as conn:
                await self.partitions.ensure(conn, days)
                try:
                    async with conn.transaction():
                        stored = await telemetry_store.write_samples(conn, rows, dedupe=dedupe)
                        await telemetry_store.upsert_last(conn, rows)
                        await node_store.touch(conn, seen)
                        await self._raise_unknown_metrics(conn, unknown_metrics)
                    return stored
                except asyncpg.UniqueViolationError:
                    dedupe = True  # some of these samples are stored already (a redelivery)
                except asyncpg.CheckViolationError:
                    # a partition we believed in is gone (dropped by retention): look again
                    self.partitions.forget()
        raise RuntimeError("telemetry batch could not be written after 3 attempts")

    async def _raise_unknown_metrics(self, conn, unknown: dict) -> None:
        for (node, metric), count in sorted(unknown.items(), key=lambda kv: (kv[0][0].uid, kv[0][1])):
            await alert_store.raise_alert(
                conn,
                zone_id=node.zone_id,
                node_id=node.id,
                source="infra",
                code=UNKNOWN_METRIC_ALERT,
                type=f"Unknown metric {metric!r} from node {node.uid}",
                severity="warning",
                dedup_key=f"{node.uid}/{metric}",
                details={"node_uid": node.uid, "metric_type": metric},
                ruleset_version=self.rs.ruleset_version,
                count=count,
            )
