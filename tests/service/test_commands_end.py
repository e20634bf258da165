"""Every command ends (issue 8): the service's sweep times it out, answers count only from the
command's node, a late error is news without a lock, refusals are audited, and a restart of a node
with an NC pump is refused or followed by the pump's re-assertion."""

import asyncio
import json
import time
from datetime import UTC, datetime

import pytest

from hydro_rules.engine import api as engine_api
from hydro_rules.store import commands as command_store
from hydro_rules.store import zones as zone_store
from hydro_rules.transport.mqtt import MqttClient

from .conftest import Node, auth, client_for, eventually, make_settings, start_service
from .node_signature import node_verify

pytestmark = pytest.mark.anyio

RECIRC_OFF = {"zone_uid": "zn-1", "channel": "pump_recirc", "cmd": "set_relay", "params": {"state": False}}
RESTART = {"zone_uid": "zn-1", "channel": "pump_recirc", "cmd": "restart"}
DRAIN = {"zone_uid": "zn-1", "channel": "pump_drain", "cmd": "run_pump", "params": {"duration_ms": 2500}}


class Clock:
    """The service's clock, moved by the test."""

    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


class ScriptedNode:
    """A node that checks each command's signature and answers what `script(cmd)` says (a list of
    (status, extra fields)); every command it got is in `received`."""

    def __init__(self, url, uid, secret, script):
        self.uid, self.secret, self.script = uid, secret, script
        self.received: asyncio.Queue = asyncio.Queue()
        self.client = MqttClient(
            url, client_id=f"{uid}-sim", handler=self._on_command, subscriptions=[f"hydro/gh-1/zn-1/{uid}/+/command"]
        )

    async def _on_command(self, topic, payload, retained):
        cmd = json.loads(payload)
        assert node_verify(self.secret, cmd)
        channel = topic.split("/")[4]
        await self.received.put((channel, cmd))
        for status, extra in self.script(cmd):
            doc = {"cmd_id": cmd["cmd_id"], "status": status, "ts": int(time.time() * 1000), **extra}
            self.client.publish_now(f"hydro/gh-1/zn-1/{self.uid}/{channel}/command_response", json.dumps(doc))
        return 0

    async def next(self, timeout: float = 5.0):
        return await asyncio.wait_for(self.received.get(), timeout)

    async def __aenter__(self):
        await self.client.connect(5)  # returns once subscribed (SUBACK)
        return self

    async def __aexit__(self, *exc):
        await self.client.disconnect()


def silent(cmd):
    return []


def done(cmd):
    return [("ACK", {}), ("DONE", {})]


async def _secret(http, tokens, node):
    r = await http.post("/nodes/register", headers=auth(tokens["operator"]), json={"node_uid": node})
    return r.json()["secret"]


async def _level(http, tokens, value, ts=None):
    sample = {"node_uid": "nd-level-1", "metric_type": "WATER_LEVEL", "value": value, "ts": ts or time.time()}
    r = await http.post("/ingest/telemetry", headers=auth(tokens["ingest"]), json={"samples": [sample]})
    assert r.json()["counts"]["accepted"] == 1


async def _command(http, tokens, cmd_id):
    return (await http.get(f"/commands/{cmd_id}", headers=auth(tokens["read"]))).json()


async def _status(http, tokens, cmd_id, want):
    async def check():
        c = await _command(http, tokens, cmd_id)
        return c if c["status"] == want else None

    return await eventually(check)


async def _alerts(http, tokens):
    return (await http.get("/zones/zn-1/alerts?status=ACTIVE", headers=auth(tokens["read"]))).json()["alerts"]


@pytest.fixture
async def clocked(db, database_url, mqtt_url, site):
    """The service with its MQTT door and a clock the test moves; the sweep runs every 20 ms."""
    clock = Clock(float(int(time.time())))
    svc = await start_service(make_settings(database_url, mqtt_url, command_sweep_every_s=0.02), site, clock=clock)
    yield svc, clock
    await svc.stop()


@pytest.fixture
async def http(mqtt_service):
    async with client_for(mqtt_service) as c:
        yield c


async def _sweeps(svc, n: int = 2) -> None:
    """Wait until the running sweep has made `n` more passes."""
    start = svc.commands.sweeps
    await eventually(lambda: asyncio.sleep(0, svc.commands.sweeps >= start + n), timeout=5)


