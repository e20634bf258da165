"""The HTTP door: tokens and scopes, validation with field paths, size limits, and every route."""

import asyncio
import time

import pytest

from hydro_rules.store import alerts as alert_store
from hydro_rules.store import events as event_store

from .conftest import auth

pytestmark = pytest.mark.anyio
NOW = time.time()  # taken again as each test starts (a slow run may reach a test minutes after the import)


@pytest.fixture(autouse=True)
def _now_when_the_test_runs():
    global NOW
    NOW = time.time()


WRITE_ROUTES = [
    ("/ingest/telemetry", {"samples": []}),
    ("/nodes/register", {"node_uid": "nd-ph-1"}),
    ("/commands", {"zone_uid": "zn-1", "channel": "pump_drain", "cmd": "run_pump", "params": {"duration_ms": 1000}}),
    ("/zones/zn-1/safety/reset", {"reason": "pump replaced"}),
    ("/zones/zn-1/simulate", {"days": 1}),
]


@pytest.mark.parametrize(("path", "body"), WRITE_ROUTES, ids=[p for p, _ in WRITE_ROUTES])
async def test_every_write_route_needs_a_token(http, path, body):
    r = await http.post(path, json=body)
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert r.json()["error"] == "unauthorized"
    r = await http.post(path, json=body, headers=auth("hr_000000000000_" + "x" * 43))
    assert r.status_code == 401 and 'error="invalid_token"' in r.headers["www-authenticate"]


@pytest.mark.parametrize(
    ("path", "body", "scope"),
    [
        (*WRITE_ROUTES[0], "read"),
        (*WRITE_ROUTES[1], "ingest"),
        (*WRITE_ROUTES[2], "read"),
        (*WRITE_ROUTES[3], "ingest"),
    ],
)
async def test_a_token_without_the_scope_gets_403(http, tokens, path, body, scope):
    r = await http.post(path, json=body, headers=auth(tokens[scope]))
    assert r.status_code == 403 and r.json()["error"] == "insufficient_scope"
    assert 'error="insufficient_scope"' in r.headers["www-authenticate"]


async def test_reads_need_a_token_with_read_operator_or_override(http, tokens):
    assert (await http.get("/zones")).status_code == 401
    assert (await http.get("/zones", headers=auth(tokens["ingest"]))).status_code == 403
    for scope in ("read", "operator", "override"):
        assert (await http.get("/zones", headers=auth(tokens[scope]))).status_code == 200


async def test_ingest_answers_counts_and_a_reason_per_rejected_sample(http, tokens):
    samples = [
        {"node_uid": "nd-ph-1", "metric_type": "PH", "value": 5.86, "ts": NOW},
        {"node_uid": "nd-ph-1", "metric_type": "PH", "value": 15, "ts": NOW},
        {"node_uid": "nd-ghost", "metric_type": "PH", "value": 6, "ts": NOW},
        {"node_uid": "nd-ec-1", "metric_type": "EC", "value": 1.7, "ts": "2026-01-01T00:00:00"},
        {"node_uid": "nd-ec-1", "metric_type": "ORP", "value": 1, "ts": NOW, "zone_uid": "zn-1"},
    ]
    r = await http.post("/ingest/telemetry", json={"samples": samples}, headers=auth(tokens["ingest"]))
    assert r.status_code == 200
    body = r.json()
    assert body["counts"] == {
        "accepted": 1,
        "unknown_node": 1,
        "not_validated": 0,
        "unknown_metric": 1,
        "invalid_value": 2,
        "malformed": 0,
    }
    assert {x["index"]: x["outcome"] for x in body["rejected"]} == {
        1: "invalid_value",
        2: "unknown_node",
        3: "invalid_value",
        4: "unknown_metric",
    }
    assert "outside the physical range of ph" in body["rejected"][0]["reason"]


async def test_nan_in_the_body_is_a_rejected_sample_not_a_crash(http, tokens):
    raw = ('{"samples": [{"node_uid": "nd-ph-1", "metric_type": "PH", "value": NaN, "ts": %d}]}' % NOW).encode()
    r = await http.post("/ingest/telemetry", content=raw, headers=auth(tokens["ingest"]))
    assert r.status_code == 200 and r.json()["counts"]["invalid_value"] == 1


