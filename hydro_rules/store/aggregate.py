"""Telemetry aggregates (§17): 1-minute buckets from samples, 1-hour from 1-minute, daily from 1-hour.

Each level keeps a watermark in aggregator_state and recomputes whole buckets
touched since it, so a re-run changes nothing and a late sample in a closed
bucket is folded in by recomputing that bucket. Buckets are UTC.

Samples are found by `received_at` (the insert transaction's time). A
transaction still open when the aggregator looks would be missed if the
window ended exactly at the watermark, so each run looks back `overlap_s`
before it: recomputing a bucket twice is harmless.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

_LOCK = 0x4859_4452_4F02
_EPOCH = datetime.fromisoformat("1970-01-01T00:00:00+00:00")

_UPSERT = """ON CONFLICT (zone_id, node_id, metric_type, channel, bucket) DO UPDATE SET
    min = EXCLUDED.min, max = EXCLUDED.max, avg = EXCLUDED.avg, count = EXCLUDED.count,
    last = EXCLUDED.last, last_ts = EXCLUDED.last_ts, updated_at = EXCLUDED.updated_at"""

# one series per node, metric and channel ('' for samples without one); stub samples are not measurements
_1M = f"""
WITH touched AS (
    SELECT DISTINCT date_trunc('minute', ts) AS bucket, zone_id, node_id, metric_type, coalesce(channel, '') AS channel
    FROM telemetry_samples
    WHERE received_at > $1 AND received_at <= $2 AND ts >= $3 AND NOT stub
)
INSERT INTO telemetry_agg_1m (bucket, zone_id, node_id, metric_type, channel, min, max, avg, count, last, last_ts,
                              updated_at)
SELECT t.bucket, t.zone_id, t.node_id, t.metric_type, t.channel, min(s.value), max(s.value), avg(s.value), count(*),
       (array_agg(s.value ORDER BY s.ts DESC))[1], max(s.ts), now()
FROM touched t
JOIN telemetry_samples s ON s.node_id = t.node_id AND s.metric_type = t.metric_type AND s.zone_id = t.zone_id
                        AND coalesce(s.channel, '') = t.channel AND NOT s.stub
                        AND s.ts >= t.bucket AND s.ts < t.bucket + interval '1 minute'
GROUP BY t.bucket, t.zone_id, t.node_id, t.metric_type, t.channel
{_UPSERT}"""


def _rollup(src: str, dst: str, unit: str) -> str:
    return f"""
WITH touched AS (
    SELECT DISTINCT date_trunc('{unit}', bucket) AS bucket, zone_id, node_id, metric_type, channel
    FROM {src} WHERE updated_at > $1
)
INSERT INTO {dst} (bucket, zone_id, node_id, metric_type, channel, min, max, avg, count, last, last_ts, updated_at)
SELECT t.bucket, t.zone_id, t.node_id, t.metric_type, t.channel, min(a.min), max(a.max),
       sum(a.avg * a.count) / sum(a.count), sum(a.count),
       (array_agg(a.last ORDER BY a.last_ts DESC))[1], max(a.last_ts), now()
FROM touched t
JOIN {src} a ON a.zone_id = t.zone_id AND a.node_id = t.node_id AND a.metric_type = t.metric_type
            AND a.channel = t.channel AND a.bucket >= t.bucket AND a.bucket < t.bucket + interval '1 {unit}'
GROUP BY t.bucket, t.zone_id, t.node_id, t.metric_type, t.channel
{_UPSERT}"""


_1H = _rollup("telemetry_agg_1m", "telemetry_agg_1h", "hour")
_DAILY = _rollup("telemetry_agg_1h", "telemetry_agg_daily", "day")


@dataclass(frozen=True, slots=True)
class AggregateRun:
    ran: bool  # False: another aggregator held the lock
    rows_1m: int = 0
    rows_1h: int = 0
    rows_daily: int = 0


async def watermarks(conn: asyncpg.Connection) -> dict[str, datetime]:
    return {r["level"]: r["last_ts"] for r in await conn.fetch("SELECT level, last_ts FROM aggregator_state")}


async def _set(conn: asyncpg.Connection, level: str, ts: datetime) -> None:
    await conn.execute(
        """INSERT INTO aggregator_state (level, last_ts) VALUES ($1, $2)
           ON CONFLICT (level) DO UPDATE SET last_ts = EXCLUDED.last_ts, updated_at = now()""",
        level,
        ts,
    )


async def run(
    conn: asyncpg.Connection,
    *,
    overlap_s: float = 60.0,
    settle_s: float = 1.0,
    max_age_s: float = 35 * 86400,
) -> AggregateRun:
    """One aggregation pass over everything received since the watermarks.

    `settle_s`: samples received in the last moment wait for the next pass.
    `max_age_s`: samples older than this (by ts) are not looked at (the ingest
    refuses them anyway); it lets PostgreSQL skip old partitions.
    """
    async with conn.transaction():
        if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", _LOCK):
            return AggregateRun(False)
        await conn.execute("SET LOCAL timezone = 'UTC'")
        now = await conn.fetchval("SELECT now()")
        marks = await watermarks(conn)
        lo = marks.get("1m", _EPOCH) - timedelta(seconds=overlap_s)
        hi = now - timedelta(seconds=settle_s)
        if hi <= lo:
            return AggregateRun(True)
        n1 = _count(await conn.execute(_1M, lo, hi, now - timedelta(seconds=max_age_s)))
        await _set(conn, "1m", hi)
        n2 = _count(await conn.execute(_1H, marks.get("1h", _EPOCH)))
        await _set(conn, "1h", now)
        n3 = _count(await conn.execute(_DAILY, marks.get("daily", _EPOCH)))
        await _set(conn, "daily", now)
        return AggregateRun(True, n1, n2, n3)


def _count(status: str) -> int:
    return int(status.split()[-1])


async def series(
    conn: asyncpg.Connection,
    level: str,
    zone_id: int,
    metric_type: str,
    since: datetime,
    until: datetime,
    *,
    channel: str | None = None,
) -> list[dict]:
    """Buckets of one metric, a row per node and channel; `channel` narrows to one series."""
    table = {"1m": "telemetry_agg_1m", "1h": "telemetry_agg_1h", "daily": "telemetry_agg_daily"}[level]
    rows = await conn.fetch(
        f"""SELECT a.bucket, n.uid AS node_uid, nullif(a.channel, '') AS channel,
                   a.min, a.max, a.avg, a.count, a.last, a.last_ts
            FROM {table} a JOIN nodes n ON n.id = a.node_id
            WHERE a.zone_id = $1 AND a.metric_type = $2 AND a.bucket >= $3 AND a.bucket < $4
              AND ($5::text IS NULL OR a.channel = $5)
            ORDER BY a.bucket, n.uid, a.channel""",
        zone_id,
        metric_type,
        since,
        until,
        channel,
    )
    return [dict(r) for r in rows]
