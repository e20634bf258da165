"""Versioned SQL migrations: `migrations/NNNN_name.sql`, applied in order, each once.

`schema_migrations` records what was applied (version, name, checksum). A
database that has a version this code does not know is refused: an older
release must not write into a newer schema.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources

import asyncpg

_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_LOCK = 0x4859_4452_4F00  # advisory lock key: one migrator at a time


class MigrationError(Exception):
    """The database cannot be brought to this code's schema."""


class DatabaseTooNew(MigrationError):
    pass


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def available() -> list[Migration]:
    """The migrations shipped with this package, by version."""
    out = []
    for entry in resources.files("hydro_rules.store").joinpath("migrations").iterdir():
        m = _FILE.match(entry.name)
        if m:
            out.append(Migration(int(m.group(1)), m.group(2), entry.read_text(encoding="utf-8")))
    out.sort(key=lambda m: m.version)
    versions = [m.version for m in out]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"two migration files share a version: {versions}")
    return out


async def applied(conn: asyncpg.Connection) -> dict[int, str]:
    """version -> checksum of what the database has; empty for a new database."""
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    if not exists:
        return {}
    rows = await conn.fetch("SELECT version, checksum FROM schema_migrations")
    return {r["version"]: r["checksum"] for r in rows}


async def migrate(conn: asyncpg.Connection) -> list[Migration]:
    """Apply every pending migration, each in its own transaction; return those applied."""
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK)
    try:
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version integer PRIMARY KEY,
                   name text NOT NULL,
                   checksum text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        known = available()
        done = await applied(conn)
        check(known, done)
        ran = []
        for m in known:
            if m.version in done:
                continue
            async with conn.transaction():
                await conn.execute(m.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                    m.version,
                    m.name,
                    m.checksum,
                )
            ran.append(m)
        return ran
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK)


def check(known: list[Migration], done: dict[int, str]) -> None:
    """Refuse a database newer than this code, or one whose applied migrations were edited."""
    by_version = {m.version: m for m in known}
    newer = sorted(v for v in done if v not in by_version)
    if newer:
        latest = known[-1].version if known else 0
        raise DatabaseTooNew(
            f"the database has schema version {max(newer)}, newer than this hydro-rules knows ({latest}); "
            "upgrade hydro-rules before using this database"
        )
    for v, checksum in done.items():
        if by_version[v].checksum != checksum:
            raise MigrationError(f"migration {v:04d}_{by_version[v].name} was changed after it was applied")


async def current_version(conn: asyncpg.Connection) -> int:
    done = await applied(conn)
    return max(done, default=0)


async def require_current(conn: asyncpg.Connection) -> None:
    """Raise unless the database has exactly this code's migrations (the service's start check)."""
    known = available()
    done = await applied(conn)
    check(known, done)
    missing = [m for m in known if m.version not in done]
    if missing:
        raise MigrationError(
            f"the database lacks {len(missing)} migration(s) (first: {missing[0].version:04d}_{missing[0].name}); "
            "run `hydro-rules db migrate`"
        )
