"""`db migrate`: applies each migration once, records it, and refuses a database newer than the code."""

import asyncio

import pytest

from hydro_rules.store import connect_once
from hydro_rules.store import migrate as M


async def _run(url, fn):
    conn = await connect_once(url)
    try:
        return await fn(conn)
    finally:
        await conn.close()


def test_migrate_applies_everything_once_and_records_it(fresh_database):
    url = fresh_database()
    first = asyncio.run(_run(url, M.migrate))
    assert [m.version for m in first] == [m.version for m in M.available()]
    assert asyncio.run(_run(url, M.migrate)) == []  # idempotent
    rows = asyncio.run(_run(url, lambda c: c.fetch("SELECT version, name, checksum FROM schema_migrations")))
    assert {(r["version"], r["checksum"]) for r in rows} == {(m.version, m.checksum) for m in M.available()}
    asyncio.run(_run(url, M.require_current))


def test_a_database_newer_than_the_code_or_with_an_edited_migration_is_refused(fresh_database):
    url = fresh_database()
    asyncio.run(_run(url, M.migrate))
    asyncio.run(
        _run(
            url, lambda c: c.execute("INSERT INTO schema_migrations (version, name, checksum) VALUES (9999, 'f', 'x')")
        )
    )
    with pytest.raises(M.DatabaseTooNew, match="9999"):
        asyncio.run(_run(url, M.migrate))
    with pytest.raises(M.DatabaseTooNew):
        asyncio.run(_run(url, M.require_current))
    asyncio.run(_run(url, lambda c: c.execute("DELETE FROM schema_migrations WHERE version = 9999")))
    asyncio.run(_run(url, lambda c: c.execute("UPDATE schema_migrations SET checksum = 'edited' WHERE version = 1")))
    with pytest.raises(M.MigrationError, match="changed after it was applied"):
        asyncio.run(_run(url, M.migrate))


def test_the_service_refuses_an_unmigrated_database(fresh_database):
    with pytest.raises(M.MigrationError, match="db migrate"):
        asyncio.run(_run(fresh_database(), M.require_current))


def test_schema_essentials(database_url):
    async def facts(c):
        kind = await c.fetchval("SELECT relkind::text FROM pg_class WHERE oid = 'telemetry_samples'::regclass")
        timescale = await c.fetchval("SELECT count(*) FROM pg_extension WHERE extname = 'timescaledb'")
        unique = await c.fetchval(
            """SELECT pg_get_constraintdef(oid) FROM pg_constraint
               WHERE conrelid = 'telemetry_last'::regclass AND contype = 'u'"""
        )
        node_null = await c.fetchval(
            """SELECT is_nullable FROM information_schema.columns
               WHERE table_name = 'telemetry_last' AND column_name = 'node_id'"""
        )
        engine_state = await c.fetchval(
            """SELECT data_type FROM information_schema.columns
               WHERE table_name = 'zones' AND column_name = 'engine_state'"""
        )
        return kind, timescale, unique, node_null, engine_state

    kind, timescale, unique, node_null, engine_state = asyncio.run(_run(database_url, facts))
    assert kind == "p" or timescale == 1  # native partitions, or a hypertable where TimescaleDB loads
    assert unique == "UNIQUE NULLS NOT DISTINCT (zone_id, node_id, metric_type, channel)"
    assert node_null == "NO"
    assert engine_state == "jsonb"
