"""The MQTT door against a real broker: nodes' payloads as they really are, and everything that goes wrong."""

import asyncio
import json
import time

import pytest

from hydro_rules.transport.mqtt import MqttClient

from .conftest import Node, eventually

pytestmark = pytest.mark.anyio


async def count(db, sql, *args):
    async with db.acquire() as conn:
        return await conn.fetchval(sql, *args)


async def test_real_node_payloads_land_float_ts_and_extra_keys(mqtt_service, mqtt_url, db):
    now = time.time()
    async with Node(mqtt_url, "nd-ph-1") as ph, Node(mqtt_url, "nd-ec-1") as ec:
        await ph.telemetry("PH", 5.86, now - 0.25, channel="ph_sensor", node_id="nd-ph-1", stable=True, raw=2213)
        await ec.send("telemetry", {"metric_type": "EC", "value": 1.62, "ts": int(now)}, channel="ec_sensor")
        await ec.telemetry("TEMPERATURE", 21.4, now, channel="temp_sensor")
    rows = await eventually(lambda: _samples(db, 3))
    by_metric = {r["metric_type"]: r for r in rows}
    assert set(by_metric) == {"ph", "ec", "temp_water"}  # nd-ec-1's temperature is the water's
    assert by_metric["ph"]["ts"].timestamp() == pytest.approx(now - 0.25, abs=1e-3)
    assert by_metric["ph"]["channel"] == "ph_sensor"
    assert by_metric["ph"]["raw"] == {"node_id": "nd-ph-1", "stable": True, "raw": 2213}


async def _samples(db, n):
    async with db.acquire() as conn:
        rows = await conn.fetch("SELECT * FROM telemetry_samples ORDER BY ts")
    return rows if len(rows) >= n else None


async def test_duplicates_are_stored_once_and_late_samples_do_not_win(mqtt_service, mqtt_url, db, acks):
    """(A late sample in a later batch or transaction: test_newest_wins.py.)"""
    now = time.time()
    async with Node(mqtt_url, "nd-ph-1") as ph:
        await ph.telemetry("PH", 6.0, now - 10)
        await ph.telemetry("PH", 6.0, now - 10)  # redelivered
        await ph.telemetry("PH", 6.4, now - 1)
        await ph.telemetry("PH", 5.5, now - 30)  # arrives last, oldest
    await eventually(lambda: asyncio.sleep(0, len(acks) >= 4))  # each acknowledged once its batch is committed
    assert await count(db, "SELECT count(*) FROM telemetry_samples") == 3
    assert await count(db, "SELECT value FROM telemetry_last") == 6.4


MALFORMED = [
    ("telemetry", "ph_sensor", b"{not json"),
    ("telemetry", "ph_sensor", json.dumps({"metric_type": "PH", "value": "high", "ts": 1}).encode()),
    ("telemetry", "ph_sensor", json.dumps({"metric_type": "PH", "value": 6.0}).encode()),
    ("command_response", "pump_recirc", json.dumps({"cmd_id": "x", "status": "MAYBE", "ts": 1}).encode()),
    ("event", "pump_recirc", b"[1, 2, 3]"),
    ("status", None, json.dumps({"status": "SLEEPY"}).encode()),
    ("lwt", None, b"gone"),
    ("heartbeat", None, json.dumps({"uptime": "a while"}).encode()),
    ("node_hello", None, json.dumps({"node_type": "ph"}).encode()),
    ("config_report", None, b"\xff\xfe"),
    ("error", None, b"null"),
    ("diagnostics", None, b""),
]


