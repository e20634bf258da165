"""The one ingest core behind both doors (HTTP and MQTT), §2.1.

For each sample: the node must be known, validated and bound to a zone
(§6.4); the reading goes through the rule set's vocabulary (§7.3), where the
channel may decide what a generic metric type means and a unit is converted to
the metric's; the value must be a finite number inside the metric's physical
range and the time plausible. Accepted samples are written in one transaction
(COPY) and telemetry_last keeps the newest per (zone, node, metric, channel);
a stub sample is stored flagged and never reaches telemetry_last. Every
rejected sample gets an outcome and a reason; nothing rejected is written.
What a node sends beside the reading is kept as its record, as far as it is
storable: a junk extra key is left out, never the reading.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import asyncpg

from ..lang.model import RuleSet, fold_channel, unit_factor
from ..pgtext import TooDeep, bad_text, clean_text, storable
from ..store import Database
from ..store import alerts as alert_store
from ..store import nodes as node_store
from ..store import telemetry as telemetry_store
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
MALFORMED = "malformed"  # the sample itself is not a sample: a missing field, a text the database cannot hold
OUTCOMES = (ACCEPTED, UNKNOWN_NODE, NOT_VALIDATED, UNKNOWN_METRIC, INVALID_VALUE, MALFORMED)

UNKNOWN_METRIC_ALERT = "infra_unknown_metric"
#: how many names of unknown metrics one node's alert lists
UNKNOWN_NAMES_KEPT = 20

#: bounds of a sample's record (its extra keys): deeper or larger values are left out
RECORD_MAX_DEPTH = 8
RECORD_MAX_BYTES = 4096
_SHORT = 256  # a record whose keys are few and whose values are short clean scalars is stored as it is

#: the node facts cached at most (an unknown sender must not grow the cache without bound)
NODE_CACHE_MAX = 10_000


@dataclass(slots=True)
class Sample:
    """One reading as a door received it; `metric` is the name the node sent, `ts` epoch seconds.

    `unit`: the unit the node named (None: the metric's own, or the zone's `unit` binding).
    `stub`: a simulated reading from a node without its sensor fitted. `malformed`: why the
    door could not read it as a sample (it is refused with that reason, keeping its place).
    """

    node_uid: str
    metric: str
    value: float
    ts: float
    zone_uid: str | None = None
    channel: str | None = None
    raw: dict | None = None
    greenhouse_uid: str | None = None  # the topic's greenhouse segment: checked like the zone
    unit: str | None = None
    stub: bool = False
    malformed: str | None = None


@dataclass(frozen=True, slots=True)
class Rejection:
    index: int
    outcome: str
    reason: str


@dataclass(frozen=True, slots=True)
class Note:
    """Something about an accepted sample its sender should know (a stub, an extra key left out)."""

    index: int
    note: str


@dataclass(slots=True)
class IngestResult:
    counts: dict = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    rejections: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    stored: int = 0  # new rows (accepted minus samples that were already stored)
    stub: int = 0  # accepted stub samples: stored flagged, never used by rules

    @property
    def outcomes(self) -> list[str]:
        """The outcome of each sample, in order (for callers that need one per sample)."""
        out = [ACCEPTED] * sum(self.counts.values())
        for r in self.rejections:
            out[r.index] = r.outcome
        return out


def _ts(value: float) -> datetime:
    return datetime.fromtimestamp(value, UTC)


def _when(ts: float) -> str:
    """A time for a reason: ISO 8601 when a datetime can hold it, else the number."""
    try:
        return _ts(ts).isoformat()
    except (ValueError, OverflowError, OSError):
        return f"{ts:g} s"


def _name(text: str) -> str:
    """A sender's name (metric, unit) as it may appear in a reason or an alert: short and storable."""
    return clean_text(text[:64])


@dataclass(frozen=True, slots=True)
class Meaning:
    """What a reading is: its metric and the factor to the metric's unit, or why it cannot be stored."""

    metric: str | None
    factor: float | None
    outcome: str | None = None
    reason: str | None = None