async def test_a_sample_the_schema_refuses_is_refused_alone_and_the_batch_goes_on(http, tokens, db):
    good = {"node_uid": "nd-ph-1", "metric_type": "PH", "value": 6, "ts": NOW}
    samples = [
        good,
        {**good, "value": "six"},
        {**good, "value": True},  # a bool is no number: refused, not read as 1
        {**good, "ts": "1710000000"},  # a number in a string is not a time
        {**good, "ts": NOW - 1, "stub": "yes"},
        {**good, "node_uid": "nd ph"},
        42,
    ]
    r = await http.post("/ingest/telemetry", headers=auth(tokens["ingest"]), json={"samples": samples})
    assert r.status_code == 200
    body = r.json()
    assert body["counts"]["accepted"] == 1 and body["counts"]["malformed"] == 6 and body["stored"] == 1
    reasons = {x["index"]: x["reason"] for x in body["rejected"]}
    assert reasons[1] == reasons[2] == "value: Input should be a valid number"
    assert reasons[3].startswith("ts: Value error, a time is a JSON number of epoch seconds or ISO 8601 text")
    assert reasons[4] == "stub: Input should be a valid boolean"
    assert reasons[5].startswith("node_uid: String should match pattern")
    assert reasons[6] == "Input should be a valid dictionary"
    async with db.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM telemetry_samples") == 1
    # a body that is not a batch is a 422 with the field path; bytes that are not JSON a 400
    r = await http.post("/ingest/telemetry", headers=auth(tokens["ingest"]), json={"sample": []})
    assert r.status_code == 422 and {tuple(d["loc"]) for d in r.json()["detail"]} == {("samples",), ("sample",)}
    r = await http.post("/ingest/telemetry", headers=auth(tokens["ingest"]), json={"samples": {"0": good}})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["samples"]
    r = await http.post("/ingest/telemetry", headers=auth(tokens["ingest"]), content=b'{"samples": [')
    assert r.status_code == 400 and r.json()["error"] == "invalid_json"