async def test_malformed_payloads_on_every_topic_are_acknowledged_and_nothing_is_written(
    mqtt_service, mqtt_url, db, acks
):
    async with db.acquire() as conn:
        before = await conn.fetchrow(
            "SELECT (SELECT count(*) FROM zone_events) e, (SELECT count(*) FROM alerts) a, "
            "(SELECT count(*) FROM nodes) n, (SELECT count(*) FROM command_responses) r"
        )
    async with Node(mqtt_url, "nd-ph-1") as node:
        for type_, channel, payload in MALFORMED:
            await node.send(type_, payload, channel)
        await node.telemetry("PH", 6.1)  # and the subscriber keeps running
    await eventually(lambda: _samples(db, 1))
    await eventually(lambda: asyncio.sleep(0, len(acks) >= len(MALFORMED) + 1))
    codes = {topic.rsplit("/", 1)[-1]: code for topic, code in acks[: len(MALFORMED)]}
    assert set(codes) == {t for t, _, _ in MALFORMED}
    assert set(codes.values()) == {0x99}, codes  # PUBACK "payload format invalid": acknowledged, not retried
    assert acks[-1][1] == 0
    async with db.acquire() as conn:
        after = await conn.fetchrow(
            "SELECT (SELECT count(*) FROM zone_events) e, (SELECT count(*) FROM alerts) a, "
            "(SELECT count(*) FROM nodes) n, (SELECT count(*) FROM command_responses) r"
        )
        assert tuple(after) == tuple(before)
        assert await conn.fetchval("SELECT count(*) FROM telemetry_samples") == 1


async def test_unknown_and_unvalidated_nodes_are_not_written(mqtt_service, mqtt_url, db, acks):
    async with db.acquire() as conn:
        await conn.execute("UPDATE nodes SET validated = false WHERE uid = 'nd-ec-1'")
    mqtt_service.core.forget_node()
    async with Node(mqtt_url, "nd-ghost") as ghost, Node(mqtt_url, "nd-ec-1") as ec, Node(mqtt_url, "nd-ph-1") as ph:
        await ghost.telemetry("PH", 6.0)
        await ec.telemetry("EC", 1.5)
        await ph.telemetry("PH", 6.2)
    await eventually(lambda: asyncio.sleep(0, len(acks) >= 3))  # all three handled
    assert [r["metric_type"] for r in await _samples(db, 1)] == ["ph"]


async def test_heartbeats_keep_liveness_and_a_lower_uptime_is_a_reboot(mqtt_service, mqtt_url, db):
    async with Node(mqtt_url, "nd-pump-1") as node:
        for uptime in (3600, 3660, 12):
            await node.send("heartbeat", {"uptime": uptime, "free_heap": 102000, "rssi": -62, "fw_version": "1.0.0"})
            await node.client.drain(5)
    ev = await eventually(lambda: count(db, "SELECT details FROM zone_events WHERE type = 'NODE_REBOOTED'"))
    assert ev["previous_uptime"] == 3660 and ev["uptime"] == 12
    async with db.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT status, uptime_s, last_heartbeat_at, firmware_version FROM nodes WHERE uid = 'nd-pump-1'"
        )
    assert (row["status"], row["uptime_s"], row["firmware_version"]) == ("ONLINE", 12, "1.0.0")


async def test_status_and_last_will(mqtt_service, mqtt_url, db):
    async with Node(mqtt_url, "nd-ph-1") as node:
        await node.send("status", {"status": "ONLINE", "ts": int(time.time())})
        await eventually(lambda: count(db, "SELECT status = 'ONLINE' FROM nodes WHERE uid = 'nd-ph-1'"))
        await node.send("lwt", b"offline")
    await eventually(lambda: count(db, "SELECT status = 'OFFLINE' FROM nodes WHERE uid = 'nd-ph-1'"))


async def test_hello_registers_an_unvalidated_node(mqtt_service, mqtt_url, db):
    hello = {
        "message_type": "node_hello",
        "hardware_id": "esp32-ABCD1234",
        "node_type": "ph",
        "fw_version": "2.0.1",
        "hardware_revision": "v1.0",
        "capabilities": ["ph", "temperature"],
    }
    client = MqttClient(mqtt_url, client_id="esp32-ABCD1234")
    await client.connect(5)
    await client.publish("hydro/node_hello", json.dumps(hello).encode())
    await client.disconnect()
    node = await eventually(lambda: count(db, "SELECT to_jsonb(n) FROM nodes n WHERE hardware_id = 'esp32-ABCD1234'"))
    assert node["uid"] == "esp32-ABCD1234" and not node["validated"] and node["node_type"] == "ph"
    assert node["capabilities"] == ["ph", "temperature"] and node["first_seen_at"]


async def test_time_requests_are_answered(mqtt_service, mqtt_url):
    answers = asyncio.Queue()

    async def on_answer(topic, payload, retained):
        await answers.put(json.loads(payload))
        return 0

    node = MqttClient(mqtt_url, client_id="nd-clock", handler=on_answer, subscriptions=["hydro/time/response"])
    await node.connect(5)  # returns once the subscription is acknowledged
    await node.publish("hydro/time/request", b"{}")
    answer = await asyncio.wait_for(answers.get(), 5)
    assert answer["message_type"] == "time_response" and abs(answer["unix_ts"] - time.time()) < 5
    assert answer["server_time"] == answer["unix_ts"]
    await node.disconnect()


