"""Binding a node as the firmware does it, against the real broker and database.

hello under the temporary namespace -> validation through the API -> NodeConfig pushed on
hydro/gh-temp/zn-temp/{hardware_id}/config -> "binding" -> config_report under the new
topics -> "bound"; and what a hello, a racing status or a misrouted topic may not do.
"""

import asyncio
import json
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from hydro_rules.store import nodes as node_store
from hydro_rules.transport import payloads, topics
from hydro_rules.transport.mqtt import PAYLOAD_FORMAT_INVALID, SUCCESS, TOPIC_NAME_INVALID, MqttClient

from .conftest import Node, auth, client_for, eventually

pytestmark = pytest.mark.anyio


def hardware(prefix: str = "esp32") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10].upper()}"


def hello_doc(hw: str, node_type: str = "pump", fw: str = "2.0.1") -> dict:
    return {
        "message_type": "node_hello",
        "hardware_id": hw,
        "node_type": node_type,
        "fw_version": fw,
        "hardware_revision": "v1.0",
        "capabilities": ["pump"],
    }


class FreshNode:
    """A factory-fresh node: it talks under hydro/gh-temp/zn-temp/{hardware_id}/... and listens there for its
    NodeConfig."""

    def __init__(self, url: str, hw: str) -> None:
        self.hw = hw
        self.inbox: asyncio.Queue = asyncio.Queue()
        self.client = MqttClient(url, client_id=hw, handler=self._on_config, subscriptions=[topics.temp_config(hw)])

    def topic(self, type: str) -> str:
        return f"hydro/{topics.TEMP_GREENHOUSE}/{topics.TEMP_ZONE}/{self.hw}/{type}"

    async def send(self, type: str, doc: dict) -> None:
        await self.client.publish(self.topic(type), json.dumps(doc).encode())

    async def hello(self, node_type: str, topic: str = topics.HELLO) -> None:
        await self.client.publish(topic, json.dumps(hello_doc(self.hw, node_type)).encode())

    async def _on_config(self, topic, payload, retained):
        await self.inbox.put((json.loads(payload), retained))
        return SUCCESS

    async def __aenter__(self):
        await self.client.connect(5)
        await self._subscribed()
        return self

    async def __aexit__(self, *exc):
        await self.client.disconnect()

    async def _subscribed(self) -> None:
        """Publish probes on our own config topic until one comes back: the subscription is live."""
        for _ in range(50):
            await self.client.publish(topics.temp_config(self.hw), b'{"probe": true}')
            try:
                while True:
                    doc, _ = await asyncio.wait_for(self.inbox.get(), 0.2)
                    if doc.get("probe"):
                        return
            except TimeoutError:
                continue
        raise AssertionError("the config subscription never became live")

    async def config(self, timeout: float = 10.0) -> tuple[dict, bool]:
        """The next NodeConfig (late probes skipped) and whether it came retained."""
        while True:
            doc, retained = await asyncio.wait_for(self.inbox.get(), timeout)
            if not doc.get("probe"):
                return doc, retained


async def acked(acks, topic: str, n: int = 1) -> list[int]:
    """Wait until `topic` has been answered `n` times; its reason codes."""

    async def check():
        codes = [code for t, code in acks if t == topic]
        return codes if len(codes) >= n else None

    return await eventually(check)


async def row(db, sql, *args):
    async with db.acquire() as conn:
        return await conn.fetchrow(sql, *args)


@pytest.fixture
async def http(mqtt_service):
    async with client_for(mqtt_service) as c:
        yield c