# ---- the sweep -----------------------------------------------------------------------------------
async def test_the_running_service_times_out_an_unanswered_command_at_its_response_timeout(clocked, tokens, mqtt_url):
    svc, clock = clocked
    t0 = clock.t
    async with client_for(svc) as http:
        secret = await _secret(http, tokens, "nd-pump-1")
        async with ScriptedNode(mqtt_url, "nd-pump-1", secret, silent) as node:
            r = await http.post("/commands", headers=auth(tokens["operator"]), json=RECIRC_OFF)
            assert r.status_code == 202, r.text
            cmd = r.json()
            assert cmd["response_timeout_s"] == 60.0  # the zone's commands.response_timeout
            await node.next()
            clock.t = t0 + 60 - 0.001  # one tick before
            await _sweeps(svc)
            assert (await _command(http, tokens, cmd["cmd_id"]))["status"] == "sent"
            clock.t = t0 + 60  # at its timeout
            ended = await _status(http, tokens, cmd["cmd_id"], "timeout")
            assert datetime.fromisoformat(ended["timeout_at"]).timestamp() == t0 + 60
            # a late answer is recorded, the command stays timed out and counts once as a failure
            late = {"cmd_id": cmd["cmd_id"], "status": "ERROR", "ts": int(time.time() * 1000)}
            node.client.publish_now("hydro/gh-1/zn-1/nd-pump-1/pump_recirc/command_response", json.dumps(late))

            async def late_recorded():
                c = await _command(http, tokens, cmd["cmd_id"])
                return c if c["late_response_at"] else None

            assert (await eventually(late_recorded))["status"] == "timeout"
            async with svc.db.acquire() as conn:
                zone = await zone_store.get(conn, "zn-1")
                failures = await command_store.failure_times(conn, zone["id"], datetime.fromtimestamp(t0, UTC))
            assert failures == {"pump_recirc": [t0 + 60]}


def ack_only(cmd):
    return [("ACK", {})]


async def test_an_acked_run_times_out_at_ack_plus_duration_plus_timeout_on_the_services_clock(
    clocked, tokens, mqtt_url
):
    """The ACK is stamped with the service's clock, the one its sweep counts on, not the database's:
    with the two an hour apart, the run still ends exactly at ack + duration + response timeout."""
    svc, clock = clocked
    clock.t += 3600.0  # the service's clock is an hour ahead of the database's
    t0 = clock.t
    async with client_for(svc) as http:
        secret = await _secret(http, tokens, "nd-drain-1")
        await _level(http, tokens, 60, ts=clock.t)  # water to drain
        async with ScriptedNode(mqtt_url, "nd-drain-1", secret, ack_only) as node:
            r = await http.post("/commands", headers=auth(tokens["operator"]), json=DRAIN)
            assert r.status_code == 202, r.text
            cmd = r.json()
            await node.next()
            acked = await _status(http, tokens, cmd["cmd_id"], "ack")
            assert datetime.fromisoformat(acked["ack_at"]).timestamp() == t0
            end = t0 + 2.5 + 60  # duration_ms 2500, then the response timeout
            clock.t = end - 0.001  # one tick before
            await _sweeps(svc)
            assert (await _command(http, tokens, cmd["cmd_id"]))["status"] == "ack"
            clock.t = end
            ended = await _status(http, tokens, cmd["cmd_id"], "timeout")
            assert datetime.fromisoformat(ended["timeout_at"]).timestamp() == end


# ---- responses -----------------------------------------------------------------------------------
async def test_an_error_code_and_message_inside_details_fail_the_command_and_raise_the_alert(http, tokens, mqtt_url):
    def error_in_details(cmd):
        details = {"error_code": "overcurrent", "error_message": "2300 mA over 1500 mA", "current_ma": 2300}
        return [("ACK", {}), ("ERROR", {"details": details})]

    secret = await _secret(http, tokens, "nd-drain-1")
    await _level(http, tokens, 60)
    async with ScriptedNode(mqtt_url, "nd-drain-1", secret, error_in_details):
        r = await http.post("/commands", headers=auth(tokens["operator"]), json=DRAIN)
        cmd = await _status(http, tokens, r.json()["cmd_id"], "failed")
    assert (cmd["error_code"], cmd["error_message"]) == ("overcurrent", "2300 mA over 1500 mA")
    [alert] = [a for a in await _alerts(http, tokens) if a["code"] == "biz_overcurrent"]
    assert alert["channel"] == "pump_drain" and alert["locks"] and alert["details"]["cmd_id"] == cmd["cmd_id"]