async def test_error_event_config_and_diagnostics_are_recorded(mqtt_service, mqtt_url, db):
    async with Node(mqtt_url, "nd-ph-1") as node:
        await node.send(
            "error",
            {
                "level": "ERROR",
                "component": "ph_sensor",
                "error_code": "probe_open",
                "message": "no probe",
                "ts": int(time.time() * 1000),
            },
        )
        await node.send("event", {"event": "calibrated", "points": 2}, channel="ph_sensor")
        await node.send("config_report", {"channels": ["ph_sensor"], "version": 3})
        await node.send("diagnostics", {"wifi_reconnects": 2})
    await eventually(lambda: count(db, "SELECT count(*) = 2 FROM zone_events"))
    await eventually(lambda: count(db, "SELECT diagnostics IS NOT NULL FROM nodes WHERE uid = 'nd-ph-1'"))
    async with db.acquire() as conn:
        types = {r["type"]: r["details"] for r in await conn.fetch("SELECT type, details FROM zone_events")}
        alert = await conn.fetchrow("SELECT code, source, dedup_key FROM alerts")
        node = await conn.fetchrow("SELECT config_report FROM nodes WHERE uid = 'nd-ph-1'")
    assert types["NODE_ERROR"]["error_code"] == "probe_open"
    assert types["NODE_EVENT"]["event"] == {"event": "calibrated", "points": 2}
    assert tuple(alert) == ("infra_node_error", "infra", "nd-ph-1/probe_open")
    assert node["config_report"]["version"] == 3


async def test_unknown_nodes_events_are_not_recorded_and_a_warning_raises_no_alert(mqtt_service, mqtt_url, db, acks):
    async with Node(mqtt_url, "nd-ghost") as ghost, Node(mqtt_url, "nd-ph-1") as node:
        await ghost.send("error", {"level": "CRITICAL", "error_code": "brownout"})
        await ghost.send("event", {"event": "boot"}, channel="ph_sensor")
        await node.send("error", {"level": "WARNING", "component": "ph_sensor", "error_code": "drift"})
    await eventually(lambda: asyncio.sleep(0, len(acks) >= 3))
    assert [code for _, code in acks] == [0, 0, 0]  # handled and acknowledged, whoever sent them
    async with db.acquire() as conn:
        events = await conn.fetch("SELECT type, details FROM zone_events")
        assert await conn.fetchval("SELECT count(*) FROM alerts") == 0
    assert [(e["type"], e["details"]["node_uid"], e["details"]["level"]) for e in events] == [
        ("NODE_ERROR", "nd-ph-1", "WARNING")
    ]


async def test_channels_units_and_stubs_as_the_firmware_sends_them(mqtt_service, mqtt_url, db):
    now = time.time()
    async with Node(mqtt_url, "nd-level-1") as level:
        for i, ch in enumerate(("level_clean_min", "level_clean_max")):  # one metric type, two series
            await level.telemetry("WATER_LEVEL_SWITCH", i, now - 5, channel=ch)
        await level.telemetry("WATER_LEVEL", 0.8, now - 5, channel="water_level", unit="ratio")
        await level.telemetry("WATER_LEVEL", 0.3, now - 4, channel="water_level", unit="ratio", stub=True)
    await eventually(lambda: _samples(db, 4))
    async with db.acquire() as conn:
        rows = await conn.fetch("SELECT metric_type, channel, value, stub FROM telemetry_samples ORDER BY ts, channel")
        last = await conn.fetch("SELECT channel, value FROM telemetry_last ORDER BY channel")
    assert [tuple(r) for r in rows] == [
        ("water_level_switch", "level_clean_max", 1.0, False),
        ("water_level_switch", "level_clean_min", 0.0, False),
        ("water_level", "water_level", 80.0, False),
        ("water_level", "water_level", 30.0, True),
    ]
    assert [tuple(r) for r in last] == [("level_clean_max", 1.0), ("level_clean_min", 0.0), ("water_level", 80.0)]