async def test_request_size_limits(http_service, http, tokens):
    limit = http_service.settings.max_body_bytes
    big = b'{"samples": [' + b" " * limit + b"]}"
    r = await http.post("/ingest/telemetry", content=big, headers=auth(tokens["ingest"]))
    assert r.status_code == 413

    async def chunks():  # no Content-Length: counted while reading
        for _ in range(limit // 65536 + 2):
            yield b" " * 65536

    r = await http.post("/ingest/telemetry", content=chunks(), headers=auth(tokens["ingest"]))
    assert r.status_code == 413


async def test_too_many_samples(http_service, http, tokens):
    n = http_service.settings.max_samples_per_request + 1
    sample = {"node_uid": "nd-ph-1", "metric_type": "PH", "value": 6, "ts": NOW}
    r = await http.post("/ingest/telemetry", json={"samples": [sample] * n}, headers=auth(tokens["ingest"]))
    assert r.status_code == 413 and r.json()["error"] == "too_many_samples"


async def test_register_a_node_then_its_telemetry_lands(http, tokens, db):
    async with db.acquire() as conn:
        await conn.execute("UPDATE nodes SET validated = false, secret = NULL WHERE uid = 'nd-ph-1'")
    sample = {"samples": [{"node_uid": "nd-ph-1", "metric_type": "PH", "value": 6.0, "ts": NOW}]}
    r = await http.post("/ingest/telemetry", json=sample, headers=auth(tokens["ingest"]))
    assert r.json()["counts"]["not_validated"] == 1
    r = await http.post(
        "/nodes/register",
        headers=auth(tokens["operator"]),
        json={"node_uid": "nd-ph-1", "firmware_version": "2.0.1", "hardware_revision": "v1.0"},
    )
    assert r.status_code == 200
    node = r.json()
    assert node["validated"] and node["zone_uid"] == "zn-1" and len(node["secret"]) == 64
    r = await http.post("/ingest/telemetry", json=sample, headers=auth(tokens["ingest"]))
    assert r.json()["counts"]["accepted"] == 1
    r = await http.post("/nodes/register", headers=auth(tokens["operator"]), json={"node_uid": "nd-ph-1"})
    assert "secret" not in r.json()  # shown once
    r = await http.post("/nodes/register", headers=auth(tokens["operator"]), json={"node_uid": "n", "zone_uid": "zz"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["zone_uid"]


async def test_read_routes(http, tokens, db):
    h = auth(tokens["read"])
    await http.post(
        "/ingest/telemetry",
        headers=auth(tokens["ingest"]),
        json={
            "samples": [
                {"node_uid": "nd-ph-1", "metric_type": "PH", "value": 6.0, "ts": NOW - 10},
                {"node_uid": "nd-level-1", "metric_type": "WATER_LEVEL", "value": 70, "ts": NOW - 500},
            ]
        },
    )
    zones = (await http.get("/zones", headers=h)).json()["zones"]
    assert [z["uid"] for z in zones] == ["zn-1", "zn-2"]
    zone = (await http.get("/zones/zn-1", headers=h)).json()
    assert {c["channel"] for c in zone["channels"]} >= {"pump_recirc", "dose_ph_down"}
    latest = {
        r["metric_type"]: r for r in (await http.get("/zones/zn-1/telemetry/latest", headers=h)).json()["telemetry"]
    }
    assert latest["ph"]["value"] == 6.0 and not latest["ph"]["stale"]
    assert latest["water_level"]["stale"]  # 500 s old, stale after 3 minutes
    raw = (await http.get("/zones/zn-1/telemetry?metric=ph&level=raw", headers=h)).json()
    assert [p["value"] for p in raw["points"]] == [6.0]
    assert (await http.get("/zones/zn-9", headers=h)).status_code == 404
    assert (await http.get("/zones/zn-1/telemetry?metric=ph&level=weekly", headers=h)).status_code == 422
    # times: ISO 8601 (UTC unless an offset says otherwise) or epoch seconds; anything else is a 422 on its field
    for since in ("2000-01-01", "2000-01-01T03:00:00%2B03:00", "946684800", "946684800.0"):
        r = await http.get(f"/zones/zn-1/telemetry?metric=ph&level=raw&since={since}", headers=h)
        assert [p["value"] for p in r.json()["points"]] == [6.0], since
    future = (await http.get(f"/zones/zn-1/telemetry?metric=ph&level=raw&since={NOW + 60:.0f}", headers=h)).json()
    assert future["points"] == []
    for since in ("yesterday", "1e999", "99999999999999999999"):
        r = await http.get(f"/zones/zn-1/telemetry?metric=ph&since={since}", headers=h)
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "since"], since
    r = await http.get("/zones/zn-1/telemetry", headers=h)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "metric"]
    assert (await http.get("/alerts?zone=zn-9", headers=h)).status_code == 404
    assert (await http.get("/nodes?zone=zn-9", headers=h)).status_code == 404
    assert (await http.get("/alerts?limit=0", headers=h)).status_code == 422
    # what /alerts, /commands, /zones/{uid}/events, water-usage and /nodes return: test_read_routes.py
    assert (await http.get("/commands/nope", headers=h)).status_code == 404


async def test_channels_are_series_on_the_way_in_and_out_and_stubs_stay_out_of_latest(http, tokens):
    s = {"node_uid": "nd-level-1", "metric_type": "WATER_LEVEL_SWITCH", "ts": NOW - 5}
    samples = [
        {**s, "value": 1, "channel": "level_clean_min"},
        {**s, "value": 0, "channel": "level_clean_max"},
        {**s, "value": 1, "channel": "level_clean_max", "ts": NOW - 1, "stub": True},
    ]
    r = await http.post("/ingest/telemetry", headers=auth(tokens["ingest"]), json={"samples": samples})
    body = r.json()
    assert body["stored"] == 3 and body["stub"] == 1
    assert body["notes"] == [{"index": 2, "note": "stub reading: stored flagged, never used by rules"}]
    h = auth(tokens["read"])
    latest = (await http.get("/zones/zn-1/telemetry/latest", headers=h)).json()["telemetry"]
    assert [(r["channel"], r["value"]) for r in latest] == [("level_clean_max", 0.0), ("level_clean_min", 1.0)]
    q = "/zones/zn-1/telemetry?metric=water_level_switch&level=raw"
    points = (await http.get(q, headers=h)).json()["points"]
    assert [(p["channel"], p["value"], p["stub"]) for p in points] == [
        ("level_clean_max", 0.0, False),
        ("level_clean_min", 1.0, False),
        ("level_clean_max", 1.0, True),
    ]
    points = (await http.get(q + "&channel=level_clean_min", headers=h)).json()["points"]
    assert [(p["channel"], p["value"]) for p in points] == [("level_clean_min", 1.0)]


async def test_safety_reset_resolves_lock_alerts_and_records_who_and_why(http, tokens, db, site):
    async with db.acquire() as conn:
        zone_id = await conn.fetchval("SELECT id FROM zones WHERE uid = 'zn-1'")
        for code, channel in (
            ("biz_overcurrent", "pump_recirc"),
            ("biz_dry_run", "pump_recirc"),
            ("biz_high_ph", None),
        ):
            spec = site.alerts[code]
            await alert_store.raise_alert(
                conn, zone_id=zone_id, source="biz", code=code, type=spec.text, channel=channel, locks=spec.locks
            )
    r = await http.post(
        "/zones/zn-1/safety/reset",
        headers=auth(tokens["operator"]),
        json={"reason": "pump replaced, dry run cleared", "by": "Anna"},
    )
    assert r.status_code == 200
    assert sorted(a["code"] for a in r.json()["resolved"]) == ["biz_dry_run", "biz_overcurrent"]
    async with db.acquire() as conn:
        rows = {a["code"]: a for a in await alert_store.list_alerts(conn)}
        events = await event_store.list_events(conn, zone_id, type="SAFETY_RESET")
    assert rows["biz_high_ph"]["status"] == "ACTIVE"  # not a safety lock
    assert rows["biz_overcurrent"]["resolved_by"] == "Anna"
    assert rows["biz_overcurrent"]["resolved_reason"] == "pump replaced, dry run cleared"
    assert events[0]["details"]["by"] == "Anna" and events[0]["details"]["token"] == "test-operator"
    r = await http.post("/zones/zn-1/safety/reset", headers=auth(tokens["operator"]), json={"reason": ""})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["reason"]


async def test_health_and_openapi(http):
    h = (await http.get("/health")).json()
    assert h["status"] == "ok" and h["database"] and h["mqtt"] is None
    spec = (await http.get("/openapi.json")).json()
    assert spec["openapi"].startswith("3.")
    for path in (
        "/ingest/telemetry",
        "/nodes/register",
        "/commands",
        "/zones/{uid}/safety/reset",
        "/zones/{uid}/simulate",
        "/zones/{uid}/telemetry/latest",
        "/health",
    ):
        assert path in spec["paths"], path
    ingest = spec["paths"]["/ingest/telemetry"]["post"]
    assert ingest["security"] == [{"bearer": ["ingest"]}] and "422" in ingest["responses"]
    assert "TelemetrySampleIn" in spec["components"]["schemas"]


async def test_without_the_broker_http_ingest_goes_on_and_health_says_degraded(db, database_url, site, tokens):
    from hydro_rules.service.app import Service

    from .conftest import client_for, make_settings

    svc = Service(make_settings(database_url, "mqtt://127.0.0.1:1"), site, with_aggregator=False)
    await svc.start()
    try:
        await asyncio.wait_for(svc.ready.wait(), 10)
        async with client_for(svc) as http:
            r = await http.get("/health")
            assert r.status_code == 200 and r.json()["status"] == "degraded" and r.json()["mqtt"] is False
            r = await http.post(
                "/ingest/telemetry",
                headers=auth(tokens["ingest"]),
                json={"samples": [{"node_uid": "nd-ph-1", "metric_type": "PH", "value": 6.0, "ts": NOW}]},
            )
            assert r.json()["counts"]["accepted"] == 1
    finally:
        await svc.stop()


def test_json_answers_carry_nan_and_infinities_as_null():
    import json
    from datetime import UTC, datetime

    from hydro_rules.service.web import json_response

    r = json_response({"v": [1.5, float("nan")], "d": {"x": float("-inf")}, "at": datetime(2026, 1, 1, tzinfo=UTC)})
    assert json.loads(r.body) == {"v": [1.5, None], "d": {"x": None}, "at": "2026-01-01T00:00:00+00:00"}
