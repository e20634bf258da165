"""Alerts (§9): one ACTIVE row per zone, code and dedup key; repeats count occurrences.

The dedup key is the channel for channel alerts ("" for zone alerts), or
another stable key such as "nd-ph-1/ORP" for an unknown metric of a node.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

ACTIVE, RESOLVED = "ACTIVE", "RESOLVED"


@dataclass(frozen=True, slots=True)
class Raised:
    id: int
    created: bool  # False: an active alert got one more occurrence
    occurrences: int


async def raise_alert(
    conn: asyncpg.Connection,
    *,
    zone_id: int | None,
    source: str,
    code: str,
    type: str,
    severity: str = "warning",
    channel: str | None = None,
    node_id: int | None = None,
    dedup_key: str | None = None,
    details: dict | None = None,
    locks: bool = False,
    ruleset_version: str | None = None,
    count: int = 1,
    at: datetime | None = None,
    rule: str | None = None,
) -> Raised:
    """Create the alert, or add `count` occurrences to the active one with the same key.

    Details naming the same `cmd_id` as the active alert's are the same occurrence
    told again (a command_response seen by both the service and the engine).
    `rule`: the causing rule with its span; a repeat without one keeps the stored one.
    """
    row = await conn.fetchrow(
        """INSERT INTO alerts (zone_id, node_id, source, code, type, severity, channel, dedup_key, details, locks,
                               ruleset_version, occurrences, first_seen_at, last_seen_at, rule)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, coalesce($13, now()), coalesce($13, now()),
                   $14)
           ON CONFLICT ((coalesce(zone_id, 0)), code, dedup_key) WHERE status = 'ACTIVE' DO UPDATE SET
               -- the same failed command reported twice (the service and the engine) is one occurrence
               occurrences = alerts.occurrences + CASE
                   WHEN EXCLUDED.details ? 'cmd_id' AND alerts.details->>'cmd_id' = EXCLUDED.details->>'cmd_id'
                   THEN 0 ELSE EXCLUDED.occurrences END,
               last_seen_at = greatest(alerts.last_seen_at, EXCLUDED.last_seen_at),
               details = EXCLUDED.details,
               ruleset_version = EXCLUDED.ruleset_version,
               rule = coalesce(EXCLUDED.rule, alerts.rule)
           RETURNING id, (xmax = 0) AS created, occurrences""",
        zone_id,
        node_id,
        source,
        code,
        type,
        severity,
        channel,
        dedup_key if dedup_key is not None else (channel or ""),
        details or {},
        locks,
        ruleset_version,
        count,
        at,
        rule,
    )
    return Raised(row["id"], row["created"], row["occurrences"])


async def resolve(
    conn: asyncpg.Connection,
    *,
    zone_id: int | None,
    code: str,
    dedup_key: str = "",
    by: str | None,
    reason: str,
    at: datetime | None = None,
) -> int | None:
    """Resolve the active alert with this key; its id, or None when none was active."""
    return await conn.fetchval(
        """UPDATE alerts SET status = 'RESOLVED', resolved_at = coalesce($5, now()), resolved_by = $3,
               resolved_reason = $4
           WHERE coalesce(zone_id, 0) = coalesce($1, 0) AND code = $2 AND dedup_key = $6 AND status = 'ACTIVE'
           RETURNING id""",
        zone_id,
        code,
        by,
        reason,
        at,
        dedup_key,
    )


async def resolve_codes(
    conn: asyncpg.Connection, zone_id: int, codes: list[str], *, by: str, reason: str
) -> list[dict]:
    """Resolve the zone's active alerts with these codes (a safety reset, §16.2); return them."""
    rows = await conn.fetch(
        """UPDATE alerts SET status = 'RESOLVED', resolved_at = now(), resolved_by = $3, resolved_reason = $4
           WHERE zone_id = $1 AND code = ANY($2::text[]) AND status = 'ACTIVE'
           RETURNING id, code, channel, occurrences, first_seen_at""",
        zone_id,
        codes,
        by,
        reason,
    )
    return [dict(r) for r in rows]


async def list_alerts(
    conn: asyncpg.Connection,
    *,
    zone_id: int | None = None,
    status: str | None = None,
    source: str | None = None,
    limit: int = 100,
) -> list[dict]:
    rows = await conn.fetch(
        """SELECT a.id, z.uid AS zone_uid, n.uid AS node_uid, a.source, a.code, a.type, a.severity, a.channel,
                  a.details, a.locks, a.status, a.occurrences, a.first_seen_at, a.last_seen_at, a.resolved_at,
                  a.resolved_by, a.resolved_reason, a.ruleset_version, a.rule
           FROM alerts a LEFT JOIN zones z ON z.id = a.zone_id LEFT JOIN nodes n ON n.id = a.node_id
           WHERE ($1::bigint IS NULL OR a.zone_id = $1) AND ($2::text IS NULL OR a.status = $2)
             AND ($3::text IS NULL OR a.source = $3)
           ORDER BY a.last_seen_at DESC, a.id DESC LIMIT $4""",
        zone_id,
        status,
        source,
        limit,
    )
    return [dict(r) for r in rows]


async def active(conn: asyncpg.Connection, zone_id: int) -> list[tuple[str, str | None]]:
    """(code, channel) of the zone's active alerts: what locks its channels."""
    rows = await conn.fetch("SELECT code, channel FROM alerts WHERE zone_id = $1 AND status = 'ACTIVE'", zone_id)
    return [(r["code"], r["channel"]) for r in rows]


async def active_details(conn: asyncpg.Connection, zone_id: int | None, code: str, dedup_key: str) -> dict | None:
    """The details of the active alert with this key, or None when none is active."""
    return await conn.fetchval(
        """SELECT details FROM alerts
           WHERE coalesce(zone_id, 0) = coalesce($1, 0) AND code = $2 AND dedup_key = $3 AND status = 'ACTIVE'""",
        zone_id,
        code,
        dedup_key,
    )
