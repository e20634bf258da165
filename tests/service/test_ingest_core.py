"""The ingest core: vocabulary, node checks and value checks, each rejection with its reason."""

import asyncio
import math
import time

import pytest

from hydro_rules.service.config import Settings
from hydro_rules.service.ingest import IngestCore, Sample

pytestmark = pytest.mark.anyio
NOW = time.time()


@pytest.fixture
def core(db, site, database_url):
    return IngestCore(db, site, Settings(database_url=database_url, mqtt_url=None))


async def _last(db):
    async with db.acquire() as conn:
        rows = await conn.fetch(
            "SELECT n.uid, t.metric_type, t.value FROM telemetry_last t JOIN nodes n ON n.id = t.node_id"
        )
    return {(r["uid"], r["metric_type"]): r["value"] for r in rows}


async def test_aliases_become_canonical_names(core, db):
    r = await core.ingest(
        [
            Sample("nd-ph-1", "PH", 5.86, NOW),
            Sample("nd-level-1", "WATER_LEVEL", 80, NOW),
            Sample("nd-ph-1", "ph", 5.9, NOW + 1),
        ]
    )
    assert r.counts["accepted"] == 3 and r.rejections == []
    assert await _last(db) == {("nd-ph-1", "ph"): 5.9, ("nd-level-1", "water_level"): 80.0}


async def test_temperature_is_temp_air_unless_the_channel_or_binding_says_otherwise(core, db):
    await core.ingest(
        [
            Sample("nd-ec-1", "TEMPERATURE", 21.5, NOW),  # the zone binds temp_water to nd-ec-1
            Sample("nd-ph-1", "TEMPERATURE", 24.0, NOW, channel="temp_water"),  # the channel names the metric
            Sample("nd-level-1", "TEMPERATURE", 19.0, NOW),  # nothing says otherwise
        ]
    )
    assert await _last(db) == {
        ("nd-ec-1", "temp_water"): 21.5,
        ("nd-ph-1", "temp_water"): 24.0,
        ("nd-level-1", "temp_air"): 19.0,
    }


@pytest.mark.parametrize(
    ("sample", "outcome", "reason"),
    [
        (Sample("nd-nobody", "PH", 6, NOW), "unknown_node", "not registered"),
        (Sample("nd-ph-1", "PH", 6, NOW, zone_uid="zn-2"), "unknown_node", "belongs to zone zn-1"),
        (Sample("nd-ph-1", "PH", math.nan, NOW), "invalid_value", "not a finite number"),
        (Sample("nd-ph-1", "PH", math.inf, NOW), "invalid_value", "not a finite number"),
        (Sample("nd-ph-1", "PH", 14.5, NOW), "invalid_value", "outside the physical range of ph (0 .. 14 pH)"),
        (Sample("nd-level-1", "WATER_LEVEL", -1, NOW), "invalid_value", "outside the physical range"),
        (Sample("nd-ph-1", "PH", 6, NOW + 3600), "invalid_value", "in the future"),
        (Sample("nd-ph-1", "PH", 6, NOW - 40 * 86400), "invalid_value", "older than 30 days"),
        (Sample("nd-ph-1", "ORP", 6, NOW), "unknown_metric", "not in the vocabulary"),
    ],
)
async def test_rejections_carry_outcome_and_reason_and_write_nothing(core, db, sample, outcome, reason):
    r = await core.ingest([Sample("nd-ph-1", "PH", 6.0, NOW - 1), sample])
    assert r.counts["accepted"] == 1 and r.counts[outcome] == 1
    assert r.rejections[0].index == 1 and r.rejections[0].outcome == outcome and reason in r.rejections[0].reason
    async with db.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM telemetry_samples") == 1


async def test_unvalidated_nodes_are_not_written(core, db):
    async with db.acquire() as conn:
        await conn.execute("UPDATE nodes SET validated = false WHERE uid = 'nd-ph-1'")
    core.forget_node()
    r = await core.ingest([Sample("nd-ph-1", "PH", 6, NOW)])
    assert r.counts["not_validated"] == 1 and await _last(db) == {}


async def test_unknown_metric_raises_one_infra_alert_per_node_and_metric(core, db):
    await core.ingest([Sample("nd-ph-1", "ORP", 300, NOW), Sample("nd-ph-1", "ORP", 301, NOW + 1)])
    await core.ingest(
        [Sample("nd-ph-1", "ORP", 302, NOW + 2), Sample("nd-ec-1", "ORP", 1, NOW), Sample("nd-ph-1", "TDS", 1, NOW)]
    )
    async with db.acquire() as conn:
        rows = await conn.fetch("SELECT code, source, dedup_key, occurrences, status FROM alerts ORDER BY dedup_key")
    assert [tuple(r) for r in rows] == [
        ("infra_unknown_metric", "infra", "nd-ec-1/ORP", 1, "ACTIVE"),
        ("infra_unknown_metric", "infra", "nd-ph-1/ORP", 3, "ACTIVE"),
        ("infra_unknown_metric", "infra", "nd-ph-1/TDS", 1, "ACTIVE"),
    ]


async def test_node_last_seen_moves_with_telemetry(core, db):
    await core.ingest([Sample("nd-ph-1", "PH", 6, NOW - 5), Sample("nd-ph-1", "PH", 6.1, NOW - 2)])
    async with db.acquire() as conn:
        seen = await conn.fetchval("SELECT last_seen_at FROM nodes WHERE uid = 'nd-ph-1'")
    assert abs(seen.timestamp() - (NOW - 2)) < 1e-3


async def test_extra_keys_with_nan_are_stored_as_null(core, db):
    r = await core.ingest([Sample("nd-ph-1", "PH", 6.0, NOW, raw={"raw": math.nan, "probe": [1.0, math.inf]})])
    assert r.counts["accepted"] == 1
    async with db.acquire() as conn:
        assert await conn.fetchval("SELECT raw FROM telemetry_samples") == {"raw": None, "probe": [1.0, None]}


async def test_one_failing_sample_does_not_sink_its_batch(core):
    from hydro_rules.service.batcher import Batcher

    real = core.ingest

    async def ingest(samples):  # a sample the core cannot handle (a bug, not an outage)
        if any(s.metric == "BOOM" for s in samples):
            raise RuntimeError("boom")
        return await real(samples)

    core.ingest = ingest
    batcher = Batcher(core, linger_s=0.05)
    batcher.start()
    try:
        good = [batcher.submit(Sample("nd-ph-1", "PH", 6.0 + i / 10, NOW - i)) for i in range(5)]
        bad = batcher.submit(Sample("nd-ph-1", "BOOM", 1, NOW))
        results = await asyncio.gather(*good, bad, return_exceptions=True)
    finally:
        await batcher.stop()
    assert results[:5] == ["accepted"] * 5
    assert isinstance(results[5], RuntimeError)
