"""The ingest core: vocabulary, node checks and value checks, each rejection with its reason."""

import asyncio
import copy
import dataclasses
import math
import time

import pytest

from hydro_rules.service.config import Settings
from hydro_rules.service.ingest import IngestCore, Sample

pytestmark = pytest.mark.anyio
NOW = time.time()  # taken again as each test starts (a slow run may reach a test minutes after the import)


@pytest.fixture(autouse=True)
def _now_when_the_test_runs():
    global NOW
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


async def test_unknown_metrics_raise_one_infra_alert_per_node_with_a_count_and_the_names(core, db):
    await core.ingest([Sample("nd-ph-1", "ORP", 300, NOW), Sample("nd-ph-1", "ORP", 301, NOW + 1)])
    await core.ingest(
        [
            Sample("nd-ph-1", "ORP", 302, NOW + 2),
            Sample("nd-ec-1", "ORP", 1, NOW),
            Sample("nd-ph-1", "FOO", 1, NOW),
            *(Sample("nd-ph-1", f"X{i}", 1, NOW) for i in range(30)),  # a node making up names opens no more alerts
        ]
    )
    async with db.acquire() as conn:
        rows = await conn.fetch("SELECT dedup_key, occurrences, details FROM alerts ORDER BY dedup_key")
    assert [(r["dedup_key"], r["occurrences"]) for r in rows] == [("nd-ec-1", 1), ("nd-ph-1", 34)]
    ph = rows[1]["details"]
    assert ph["metric_types"][:2] == ["ORP", "FOO"] and len(ph["metric_types"]) == 20 and ph["more_names"]
    assert rows[0]["details"] == {"node_uid": "nd-ec-1", "metric_types": ["ORP"], "more_names": False}


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


async def _rows(db, sql="SELECT metric_type, channel, value, stub FROM telemetry_samples ORDER BY channel, value"):
    async with db.acquire() as conn:
        return [tuple(r) for r in await conn.fetch(sql)]


async def test_each_channel_of_a_metric_is_its_own_series(core, db):
    """Four float switches of one node, all WATER_LEVEL_SWITCH at the same second."""
    switches = ("level_clean_min", "level_clean_max", "level_solution_min", "level_solution_max")
    r = await core.ingest([Sample("nd-level-1", "WATER_LEVEL_SWITCH", 1, NOW, channel=ch) for ch in switches])
    assert r.stored == 4
    r = await core.ingest([Sample("nd-level-1", "WATER_LEVEL_SWITCH", 0, NOW + 1, channel="level_clean_max")])
    last = await _rows(db, "SELECT channel, value FROM telemetry_last ORDER BY channel")
    assert last == [("level_clean_max", 0.0), ("level_clean_min", 1.0), ("level_solution_max", 1.0),
                    ("level_solution_min", 1.0)]  # fmt: skip


async def test_only_a_true_redelivery_is_stored_once(core, db):
    same_second = [
        Sample("nd-ph-1", "PH", 6.0, NOW, channel="ph_sensor"),
        Sample("nd-ph-1", "PH", 6.1, NOW, channel="ph_sensor"),
    ]
    assert (await core.ingest(same_second)).stored == 2  # the same series, ts, another value: both kept
    again = await core.ingest([Sample("nd-ph-1", "PH", 6.1, NOW, channel="ph_sensor")])
    assert again.counts["accepted"] == 1 and again.stored == 0  # same node, channel, metric, ts and value
    assert await _rows(db) == [("ph", "ph_sensor", 6.0, False), ("ph", "ph_sensor", 6.1, False)]


async def test_a_stub_reading_is_stored_flagged_and_never_reaches_rules(core, db):
    await core.ingest([Sample("nd-ph-1", "PH", 6.0, NOW - 5, channel="ph_sensor")])
    r = await core.ingest([Sample("nd-ph-1", "PH", 7.0, NOW, channel="ph_sensor", stub=True)])
    assert r.counts["accepted"] == 1 and r.stub == 1 and "stub" in r.notes[0].note
    assert await _rows(db) == [("ph", "ph_sensor", 6.0, False), ("ph", "ph_sensor", 7.0, True)]
    assert await _last(db) == {("nd-ph-1", "ph"): 6.0}