async def test_hello_validate_push_config_report_binds_the_node(mqtt_service, mqtt_url, db, http, tokens, acks):
    hw = hardware()
    async with FreshNode(mqtt_url, hw) as fresh:
        await fresh.hello("pump")
        pending = await eventually(lambda: row(db, "SELECT * FROM nodes WHERE hardware_id = $1", hw))
        assert (pending["uid"], pending["node_type"], pending["validated"]) == (hw, "pump", False)
        assert pending["binding_state"] == "unbound"

        r = await http.post(
            "/nodes/register",
            headers=auth(tokens["operator"]),
            json={"node_uid": "nd-pump-1", "zone_uid": "zn-1", "hardware_id": hw},
        )
        assert r.status_code == 200, r.text
        out = r.json()
        assert (out["uid"], out["hardware_id"], out["node_type"], out["validated"]) == ("nd-pump-1", hw, "pump", True)
        assert (out["binding_state"], out["config_pushes"]) == ("binding", 1) and out["config_pushed_at"]
        assert out["config"]["pushed"] and out["config"]["topic"] == f"hydro/gh-temp/zn-temp/{hw}/config"
        secret = out["secret"]

        config, retained = await fresh.config()
        assert config == {
            "node_id": "nd-pump-1",
            "version": 3,
            "type": "pump",
            "gh_uid": "gh-1",
            "zone_uid": "zn-1",
            "channels": [
                {"name": "pump_recirc", "kind": "pump", "type": "ACTUATOR", "actuator_type": "PUMP", "relay_type": "NC"}
            ],
            "wifi": {"configured": True},
            "mqtt": {"configured": True},
            "node_secret": secret,
        }
        assert not retained and len(secret) == 64
        # the hello's placeholder became nd-pump-1: one record for this hardware
        assert (await row(db, "SELECT count(*) AS n FROM nodes WHERE hardware_id = $1 OR uid = $1", hw))["n"] == 1

        # the secret is not left on the broker: a newcomer's first message on the topic is our marker
        assert (await _first_on(mqtt_url, topics.temp_config(hw))) == {"marker": True}

        bound = Node(mqtt_url, "nd-pump-1")  # the node under its new topics
        async with bound:
            await bound.send("config_report", {"node_id": "nd-pump-1", "version": 3, "channels": config["channels"]})
        node = await eventually(
            lambda: row(db, "SELECT * FROM nodes WHERE uid = 'nd-pump-1' AND binding_state = 'bound'")
        )
    assert node["bound_at"] and node["config_report"]["version"] == 3
    event = await row(db, "SELECT details FROM zone_events WHERE type = 'NODE_BOUND'")
    assert event["details"] == {"node_uid": "nd-pump-1", "hardware_id": hw, "config_pushes": 1}


async def _first_on(url: str, topic: str) -> dict:
    """Subscribe afresh and publish a marker until something arrives: the first message seen there."""
    inbox: asyncio.Queue = asyncio.Queue()

    async def on_message(t, payload, retained):
        await inbox.put(json.loads(payload))
        return SUCCESS

    client = MqttClient(url, client_id=f"probe-{uuid.uuid4().hex[:6]}", handler=on_message, subscriptions=[topic])
    await client.connect(5)
    try:
        for _ in range(50):
            await client.publish(topic, b'{"marker": true}')
            try:
                return await asyncio.wait_for(inbox.get(), 0.2)
            except TimeoutError:
                continue
        raise AssertionError("nothing arrived")
    finally:
        await client.disconnect()


async def test_a_node_still_talking_under_the_temporary_namespace_is_sent_its_config_again(
    mqtt_service, mqtt_url, db, http, tokens, acks
):
    now = [time.time()]
    mqtt_service.door.clock = lambda: now[0]
    hw = hardware()
    async with FreshNode(mqtt_url, hw) as fresh:
        await fresh.hello("ph", fresh.topic("node_hello"))
        await acked(acks, fresh.topic("node_hello"))
        r = await http.post(
            "/nodes/register",
            headers=auth(tokens["operator"]),
            json={"node_uid": "nd-ph-1", "zone_uid": "zn-1", "hardware_id": hw},
        )
        assert r.json()["config"]["pushed"]
        first, _ = await fresh.config()
        assert first["node_id"] == "nd-ph-1" and first["channels"] == [
            {"name": "ph", "type": "SENSOR", "kind": "sensor", "metric": "ph"}
        ]
        pushed_at = now[0]

        now[0] = pushed_at + 29.999  # the node did not apply it and goes on under the temporary namespace
        await fresh.send("heartbeat", {"uptime": 10})
        assert await acked(acks, fresh.topic("heartbeat")) == [SUCCESS]
        node = await row(db, "SELECT config_pushes, uptime_s, binding_state FROM nodes WHERE uid = 'nd-ph-1'")
        assert tuple(node) == (1, 10, "binding")  # its liveness counts; no second push within 30 s

        now[0] = pushed_at + 30.0
        await fresh.send("heartbeat", {"uptime": 40})
        await acked(acks, fresh.topic("heartbeat"), 2)
        again, _ = await fresh.config()
        assert again == first
        node = await row(db, "SELECT config_pushes, config_pushed_at FROM nodes WHERE uid = 'nd-ph-1'")
        assert node["config_pushes"] == 2
        assert node["config_pushed_at"].timestamp() == pytest.approx(pushed_at + 30.0, abs=1e-3)


