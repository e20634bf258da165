"""telemetry_samples and telemetry_last: batches stored once, the newest sample wins."""

import time

import pytest

from hydro_rules.store import telemetry
from hydro_rules.store.partitions import Partitions, drop_before, partition_name

from .util import at, ids, put

pytestmark = pytest.mark.anyio
NOW = time.time()


async def test_a_late_older_sample_never_overwrites_a_newer_one(db):
    async with db.acquire() as conn:
        await put(conn, [(NOW - 10, "zn-1", "nd-ph-1", "ph", 6.1)])
        await put(conn, [(NOW - 60, "zn-1", "nd-ph-1", "ph", 5.2)])  # arrives late
        last = await conn.fetchrow("SELECT value, ts FROM telemetry_last")
        assert (last["value"], last["ts"]) == (6.1, at(NOW - 10))
        await put(conn, [(NOW - 5, "zn-1", "nd-ph-1", "ph", 6.3)])
        assert await conn.fetchval("SELECT value FROM telemetry_last") == 6.3
        assert await conn.fetchval("SELECT count(*) FROM telemetry_samples") == 3


async def test_within_one_batch_the_newest_wins_whatever_the_order(db):
    async with db.acquire() as conn:
        await put(conn, [(NOW - 1, "zn-1", "nd-ph-1", "ph", 6.0), (NOW - 30, "zn-1", "nd-ph-1", "ph", 5.0)])
        assert await conn.fetchval("SELECT value FROM telemetry_last") == 6.0


async def test_last_is_kept_per_node_not_only_per_zone(db):
    async with db.acquire() as conn:
        await put(conn, [(NOW, "zn-1", "nd-ec-1", "temp_water", 21.0), (NOW, "zn-1", "nd-ph-1", "temp_water", 22.0)])
        assert await conn.fetchval("SELECT count(*) FROM telemetry_last") == 2


async def test_redelivered_samples_are_stored_once(db):
    async with db.acquire() as conn:
        batch = [(NOW - 3, "zn-1", "nd-ph-1", "ph", 6.0), (NOW - 2, "zn-1", "nd-ph-1", "ph", 6.1)]
        assert await put(conn, batch) == 2
        # the same batch again plus one new sample and an in-batch duplicate
        again = [*batch, (NOW - 1, "zn-1", "nd-ph-1", "ph", 6.2), (NOW - 1, "zn-1", "nd-ph-1", "ph", 6.2)]
        assert await put(conn, again) == 1
        assert await conn.fetchval("SELECT count(*) FROM telemetry_samples") == 3


async def test_partitions_are_made_on_demand_for_any_day(db):
    async with db.acquire() as conn:
        old = NOW - 20 * 86400
        await put(conn, [(old, "zn-1", "nd-ph-1", "ph", 6.0)])
        names = {
            r["relname"]
            for r in await conn.fetch(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "WHERE i.inhparent = 'telemetry_samples'::regclass"
            )
        }
        assert partition_name(at(old).date()) in names
        # retention drops whole days; a later write for that day makes the partition again
        dropped = await drop_before(conn, at(old + 86400).date())
        assert partition_name(at(old).date()) in dropped
        parts = Partitions()
        assert await parts.ensure(conn, [at(old).date()]) == [at(old).date()]
        assert await parts.ensure(conn, [at(old).date()]) == []  # remembered: no query


async def test_samples_query(db):
    async with db.acquire() as conn:
        await put(conn, [(NOW - 30, "zn-1", "nd-ph-1", "ph", 6.0), (NOW - 20, "zn-1", "nd-ph-1", "ph", 6.1)])
        rows = await telemetry.samples(conn, (await ids(conn))["zn-1"], "ph", at(NOW - 25), at(NOW))
        assert [r["value"] for r in rows] == [6.1]
