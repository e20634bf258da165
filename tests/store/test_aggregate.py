"""Aggregates: min/max/avg/count/last per bucket; re-runs change nothing; late samples are folded in."""

import time
from datetime import UTC, datetime

import pytest

from hydro_rules.store import aggregate

from .util import put

pytestmark = pytest.mark.anyio

# the start of the last hour but one, so every sample lies in closed buckets; taken again as each test starts
T0 = (int(time.time()) // 3600) * 3600 - 3600


@pytest.fixture(autouse=True)
def _t0_when_the_test_runs():
    global T0
    T0 = (int(time.time()) // 3600) * 3600 - 3600


def _bucket(ts):
    return datetime.fromtimestamp(ts, UTC)


async def _agg(conn, table):
    return {(r["bucket"], r["metric_type"]): dict(r) for r in await conn.fetch(f"SELECT * FROM {table}")}


async def test_buckets_hold_min_max_avg_count_last(db):
    async with db.acquire() as conn:
        await put(
            conn,
            [
                (T0 + 5, "zn-1", "nd-ph-1", "ph", 6.0),
                (T0 + 50, "zn-1", "nd-ph-1", "ph", 5.0),
                (T0 + 30, "zn-1", "nd-ph-1", "ph", 7.0),
                (T0 + 65, "zn-1", "nd-ph-1", "ph", 6.5),
            ],
        )
        run = await aggregate.run(conn, settle_s=0)
        assert run.ran and run.rows_1m == 2
        m = await _agg(conn, "telemetry_agg_1m")
        first = m[(_bucket(T0), "ph")]
        assert (first["min"], first["max"], first["count"], first["last"]) == (5.0, 7.0, 3, 5.0)
        assert first["avg"] == pytest.approx(6.0)
        h = (await _agg(conn, "telemetry_agg_1h"))[(_bucket(T0), "ph")]
        assert (h["min"], h["max"], h["count"], h["last"]) == (5.0, 7.0, 4, 6.5)
        assert h["avg"] == pytest.approx((6 + 5 + 7 + 6.5) / 4)
        d = await _agg(conn, "telemetry_agg_daily")
        day = _bucket(T0).replace(hour=0)
        assert d[(day, "ph")]["count"] == 4


async def test_rerunning_changes_nothing(db):
    async with db.acquire() as conn:
        await put(conn, [(T0 + 5, "zn-1", "nd-ph-1", "ph", 6.0), (T0 + 70, "zn-1", "nd-ph-1", "ph", 6.2)])
        await aggregate.run(conn, settle_s=0)
        before = [await _agg(conn, t) for t in ("telemetry_agg_1m", "telemetry_agg_1h", "telemetry_agg_daily")]
        await aggregate.run(conn, settle_s=0)
        await aggregate.run(conn, settle_s=0, overlap_s=10 * 86400)  # even over everything again
        after = [await _agg(conn, t) for t in ("telemetry_agg_1m", "telemetry_agg_1h", "telemetry_agg_daily")]
        strip = [{k: {f: v for f, v in r.items() if f != "updated_at"} for k, r in a.items()} for a in before]
        assert strip == [{k: {f: v for f, v in r.items() if f != "updated_at"} for k, r in a.items()} for a in after]
        marks = await aggregate.watermarks(conn)
        assert set(marks) == {"1m", "1h", "daily"}


async def test_a_late_sample_in_a_closed_bucket_is_reaggregated(db):
    async with db.acquire() as conn:
        await put(conn, [(T0 + 5, "zn-1", "nd-ph-1", "ph", 6.0)])
        await aggregate.run(conn, settle_s=0)
        await put(conn, [(T0 + 40, "zn-1", "nd-ph-1", "ph", 8.0)])  # late, same minute
        await aggregate.run(conn, settle_s=0, overlap_s=0)
        m = (await _agg(conn, "telemetry_agg_1m"))[(_bucket(T0), "ph")]
        assert (m["count"], m["max"], m["last"]) == (2, 8.0, 8.0)
        assert (await _agg(conn, "telemetry_agg_1h"))[(_bucket(T0), "ph")]["count"] == 2


async def test_only_one_aggregator_runs_at_a_time(db):
    async with db.acquire() as a, db.acquire() as b, a.transaction():
        await a.execute("SELECT pg_advisory_xact_lock($1)", aggregate._LOCK)
        assert not (await aggregate.run(b, settle_s=0)).ran


async def test_each_channel_is_its_own_aggregate_series_and_stubs_are_left_out(db):
    async with db.acquire() as conn:
        await put(
            conn,
            [
                (T0 + 5, "zn-1", "nd-level-1", "water_level_switch", 0, "level_clean_min"),
                (T0 + 5, "zn-1", "nd-level-1", "water_level_switch", 1, "level_clean_max"),
                (T0 + 10, "zn-1", "nd-level-1", "water_level_switch", 1, "level_clean_max", True),
                (T0 + 15, "zn-1", "nd-ph-1", "ph", 6.0),
            ],
        )
        await aggregate.run(conn, settle_s=0)
        zone = await conn.fetchval("SELECT id FROM zones WHERE uid = 'zn-1'")
        for level in ("1m", "1h", "daily"):
            rows = await aggregate.series(
                conn, level, zone, "water_level_switch", _bucket(T0 - 86400), _bucket(T0 + 86400)
            )
            assert {(r["channel"], r["max"], r["count"]) for r in rows} == {
                ("level_clean_min", 0.0, 1),
                ("level_clean_max", 1.0, 1),
            }, level
        [ph] = await aggregate.series(conn, "1m", zone, "ph", _bucket(T0), _bucket(T0 + 60))
        assert ph["channel"] is None and ph["count"] == 1
        one = await aggregate.series(
            conn, "1m", zone, "water_level_switch", _bucket(T0), _bucket(T0 + 60), channel="level_clean_min"
        )
        assert [r["channel"] for r in one] == ["level_clean_min"]