async def test_the_push_interval_boundary_in_the_store(db):
    t0 = datetime(2026, 5, 1, 12, tzinfo=UTC)
    async with db.acquire() as conn:
        await node_store.register(conn, "nd-ec-1", hardware_id="esp32-EC1")
        # each interval counts from the last push
        for dt, pushes in ((0, 1), (29.999, None), (30, 2), (30.001, None), (59.999, None), (60, 3)):
            got = await node_store.claim_config_push(
                conn, at=t0 + timedelta(seconds=dt), min_interval_s=30, hardware_id="esp32-EC1"
            )
            assert (got and got["config_pushes"]) == pushes, dt
        # a node without hardware id, or not validated, is never pushed
        assert await node_store.claim_config_push(conn, at=t0, min_interval_s=0, node_uid="nd-ph-1") is None
        await conn.execute("UPDATE nodes SET validated = false WHERE uid = 'nd-ec-1'")
        later = t0 + timedelta(days=1)
        assert await node_store.claim_config_push(conn, at=later, min_interval_s=0, node_uid="nd-ec-1") is None


async def test_a_status_that_races_its_hello_is_not_lost(mqtt_service, mqtt_url, db):
    after, before = hardware(), hardware()
    ts = int(time.time())
    status = {"status": "ONLINE", "ts": ts}
    a = Node(mqtt_url, after, zone=topics.TEMP_ZONE, gh=topics.TEMP_GREENHOUSE)
    b = Node(mqtt_url, before, zone=topics.TEMP_ZONE, gh=topics.TEMP_GREENHOUSE)
    async with a, b:
        # as the firmware does it: the hello, then at once its status, from one connection
        await a.client.publish(topics.HELLO, json.dumps(hello_doc(after, "ph")).encode())
        await a.send("status", status)
        # and one whose status overtakes its hello (a retained status delivered at subscribe)
        await b.send("status", status)
        await b.send("heartbeat", {"uptime": 5})
        await b.send("node_hello", hello_doc(before, "ec"))

    async def both():
        async with db.acquire() as conn:
            rows = await conn.fetch(
                "SELECT uid, node_type, status, uptime_s FROM nodes WHERE hardware_id = ANY($1::text[]) ORDER BY uid",
                [after, before],
            )
        done = len(rows) == 2 and all(r["node_type"] and r["status"] == "ONLINE" for r in rows)
        return rows if done and any(r["uptime_s"] == 5 for r in rows) else None

    rows = {r["uid"]: r for r in await eventually(both)}
    assert (rows[after]["node_type"], rows[before]["node_type"]) == ("ph", "ec")


async def test_a_hello_never_touches_another_nodes_record(mqtt_service, mqtt_url, db, acks):
    mine, other = hardware("esp32-PH"), hardware("esp32-EVIL")
    async with db.acquire() as conn:
        await node_store.register(conn, "nd-ph-1", hardware_id=mine, firmware_version="2.0.1")
    node = Node(mqtt_url, "nd-ph-1")
    stranger = Node(mqtt_url, other, zone=topics.TEMP_ZONE, gh=topics.TEMP_GREENHOUSE)
    newcomer = Node(mqtt_url, "nd-new-9")
    async with node, stranger, newcomer:
        await node.send("node_hello", hello_doc(other, "ec", fw="6.6.6"))  # another hardware on nd-ph-1's topic
        await stranger.send("node_hello", hello_doc(mine, "ec", fw="6.6.6"))  # mine, from another's namespace
        await newcomer.send("node_hello", hello_doc(mine, "ec", fw="6.6.6"))  # mine, claiming another uid
        await node.client.publish(topics.HELLO, json.dumps(hello_doc(mine, "ph", fw="2.0.2")).encode())  # its own
    for topic in (node.topic("node_hello"), stranger.topic("node_hello"), newcomer.topic("node_hello")):
        assert await acked(acks, topic) == [TOPIC_NAME_INVALID], topic
    assert await acked(acks, topics.HELLO) == [SUCCESS]
    async with db.acquire() as conn:
        ph = await conn.fetchrow(
            "SELECT n.*, z.uid AS zone FROM nodes n JOIN zones z ON z.id = n.zone_id WHERE n.uid = 'nd-ph-1'"
        )
        strays = await conn.fetchval(
            "SELECT count(*) FROM nodes WHERE uid IN ($1, 'nd-new-9') OR hardware_id = $1", other
        )
    assert (ph["hardware_id"], ph["firmware_version"], ph["node_type"]) == (mine, "2.0.2", "ph")
    assert (ph["zone"], ph["validated"]) == ("zn-1", True)  # its own hello moves nothing
    assert strays == 0
    assert mqtt_service.door.refused["hello_conflict"] == 3
    assert (await mqtt_service.health())["mqtt_refused"]["hello_conflict"] == 3


