"""telemetry_samples and telemetry_last: batches stored once, the newest sample wins, each channel its own series."""

import time

import pytest

from hydro_rules.store import telemetry
from hydro_rules.store.partitions import Partitions, drop_before, partition_name

from .util import at, ids, put

pytestmark = pytest.mark.anyio
NOW = time.time()  # taken again as each test starts (a slow run may reach a test minutes after the import)


@pytest.fixture(autouse=True)
def _now_when_the_test_runs():
    global NOW
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


async def test_two_channels_of_one_metric_are_two_series(db):
    """A node's four float switches all send WATER_LEVEL_SWITCH at the same second: four series, not redeliveries."""
    switches = ("level_clean_min", "level_clean_max", "level_solution_min", "level_solution_max")
    async with db.acquire() as conn:
        rows = [(NOW, "zn-1", "nd-level-1", "water_level_switch", i % 2, ch) for i, ch in enumerate(switches)]
        assert await put(conn, rows) == 4
        last = await telemetry.latest(conn, (await ids(conn))["zn-1"])
        assert {(r["channel"], r["value"]) for r in last} == {(ch, float(i % 2)) for i, ch in enumerate(switches)}
        # a newer reading of one channel moves that channel only
        await put(conn, [(NOW + 1, "zn-1", "nd-level-1", "water_level_switch", 1, "level_clean_min")])
        last = {r["channel"]: r["value"] for r in await telemetry.latest(conn, (await ids(conn))["zn-1"])}
        assert last == {
            "level_clean_min": 1.0,
            "level_clean_max": 1.0,
            "level_solution_min": 0.0,
            "level_solution_max": 1.0,
        }
        one = await telemetry.samples(
            conn, (await ids(conn))["zn-1"], "water_level_switch", at(NOW - 1), at(NOW + 2), channel="level_clean_min"
        )
        assert [(r["channel"], r["value"]) for r in one] == [("level_clean_min", 0.0), ("level_clean_min", 1.0)]


async def test_same_series_and_ts_with_another_value_is_stored_not_dropped(db):
    async with db.acquire() as conn:
        assert await put(conn, [(NOW, "zn-1", "nd-ph-1", "ph", 6.0, "ph_sensor")]) == 1
        assert await put(conn, [(NOW, "zn-1", "nd-ph-1", "ph", 6.2, "ph_sensor")]) == 1
        assert await put(conn, [(NOW, "zn-1", "nd-ph-1", "ph", 6.2, "ph_sensor")]) == 0  # this one is a redelivery
        values = await conn.fetch("SELECT value FROM telemetry_samples ORDER BY value")
        assert [r["value"] for r in values] == [6.0, 6.2]
        # a sample without a channel (HTTP) is a series of its own, and redelivered is still stored once
        assert await put(conn, [(NOW, "zn-1", "nd-ph-1", "ph", 6.0)]) == 1
        assert await put(conn, [(NOW, "zn-1", "nd-ph-1", "ph", 6.0)]) == 0
        assert await conn.fetchval("SELECT count(*) FROM telemetry_last") == 2  # ph_sensor and no channel


async def test_stub_samples_are_stored_flagged_and_never_the_last_value(db):
    async with db.acquire() as conn:
        await put(conn, [(NOW - 10, "zn-1", "nd-ph-1", "ph", 6.0, "ph_sensor")])
        await put(conn, [(NOW, "zn-1", "nd-ph-1", "ph", 7.0, "ph_sensor", True)])
        rows = await conn.fetch("SELECT value, stub FROM telemetry_samples ORDER BY ts")
        assert [(r["value"], r["stub"]) for r in rows] == [(6.0, False), (7.0, True)]
        assert [r["value"] for r in await telemetry.latest(conn, (await ids(conn))["zn-1"])] == [6.0]
        await put(conn, [(NOW, "zn-1", "nd-ec-1", "ec", 1.5, "ec_sensor", True)])  # a stub-only series
        assert await conn.fetchval("SELECT count(*) FROM telemetry_last WHERE metric_type = 'ec'") == 0


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