async def test_answers_from_another_or_an_unknown_node_are_kept_foreign_and_change_nothing(
    http, tokens, mqtt_url, mqtt_service
):
    secret = await _secret(http, tokens, "nd-drain-1")
    await _level(http, tokens, 60)
    async with ScriptedNode(mqtt_url, "nd-drain-1", secret, silent) as drain:
        r = await http.post("/commands", headers=auth(tokens["operator"]), json=DRAIN)
        cmd_id = r.json()["cmd_id"]
        await drain.next()
        ts = int(time.time() * 1000)
        answer = {"cmd_id": cmd_id, "status": "ERROR", "ts": ts, "error_code": "overcurrent"}
        async with Node(mqtt_url, "nd-ph-1") as other, Node(mqtt_url, "nd-ghost") as ghost:
            await other.send("command_response", answer, "ph_sensor")
            await ghost.send("command_response", {**answer, "status": "DONE"}, "pump_drain")

        async def both_kept():
            c = await _command(http, tokens, cmd_id)
            return c if len(c["responses"]) == 2 else None

        cmd = await eventually(both_kept)
        assert cmd["status"] == "sent" and cmd["error_code"] is None and cmd["node_status"] is None
        senders = {(x["sender_uid"], x["status"], x["foreign"], x["applied"]) for x in cmd["responses"]}
        assert senders == {("nd-ph-1", "ERROR", True, False), ("nd-ghost", "DONE", True, False)}
        assert not [a for a in await _alerts(http, tokens) if a["code"] == "biz_overcurrent"]
        # the command's own node, with the very words and time the ghost used, is applied
        drain.client.publish_now(
            "hydro/gh-1/zn-1/nd-drain-1/pump_drain/command_response", json.dumps({**answer, "status": "DONE"})
        )
        cmd = await _status(http, tokens, cmd_id, "done")
        assert [x["applied"] for x in cmd["responses"] if x["sender_uid"] == "nd-drain-1"] == [True]


async def test_a_late_error_after_done_raises_an_infra_alert_and_locks_nothing(http, tokens, mqtt_url):
    def done_then_error(cmd):  # the first command it gets: DONE, then an overcurrent found after it
        answered.append(cmd["cmd_id"])
        error = {"error_code": "overcurrent", "details": {"channel": "pump_drain", "current_ma": 2300}}
        return [("ACK", {}), ("DONE", {}), ("ERROR", error)] if len(answered) == 1 else done(cmd)

    answered: list = []
    secret = await _secret(http, tokens, "nd-drain-1")
    await _level(http, tokens, 60)
    async with ScriptedNode(mqtt_url, "nd-drain-1", secret, done_then_error) as node:
        r = await http.post("/commands", headers=auth(tokens["operator"]), json=DRAIN)
        cmd_id = r.json()["cmd_id"]

        async def late_alert():
            return [a for a in await _alerts(http, tokens) if a["code"] == "infra_late_error"]

        [alert] = await eventually(late_alert)
        assert alert["source"] == "infra" and not alert["locks"] and alert["channel"] == "pump_drain"
        assert alert["details"]["cmd_id"] == cmd_id and alert["details"]["error_code"] == "overcurrent"
        assert "after DONE" in alert["type"]
        cmd = await _command(http, tokens, cmd_id)
        assert (cmd["status"], cmd["node_status"], cmd["error_code"]) == ("done", "DONE", None)
        assert [(x["status"], x["applied"]) for x in cmd["responses"]] == [
            ("ACK", True),
            ("DONE", True),
            ("ERROR", False),
        ]
        assert not [a for a in await _alerts(http, tokens) if a["code"] == "biz_overcurrent"]
        r = await http.post("/commands", headers=auth(tokens["operator"]), json=DRAIN)  # not locked
        assert r.status_code == 202, r.text
        await node.next()