async def test_a_hardware_id_that_cannot_be_a_topic_segment_or_login_is_refused(
    mqtt_service, mqtt_url, db, http, tokens, acks
):
    longest, too_long = "h" * topics.HARDWARE_ID_MAX, "h" * (topics.HARDWARE_ID_MAX + 1)
    with pytest.raises(payloads.Malformed, match="longer than 64"):
        payloads.hello(json.dumps(hello_doc(too_long)).encode())
    for bad in ("esp32:AB", "esp32/AB", "-esp32", "esp 32", "esp32+"):
        with pytest.raises(payloads.Malformed, match="may hold only"):
            payloads.hello(json.dumps(hello_doc(bad)).encode())
    assert payloads.hello(json.dumps(hello_doc("pump-A_1.b")).encode()).node_type == "pump"
    assert payloads.hello(json.dumps(hello_doc("x", "toaster")).encode()).node_type == "unknown"

    sender = Node(mqtt_url, "anyone", zone=topics.TEMP_ZONE, gh=topics.TEMP_GREENHOUSE)
    async with sender:
        for hw in (too_long, longest):
            await sender.client.publish(topics.HELLO, json.dumps(hello_doc(hw)).encode())
        await sender.client.publish(f"hydro/gh-temp/zn-temp/{too_long}/status", b'{"status": "ONLINE"}')
    assert await acked(acks, topics.HELLO, 2) == [PAYLOAD_FORMAT_INVALID, SUCCESS]
    assert await acked(acks, f"hydro/gh-temp/zn-temp/{too_long}/status") == [TOPIC_NAME_INVALID]
    assert mqtt_service.door.refused["hardware_id"] == 1
    async with db.acquire() as conn:
        assert await conn.fetchval("SELECT array_agg(uid) FROM nodes WHERE uid LIKE 'hhh%'") == [longest]

    r = await http.post(
        "/nodes/register", headers=auth(tokens["operator"]), json={"node_uid": "nd-ph-1", "hardware_id": too_long}
    )
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["hardware_id"]


async def test_validation_refuses_another_nodes_hardware_and_a_zone_the_rule_set_contradicts(
    mqtt_service, db, http, tokens
):
    hw = hardware()
    async with db.acquire() as conn:
        await node_store.register(conn, "nd-ph-1", hardware_id=hw)
    op = auth(tokens["operator"])
    r = await http.post("/nodes/register", headers=op, json={"node_uid": "nd-ec-1", "hardware_id": hw})
    assert r.status_code == 409 and r.json()["error"] == "hardware_taken" and r.json()["node_uid"] == "nd-ph-1"
    r = await http.post("/nodes/register", headers=op, json={"node_uid": "nd-ph-1", "zone_uid": "zn-2"})
    assert r.status_code == 409 and r.json()["error"] == "zone_conflict" and r.json()["zone_uid"] == "zn-1"
    r = await http.post("/nodes/register", headers=op, json={"node_uid": "nd-ec-1"})
    assert r.status_code == 200 and r.json()["zone_uid"] == "zn-1"
    assert r.json()["config"] == {
        "pushed": False,
        "reason": "no hardware id known: give the hardware_id of the node's hello",
    }
    async with db.acquire() as conn:
        assert await conn.fetchval("SELECT hardware_id FROM nodes WHERE uid = 'nd-ph-1'") == hw


async def test_a_topic_whose_greenhouse_is_not_the_nodes_is_refused(mqtt_service, mqtt_url, db, acks):
    wrong_gh, wrong_zone = Node(mqtt_url, "nd-ph-1", gh="gh-2"), Node(mqtt_url, "nd-ph-1", zone="zn-2")
    right = Node(mqtt_url, "nd-ph-1")
    now = time.time()
    async with wrong_gh, wrong_zone, right:
        await wrong_gh.send("status", {"status": "ONLINE", "ts": int(now)})
        await wrong_gh.send("heartbeat", {"uptime": 77})
        await wrong_gh.send("config_report", {"version": 3})
        await wrong_gh.telemetry("PH", 6.0, now - 2, channel="ph_sensor")
        await wrong_zone.send("status", {"status": "ONLINE", "ts": int(now)})
        await right.telemetry("PH", 6.1, now - 1, channel="ph_sensor")
    for topic in (wrong_gh.topic("status"), wrong_gh.topic("heartbeat"), wrong_gh.topic("config_report")):
        assert await acked(acks, topic) == [TOPIC_NAME_INVALID], topic
    assert await acked(acks, wrong_zone.topic("status")) == [TOPIC_NAME_INVALID]
    await acked(acks, wrong_gh.topic("telemetry", "ph_sensor"))
    await acked(acks, right.topic("telemetry", "ph_sensor"))
    async with db.acquire() as conn:
        ph = await conn.fetchrow("SELECT status, uptime_s, config_report FROM nodes WHERE uid = 'nd-ph-1'")
        values = [r["value"] for r in await conn.fetch("SELECT value FROM telemetry_samples")]
    assert tuple(ph) == ("UNKNOWN", None, None)
    assert values == [6.1]
    assert mqtt_service.door.refused["topic_mismatch"] == 4
