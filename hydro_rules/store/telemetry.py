"""Telemetry rows: batched writes to telemetry_samples, newest-wins telemetry_last, reads.

A sample row is (ts, zone_id, node_id, metric_type, value, channel, raw, stub). A
sample's identity is (node, channel, metric, ts, value): the same series with
another value at the same ts is another sample; only a redelivery is stored once.
A stub sample (a node without its sensor fitted) is stored but never becomes the
last value rules read.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import asyncpg

COLUMNS = ("ts", "zone_id", "node_id", "metric_type", "value", "channel", "raw", "stub")
SampleRow = tuple  # (datetime, int, int, str, float, str | None, dict | None, bool)

_UNNEST = """SELECT * FROM unnest($1::timestamptz[], $2::bigint[], $3::bigint[], $4::text[], $5::float8[],
                                 $6::text[], $7::jsonb[], $8::bool[])"""


async def write_samples(conn: asyncpg.Connection, rows: Sequence[SampleRow], *, dedupe: bool = False) -> int:
    """Store rows; return how many were new. Run it inside a transaction.

    By default rows go in with COPY, and a row already stored (same node,
    channel, metric, ts and value: a redelivery) makes it raise
    UniqueViolationError, which aborts the transaction: the caller then writes
    the batch again with `dedupe=True`, which keeps each sample once.
    Redeliveries are rare, so the fast path is the common one.
    """
    if not rows:
        return 0
    if not dedupe:
        await conn.copy_records_to_table("telemetry_samples", records=rows, columns=COLUMNS)
        return len(rows)
    status = await conn.execute(
        f"INSERT INTO telemetry_samples ({', '.join(COLUMNS)}) {_UNNEST} ON CONFLICT DO NOTHING",
        *zip(*rows),
    )
    return int(status.split()[-1])


def _series(r: SampleRow) -> tuple:
    """What telemetry_last keeps one row per: zone, node, metric, channel (a missing one sorts first)."""
    return (r[1], r[2], r[3], r[5] is not None, r[5] or "")


async def upsert_last(conn: asyncpg.Connection, rows: Sequence[SampleRow]) -> None:
    """Upsert telemetry_last per (zone, node, metric, channel), stubs left out.

    A sample older than the stored one never wins (§8); at the same ts the first stored stays.
    """
    newest: dict[tuple, SampleRow] = {}
    for r in rows:
        if r[7]:
            continue
        key = _series(r)
        if key not in newest or r[0] > newest[key][0]:
            newest[key] = r
    if not newest:
        return
    # a fixed order: concurrent batches lock the same rows in the same order, so they cannot deadlock
    ordered = [newest[k][:7] for k in sorted(newest)]
    await conn.execute(
        """INSERT INTO telemetry_last (ts, zone_id, node_id, metric_type, value, channel, raw)
           SELECT * FROM unnest($1::timestamptz[], $2::bigint[], $3::bigint[], $4::text[], $5::float8[],
                                $6::text[], $7::jsonb[])
           ON CONFLICT ON CONSTRAINT telemetry_last_identity DO UPDATE SET
               ts = EXCLUDED.ts, value = EXCLUDED.value, raw = EXCLUDED.raw, updated_at = now()
           WHERE telemetry_last.ts < EXCLUDED.ts""",
        *zip(*ordered),
    )


async def latest(conn: asyncpg.Connection, zone_id: int) -> list[dict]:
    """The zone's telemetry_last rows with node uids and channels (what the engine and the UI read)."""
    rows = await conn.fetch(
        """SELECT n.uid AS node_uid, t.metric_type, t.channel, t.value, t.ts, t.updated_at, t.raw
           FROM telemetry_last t JOIN nodes n ON n.id = t.node_id
           WHERE t.zone_id = $1 ORDER BY t.metric_type, n.uid, t.channel NULLS FIRST""",
        zone_id,
    )
    return [dict(r) for r in rows]


async def latest_many(conn: asyncpg.Connection, zone_ids: list[int]) -> dict[int, list[dict]]:
    """`latest` of several zones in one query: zone id -> its rows (every asked zone present, maybe empty)."""
    out: dict[int, list[dict]] = {zid: [] for zid in zone_ids}
    if not out:
        return out
    rows = await conn.fetch(
        """SELECT t.zone_id, n.uid AS node_uid, t.metric_type, t.channel, t.value, t.ts, t.updated_at, t.raw
           FROM telemetry_last t JOIN nodes n ON n.id = t.node_id
           WHERE t.zone_id = ANY($1::bigint[]) ORDER BY t.zone_id, t.metric_type, n.uid, t.channel NULLS FIRST""",
        list(out),
    )
    for r in rows:
        row = dict(r)
        out[row.pop("zone_id")].append(row)
    return out


async def samples(
    conn: asyncpg.Connection,
    zone_id: int,
    metric_type: str,
    since: datetime,
    until: datetime,
    *,
    node_id: int | None = None,
    channel: str | None = None,
    limit: int = 10_000,
) -> list[dict]:
    """Raw samples of one metric in [since, until), oldest first; `channel` narrows to one series."""
    rows = await conn.fetch(
        """SELECT s.ts, n.uid AS node_uid, s.channel, s.value, s.stub
           FROM telemetry_samples s JOIN nodes n ON n.id = s.node_id
           WHERE s.zone_id = $1 AND s.metric_type = $2 AND s.ts >= $3 AND s.ts < $4
             AND ($5::bigint IS NULL OR s.node_id = $5) AND ($6::text IS NULL OR s.channel = $6)
           ORDER BY s.ts, n.uid, s.channel LIMIT $7""",
        zone_id,
        metric_type,
        since,
        until,
        node_id,
        channel,
        limit,
    )
    return [dict(r) for r in rows]
