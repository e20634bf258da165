"""Daily partitions of telemetry_samples, made ahead of time and on demand.

Nothing to do when the table is a TimescaleDB hypertable (it makes its own
chunks). Partitions are created in their own short transaction, never inside
an ingest transaction, so readers are not blocked behind a COPY.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta

import asyncpg

_LOCK = 0x4859_4452_4F01


def partition_name(day: date) -> str:
    return f"telemetry_samples_{day:%Y%m%d}"


def day_of(ts: float) -> date:
    return datetime.fromtimestamp(ts, UTC).date()


class Partitions:
    """Remembers which days have a partition, so the common case costs no query."""

    def __init__(self) -> None:
        self.known: set[date] = set()
        self.native: bool | None = None

    def forget(self) -> None:
        self.known.clear()
        self.native = None

    async def ensure(self, conn: asyncpg.Connection, days: Iterable[date]) -> list[date]:
        """Create the partitions missing for `days`; return the days created."""
        missing = sorted(set(days) - self.known)
        if not missing:
            return []
        if self.native is None:
            kind = await conn.fetchval("SELECT relkind::text FROM pg_class WHERE oid = 'telemetry_samples'::regclass")
            self.native = kind == "p"
        if not self.native:
            self.known.update(missing)
            return []
        created = []
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK)
            existing = {
                r["relname"]
                for r in await conn.fetch(
                    """SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                       WHERE i.inhparent = 'telemetry_samples'::regclass"""
                )
            }
            for day in missing:
                name = partition_name(day)
                if name not in existing:
                    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
                    await conn.execute(
                        f"CREATE TABLE {name} PARTITION OF telemetry_samples "
                        f"FOR VALUES FROM ('{start.isoformat()}') TO ('{(start + timedelta(days=1)).isoformat()}')"
                    )
                    created.append(day)
        self.known.update(missing)
        return created

    async def ensure_ahead(self, conn: asyncpg.Connection, today: date, ahead_days: int = 7) -> list[date]:
        """Partitions from yesterday to `ahead_days` after today."""
        return await self.ensure(conn, (today + timedelta(days=d) for d in range(-1, ahead_days + 1)))


async def drop_before(conn: asyncpg.Connection, day: date) -> list[str]:
    """Drop native partitions wholly before `day` (retention); return their names."""
    rows = await conn.fetch(
        """SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
           WHERE i.inhparent = 'telemetry_samples'::regclass ORDER BY c.relname"""
    )
    dropped = []
    for r in rows:
        name = r["relname"]
        if name < partition_name(day):
            await conn.execute(f"DROP TABLE {name}")
            dropped.append(name)
    return dropped