# ---- refusals ------------------------------------------------------------------------------------
async def test_refused_commands_leave_an_audit_row_readable_through_the_api(http, tokens):
    await _secret(http, tokens, "nd-pump-1")
    await _level(http, tokens, 8)
    asks = [
        (tokens["read"], RECIRC_OFF, 403, "insufficient_scope"),
        (tokens["operator"], {**RECIRC_OFF, "params": {"state": True}}, 409, "guard_refused"),
        (tokens["operator"], {**DRAIN, "params": {"duration_ms": "long"}}, 422, "validation_error"),
        (tokens["operator"], {**DRAIN, "volume": 3}, 422, "validation_error"),  # the body's schema
        (tokens["operator"], {**DRAIN, "override": True, "reason": "test"}, 403, "forbidden"),
        (tokens["operator"], {**RECIRC_OFF, "zone_uid": "zn-7"}, 404, "unknown_zone"),
        (
            tokens["operator"],
            {**RECIRC_OFF, "channel": "p\u0000\ud800", "params": {"k\u0000": "\u0000"}},
            400,
            "invalid_json",
        ),
    ]
    for token, body, status, code in asks:
        sent = json.dumps(body).encode()  # ASCII with escapes: NUL and a lone surrogate as the wire has them
        r = await http.post("/commands", headers={**auth(token), "content-type": "application/json"}, content=sent)
        assert (r.status_code, r.json()["error"]) == (status, code), r.text
    r = await http.post("/commands", json=RECIRC_OFF)  # no token: nobody to name, nothing recorded
    assert r.status_code == 401
    r = await http.get("/commands/refusals", headers=auth(tokens["read"]))
    assert r.status_code == 200
    rows = list(reversed(r.json()["refusals"]))
    assert [(x["http_status"], x["code"], x["token_name"]) for x in rows] == [
        (403, "insufficient_scope", "test-read"),
        (409, "guard_refused", "test-operator"),
        (422, "validation_error", "test-operator"),
        (422, "validation_error", "test-operator"),
        (403, "forbidden", "test-operator"),
        (404, "unknown_zone", "test-operator"),
        (400, "invalid_json", "test-operator"),  # a lone surrogate: not JSON to the schema, still audited
    ]
    scope, guard, params, schema, override, zone, hostile = rows
    assert scope["token_scopes"] == ["read"] and scope["details"]["needed"] == "operator"
    assert (scope["zone_uid"], scope["channel"], scope["cmd"], scope["params"]) == (
        "zn-1",
        "pump_recirc",
        "set_relay",
        {"state": False},
    )
    assert guard["guard"] == "reservoir_has_water" and guard["params"] == {"state": True}
    assert "water level below the dry-run minimum" in guard["message"]
    assert params["details"]["detail"][0]["loc"] == ["params", "duration_ms"]
    assert schema["cmd"] == "run_pump" and schema["details"]["detail"][0]["loc"] == ["volume"]
    assert override["override"] is True and override["reason"] == "test"
    assert zone["zone_uid"] == "zn-7"
    assert hostile["channel"] == "p\ufffd\ufffd" and hostile["params"] == {"k\ufffd": "\ufffd"}  # storable text
    only_zn7 = (await http.get("/commands/refusals?zone=zn-7", headers=auth(tokens["read"]))).json()["refusals"]
    assert [x["code"] for x in only_zn7] == ["unknown_zone"]
    spec = (await http.get("/openapi.json")).json()
    assert "/commands/refusals" in spec["paths"] and "get" in spec["paths"]["/commands/refusals"]


# ---- restart of a node with an NC pump -----------------------------------------------------------
async def _recirc_off_since(db, site, since: float, now: float) -> None:
    """The engine's saved state says the NC recirculation pump is off since `since`."""
    st = engine_api.compiled(site).program("zn-1").new_state(now - 86400)
    st.channels["pump_recirc"].is_on, st.channels["pump_recirc"].since = False, since
    async with db.acquire() as conn:
        zone = await zone_store.get(conn, "zn-1")
        await zone_store.save_engine_state(conn, zone["id"], st.to_json())


async def _recirc_off_command(db, at: float) -> None:
    """The recirculation pump was switched off by a command the node acknowledged at `at`."""
    async with db.acquire() as conn:
        zone = await zone_store.get(conn, "zn-1")
        node = await conn.fetchval("SELECT id FROM nodes WHERE uid = 'nd-pump-1'")
        at_ = datetime.fromtimestamp(at, UTC)
        await command_store.create(
            conn, cmd_id="off-1", zone_id=zone["id"], node_id=node, channel="pump_recirc", channel_key="pump_recirc",
            cmd="set_relay", params={"state": False}, ruleset_version="rs@1", rule="test", created_at=at_,
        )  # fmt: skip
        await conn.execute(
            "UPDATE commands SET status = 'done', sent_at = $1, ack_at = $1, done_at = $1 WHERE cmd_id = 'off-1'", at_
        )


