"""Hostile input, generated: every HTTP route and every MQTT topic answers bad input with a refusal.

Bytes PostgreSQL refuses (NUL, lone surrogates), times outside any sane range, bools and
strings where numbers belong, junk keys at any depth. Properties: no 500 and no
PUBACK "unspecified error", no traceback or error in the logs, and nothing half-stored:
every accepted sample is stored, no rejected one is. Real PostgreSQL; the MQTT door is
driven through its handle(), as the broker's client calls it.
"""

from __future__ import annotations

import json
import logging
import math
import time
from datetime import UTC, datetime
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hydro_rules.service.batcher import Batcher
from hydro_rules.service.ingest import IngestCore, Sample
from hydro_rules.service.logs import Throttled
from hydro_rules.service.mqtt_door import MqttDoor
from hydro_rules.service.schemas import ISO_DATE
from hydro_rules.transport.mqtt import UNSPECIFIED_ERROR

from .conftest import auth, make_settings

pytestmark = pytest.mark.anyio
NOW = time.time()  # taken again as each test starts (a slow run may reach a test minutes after the import)


@pytest.fixture(autouse=True)
def _now_when_the_test_runs():
    global NOW
    NOW = time.time()


HOSTILE = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)

#: text PostgreSQL refuses, text that looks like something else, text too long for its field
NASTY = ["\x00", "a\x00b", "nd-ph-1\x00", "\ud800", "ph\udfff", "x" * 3000, "", " ", "\n\r", "💧", "%00", "\u202e",
         "'; DROP TABLE nodes; --", "\\u0000", "null", "NaN", "1710000000", "2026-13-45T99:99:99"]  # fmt: skip
NASTY_TEXT = st.sampled_from(NASTY) | st.sampled_from(NASTY) | st.text(max_size=12)
#: times and values outside any sane range, numbers JSON cannot hold as floats
WILD = [1e20, -1e20, 1e308, -1e308, 0, -5, NOW * 1000, NOW * 1e6, math.nan, math.inf, -math.inf, 2**63, 10**400]
NUMBERS = st.sampled_from(WILD) | st.sampled_from(WILD) | st.floats() | st.integers()
SCALARS = st.none() | st.booleans() | NUMBERS | NASTY_TEXT
JUNK = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(NASTY_TEXT, inner, max_size=3), max_leaves=8
)
DEEP = st.integers(1, 300).map(lambda n: json.loads("[" * n + "1" + "]" * n))


def _text_or(*good: str):
    return st.sampled_from(good) | NASTY_TEXT


def _record(body: dict) -> st.SearchStrategy:
    """A dict of the given key strategies (each present or not), plus junk keys."""
    return st.fixed_dictionaries({}, optional=body).flatmap(
        lambda d: st.dictionaries(NASTY_TEXT, JUNK | DEEP, max_size=2).map(lambda extra: {**extra, **d})
    )


#: well-formed samples of the demo site (a time is added per sample), each of which is accepted
GOOD = [
    {"node_uid": "nd-ph-1", "metric_type": "PH", "value": 6.1, "channel": "ph_sensor"},
    {"node_uid": "nd-ph-1", "metric_type": "PH", "value": 6.0, "stub": True},
    {"node_uid": "nd-level-1", "metric_type": "WATER_LEVEL_SWITCH", "value": 1, "channel": "level_clean_min"},
    {"node_uid": "nd-level-1", "metric_type": "WATER_LEVEL", "value": 55, "unit": "%", "raw": {"stable": True}},
    {"node_uid": "nd-ec-1", "metric_type": "TEMPERATURE", "value": 21.5, "zone_uid": "zn-1"},
]
#: what may replace each field of a good sample
SPOILERS = {
    "node_uid": NASTY_TEXT | st.just("nd-ghost"),
    "metric_type": NASTY_TEXT | st.just("ORP"),
    "value": NUMBERS | st.booleans() | NASTY_TEXT,
    "ts": NUMBERS | st.booleans() | NASTY_TEXT,
    "channel": NASTY_TEXT,
    "unit": NASTY_TEXT | NUMBERS | st.just("cm"),
    "stub": NUMBERS | NASTY_TEXT,
    "raw": st.dictionaries(
        st.sampled_from(NASTY) | NASTY_TEXT, st.sampled_from(NASTY) | JUNK | DEEP, min_size=1, max_size=3
    ),
    "zone_uid": NASTY_TEXT | st.just("zn-2"),
    "junk": JUNK,
}
SAMPLE = st.tuples(
    st.sampled_from(GOOD),
    st.lists(st.sampled_from(sorted(SPOILERS)), max_size=2, unique=True).flatmap(
        lambda keys: st.fixed_dictionaries({k: SPOILERS[k] for k in keys})
    ),
).map(lambda gs: {**gs[0], **gs[1]})