def _with_bindings(site, zone_uid: str, **fields):
    """A copy of the site whose zone has these (language 1.1) binding fields."""
    rs = copy.deepcopy(site)
    for i, s in enumerate(rs.sites):
        greenhouses = tuple(
            dataclasses.replace(
                g, zones=tuple(dataclasses.replace(z, **fields) if z.uid == zone_uid else z for z in g.zones)
            )
            for g in s.greenhouses
        )
        rs.sites[i] = dataclasses.replace(s, greenhouses=greenhouses)
    return rs


async def test_units_are_converted_to_the_metrics_and_an_unknown_unit_is_refused(core, db, site, database_url):
    r = await core.ingest(
        [
            Sample("nd-level-1", "WATER_LEVEL", 0.8, NOW, channel="water_level", unit="ratio"),
            Sample("nd-level-1", "WATER_LEVEL", 55, NOW - 1, channel="water_level", unit="%"),
            Sample("nd-level-1", "WATER_LEVEL", 30, NOW - 2, channel="water_level", unit="cm"),
        ]
    )
    assert r.counts["accepted"] == 2
    [refused] = r.rejections
    assert refused.index == 2 and refused.outcome == "invalid_value" and "'cm'" in refused.reason
    assert await _rows(db, "SELECT value FROM telemetry_samples ORDER BY ts") == [(55.0,), (80.0,)]
    # a zone that says what its node sends (`water_level from nd-level-1 unit ratio`) converts unit-less readings
    bound = IngestCore(
        db, _with_bindings(site, "zn-1", metric_units={"water_level": "ratio"}), Settings(database_url=database_url)
    )
    await bound.ingest([Sample("nd-level-1", "WATER_LEVEL", 0.5, NOW + 1, channel="water_level")])
    assert (await _last(db))[("nd-level-1", "water_level")] == 50.0
    # bound to one channel (`... channel lvl_rel unit ratio`), the unit holds for that channel only
    one = _with_bindings(
        site, "zn-1", metric_units={"water_level": "ratio"}, metric_channels={"water_level": "lvl_rel"}
    )
    r = await IngestCore(db, one, Settings(database_url=database_url)).ingest(
        [
            Sample("nd-level-1", "WATER_LEVEL", 0.25, NOW + 2, channel="LVL_REL"),
            Sample("nd-level-1", "WATER_LEVEL", 0.25, NOW + 2, channel="lvl_cm"),
        ]
    )
    assert r.stored == 2
    rows = await _rows(
        db, "SELECT channel, value FROM telemetry_samples WHERE channel LIKE 'lvl%' OR channel LIKE 'LVL%'"
    )
    assert sorted(rows) == [("LVL_REL", 25.0), ("lvl_cm", 0.25)]


async def test_the_channel_decides_what_a_generic_metric_means(core, db):
    r = await core.ingest(
        [
            Sample("nd-ec-1", "TDS", 800, NOW, channel="ec_tds_ppm"),
            Sample("nd-ec-1", "EC", 800, NOW, channel="ec_tds_ppm"),  # older firmware: the channel still says TDS
            Sample("nd-ph-1", "TEMPERATURE", 21.0, NOW, channel="solution_temp_c"),
            Sample("nd-pump-1", "FLOW_RATE", 1, NOW, channel="flow_present"),
            Sample("nd-pump-1", "PUMP_STATE", 1, NOW, channel="pump_recirc"),
        ]
    )
    assert r.rejections == [] and r.stored == 4  # the two TDS readings are one sample
    assert await _rows(db, "SELECT metric_type, channel FROM telemetry_samples ORDER BY metric_type") == [
        ("flow_present", "flow_present"),
        ("pump_state", "pump_recirc"),
        ("tds", "ec_tds_ppm"),
        ("temp_water", "solution_temp_c"),
    ]


async def test_a_flow_flag_sent_with_the_rates_unit_is_kept_as_the_flag(core, db):
    # pump nodes send flow_present as metric_type FLOW_RATE; some builds add the rate's unit
    r = await core.ingest([Sample("nd-pump-1", "FLOW_RATE", 0, NOW, channel="flow_present", unit="L/min")])
    assert r.rejections == [] and r.stored == 1
    assert await _rows(db, "SELECT metric_type, value FROM telemetry_samples") == [("flow_present", 0.0)]


