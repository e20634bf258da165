"""Zone events: what happened to a zone, in order (reboots, resets, water changes, node errors)."""

from __future__ import annotations

from datetime import datetime

import asyncpg


async def add(
    conn: asyncpg.Connection,
    *,
    zone_id: int | None,
    type: str,
    details: dict,
    node_id: int | None = None,
    ruleset_version: str | None = None,
    ts: datetime | None = None,
) -> int:
    return await conn.fetchval(
        """INSERT INTO zone_events (zone_id, node_id, type, details, ruleset_version, ts)
           VALUES ($1, $2, $3, $4, $5, coalesce($6, now())) RETURNING id""",
        zone_id,
        node_id,
        type,
        details,
        ruleset_version,
        ts,
    )


async def list_events(
    conn: asyncpg.Connection, zone_id: int, *, since: datetime | None = None, type: str | None = None, limit: int = 100
) -> list[dict]:
    rows = await conn.fetch(
        """SELECT e.id, e.type, e.details, e.ruleset_version, e.ts, n.uid AS node_uid
           FROM zone_events e LEFT JOIN nodes n ON n.id = e.node_id
           WHERE e.zone_id = $1 AND ($2::timestamptz IS NULL OR e.ts >= $2) AND ($3::text IS NULL OR e.type = $3)
           ORDER BY e.ts DESC, e.id DESC LIMIT $4""",
        zone_id,
        since,
        type,
        limit,
    )
    return [dict(r) for r in rows]