def _dumps(doc) -> bytes:
    return json.dumps(doc, allow_nan=True).encode()


def _no_tracebacks(caplog) -> None:
    """No error or traceback was logged, and no value reached the database's refusal (the routes'
    last resort for what the checks before it miss)."""
    bad = [
        r
        for r in caplog.records
        if r.levelno >= logging.ERROR or r.exc_info or "the database refuses" in r.getMessage()
    ]
    caplog.clear()
    assert not bad, [r.getMessage()[:200] for r in bad]


async def _fetch(db, sql: str):
    async with db.acquire() as conn:
        return await conn.fetch(sql)


async def _empty_telemetry(db) -> None:
    async with db.acquire() as conn:
        await conn.execute("DELETE FROM telemetry_samples; DELETE FROM telemetry_last; DELETE FROM alerts")


def _epoch(ts) -> float | None:
    if isinstance(ts, str) and ISO_DATE.match(ts):
        d = datetime.fromisoformat(ts)
        return (d if d.tzinfo else d.replace(tzinfo=UTC)).timestamp()
    return ts if isinstance(ts, int | float) and not isinstance(ts, bool) else None


# ---- HTTP ---------------------------------------------------------------------------------
@settings(HOSTILE, max_examples=60)
@given(samples=st.lists(SAMPLE, min_size=1, max_size=6))
async def test_ingest_route_refuses_bad_samples_one_by_one(http, tokens, db, caplog, samples):
    for i, s in enumerate(samples):
        s.setdefault("ts", NOW - 60 - i)  # distinct: every accepted sample is a new row
    await _empty_telemetry(db)
    r = await http.post("/ingest/telemetry", content=_dumps({"samples": samples}), headers=auth(tokens["ingest"]))
    rows = await _fetch(db, "SELECT ts, stub FROM telemetry_samples")
    assert r.status_code == 200, r.text  # a batch of objects: each sample is refused or taken on its own
    _no_tracebacks(caplog)
    body = r.json()
    rejected = {x["index"] for x in body["rejected"]}
    assert all(x["reason"] for x in body["rejected"])
    accepted = [s for i, s in enumerate(samples) if i not in rejected]
    # every accepted sample is stored (their times are distinct), no rejected one
    assert body["stored"] == body["counts"]["accepted"] == len(accepted) == len(rows)
    assert sorted(round(r["ts"].timestamp(), 3) for r in rows) == sorted(round(_epoch(s["ts"]), 3) for s in accepted)
    last = await _fetch(db, "SELECT count(*) AS n FROM telemetry_last")
    assert last[0]["n"] <= len(rows) - sum(r["stub"] for r in rows)


def _uids():
    return _text_or("nd-ph-1", "nd-new-1", "zn-1", "zn-9", "cmd-1")


WRITES = {
    "/nodes/register": _record(
        {
            "node_uid": _uids(),
            "zone_uid": _uids() | st.none(),
            "firmware_version": NASTY_TEXT,
            "hardware_revision": NASTY_TEXT,
            "hardware_id": _text_or("esp32-ABCD1234"),
            "node_type": _text_or("ph", "pump"),
            "secret": NASTY_TEXT | st.just("a" * 64),
        }
    ),
    "/commands": _record(
        {
            "zone_uid": _uids(),
            "channel": _text_or("pump_drain", "pump_recirc", "dose_ph_down"),
            "cmd": _text_or("run_pump", "set_relay", "dose", "restart"),
            "params": st.dictionaries(_text_or("duration_ms", "ml", "state"), SCALARS, max_size=2) | JUNK,
            "reason": NASTY_TEXT | st.none(),
            "override": st.booleans() | SCALARS,
        }
    ),
    "/zones/zn-1/safety/reset": _record({"reason": NASTY_TEXT, "by": NASTY_TEXT | st.none()}),
}


