"""Telemetry rows: batched writes to telemetry_samples, newest-wins telemetry_last, reads.

A sample row is (ts, zone_id, node_id, metric_type, value, channel, raw).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import asyncpg

COLUMNS = ("ts", "zone_id", "node_id", "metric_type", "value", "channel", "raw")
SampleRow = tuple  # (datetime, int, int, str, float, str | None, dict | None)


async def write_samples(conn: asyncpg.Connection, rows: Sequence[SampleRow], *, dedupe: bool = False) -> int:
    """Store rows; return how many were new. Run it inside a transaction.

    By default rows go in with COPY, and a row already stored (same node, metric,
    ts: a redelivery) makes it raise UniqueViolationError, which aborts the
    transaction: the caller then writes the batch again with `dedupe=True`,
    which keeps each sample once. Redeliveries are rare, so the fast path is
    the common one.
    """
    if not rows:
        return 0
    if not dedupe:
        await conn.copy_records_to_table("telemetry_samples", records=rows, columns=COLUMNS)
        return len(rows)
    cols = list(zip(*rows))
    status = await conn.execute(
        """INSERT INTO telemetry_samples (ts, zone_id, node_id, metric_type, value, channel, raw)
           SELECT * FROM unnest($1::timestamptz[], $2::bigint[], $3::bigint[], $4::text[], $5::float8[],
                                $6::text[], $7::jsonb[])
           ON CONFLICT DO NOTHING""",
        *cols,
    )
    return int(status.split()[-1])


async def upsert_last(conn: asyncpg.Connection, rows: Sequence[SampleRow]) -> None:
    """Upsert telemetry_last per (zone, node, metric): a sample older than the stored one never wins (§8)."""
    newest: dict[tuple, SampleRow] = {}
    for r in rows:
        key = (r[1], r[2], r[3])
        if key not in newest or r[0] > newest[key][0]:
            newest[key] = r
    if not newest:
        return
    # a fixed order: concurrent batches lock the same rows in the same order, so they cannot deadlock
    ordered = [newest[k] for k in sorted(newest)]
    cols = list(zip(*ordered))
    await conn.execute(
        """INSERT INTO telemetry_last (ts, zone_id, node_id, metric_type, value, channel, raw)
           SELECT * FROM unnest($1::timestamptz[], $2::bigint[], $3::bigint[], $4::text[], $5::float8[],
                                $6::text[], $7::jsonb[])
           ON CONFLICT (zone_id, node_id, metric_type) DO UPDATE SET
               ts = EXCLUDED.ts, value = EXCLUDED.value, channel = EXCLUDED.channel, raw = EXCLUDED.raw,
               updated_at = now()
           WHERE telemetry_last.ts < EXCLUDED.ts""",
        *cols,
    )


async def latest(conn: asyncpg.Connection, zone_id: int) -> list[dict]:
    """The zone's telemetry_last rows with node uids (what the engine and the UI read)."""
    rows = await conn.fetch(
        """SELECT n.uid AS node_uid, t.metric_type, t.value, t.channel, t.ts, t.updated_at, t.raw
           FROM telemetry_last t JOIN nodes n ON n.id = t.node_id
           WHERE t.zone_id = $1 ORDER BY t.metric_type, n.uid""",
        zone_id,
    )
    return [dict(r) for r in rows]


async def samples(
    conn: asyncpg.Connection,
    zone_id: int,
    metric_type: str,
    since: datetime,
    until: datetime,
    *,
    node_id: int | None = None,
    limit: int = 10_000,
) -> list[dict]:
    rows = await conn.fetch(
        """SELECT s.ts, n.uid AS node_uid, s.value, s.channel FROM telemetry_samples s JOIN nodes n ON n.id = s.node_id
           WHERE s.zone_id = $1 AND s.metric_type = $2 AND s.ts >= $3 AND s.ts < $4
             AND ($5::bigint IS NULL OR s.node_id = $5)
           ORDER BY s.ts LIMIT $6""",
        zone_id,
        metric_type,
        since,
        until,
        node_id,
        limit,
    )
    return [dict(r) for r in rows]
