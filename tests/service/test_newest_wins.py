"""The newest sample wins telemetry_last across batches and transactions, not only inside one batch.

The guard is SQL (`WHERE telemetry_last.ts < EXCLUDED.ts` in store.telemetry.upsert_last): an
older sample that comes in a later batch, through the ingest core or over MQTT, or in a transaction
that commits after a newer one, is stored as a sample and leaves the last value alone. "Stored"
is known from a real signal: the query itself, or the service's PUBACK, which it sends only after
the sample's batch is committed.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import pytest

from hydro_rules.service.config import Settings
from hydro_rules.service.ingest import IngestCore, Sample
from hydro_rules.store import telemetry
from hydro_rules.store.partitions import Partitions

from .conftest import Node, eventually

pytestmark = pytest.mark.anyio


def at(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


async def ids(conn) -> dict[str, int]:
    return {
        r["uid"]: r["id"] for r in await conn.fetch("SELECT uid, id FROM zones UNION ALL SELECT uid, id FROM nodes")
    }


async def _last(db) -> tuple[float, float]:
    async with db.acquire() as conn:
        row = await conn.fetchrow("SELECT value, ts FROM telemetry_last WHERE metric_type = 'ph'")
    return row["value"], row["ts"].timestamp()


async def _count(db) -> int:
    async with db.acquire() as conn:
        return await conn.fetchval("SELECT count(*) FROM telemetry_samples WHERE metric_type = 'ph'")


async def test_an_older_sample_in_a_later_ingest_batch_does_not_win(db, site, database_url):
    core = IngestCore(db, site, Settings(database_url=database_url, mqtt_url=None))
    now = time.time()
    await core.ingest([Sample("nd-ph-1", "PH", 6.4, now - 1)])
    await core.ingest([Sample("nd-ph-1", "PH", 5.5, now - 30)])  # a node's backlog, flushed late
    assert await _last(db) == (6.4, pytest.approx(now - 1, abs=1e-3))
    assert await _count(db) == 2
    await core.ingest([Sample("nd-ph-1", "PH", 6.1, now)])
    assert (await _last(db))[0] == 6.1


async def test_an_older_sample_in_a_transaction_that_commits_later_does_not_win(db):
    """The newer row is written and locked first; the older upsert waits for the lock, then sees it."""
    now = time.time()
    async with db.acquire() as a, db.acquire() as b:
        k = await ids(a)
        await Partitions().ensure(a, {at(now).date(), at(now - 30).date()})

        def row(ts, value):
            return (at(ts), k["zn-1"], k["nd-ph-1"], "ph", value, None, None, False)

        newer = a.transaction()
        await newer.start()
        await telemetry.upsert_last(a, [row(now - 1, 6.4)])
        older = asyncio.create_task(_upsert_in_own_transaction(b, row(now - 30, 5.5)))
        await eventually(lambda: _waits_for_a_lock(a, b), timeout=5)
        await newer.commit()
        await asyncio.wait_for(older, 5)
    assert await _last(db) == (6.4, pytest.approx(now - 1, abs=1e-3))


async def _upsert_in_own_transaction(conn, row) -> None:
    async with conn.transaction():
        await telemetry.upsert_last(conn, [row])


async def _waits_for_a_lock(a, b) -> bool:
    pid = b.get_server_pid()
    return await a.fetchval("SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1", pid)


async def test_an_older_sample_over_mqtt_after_the_newer_one_was_stored_does_not_win(mqtt_service, mqtt_url, db, acks):
    now = time.time()
    async with Node(mqtt_url, "nd-ph-1") as ph:
        await ph.telemetry("PH", 6.4, now - 1)
        await eventually(lambda: asyncio.sleep(0, len(acks) >= 1))  # stored: its batch is committed
        await ph.telemetry("PH", 5.5, now - 30)  # in a batch of its own
        await eventually(lambda: asyncio.sleep(0, len(acks) >= 2))
    assert [code for _, code in acks] == [0, 0]
    assert await _count(db) == 2
    assert await _last(db) == (6.4, pytest.approx(now - 1, abs=1e-3))