@HOSTILE
@given(request=st.one_of(*(st.tuples(st.just(route), body | JUNK) for route, body in WRITES.items())))
async def test_write_routes_never_fail_on_hostile_bodies(http, tokens, caplog, request):
    route, body = request
    r = await http.post(route, content=_dumps(body), headers=auth(tokens["override"]))
    assert r.status_code < 500 or (route == "/commands" and r.status_code == 503), r.text
    if r.status_code == 422:
        assert r.json()["detail"]  # says which field
    _no_tracebacks(caplog)


@settings(HOSTILE, max_examples=12)
@given(
    body=_record(
        {
            "days": st.sampled_from([0.0001, 0, -1, 1e308, 10**30]) | NUMBERS | st.booleans() | NASTY_TEXT,
            "tick_s": st.sampled_from([3600, 0, -1]) | NUMBERS,
            "seed": NUMBERS,
            "start": NASTY_TEXT,
            "faults": st.lists(NASTY_TEXT, max_size=2) | JUNK,
        }
    )
)
async def test_simulate_never_fails_on_hostile_bodies(http, tokens, caplog, body):
    r = await http.post("/zones/zn-1/simulate", content=_dumps(body), headers=auth(tokens["read"]))
    assert r.status_code < 500, r.text
    _no_tracebacks(caplog)


READS = [
    "/nodes",
    "/zones",
    "/zones/{uid}",
    "/zones/{uid}/telemetry/latest",
    "/zones/{uid}/telemetry",
    "/zones/{uid}/alerts",
    "/alerts",
    "/zones/{uid}/commands",
    "/commands",
    "/commands/{uid}",
    "/zones/{uid}/events",
    "/zones/{uid}/water-usage",
]
QUERY = ["zone", "limit", "status", "source", "since", "until", "metric", "level", "type", "channel"]


def _quoted(text: str) -> str:
    """Percent-encoded as a client would (%00 arrives as NUL; a lone surrogate as bytes that are not UTF-8)."""
    return quote(text.encode("utf-8", "surrogatepass"), safe="")


@HOSTILE
@given(
    path=st.sampled_from(READS),
    uid=st.sampled_from(["zn-1", "cmd-1", *NASTY]).filter(lambda t: t.strip() not in ("", ".", "..")),
    query=st.dictionaries(st.sampled_from(QUERY), st.sampled_from(NASTY) | NUMBERS.map(str), max_size=3),
)
async def test_read_routes_never_fail_on_hostile_paths_and_queries(http, tokens, caplog, path, uid, query):
    url = path.replace("{uid}", _quoted(uid)) + "?" + "&".join(f"{k}={_quoted(v)}" for k, v in query.items())
    r = await http.get(url, headers=auth(tokens["read"]))
    assert r.status_code < 500, r.text
    _no_tracebacks(caplog)


# ---- MQTT ---------------------------------------------------------------------------------
@pytest.fixture
async def door(db, site, database_url):
    """The MQTT door on the run's database, called as the broker's client calls it."""
    core = IngestCore(db, site, make_settings(database_url, None))
    batcher = Batcher(core)
    batcher.start()
    yield MqttDoor(db, site, core, batcher)
    await batcher.stop()


def _payload(doc: st.SearchStrategy) -> st.SearchStrategy:
    as_json = doc.map(_dumps)
    as_utf8 = doc.map(lambda d: json.dumps(d, ensure_ascii=False, allow_nan=True).encode("utf-8", "surrogatepass"))
    return as_json | as_utf8 | st.binary(max_size=40) | JUNK.map(_dumps)


