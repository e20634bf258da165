"""Small helpers for store tests: ids of the demo site, samples written the way the ingest writes them."""

from datetime import UTC, datetime

from asyncpg import UniqueViolationError

from hydro_rules.store import telemetry
from hydro_rules.store.partitions import Partitions


def at(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


async def ids(conn) -> dict[str, int]:
    rows = await conn.fetch("SELECT uid, id FROM zones UNION ALL SELECT uid, id FROM nodes")
    return {r["uid"]: r["id"] for r in rows}


async def put(conn, rows: list[tuple]) -> int:
    """rows of (ts seconds, zone uid, node uid, metric, value[, channel[, stub]]): stored and upserted
    like an ingest batch."""
    known = await ids(conn)
    out = []
    for ts, z, n, m, v, *rest in rows:
        channel = rest[0] if rest else None
        stub = rest[1] if len(rest) > 1 else False
        out.append((at(ts), known[z], known[n], m, float(v), channel, None, stub))
    await Partitions().ensure(conn, {r[0].date() for r in out})
    try:
        async with conn.transaction():
            stored = await telemetry.write_samples(conn, out)
            await telemetry.upsert_last(conn, out)
    except UniqueViolationError:
        async with conn.transaction():
            stored = await telemetry.write_samples(conn, out, dedupe=True)
            await telemetry.upsert_last(conn, out)
    return stored