class Vocabulary:
    """What a node's reading is in its zone: the rule set's vocabulary, then the zone's bindings.

    The vocabulary (`RuleSet.resolve_reading`) decides by declared channel, by a channel key
    naming a metric of the same unit, or by metric type. The zone then has its say:
    a channel it binds a metric to (`temp_water from nd-1 channel solution_temp_c`) carries
    that metric; and a generic name the channel did not decide (TEMPERATURE is temp_air)
    yields to the one metric of the same unit the zone binds to this node and not to a
    channel of it ("temp_water from nd-ec-1"). A reading without a unit is in the unit the
    zone's binding names (`unit ratio`), else in the metric's own.
    """

    def __init__(self, rs: RuleSet) -> None:
        self.rs = rs
        self.bound: dict[tuple[str, str], set[str]] = {}  # (zone, node) -> metrics bound to it, any channel
        self.by_channel: dict[tuple[str, str, str], str] = {}  # (zone, node, channel key) -> metric
        #: (zone, node, metric) -> the unit it sends, and the channel that holds for (None: any)
        self.units: dict[tuple[str, str, str], tuple[str, str | None]] = {}
        for z in rs.zones:
            for metric, node in z.metric_nodes.items():
                channel = z.metric_channels.get(metric)
                if channel:
                    self.by_channel[(z.uid, node, fold_channel(channel))] = metric
                else:
                    self.bound.setdefault((z.uid, node), set()).add(metric)
                if z.metric_units.get(metric):
                    self.units[(z.uid, node, metric)] = (
                        z.metric_units[metric],
                        fold_channel(channel) if channel else None,
                    )

    def resolve(self, name: str, zone_uid: str | None, node_uid: str, channel: str | None, unit: str | None) -> Meaning:
        r = self.rs.resolve_reading(name, channel)
        if r is None:
            return Meaning(None, None, UNKNOWN_METRIC, f"metric {_name(name)!r} is not in the vocabulary")
        metric = self._in_zone(r.metric, name, zone_uid, node_uid, channel)
        given = unit if unit is not None else self._bound_unit(zone_uid, node_uid, metric, channel)
        factor, why = unit_factor(self.rs.metrics[metric], given)
        if factor is None:
            return Meaning(metric, None, INVALID_VALUE, f"unit {_name(given)!r} refused: {clean_text(why)}")
        return Meaning(metric, factor)

    def _bound_unit(self, zone_uid: str | None, node_uid: str, metric: str, channel: str | None) -> str | None:
        """The unit the zone says this node sends `metric` in (on its bound channel, if it names one)."""
        bound = self.units.get((zone_uid, node_uid, metric))
        if bound is None or (bound[1] is not None and fold_channel(channel or "") != bound[1]):
            return None
        return bound[0]

    def _in_zone(self, metric: str, name: str, zone_uid: str | None, node_uid: str, channel: str | None) -> str:
        unit = self.rs.metrics[metric].unit
        key = fold_channel(channel) if channel else None
        bound = self.by_channel.get((zone_uid, node_uid, key)) if key else None
        if bound is not None and bound != metric and self.rs.metrics[bound].unit == unit:
            return bound
        channel_decided = key is not None and (
            key in self.rs.reading_channels or metric != self.rs.normalize_metric(name)
        )
        if channel_decided or not unit:
            return metric
        others = self.bound.get((zone_uid, node_uid), set())
        if metric not in others:
            same = [b for b in others if self.rs.metrics[b].unit == unit]
            if len(same) == 1:
                return same[0]
        return metric


def _record(raw: dict) -> tuple[dict | None, list[str]]:
    """A sample's extra keys as jsonb stores them, and what was left out (a key nested too deep,
    too large, or past the record's size): the reading is kept whatever its neighbours hold."""
    if len(raw) <= 32 and all(_short(k) and _short(v) for k, v in raw.items()):
        return raw, []
    kept, left_out, size = {}, [], 0
    for k, v in raw.items():
        key = clean_text(str(k))[:64]
        try:
            value = storable(v, RECORD_MAX_DEPTH)
        except TooDeep:
            left_out.append(f"extra key {key!r} not kept: nested deeper than {RECORD_MAX_DEPTH} levels")
            continue
        n = len(key) + len(json.dumps(value, ensure_ascii=False))
        if size + n > RECORD_MAX_BYTES:
            left_out.append(f"extra key {key!r} not kept: the record would exceed {RECORD_MAX_BYTES} bytes")
            continue
        kept[key] = value
        size += n
    return kept or None, left_out