async def test_a_zone_channel_binding_decides_and_keeps_other_channels_out(core, db, site, database_url):
    rs = _with_bindings(
        site, "zn-1", metric_nodes={**site.zone("zn-1").metric_nodes, "temp_water": "nd-ec-1"},
        metric_channels={"temp_water": "probe_t"},
    )  # fmt: skip
    bound = IngestCore(db, rs, Settings(database_url=database_url))
    await bound.ingest(
        [
            Sample("nd-ec-1", "TEMPERATURE", 21.0, NOW, channel="PROBE_T"),  # older firmware: upper case
            Sample("nd-ec-1", "TEMPERATURE", 25.0, NOW, channel="board"),  # not the bound channel: air
        ]
    )
    assert await _rows(db, "SELECT metric_type, channel FROM telemetry_samples ORDER BY metric_type") == [
        ("temp_air", "board"),
        ("temp_water", "PROBE_T"),
    ]


async def test_bad_input_is_refused_per_sample_with_a_reason(core, db):
    good = Sample("nd-ph-1", "PH", 6.0, NOW)
    r = await core.ingest(
        [
            good,
            Sample("nd-ph-1", "PH", 6.0, 1e20),
            Sample("nd-ph-1", "PH", 6.0, -1e20),
            Sample("nd-ph-1", "PH", True, NOW),
            Sample("nd-ph-1", "PH", "6.1", NOW),
            Sample("nd-ph-1", "PH", 6.0, NOW * 1000),
            Sample("nd-ph-1", "PH\x00", 6.0, NOW),
            Sample("nd-ph-\x00", "PH", 6.0, NOW),
            Sample("nd-ph-1", "PH", 6.0, NOW, channel="ph\x00"),
            Sample("nd-ph-1", "PH", 6.0, NOW, unit="p\x00H"),
        ]
    )
    reasons = {x.index: (x.outcome, x.reason) for x in r.rejections}
    assert r.counts["accepted"] == 1 and r.stored == 1 and sorted(reasons) == list(range(1, 10))
    assert reasons[1][0] == "invalid_value" and "1e+20 s is" in reasons[1][1] and "in the future" in reasons[1][1]
    assert "older than 30 days" in reasons[2][1]
    assert reasons[3] == ("invalid_value", "value True is not a number")
    assert reasons[4] == ("invalid_value", "value '6.1' is not a number")
    assert "(milliseconds? ts is in seconds)" in reasons[5][1]
    assert reasons[6][0] == "unknown_metric"
    assert reasons[7] == ("malformed", "node uid holds a NUL character")
    assert reasons[8] == ("malformed", "channel holds a NUL character")
    assert (
        reasons[9][0] == "invalid_value"
        and "unit 'p\ufffdH' refused: ph is in pH and converts no p\ufffdH" in reasons[9][1]
    )
    assert await _rows(db) == [("ph", None, 6.0, False)]


async def test_junk_extra_keys_never_cost_the_reading(core, db):
    deep: object = 1
    for _ in range(50):
        deep = [deep]
    raw = {
        "stable": True,
        "note\x00": "a\x00b",
        "lone": "\ud800",
        "deep": deep,
        "huge": "x" * 10_000,
        "nan": math.nan,
    }
    r = await core.ingest([Sample("nd-ph-1", "PH", 6.0, NOW, raw=raw)])
    assert r.stored == 1
    assert sorted(n.note for n in r.notes) == [
        "extra key 'deep' not kept: nested deeper than 8 levels",
        "extra key 'huge' not kept: the record would exceed 4096 bytes",
    ]
    [(stored,)] = await _rows(db, "SELECT raw FROM telemetry_samples")
    assert stored == {"stable": True, "note\ufffd": "a\ufffdb", "lone": "\ufffd", "nan": None}


async def test_the_node_cache_is_bounded(core):
    core.node_cache_max = 3
    for uid in ("nd-a", "nd-b", "nd-ph-1", "nd-c", "nd-d"):
        await core.node(uid)
    assert list(core._nodes) == ["nd-ph-1", "nd-c", "nd-d"]
    await core.node("nd-ph-1")  # fresh in the cache: used, so it is kept longest
    await core.node("nd-e")
    assert list(core._nodes) == ["nd-d", "nd-ph-1", "nd-e"]
