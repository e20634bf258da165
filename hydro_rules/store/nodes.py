"""Nodes: lookup for ingest, registration (§6), hello, binding (config push), liveness (heartbeat, status, lwt).

A node's record is found by its uid or by its hardware id. A hello may add facts to
the record of its own hardware only: it never renames, moves or validates a node.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from . import events

ONLINE, OFFLINE = "ONLINE", "OFFLINE"


UNBOUND, BINDING, BOUND = "unbound", "binding", "bound"


class UnknownZone(Exception):
    pass


class HardwareTaken(Exception):
    """The hardware id belongs to another validated node."""

    def __init__(self, hardware_id: str, node_uid: str) -> None:
        super().__init__(f"hardware {hardware_id} is node {node_uid}")
        self.hardware_id, self.node_uid = hardware_id, node_uid


class HelloRefused(Exception):
    """A hello that would touch another hardware's record."""


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


async def secrets_of(conn: asyncpg.Connection, uids: list[str]) -> dict[str, dict]:
    """uid -> {"id", "secret", "capabilities"} of those of these nodes that are validated and have a
    command secret (one query: what the site daemon keeps to sign commands while the database is
    down, and what each node announced it can do in its hello)."""
    rows = await conn.fetch(
        """SELECT uid, id, secret, capabilities FROM nodes
           WHERE uid = ANY($1::text[]) AND validated AND secret IS NOT NULL AND secret <> ''""",
        list(uids),
    )
    return {
        r["uid"]: {"id": r["id"], "secret": r["secret"], "capabilities": list(r["capabilities"] or [])} for r in rows
    }


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

    A hardware id recorded by a hello (an unvalidated row named after it) is taken
    over: that row becomes this node, or its facts are merged into this node.
    Raises HardwareTaken when the hardware id is another validated node's.

    Returns the node and the command secret when one was generated now (it is
    shown once, for the technician to flash), else None.
    """
    zone_id = None
    if zone_uid is not None:
        zone_id = await conn.fetchval("SELECT id FROM zones WHERE uid = $1", zone_uid)
        if zone_id is None:
            raise UnknownZone(zone_uid)
    async with conn.transaction():
        if hardware_id is not None:
            await _take_over_hardware(conn, node_uid, hardware_id)
        current = await conn.fetchrow("SELECT id, secret FROM nodes WHERE uid = $1 FOR UPDATE", node_uid)
        generated = None
        if secret is None and (current is None or current["secret"] is None):
            secret = generated = new_secret()
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


async def _take_over_hardware(conn: asyncpg.Connection, node_uid: str, hardware_id: str) -> None:
    """Make room for `node_uid` to hold `hardware_id`: rename or merge the row a hello made for it."""
    holder = await conn.fetchrow(
        "SELECT id, uid, validated FROM nodes WHERE hardware_id = $1 AND uid <> $2 FOR UPDATE", hardware_id, node_uid
    )
    if holder is None:
        return
    if holder["validated"]:
        raise HardwareTaken(hardware_id, holder["uid"])
    target = await conn.fetchval("SELECT id FROM nodes WHERE uid = $1 FOR UPDATE", node_uid)
    if target is None:
        await conn.execute("UPDATE nodes SET uid = $2, updated_at = now() WHERE id = $1", holder["id"], node_uid)
        return
    await conn.execute("UPDATE nodes SET hardware_id = NULL WHERE id = $1", holder["id"])
    # what the hardware said of itself is newer than what a sync knew; liveness: the later wins
    await conn.execute(
        """UPDATE nodes n SET node_type = coalesce(h.node_type, n.node_type),
               firmware_version = coalesce(h.firmware_version, n.firmware_version),
               hardware_revision = coalesce(h.hardware_revision, n.hardware_revision),
               capabilities = coalesce(h.capabilities, n.capabilities),
               first_seen_at = least(n.first_seen_at, h.first_seen_at),
               last_seen_at = greatest(n.last_seen_at, h.last_seen_at),
               status = CASE WHEN h.status_changed_at > n.status_changed_at OR n.status_changed_at IS NULL
                             THEN h.status ELSE n.status END,
               status_changed_at = greatest(n.status_changed_at, h.status_changed_at),
               last_heartbeat_at = greatest(n.last_heartbeat_at, h.last_heartbeat_at),
               uptime_s = coalesce(h.uptime_s, n.uptime_s), free_heap = coalesce(h.free_heap, n.free_heap),
               rssi = coalesce(h.rssi, n.rssi), updated_at = now()
           FROM nodes h WHERE n.id = $1 AND h.id = $2""",
        target,
        holder["id"],
    )
    try:
        async with conn.transaction():
            await conn.execute("DELETE FROM nodes WHERE id = $1", holder["id"])
    except asyncpg.ForeignKeyViolationError:
        pass  # the placeholder has history (events): it stays, without the hardware id


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
    """Record a node's first contact: an unknown hardware is created unvalidated (uid = hardware id).

    `node_uid` is the uid the topic named (None for hydro/node_hello and the temporary
    namespace). The hello only adds facts to the record of its own hardware: it raises
    HelloRefused when that record is another hardware's, or when the hardware is
    recorded under another uid. Returns the node and whether it was created now.
    """
    async with conn.transaction():
        by_hw = await conn.fetchrow("SELECT id, uid FROM nodes WHERE hardware_id = $1 FOR UPDATE", hardware_id)
        row = by_hw
        if node_uid is not None:
            by_uid = await conn.fetchrow("SELECT id, uid, hardware_id FROM nodes WHERE uid = $1 FOR UPDATE", node_uid)
            if by_hw is not None and by_hw["uid"] != node_uid:
                raise HelloRefused(f"hardware {hardware_id} is node {by_hw['uid']}, not {node_uid}")
            if by_uid is not None and by_uid["hardware_id"] not in (None, hardware_id):
                raise HelloRefused(f"node {node_uid} is hardware {by_uid['hardware_id']}, not {hardware_id}")
            row = by_uid
        created = row is None
        if created:
            uid = node_uid or hardware_id
            row = await conn.fetchrow(
                """INSERT INTO nodes (uid, hardware_id, first_seen_at, last_seen_at) VALUES ($1, $2, $3, $3)
                   ON CONFLICT DO NOTHING RETURNING id, uid""",
                uid,
                hardware_id,
                at,
            )
            if row is None:  # the uid is taken, or this hardware was recorded meanwhile
                row = await conn.fetchrow("SELECT id, uid FROM nodes WHERE hardware_id = $1 FOR UPDATE", hardware_id)
                created = False
            if row is None or (node_uid is not None and row["uid"] != node_uid):
                raise HelloRefused(f"a node named {uid} exists with another hardware than {hardware_id}")
        await conn.execute(
            """UPDATE nodes SET hardware_id = $2, node_type = coalesce($3, node_type),
                   firmware_version = coalesce($4, firmware_version),
                   hardware_revision = coalesce($5, hardware_revision),
                   capabilities = coalesce($6, capabilities),
                   first_seen_at = coalesce(first_seen_at, $7), last_seen_at = greatest(last_seen_at, $7),
                   updated_at = now()
               WHERE id = $1""",
            row["id"],
            hardware_id,
            node_type,
            firmware_version,
            hardware_revision,
            capabilities,
            at,
        )
    return await get(conn, row["uid"]), created


async def for_hardware(conn: asyncpg.Connection, hardware_id: str, at: datetime) -> str | None:
    """The uid of the node of this hardware; a pending (unvalidated) record when there is none yet.

    So that a status or heartbeat that overtakes its node's hello is kept. None: the
    hardware id is already a node's uid with another hardware.
    """
    uid = await conn.fetchval("SELECT uid FROM nodes WHERE hardware_id = $1", hardware_id)
    if uid is not None:
        return uid
    uid = await conn.fetchval(
        """INSERT INTO nodes (uid, hardware_id, first_seen_at, last_seen_at) VALUES ($1, $1, $2, $2)
           ON CONFLICT DO NOTHING RETURNING uid""",
        hardware_id,
        at,
    )
    return uid or await conn.fetchval("SELECT uid FROM nodes WHERE hardware_id = $1", hardware_id)


async def claim_config_push(
    conn: asyncpg.Connection,
    *,
    at: datetime,
    min_interval_s: float,
    node_uid: str | None = None,
    hardware_id: str | None = None,
) -> dict | None:
    """Take the right to push a validated node's NodeConfig now; None when it has no hardware id or zone,
    or its last push is less than `min_interval_s` old.

    Marks the node "binding" and counts the push; gives it a command secret if it has none.
    Returns what the NodeConfig needs (uid, node_type, hardware_id, zone and greenhouse uids, secret).
    """
    row = await conn.fetchrow(
        """UPDATE nodes n SET binding_state = 'binding', config_pushed_at = $3, config_pushes = n.config_pushes + 1,
               secret = coalesce(n.secret, $5), updated_at = now()
           FROM zones z JOIN greenhouses g ON g.id = z.greenhouse_id
           WHERE z.id = n.zone_id AND n.validated AND n.hardware_id IS NOT NULL
             AND (n.uid = $1 OR n.hardware_id = $2)
             AND (n.config_pushed_at IS NULL OR n.config_pushed_at <= $3::timestamptz - make_interval(secs => $4))
           RETURNING n.uid, n.node_type, n.hardware_id, n.secret, z.uid AS zone_uid, g.uid AS greenhouse_uid,
                     n.config_pushes""",
        node_uid,
        hardware_id,
        at,
        min_interval_s,
        new_secret(),
    )
    return dict(row) if row else None


async def config_reported(
    conn: asyncpg.Connection, node_uid: str, report: dict, at: datetime, *, ruleset_version: str | None = None
) -> str | None:
    """Store a node's config_report; a validated node in a zone is bound by it (a NODE_BOUND event
    when the service had pushed its config). Returns the state the node was in before (None: unknown node).
    """
    async with conn.transaction():
        row = await conn.fetchrow(
            """UPDATE nodes n SET config_report = $2, last_seen_at = greatest(n.last_seen_at, $3),
                   binding_state = CASE WHEN n.validated AND n.zone_id IS NOT NULL THEN 'bound'
                                        ELSE n.binding_state END,
                   bound_at = CASE WHEN n.validated AND n.zone_id IS NOT NULL AND n.binding_state <> 'bound'
                                   THEN $3 ELSE n.bound_at END,
                   updated_at = now()
               FROM nodes old WHERE old.id = n.id AND n.uid = $1
               RETURNING n.id, n.zone_id, n.hardware_id, n.config_pushes, n.binding_state AS now,
                         old.binding_state AS before""",
            node_uid,
            report,
            at,
        )
        if row is None:
            return None
        if row["before"] == BINDING and row["now"] == BOUND:
            await events.add(
                conn,
                zone_id=row["zone_id"],
                node_id=row["id"],
                type="NODE_BOUND",
                details={
                    "node_uid": node_uid,
                    "hardware_id": row["hardware_id"],
                    "config_pushes": row["config_pushes"],
                },
                ruleset_version=ruleset_version,
                ts=at,
            )
        return row["before"]


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
                  n.last_heartbeat_at, n.uptime_s, n.rssi, n.free_heap, n.binding_state, n.config_pushed_at,
                  n.config_pushes, n.bound_at
           FROM nodes n LEFT JOIN zones z ON z.id = n.zone_id
           WHERE $1::bigint IS NULL OR n.zone_id = $1 ORDER BY n.uid""",
        zone_id,
    )
    return [dict(r) for r in rows]