def _short(v) -> bool:
    """A value that needs no cleaning: a finite number, a bool, null, or a short storable string."""
    if v is None or v is True or v is False or type(v) is int:
        return True
    if type(v) is float:
        return math.isfinite(v)
    return type(v) is str and len(v) <= _SHORT and bad_text(v) is None


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
        node_cache_max: int = NODE_CACHE_MAX,
    ) -> None:
        self.db = db
        self.rs = ruleset
        self.vocab = Vocabulary(ruleset)
        self.settings = settings
        self.clock = clock
        self.partitions = Partitions()
        self.node_cache_s = node_cache_s
        self.node_cache_max = node_cache_max
        self._nodes: OrderedDict[str, tuple[NodeInfo | None, float]] = OrderedDict()  # least recently used first
        self._meanings: dict[tuple, Meaning] = {}  # (name, zone, node, channel, unit) -> Meaning
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
                self._nodes.move_to_end(uid)
            elif bad_text(uid):
                out[uid] = None  # no node has such a uid, and the database cannot be asked about it
            else:
                missing.append(uid)
        if missing:
            async with self.db.acquire() as conn:
                found = await node_store.lookup(conn, missing)
            for uid in missing:
                out[uid] = found.get(uid)
                self._nodes[uid] = (out[uid], now)
                self._nodes.move_to_end(uid)
            while len(self._nodes) > self.node_cache_max:
                self._nodes.popitem(last=False)
        return out

    # ---- checks ----------------------------------------------------------------------
    def check_value(self, metric: str, value: float, ts: float, now: float, factor: float = 1.0) -> str | None:
        """Why this value (in the node's unit, times `factor` in the metric's) cannot be stored, or None."""
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"value {value!r:.64} is not a number"
        if not math.isfinite(value):
            return f"value {value} is not a finite number"
        if isinstance(ts, bool) or not isinstance(ts, int | float) or not math.isfinite(ts):
            return f"ts {ts!r:.64} is not a time"
        spec = self.rs.metrics[metric]
        converted = value * factor
        if not spec.low <= converted <= spec.high:
            unit = f" {spec.unit}" if spec.unit else ""
            sent = f" ({value:g} converted by {factor:g})" if factor != 1.0 else ""
            return (
                f"value {converted:g}{sent} is outside the physical range of {metric} "
                f"({spec.low:g} .. {spec.high:g}{unit})"
            )
        if ts > now + self.settings.max_clock_skew_s:
            hint = " (milliseconds? ts is in seconds)" if ts / 1000 <= now + self.settings.max_clock_skew_s else ""
            return f"ts {_when(ts)} is {ts - now:.0f} s in the future{hint}"
        if ts < now - self.settings.max_sample_age_s:
            return f"ts {_when(ts)} is older than {self.settings.max_sample_age_s / 86400:g} days"
        return None

    def _meaning(self, s: Sample, node: NodeInfo) -> Meaning:
        key = (s.metric, node.zone_uid, s.node_uid, s.channel, s.unit)
        meaning = self._meanings.get(key)
        if meaning is None:
            if len(self._meanings) > 100_000:
                self._meanings.clear()
            meaning = self._meanings[key] = self.vocab.resolve(*key)
        return meaning

    # ---- the batch ---------------------------------------------------------------------
    async def ingest(self, samples: Sequence[Sample]) -> IngestResult:
        """Check every sample and store the accepted ones in one transaction.

        Raises store.DatabaseUnavailable when the database cannot be reached;
        then nothing of the batch was stored and the caller may retry it whole.
        """
        now = self.clock()
        result = IngestResult()
        nodes = await self._lookup({s.node_uid for s in samples if s.malformed is None})
        rows = []
        seen: dict[int, datetime] = {}
        unknown_metrics: dict[int, tuple[NodeInfo, Counter]] = {}
        oldest, newest = now - self.settings.max_sample_age_s, now + self.settings.max_clock_skew_s
        ranges = self._ranges
        for i, s in enumerate(samples):
            node = nodes.get(s.node_uid)
            outcome, reason = None, None
            if s.malformed is not None:
                outcome, reason = MALFORMED, s.malformed
            elif node is None:
                why = bad_text(s.node_uid)
                outcome = MALFORMED if why else UNKNOWN_NODE
                reason = f"node uid {why}" if why else f"node {s.node_uid} is not registered"
            elif not node.validated:
                outcome, reason = NOT_VALIDATED, f"node {s.node_uid} is registered but not validated"
            elif node.zone_id is None:
                outcome, reason = UNKNOWN_NODE, f"node {s.node_uid} is not bound to a zone"
            elif s.zone_uid is not None and s.zone_uid != node.zone_uid:
                outcome, reason = UNKNOWN_NODE, f"node {s.node_uid} belongs to zone {node.zone_uid}, not {s.zone_uid!r}"
            elif s.greenhouse_uid is not None and s.greenhouse_uid != node.greenhouse_uid:
                outcome = UNKNOWN_NODE
                reason = f"node {s.node_uid} belongs to greenhouse {node.greenhouse_uid}, not {s.greenhouse_uid!r}"
            elif s.channel is not None and bad_text(s.channel):
                outcome, reason = MALFORMED, f"channel {bad_text(s.channel)}"
            else:
                meaning = self._meaning(s, node)
                metric = meaning.metric
                if meaning.outcome is not None:
                    outcome, reason = meaning.outcome, meaning.reason
                    if outcome == UNKNOWN_METRIC:
                        names = unknown_metrics.setdefault(node.id, (node, Counter()))[1]
                        names[_name(s.metric)] += 1
                else:
                    v, ts, factor = s.value, s.ts, meaning.factor
                    low, high = ranges[metric]
                    fast = type(v) in (float, int) and type(ts) in (float, int)  # exact types: a bool is no number here
                    if fast and low <= v * factor <= high and oldest <= ts <= newest:  # NaN fails every comparison
                        reason = None
                    else:
                        reason = self.check_value(metric, v, ts, now, factor)
                    if reason:
                        outcome = INVALID_VALUE
                    else:
                        at = _ts(ts)
                        raw = None
                        if s.raw:
                            raw, left_out = _record(s.raw)
                            result.notes.extend(Note(i, n) for n in left_out)
                        stub = s.stub is True
                        if stub:
                            result.stub += 1
                            result.notes.append(Note(i, "stub reading: stored flagged, never used by rules"))
                        rows.append((at, node.zone_id, node.id, metric, float(v * factor), s.channel, raw, stub))
                        if node.id not in seen or seen[node.id] < at:
                            seen[node.id] = at
                        continue
            result.counts[outcome] += 1
            result.rejections.append(Rejection(i, outcome, reason))
            sender = s.node_uid if node is not None else None  # unknown senders share one key: they cannot flood
            self._log.warning((outcome, sender), "telemetry not stored: %s", reason)
        result.counts[ACCEPTED] = len(rows)
        if rows or unknown_metrics:
            result.stored = await self._write(rows, seen, list(unknown_metrics.values()))
        return result

    async def _write(self, rows: list, seen: dict, unknown_metrics: list) -> int:
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

    async def _raise_unknown_metrics(self, conn, unknown: list[tuple[NodeInfo, Counter]]) -> None:
        """One alert per node, however many names it sends: their count and the first names seen."""
        for node, names in sorted(unknown, key=lambda nn: nn[0].uid):
            before = await alert_store.active_details(conn, node.zone_id, UNKNOWN_METRIC_ALERT, node.uid) or {}
            listed = list(before.get("metric_types", []))
            listed += sorted(n for n in names if n not in listed)
            await alert_store.raise_alert(
                conn,
                zone_id=node.zone_id,
                node_id=node.id,
                source="infra",
                code=UNKNOWN_METRIC_ALERT,
                type=f"Node {node.uid} sends metrics that are not in the vocabulary",
                severity="warning",
                dedup_key=node.uid,
                details={
                    "node_uid": node.uid,
                    "metric_types": listed[:UNKNOWN_NAMES_KEPT],
                    "more_names": len(listed) > UNKNOWN_NAMES_KEPT or bool(before.get("more_names")),
                },
                ruleset_version=self.rs.ruleset_version,
                count=sum(names.values()),
            )
