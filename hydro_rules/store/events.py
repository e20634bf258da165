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
    rule: str | None = None,
) -> int:
    """Record an event; `rule` is the causing rule with its span when a rule caused it."""
    return await conn.fetchval(
        """INSERT INTO zone_events (zone_id, node_id, type, details, ruleset_version, ts, rule)
           VALUES ($1, $2, $3, $4, $5, coalesce($6, now()), $7) RETURNING id""",
        zone_id,
        node_id,
        type,
        details,
        ruleset_version,
        ts,
        rule,
    )


async def list_events(
    conn: asyncpg.Connection, zone_id: int, *, since: datetime | None = None, type: str | None = None, limit: int = 100
) -> list[dict]:
    rows = await conn.fetch(
        """SELECT e.id, e.type, e.details, e.ruleset_version, e.rule, e.ts, n.uid AS node_uid
           FROM zone_events e LEFT JOIN nodes n ON n.id = e.node_id
           WHERE e.zone_id = $1 AND ($2::timestamptz IS NULL OR e.ts >= $2) AND ($3::text IS NULL OR e.type = $3)
           ORDER BY e.ts DESC, e.id DESC LIMIT $4""",
        zone_id,
        since,
        type,
        limit,
    )
    return [dict(r) for r in rows]


async def after(conn: asyncpg.Connection, zone_ids: list[int], after_id: int, types: list[str]) -> list[dict]:
    """Events of these types and zones with an id above `after_id`, by ascending id (a reader's cursor)."""
    if not zone_ids or not types:
        return []
    rows = await conn.fetch(
        """SELECT id, zone_id, type, details, ts FROM zone_events
           WHERE id > $1 AND zone_id = ANY($2::bigint[]) AND type = ANY($3::text[]) ORDER BY id""",
        after_id,
        list(zone_ids),
        list(types),
    )
    return [dict(r) for r in rows]