TELEMETRY = _payload(SAMPLE.map(lambda s: {"ts": NOW - 60, **{k: v for k, v in s.items() if k != "node_uid"}}))
NODE_TOPICS = {
    "status": _payload(_record({"status": _text_or("ONLINE", "offline"), "ts": NUMBERS | NASTY_TEXT})),
    "lwt": _payload(JUNK) | st.sampled_from([b"offline", b"\x00", b"\xff"]),
    "heartbeat": _payload(
        _record({k: NUMBERS | NASTY_TEXT for k in ("uptime", "free_heap", "rssi", "fw_version", "ts")})
    ),
    "node_hello": _payload(
        _record(
            {
                "hardware_id": _text_or("esp32-ABCD1234", "nd-ph-1"),
                "node_type": _text_or("ph", "pump"),
                "fw_version": NASTY_TEXT,
                "capabilities": st.lists(NASTY_TEXT, max_size=3) | JUNK,
            }
        )
    ),
    "config_report": _payload(JUNK | DEEP),
    "diagnostics": _payload(JUNK | DEEP),
    "error": _payload(
        _record(
            {
                "level": _text_or("ERROR", "CRITICAL", "WARNING"),
                "component": NASTY_TEXT,
                "error_code": NASTY_TEXT,
                "message": NASTY_TEXT,
                "ts": NUMBERS,
                "details": JUNK,
            }
        )
    ),
}
CHANNEL_TOPICS = {
    "event": _payload(JUNK | DEEP),
    "command_response": _payload(
        _record(
            {
                "cmd_id": _text_or("cmd-1"),
                "status": _text_or("ACK", "DONE", "ERROR"),
                "ts": NUMBERS,
                "details": JUNK,
                "error_code": NASTY_TEXT,
                "error_message": NASTY_TEXT,
            }
        )
    ),
}
NODES = st.sampled_from(["nd-ph-1", "nd-level-1"]) | st.sampled_from(["nd-ghost", "esp32-ABCD1234"]) | NASTY_TEXT


@settings(HOSTILE, max_examples=60)
@given(node=NODES, channel=_text_or("ph_sensor", "level_clean_min", "solution_temp_c"), payload=TELEMETRY)
async def test_telemetry_topic_stores_a_reading_whole_or_not_at_all(door, db, caplog, node, channel, payload):
    await _empty_telemetry(db)
    code = await door.handle(f"hydro/gh-1/zn-1/{node}/{channel}/telemetry", payload, False)
    assert code != UNSPECIFIED_ERROR
    _no_tracebacks(caplog)
    rows = await _fetch(db, "SELECT ts, value, stub FROM telemetry_samples")
    last = await _fetch(db, "SELECT ts, value FROM telemetry_last")
    assert len(rows) <= 1
    if rows:
        assert code == 0 and math.isfinite(rows[0]["value"])
        assert abs(rows[0]["ts"].timestamp() - NOW) < 31 * 86400
        assert [tuple(x) for x in last] == ([] if rows[0]["stub"] else [(rows[0]["ts"], rows[0]["value"])])
    else:
        assert last == []


def _topics() -> st.SearchStrategy:
    """(topic, payload) of every topic type but telemetry, under bound, temporary and foreign namespaces."""
    namespaces = st.just("gh-1/zn-1") | st.sampled_from(["gh-temp/zn-temp", "gh-2/zn-9"])
    node_level = [
        st.tuples(st.builds(f"hydro/{{}}/{{}}/{kind}".format, namespaces, NODES), payload)
        for kind, payload in NODE_TOPICS.items()
    ]
    channel_level = [
        st.tuples(
            st.builds(f"hydro/{{}}/{{}}/{{}}/{kind}".format, namespaces, NODES, _text_or("pump_recirc", "ph_sensor")),
            payload,
        )
        for kind, payload in CHANNEL_TOPICS.items()
    ]
    hello = st.tuples(st.just("hydro/node_hello"), NODE_TOPICS["node_hello"])
    time_request = st.tuples(st.just("hydro/time/request"), st.binary(max_size=20))
    return st.one_of(*node_level, *channel_level, hello, time_request)


@settings(HOSTILE, max_examples=80)
@given(message=_topics(), retained=st.booleans())
async def test_every_other_topic_answers_hostile_payloads_without_failing(door, caplog, message, retained):
    topic, payload = message
    code = await door.handle(topic, payload, retained)
    assert code != UNSPECIFIED_ERROR, (topic, payload[:200])
    _no_tracebacks(caplog)


def test_a_sender_making_up_a_key_per_message_is_still_logged_once_per_interval(caplog):
    throttled = Throttled(logging.getLogger("hostile"), every_s=60, max_keys=3)
    with caplog.at_level(logging.WARNING, "hostile"):
        for i in range(100):
            throttled.warning(("unknown", f"nd-{i}"), "telemetry from unknown node nd-%d", i)
    assert len(caplog.records) == 4  # three keys, then one shared by every key past the limit


async def test_unknown_nodes_share_one_log_line(http_service, caplog):
    samples = [Sample(f"nd-ghost-{i}", "PH", 6.0, NOW) for i in range(50)]
    with caplog.at_level(logging.WARNING, "hydro_rules.service.ingest"):
        result = await http_service.core.ingest(samples)
    assert result.counts["unknown_node"] == 50 and len(caplog.records) == 1
