"""Nodes: lookup for ingest, registration (§6), hello, liveness (heartbeat, status, lwt)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from . import events

ONLINE, OFFLINE = "ONLINE", "OFFLINE"


class UnknownZone(Exception):
    pass


@dataclass(frozen=True, slots=True)
class NodeInfo:
    id: int
    uid: str
    zone_id: int | None
    zone_uid: str | None
    greenhouse_uid: str | None
    validated: bool


_SELECT = """SELECT n.id, n.uid, n.zone_id, z.uid AS zone_uid, g.uid AS greenhouse_uid, n.validated
             FROM nodes n LEFT JOIN zones z ON z.id = n.zone_id LEFT JOIN greenhouses g ON g.id = z.greenhouse_id"""


async def lookup(conn: asyncpg.Connection, uids: list[str]) -> dict[str, NodeInfo]:
    rows = await conn.fetch(_SELECT + " WHERE n.uid = ANY($1::text[])", uids)
    return {r["uid"]: NodeInfo(**dict(r)) for r in rows}


async def get(conn: asyncpg.Connection, uid: str) -> dict | None:
    row = await conn.fetchrow(
        """SELECT n.*, z.uid AS zone_uid, g.uid AS greenhouse_uid FROM nodes n
           LEFT JOIN zones z ON z.id = n.zone_id LEFT JOIN greenhouses g ON g.id = z.greenhouse_id
           WHERE n.uid = $1""",
        uid,
    )
    return dict(row) if row else None


def new_secret() -> str:
    return secrets.token_hex(32)


async def register(
    conn: asyncpg.Connection,
    node_uid: str,
    *,
    zone_uid: str | None = None,
    firmware_version: str | None = None,
    hardware_revision: str | None = None,
    hardware_id: str | None = None,
    node_type: str | None = None,
    secret: str | None = None,
) -> tuple[dict, str | None]:
    """Find or create the node, bind it to the zone if given, and validate it (§6.2).

    Returns the node and the command secret when one was generated now (it is
    shown once, for the technician to flash), else None.
    """
    zone_id = None
    if zone_uid is not None:
        zone_id = await conn.fetchval("SELECT id FROM zones WHERE uid = $1", zone_uid)
        if zone_id is None:
            raise UnknownZone(zone_uid)
    async with conn.transaction():
        current = await conn.fetchrow("SELECT id, secret FROM nodes WHERE uid = $1 FOR UPDATE", node_uid)
        generated = None
        if secret is None and (current is None or current["secret"] is None):
            secret = generated = new_secret()
        if hardware_id is not None:
            # a hello may have created a placeholder row named after the hardware id: take it over
            await conn.execute(
                "UPDATE nodes SET hardware_id = NULL WHERE hardware_id = $1 AND uid <> $2", hardware_id, node_uid
            )
        await conn.execute(
            """INSERT INTO nodes (uid, zone_id, validated, first_seen_at, firmware_version, hardware_revision,
                                  hardware_id, node_type, secret)
               VALUES ($1, $2, true, now(), $3, $4, $5, $6, $7)
               ON CONFLICT (uid) DO UPDATE SET
                   zone_id = coalesce(EXCLUDED.zone_id, nodes.zone_id),
                   validated = true,
                   first_seen_at = coalesce(nodes.first_seen_at, EXCLUDED.first_seen_at),
                   firmware_version = coalesce(EXCLUDED.firmware_version, nodes.firmware_version),
                   hardware_revision = coalesce(EXCLUDED.hardware_revision, nodes.hardware_revision),
                   hardware_id = coalesce(EXCLUDED.hardware_id, nodes.hardware_id),
                   node_type = coalesce(EXCLUDED.node_type, nodes.node_type),
                   secret = coalesce(EXCLUDED.secret, nodes.secret),
                   updated_at = now()""",
            node_uid,
            zone_id,
            firmware_version,
            hardware_revision,
            hardware_id,
            node_type,
            secret,
        )
    return await get(conn, node_uid), generated


async def hello(
    conn: asyncpg.Connection,
    *,
    hardware_id: str,
    node_uid: str | None,
    node_type: str | None,
    firmware_version: str | None,
    hardware_revision: str | None,
    capabilities: list | None,
    at: datetime,
) -> tuple[dict, bool]:
    """Record a node's first contact: an unknown node is created unvalidated (uid = hardware id).

    Returns the node and whether it was created now.
    """
    async with conn.transaction():
        row = None
        if node_uid:
            row = await conn.fetchrow("SELECT id, uid FROM nodes WHERE uid = $1 FOR UPDATE", node_uid)
        if row is None:
            row = await conn.fetchrow("SELECT id, uid FROM nodes WHERE hardware_id = $1 FOR UPDATE", hardware_id)
        created = row is None
        if created:
            uid = node_uid or hardware_id
            await conn.execute(
                """INSERT INTO nodes (uid, hardware_id, node_type, firmware_version, hardware_revision, capabilities,
                                      first_seen_at, last_seen_at)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $7)
                   ON CONFLICT (uid) DO UPDATE SET last_seen_at = EXCLUDED.last_seen_at""",
                uid,
                hardware_id,
                node_type,
                firmware_version,
                hardware_revision,
                capabilities,
                at,
            )
        else:
            uid = row["uid"]
            await conn.execute(
                """UPDATE nodes SET hardware_id = coalesce(hardware_id, $2), node_type = coalesce($3, node_type),
                       firmware_version = coalesce($4, firmware_version),
                       hardware_revision = coalesce($5, hardware_revision),
                       capabilities = coalesce($6, capabilities),
                       first_seen_at = coalesce(first_seen_at, $7), last_seen_at = $7, updated_at = now()
                   WHERE id = $1""",
                row["id"],
                hardware_id,
                node_type,
                firmware_version,
                hardware_revision,
                capabilities,
                at,
            )
    return await get(conn, uid), created


@dataclass(frozen=True, slots=True)
class Heartbeat:
    known: bool
    rebooted: bool = False
    previous_uptime: int | None = None


async def heartbeat(
    conn: asyncpg.Connection,
    node_uid: str,
    *,
    uptime: int | None,
    free_heap: int | None,
    rssi: int | None,
    firmware_version: str | None,
    at: datetime,
    ruleset_version: str | None = None,
) -> Heartbeat:
    """Keep the node's liveness; an uptime lower than the last one records a NODE_REBOOTED event."""
    async with conn.transaction():
        prev = await conn.fetchrow(
            "SELECT id, zone_id, uptime_s, status FROM nodes WHERE uid = $1 FOR UPDATE", node_uid
        )
        if prev is None:
            return Heartbeat(False)
        await conn.execute(
            """UPDATE nodes SET uptime_s = coalesce($2, uptime_s), free_heap = coalesce($3, free_heap),
                   rssi = coalesce($4, rssi), firmware_version = coalesce($5, firmware_version),
                   last_heartbeat_at = $6, last_seen_at = greatest(last_seen_at, $6),
                   status_changed_at = CASE WHEN status <> 'ONLINE' THEN $6 ELSE status_changed_at END,
                   status = 'ONLINE', updated_at = now()
               WHERE id = $1""",
            prev["id"],
            uptime,
            free_heap,
            rssi,
            firmware_version,
            at,
        )
        rebooted = uptime is not None and prev["uptime_s"] is not None and uptime < prev["uptime_s"]
        if rebooted:
            await events.add(
                conn,
                zone_id=prev["zone_id"],
                node_id=prev["id"],
                type="NODE_REBOOTED",
                details={"node_uid": node_uid, "uptime": uptime, "previous_uptime": prev["uptime_s"]},
                ruleset_version=ruleset_version,
                ts=at,
            )
        return Heartbeat(True, rebooted, prev["uptime_s"])


