"""POST /commands: validate, guard like any start, record, sign, publish; the node's answer closes it."""

import asyncio
import json
import time

import pytest

from hydro_rules.transport.mqtt import MqttClient

from .conftest import auth, client_for, eventually
from .node_signature import node_verify

pytestmark = pytest.mark.anyio


async def _level(http, tokens, value):
    r = await http.post(
        "/ingest/telemetry",
        headers=auth(tokens["ingest"]),
        json={"samples": [{"node_uid": "nd-level-1", "metric_type": "WATER_LEVEL", "value": value, "ts": time.time()}]},
    )
    assert r.json()["counts"]["accepted"] == 1


async def _secret(http, tokens, node):
    r = await http.post("/nodes/register", headers=auth(tokens["operator"]), json={"node_uid": node})
    return r.json().get("secret")


class FakeNode:
    """A node that checks each command's signature and time, answers ACK then DONE (or what it is told)."""

    def __init__(self, url, uid, secret, answer=("ACK", "DONE"), error=None):
        self.uid, self.secret, self.answer, self.error = uid, secret, answer, error
        self.received = asyncio.Queue()
        self.client = MqttClient(
            url, client_id=f"{uid}-sim", handler=self._on_command, subscriptions=[f"hydro/gh-1/zn-1/{uid}/+/command"]
        )

    async def _on_command(self, topic, payload, retained):
        cmd = json.loads(payload)
        ok = node_verify(self.secret, cmd) and abs(time.time() - cmd["ts"]) < 10
        await self.received.put((topic, cmd, ok))
        channel = topic.split("/")[4]
        for status in self.answer if ok else ("INVALID",):
            doc = {"cmd_id": cmd["cmd_id"], "status": status, "ts": int(time.time() * 1000)}
            if status == "ERROR" and self.error:
                doc.update(self.error)
            self.client.publish_now(f"hydro/gh-1/zn-1/{self.uid}/{channel}/command_response", json.dumps(doc))
        return 0

    async def __aenter__(self):
        await self.client.connect(5)  # returns once subscribed (SUBACK)
        return self

    async def __aexit__(self, *exc):
        await self.client.disconnect()


@pytest.fixture
async def http(mqtt_service):
    async with client_for(mqtt_service) as c:
        yield c


async def _status(http, tokens, cmd_id, want):
    async def check():
        r = await http.get(f"/commands/{cmd_id}", headers=auth(tokens["read"]))
        return r.json() if r.json()["status"] == want else None

    return await eventually(check)


async def test_an_allowed_start_is_signed_published_and_answered(http, tokens, mqtt_url):
    secret = await _secret(http, tokens, "nd-drain-1")
    await _level(http, tokens, 60)
    async with FakeNode(mqtt_url, "nd-drain-1", secret) as node:
        r = await http.post(
            "/commands",
            headers=auth(tokens["operator"]),
            json={
                "zone_uid": "zn-1",
                "channel": "pump_drain",
                "cmd": "run_pump",
                "params": {"duration_ms": 2500},
                "reason": "manual drain test",
            },
        )
        assert r.status_code == 202, r.text
        cmd = r.json()
        assert cmd["status"] in ("sent", "ack", "done") and cmd["requested_by"] == "test-operator"
        assert cmd["rule"] == "api" and cmd["ruleset_version"].startswith("demo_site@")
        topic, wire, ok = await asyncio.wait_for(node.received.get(), 5)
        assert ok, "the node must accept the signature"
        assert topic == "hydro/gh-1/zn-1/nd-drain-1/pump_drain/command"
        assert wire["cmd_id"] == cmd["cmd_id"] and wire["params"] == {"duration_ms": 2500}
        done = await _status(http, tokens, cmd["cmd_id"], "done")
        assert done["ack_at"] and done["done_at"] and done["override"] is None