@pytest.mark.parametrize("record", ["engine_state", "command"])
async def test_a_restart_that_would_hold_the_nc_pump_off_past_max_recirc_off_is_refused(
    db, database_url, site, tokens, record
):
    """max_recirc_off 10 min, response timeout 1 min: off 9 min is the most a restart may find."""
    clock = Clock(float(int(time.time())))
    svc = await start_service(make_settings(database_url, None), site, clock=clock)  # no broker: 503 once past
    try:
        async with client_for(svc) as http:
            await _secret(http, tokens, "nd-pump-1")
            put_off = _recirc_off_since if record == "engine_state" else _recirc_off_command
            args = (db, site, clock.t - 540, clock.t) if record == "engine_state" else (db, clock.t - 540)
            await put_off(*args)
            r = await http.post("/commands", headers=auth(tokens["operator"]), json=RESTART)
            assert (r.status_code, r.json()["error"]) == (503, "mqtt_unavailable"), r.text  # 540 + 60 <= 600
            clock.t += 0.5
            r = await http.post("/commands", headers=auth(tokens["operator"]), json=RESTART)
            assert r.status_code == 409, r.text
            body = r.json()
            assert body["error"] == "restart_holds_pump_off" and body["guard"] == "nc_restart"
            assert body["channel"] == "pump_recirc" and body["off_s"] == 540.5 and body["max_recirc_off_s"] == 600
            refusals = (await http.get("/commands/refusals", headers=auth(tokens["read"]))).json()["refusals"]
            assert [(x["code"], x["cmd"], x["guard"]) for x in refusals] == [
                ("restart_holds_pump_off", "restart", "nc_restart")
            ]
            async with db.acquire() as conn:
                assert await conn.fetchval("SELECT count(*) FROM commands WHERE cmd = 'restart'") == 1  # the 503 one
    finally:
        await svc.stop()


async def test_an_accepted_restart_is_followed_by_the_nc_pump_on_after_the_reboot_heartbeat(clocked, tokens, mqtt_url):
    svc, clock = clocked

    def script(cmd):
        return [("ACK", {})] if cmd["cmd"] == "restart" else done(cmd)  # DONE of a restart: never, here

    async with client_for(svc) as http:
        secret = await _secret(http, tokens, "nd-pump-1")
        await _level(http, tokens, 60, ts=clock.t)
        async with ScriptedNode(mqtt_url, "nd-pump-1", secret, script) as node, Node(mqtt_url, "nd-pump-1") as beat:
            await beat.send("heartbeat", {"uptime": 3600})
            await eventually(lambda: _uptime(svc, 3600))
            r = await http.post("/commands", headers=auth(tokens["operator"]), json=RESTART)
            assert r.status_code == 202, r.text
            restart = r.json()
            assert restart["reassert_channels"] == ["pump_recirc"] and restart["reassert_open"]
            channel, wire = await node.next()
            assert (channel, wire["cmd"]) == ("pump_recirc", "restart")
            await _status(http, tokens, restart["cmd_id"], "ack")
            clock.t += 1
            await beat.send("heartbeat", {"uptime": 3601})  # the same boot: not back yet
            await eventually(lambda: _uptime(svc, 3601))
            await _sweeps(svc, 3)
            assert node.received.empty()
            clock.t += 1
            await beat.send("heartbeat", {"uptime": 0})  # booted after the restart was sent
            channel, wire = await node.next()
            assert (channel, wire["cmd"], wire["params"]) == ("pump_recirc", "set_relay", {"state": True})
            on = await _status(http, tokens, wire["cmd_id"], "done")
            assert on["requested_by"] == "service" and restart["cmd_id"] in on["reason"]
            after = await _command(http, tokens, restart["cmd_id"])
            assert not after["reassert_open"] and after["reasserted_at"]
            clock.t += 30
            await beat.send("heartbeat", {"uptime": 30})
            await _sweeps(svc, 3)
            assert node.received.empty()  # re-asserted once


async def _uptime(svc, want: int) -> bool:
    async with svc.db.acquire() as conn:
        return await conn.fetchval("SELECT uptime_s FROM nodes WHERE uid = 'nd-pump-1'") == want
