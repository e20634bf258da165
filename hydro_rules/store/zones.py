"""Zones: reads for the API and the engine, and the engine's persisted state (opaque JSON)."""

from __future__ import annotations

from datetime import datetime

import asyncpg


async def get(conn: asyncpg.Connection, uid: str) -> dict | None:
    row = await conn.fetchrow(
        """SELECT z.id, z.uid, g.uid AS greenhouse_uid, g.site_uid, z.title, z.timezone, z.profile, z.recipe,
                  z.settings, z.water_state, z.solution_started_at, z.ruleset_version, z.updated_at
           FROM zones z JOIN greenhouses g ON g.id = z.greenhouse_id WHERE z.uid = $1""",
        uid,
    )
    return dict(row) if row else None


async def list_zones(conn: asyncpg.Connection) -> list[dict]:
    rows = await conn.fetch(
        """SELECT z.uid, g.uid AS greenhouse_uid, g.site_uid, z.title, z.timezone, z.profile, z.recipe,
                  z.water_state, z.solution_started_at, z.ruleset_version,
                  (SELECT count(*) FROM alerts a WHERE a.zone_id = z.id AND a.status = 'ACTIVE') AS active_alerts
           FROM zones z JOIN greenhouses g ON g.id = z.greenhouse_id ORDER BY z.uid"""
    )
    return [dict(r) for r in rows]


async def ids(conn: asyncpg.Connection) -> dict[str, int]:
    return {r["uid"]: r["id"] for r in await conn.fetch("SELECT uid, id FROM zones")}


async def channels(conn: asyncpg.Connection, zone_id: int) -> list[dict]:
    rows = await conn.fetch(
        """SELECT zc.channel, zc.kind, n.uid AS node_uid, zc.channel_key FROM zone_channels zc
           JOIN nodes n ON n.id = zc.node_id WHERE zc.zone_id = $1 ORDER BY zc.channel""",
        zone_id,
    )
    return [dict(r) for r in rows]


async def engine_state(conn: asyncpg.Connection, zone_id: int) -> dict | None:
    return await conn.fetchval("SELECT engine_state FROM zones WHERE id = $1", zone_id)


async def save_engine_state(
    conn: asyncpg.Connection,
    zone_id: int,
    state: dict,
    *,
    water_state: str | None = None,
    solution_started_at: datetime | None = None,
) -> None:
    """Persist the engine's state of a zone (and the facts readers want without parsing it)."""
    await conn.execute(
        """UPDATE zones SET engine_state = $2, water_state = coalesce($3, water_state),
               solution_started_at = coalesce($4, solution_started_at), updated_at = now()
           WHERE id = $1""",
        zone_id,
        state,
        water_state,
        solution_started_at,
    )