async def test_a_guard_refusal_is_409_naming_the_guard_and_reason(http, tokens, db):
    await _secret(http, tokens, "nd-pump-1")
    await _level(http, tokens, 8)
    r = await http.post(
        "/commands",
        headers=auth(tokens["operator"]),
        json={"zone_uid": "zn-1", "channel": "pump_recirc", "cmd": "set_relay", "params": {"state": True}},
    )
    assert r.status_code == 409
    body = r.json()
    assert body["guard"] == "reservoir_has_water" and body["reason"] == "water level below the dry-run minimum"
    assert body["raises"] == "biz_dry_run"
    async with db.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM commands") == 0  # nothing recorded or sent


async def test_stopping_is_never_guarded(http, tokens, mqtt_url):
    secret = await _secret(http, tokens, "nd-pump-1")
    await _level(http, tokens, 8)
    async with FakeNode(mqtt_url, "nd-pump-1", secret):
        r = await http.post(
            "/commands",
            headers=auth(tokens["operator"]),
            json={"zone_uid": "zn-1", "channel": "pump_recirc", "cmd": "set_relay", "params": {"state": False}},
        )
        assert r.status_code == 202


async def test_only_the_override_scope_bypasses_a_guard_and_it_is_recorded(http, tokens, mqtt_url):
    secret = await _secret(http, tokens, "nd-fill-1")
    await _level(http, tokens, 99)  # full: no_overflow refuses the fill pump
    body = {
        "zone_uid": "zn-1",
        "channel": "pump_fill",
        "cmd": "run_pump",
        "params": {"duration_ms": 1000},
        "override": True,
        "reason": "level sensor stuck at 99%, checked by hand",
    }
    r = await http.post("/commands", headers=auth(tokens["operator"]), json=body)
    assert r.status_code == 403
    r = await http.post("/commands", headers=auth(tokens["override"]), json={**body, "reason": None})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["reason"]
    async with FakeNode(mqtt_url, "nd-fill-1", secret):
        r = await http.post("/commands", headers=auth(tokens["override"]), json=body)
        assert r.status_code == 202, r.text
        assert r.json()["override"] == {
            "guard": "no_overflow",
            "reason": "the reservoir is full",
            "by": "test-override",
            "why": body["reason"],
        }


async def test_an_overcurrent_answer_fails_the_command_and_raises_biz_overcurrent(http, tokens, mqtt_url):
    secret = await _secret(http, tokens, "nd-drain-1")
    await _level(http, tokens, 60)
    error = {
        "error_code": "overcurrent",
        "details": {"channel": "pump_drain", "current_ma": 2300, "threshold_ma": 1500},
    }
    async with FakeNode(mqtt_url, "nd-drain-1", secret, answer=("ACK", "ERROR"), error=error):
        r = await http.post(
            "/commands",
            headers=auth(tokens["operator"]),
            json={"zone_uid": "zn-1", "channel": "pump_drain", "cmd": "run_pump", "params": {"duration_ms": 2500}},
        )
        cmd = await _status(http, tokens, r.json()["cmd_id"], "failed")
        assert cmd["error_code"] == "overcurrent" and cmd["node_status"] == "ERROR"
    alerts = (await http.get("/zones/zn-1/alerts?status=ACTIVE", headers=auth(tokens["read"]))).json()["alerts"]
    [alert] = [a for a in alerts if a["code"] == "biz_overcurrent"]
    assert alert["channel"] == "pump_drain" and alert["locks"] and alert["source"] == "biz"
    assert alert["details"]["current_ma"] == 2300 and alert["details"]["cmd_id"] == cmd["cmd_id"]
    # the stored lock refuses the next manual start, like the engine's own starts, until the operator resets
    body = {"zone_uid": "zn-1", "channel": "pump_drain", "cmd": "run_pump", "params": {"duration_ms": 2500}}
    r = await http.post("/commands", headers=auth(tokens["operator"]), json=body)
    assert r.status_code == 409, r.text
    assert r.json()["guard"] == "can_run_pump" and "locked" in r.json()["reason"]
    reset = {"reason": "pump replaced"}
    r = await http.post("/zones/zn-1/safety/reset", headers=auth(tokens["operator"]), json=reset)
    assert r.status_code == 200
    assert [(a["code"], a["channel"]) for a in r.json()["resolved"]] == [("biz_overcurrent", "pump_drain")]
    async with FakeNode(mqtt_url, "nd-drain-1", secret):
        r = await http.post("/commands", headers=auth(tokens["operator"]), json=body)
        assert r.status_code == 202, r.text


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"channel": "pump_drain", "cmd": "dose", "params": {"ml": 1}}, ["cmd"]),
        ({"channel": "pump_drain", "cmd": "run_pump", "params": {}}, ["params", "duration_ms"]),
        ({"channel": "pump_drain", "cmd": "run_pump", "params": {"duration_ms": "long"}}, ["params", "duration_ms"]),
        ({"channel": "pump_drain", "cmd": "run_pump", "params": {"duration_ms": 0}}, ["params", "duration_ms"]),
        ({"channel": "pump_drain", "cmd": "set_relay", "params": {"state": 1}}, ["params", "state"]),
        ({"channel": "dose_ph_down", "cmd": "dose", "params": {"ml": -2}}, ["params", "ml"]),
        ({"channel": "pump_nowhere", "cmd": "run_pump", "params": {"duration_ms": 1}}, ["channel"]),
    ],
)
async def test_invalid_commands_are_422_with_the_field(http, tokens, body, loc):
    r = await http.post("/commands", headers=auth(tokens["operator"]), json={"zone_uid": "zn-1", **body})
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"] == loc


