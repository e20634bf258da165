"""Site daemons: their heartbeat rows, and zone ownership by PostgreSQL advisory locks.

A daemon beats (`beat`) every few seconds; another daemon or the service tells a
live one from a dead one by `alive`. A zone belongs to the session holding its
advisory lock (session level: it stays held across transactions and goes with
the connection, so a dead daemon's zones free themselves when PostgreSQL sees
its connection close). No home-made consensus: one lock, one owner.
"""

from __future__ import annotations

import asyncio
import hashlib
from datetime import datetime, timedelta

import asyncpg

#: keeps zone keys apart from any other advisory lock user (the migrator's key among them)
_NAMESPACE = b"hydro-rules/zone-owner/"
_MASK64 = (1 << 64) - 1


async def beat(
    conn: asyncpg.Connection,
    daemon_id: str,
    *,
    host: str,
    pid: int,
    ruleset_version: str,
    zones: list[str],
    at: datetime,
) -> None:
    """The daemon is alive at `at` and owns `zones`. A daemon beating again after it stopped restarts."""
    await conn.execute(
        """INSERT INTO daemons (daemon_id, host, pid, started_at, beat_at, stopped_at, ruleset_version, zones)
           VALUES ($1, $2, $3, $4, $4, NULL, $5, $6::text[])
           ON CONFLICT (daemon_id) DO UPDATE SET
               host = EXCLUDED.host, pid = EXCLUDED.pid, beat_at = EXCLUDED.beat_at,
               started_at = CASE WHEN daemons.stopped_at IS NULL THEN daemons.started_at
                                 ELSE EXCLUDED.started_at END,
               stopped_at = NULL, ruleset_version = EXCLUDED.ruleset_version, zones = EXCLUDED.zones""",
        daemon_id,
        host,
        pid,
        at,
        ruleset_version,
        list(zones),
    )


async def stopped(conn: asyncpg.Connection, daemon_id: str, at: datetime) -> None:
    """The daemon stopped cleanly at `at` (it owns nothing any more)."""
    await conn.execute(
        "UPDATE daemons SET stopped_at = $2, zones = '{}' WHERE daemon_id = $1",
        daemon_id,
        at,
    )


async def alive(conn: asyncpg.Connection, at: datetime, within_s: float) -> list[dict]:
    """Daemons that beat within `within_s` before `at` and have not stopped, by id."""
    rows = await conn.fetch(
        """SELECT daemon_id, host, pid, started_at, beat_at, stopped_at, ruleset_version, zones FROM daemons
           WHERE beat_at >= $1 AND stopped_at IS NULL ORDER BY daemon_id""",
        at - timedelta(seconds=within_s),
    )
    return [dict(r) for r in rows]


async def newest_beat(conn: asyncpg.Connection) -> datetime | None:
    """The last beat of any daemon, stopped or not; None when no daemon ever ran here."""
    return await conn.fetchval("SELECT max(beat_at) FROM daemons")


async def last_owner(conn: asyncpg.Connection, zone_uid: str, *, other_than: str) -> dict | None:
    """The daemon other than `other_than` that last listed the zone as its own (daemon_id, host,
    beat_at, stopped_at): whom a takeover takes it from. None when no other daemon ever had it."""
    row = await conn.fetchrow(
        """SELECT daemon_id, host, beat_at, stopped_at FROM daemons
           WHERE $1 = ANY(zones) AND daemon_id <> $2 ORDER BY beat_at DESC LIMIT 1""",
        zone_uid,
        other_than,
    )
    return dict(row) if row else None


def zone_lock_key(zone_uid: str) -> int:
    """The zone's advisory lock key: a stable signed 64-bit number (the same in every process)."""
    digest = hashlib.blake2b(_NAMESPACE + zone_uid.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _lock_parts(key: int) -> tuple[int, int]:
    """(classid, objid) of a bigint advisory lock key as pg_locks shows it: high and low 32 bits."""
    unsigned = key & _MASK64
    return unsigned >> 32, unsigned & 0xFFFF_FFFF


async def try_lock_zone(conn: asyncpg.Connection, zone_uid: str) -> bool:
    """Take the zone for this connection's session if nobody holds it (or this session already does)."""
    return await conn.fetchval("SELECT pg_try_advisory_lock($1)", zone_lock_key(zone_uid))


async def unlock_zone(conn: asyncpg.Connection, zone_uid: str) -> bool:
    """Let the zone go; False when this session did not hold it."""
    return await conn.fetchval("SELECT pg_advisory_unlock($1)", zone_lock_key(zone_uid))


async def locked_zones(conn: asyncpg.Connection, zone_uids: list[str]) -> set[str]:
    """Those of `zone_uids` whose lock some session (this one included) holds now."""
    by_parts = {_lock_parts(zone_lock_key(uid)): uid for uid in zone_uids}
    if not by_parts:
        return set()
    rows = await conn.fetch(
        """SELECT classid::bigint AS classid, objid::bigint AS objid FROM pg_locks
           WHERE locktype = 'advisory' AND objsubid = 1 AND granted
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"""
    )
    return {by_parts[p] for r in rows if (p := (r["classid"], r["objid"])) in by_parts}


async def session(conn: asyncpg.Connection) -> tuple[int, datetime]:
    """This connection's server session: (backend pid, its start), which tell it from a later one with the same pid."""
    row = await conn.fetchrow("SELECT pid, backend_start FROM pg_stat_activity WHERE pid = pg_backend_pid()")
    return row["pid"], row["backend_start"]


async def end_session(conn: asyncpg.Connection, pid: int, started: datetime, *, wait_s: float = 5.0) -> bool:
    """End an earlier session of ours that the server still keeps (a half-open connection holding zone
    locks until TCP gives up on it), and wait until it is gone with its locks; False when it was gone."""
    ended = await conn.fetchval(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid = $1 AND backend_start = $2",
        pid,
        started,
    )
    if not ended:
        return False
    for _ in range(max(1, int(wait_s / 0.01))):  # the backend exits (letting its locks go) a moment later
        if not await conn.fetchval("SELECT count(*) FROM pg_locks WHERE pid = $1", pid):
            break
        await asyncio.sleep(0.01)
    return True