async def set_status(
    conn: asyncpg.Connection,
    node_uid: str,
    status: str,
    at: datetime,
    *,
    only_if_silent_since: datetime | None = None,
) -> bool | None:
    """Set ONLINE/OFFLINE if `at` is not older than the last change. None: unknown node.

    `only_if_silent_since`: apply only when the node has not been seen since then
    (a retained `offline` will delivered at subscribe time may be stale).
    """
    row = await conn.fetchrow(
        """UPDATE nodes SET status = $2, status_changed_at = $3,
               last_seen_at = CASE WHEN $2 = 'ONLINE' THEN greatest(last_seen_at, $3) ELSE last_seen_at END,
               updated_at = now()
           WHERE uid = $1
             AND (status_changed_at IS NULL OR status_changed_at <= $3)
             AND ($4::timestamptz IS NULL OR last_seen_at IS NULL OR last_seen_at < $4)
           RETURNING id""",
        node_uid,
        status,
        at,
        only_if_silent_since,
    )
    if row is not None:
        return True
    exists = await conn.fetchval("SELECT 1 FROM nodes WHERE uid = $1", node_uid)
    return False if exists else None


async def record_json(conn: asyncpg.Connection, node_uid: str, column: str, value: dict, at: datetime) -> bool:
    """Store a node's config_report or diagnostics document."""
    if column not in ("config_report", "diagnostics"):
        raise ValueError(column)
    row = await conn.fetchval(
        f"UPDATE nodes SET {column} = $2, last_seen_at = greatest(last_seen_at, $3), updated_at = now() "
        "WHERE uid = $1 RETURNING id",
        node_uid,
        value,
        at,
    )
    return row is not None


async def touch(conn: asyncpg.Connection, seen: dict[int, datetime]) -> None:
    """Move last_seen_at forward for nodes that just sent telemetry."""
    if not seen:
        return
    ids = sorted(seen)
    await conn.execute(
        """UPDATE nodes n SET last_seen_at = v.ts
           FROM unnest($1::bigint[], $2::timestamptz[]) AS v(id, ts)
           WHERE n.id = v.id AND (n.last_seen_at IS NULL OR n.last_seen_at < v.ts)""",
        ids,
        [seen[i] for i in ids],
    )


async def list_nodes(conn: asyncpg.Connection, zone_id: int | None = None) -> list[dict]:
    rows = await conn.fetch(
        """SELECT n.uid, z.uid AS zone_uid, n.node_type, n.hardware_id, n.validated, n.first_seen_at,
                  n.firmware_version, n.hardware_revision, n.status, n.status_changed_at, n.last_seen_at,
                  n.last_heartbeat_at, n.uptime_s, n.rssi, n.free_heap
           FROM nodes n LEFT JOIN zones z ON z.id = n.zone_id
           WHERE $1::bigint IS NULL OR n.zone_id = $1 ORDER BY n.uid""",
        zone_id,
    )
    return [dict(r) for r in rows]