async def test_a_node_without_a_secret_gets_no_commands(http, tokens):
    r = await http.post(
        "/commands",
        headers=auth(tokens["operator"]),
        json={"zone_uid": "zn-1", "channel": "pump_recirc", "cmd": "set_relay", "params": {"state": False}},
    )
    assert r.status_code == 409 and r.json()["error"] == "node_has_no_secret"
    r = await http.post(
        "/commands",
        headers=auth(tokens["operator"]),
        json={"zone_uid": "zn-7", "channel": "pump_recirc", "cmd": "restart"},
    )
    assert r.status_code == 404


async def test_engine_commands_take_the_same_record_sign_publish_path(mqtt_service, http, tokens, mqtt_url):
    from hydro_rules.engine.decisions import Command

    secret = await _secret(http, tokens, "nd-pump-1")
    async with FakeNode(mqtt_url, "nd-pump-1", secret) as node:
        now = time.time()
        decided = Command(
            f"zn-1-{int(now)}-1",
            "zn-1",
            "pump_recirc",
            "nd-pump-1",
            "pump_recirc",
            "set_relay",
            {"state": False, "duration_ms": 600000},
            now,
            "recirculation duty",
            "off",
        )
        cmd = await mqtt_service.commands.dispatch(decided)
        assert cmd["source"] == "engine" and cmd["rule"] == "recirculation duty"
        topic, wire, ok = await asyncio.wait_for(node.received.get(), 5)
        assert ok and wire["cmd_id"] == decided.cmd_id and wire["params"] == decided.params
        await _status(http, tokens, decided.cmd_id, "done")


async def test_an_engine_dose_of_whole_millilitres_is_signed_as_the_node_checks_it(
    mqtt_service, http, tokens, mqtt_url, site
):
    """`ml: 2.0` goes on the wire as 2.0 and is signed as 2 (canonical JSON prints integral numbers as
    integers): the node, checking by the protocol, must accept it."""
    from hydro_rules.engine.decisions import Command

    binding = site.zone("zn-1").channels["dose_ph_down"]
    secret = await _secret(http, tokens, binding.node_uid)
    async with FakeNode(mqtt_url, binding.node_uid, secret) as node:
        now = time.time()
        decided = Command(
            f"zn-1-{int(now)}-7", "zn-1", "dose_ph_down", binding.node_uid, binding.channel_key, "dose",
            {"ml": 2.0}, now, "rule correct_high_ph", "dose",
        )  # fmt: skip
        await mqtt_service.commands.dispatch(decided)
        _, wire, ok = await asyncio.wait_for(node.received.get(), 5)
        assert wire["params"] == {"ml": 2.0} and ok, "the node must accept the signature"
        await _status(http, tokens, decided.cmd_id, "done")
