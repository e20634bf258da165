"""The site daemon's core on real PostgreSQL and Mosquitto: a tick's writes are one transaction,
commands go out signed, the store's answers reach the engine once, a safety reset clears a lock
within one tick, and a restart in the middle of a drain fails the water change instead of resuming it."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from datetime import UTC, datetime

import pytest

from hydro_rules.engine.api import compiled
from hydro_rules.store import events as event_store
from hydro_rules.store import telemetry as telemetry_store
from hydro_rules.store import zones as zone_store
from hydro_rules.transport.mqtt import MqttClient

from .conftest import eventually, ticks

pytestmark = pytest.mark.anyio


async def put_readings(p, zone: str, at: float | None = None, **values) -> None:
    """Readings of the zone's metrics in telemetry_last (what the daemon reads), as the service keeps them."""
    at = p.clock() if at is None else at
    z = p.ruleset.zone(zone)
    async with p.db.acquire() as conn:
        nodes = {r["uid"]: r["id"] for r in await conn.fetch("SELECT uid, id FROM nodes")}
        rows = [
            (datetime.fromtimestamp(at, UTC), p.zone_id(zone), nodes[z.metric_nodes[m]], m, float(v), None, None, False)
            for m, v in values.items()
        ]
        await telemetry_store.upsert_last(conn, rows)


async def put_pump_readings(p, zone: str, at: float | None = None) -> None:
    """Each pump's node heard from: no current, no flow (the pumps stand)."""
    at = p.clock() if at is None else at
    z = p.ruleset.zone(zone)
    async with p.db.acquire() as conn:
        nodes = {r["uid"]: r["id"] for r in await conn.fetch("SELECT uid, id FROM nodes")}
        rows = [
            (datetime.fromtimestamp(at, UTC), p.zone_id(zone), nodes[b.node_uid], m, 0.0, None, None, False)
            for name, b in z.channels.items()
            if p.ruleset.channels[name].kind == "pump"
            for m in ("pump_current", "flow_rate")
        ]
        await telemetry_store.upsert_last(conn, rows)


async def secret_of(p, node_uid: str) -> str:
    async with p.db.acquire() as conn:
        return await conn.fetchval("SELECT secret FROM nodes WHERE uid = $1", node_uid)


def signed_right(secret: str, doc: dict) -> bool:
    """The protocol's check, written out: hex(HMAC_SHA256(secret, canonical JSON of the command without sig))."""
    body = {k: v for k, v in doc.items() if k != "sig"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    return hmac.compare_digest(doc.get("sig", ""), hmac.new(secret.encode(), canonical, hashlib.sha256).hexdigest())


async def answer(url: str, zone, channel: str, cmd_id: str, *statuses: str) -> None:
    """The command's node answers, as firmware does, on its channel's command_response topic."""
    b = zone.channels[channel]
    client = MqttClient(url, client_id=f"{b.node_uid}-answers")
    await client.connect(5)
    try:
        topic = f"hydro/{zone.greenhouse_uid}/{zone.uid}/{b.node_uid}/{b.channel_key}/command_response"
        for status in statuses:
            doc = {"cmd_id": cmd_id, "status": status, "ts": int(time.time() * 1000)}
            await client.publish(topic, json.dumps(doc).encode())
        await client.drain(5)
    finally:
        await client.disconnect()


def channel_state(d, zone: str, channel: str):
    return d.zones[zone].st.channels[channel]


async def test_a_dry_reservoir_locks_the_pump_and_a_safety_reset_clears_the_lock_within_one_tick(plant):
    p = await plant()
    await put_readings(p, "zt-2", water_level=10.0, ph=6.0, ec=1.5, temp_water=21.0)
    await p.start_service()
    t0 = time.time()
    d = await p.start_daemon()
    off = await p.spy.wait_command("zt-2", "pump_recirc", state=False, since=t0)
    assert off.doc["cmd"] == "set_relay"
    await answer(p.mqtt_url, p.ruleset.zone("zt-2"), "pump_recirc", off.doc["cmd_id"], "ACK", "DONE")
    alert = await p.wait_alert("zt-2", "biz_dry_run", "pump_recirc")
    assert alert["rule"].startswith("guard reservoir_has_water (") and alert["ruleset_version"]

    raised = await eventually(lambda: p.decisions("zt-2", "alert_raised"))
    row = next(r for r in raised if r["details"].get("code") == "biz_dry_run")
    assert row["rule"].startswith("guard reservoir_has_water (") and ".hydro:" in row["rule"]
    assert row["details"]["values"]["water_level"] == 10.0
    assert "water_level = 10" in row["details"]["seen"]
    assert row["summary"] == "biz_dry_run on pump_recirc raised (critical): " + p.ruleset.alerts["biz_dry_run"].text
    commands = await p.decisions("zt-2", "command")
    assert any(c["channel"] == "pump_recirc" and c["details"]["cmd_id"] == off.doc["cmd_id"] for c in commands)
    assert channel_state(d, "zt-2", "pump_recirc").is_on is False

    # the level is back; an operator resets (as POST /zones/{uid}/safety/reset records it)
    await put_readings(p, "zt-2", water_level=60.0)
    async with p.db.acquire() as conn:
        await event_store.add(
            conn, zone_id=p.zone_id("zt-2"), type="SAFETY_RESET", details={"by": "alice", "reason": "refilled"}
        )
    start = d.ticks
    since = time.time()

    async def cleared():
        return not any(code == "biz_dry_run" for code, _ in d.zones["zt-2"].st.alerts)

    await eventually(cleared, 10, every=0.01)
    assert d.ticks <= start + 2, "the reset is applied by the first whole tick after it was recorded"
    await p.spy.wait_command("zt-2", "pump_recirc", state=True, since=since)
    resets = await p.decisions("zt-2", "reset")
    assert resets and resets[-1]["summary"] == "operator safety reset by alice: refilled"
    resolved = await p.decisions("zt-2", "alert_resolved")
    assert any(r["details"].get("code") == "biz_dry_run" and r["details"].get("by") == "alice" for r in resolved)


class Responder:
    """Nodes that answer every command of a zone ACK then DONE, except on the channels left to the test."""

    def __init__(self, url: str, zone: str, *, skip: tuple[str, ...] = ()) -> None:
        self.skip = skip
        self.client = MqttClient(
            url, client_id=f"responder-{zone}", handler=self._on, subscriptions=(f"hydro/+/{zone}/+/+/command",)
        )

    async def _on(self, topic, payload, retained) -> int:
        parts = topic.split("/")
        if parts[4] in self.skip or retained:
            return 0
        cmd_id = json.loads(payload)["cmd_id"]
        base = "/".join(parts[:5])
        for status in ("ACK", "DONE"):
            doc = {"cmd_id": cmd_id, "status": status, "ts": int(time.time() * 1000)}
            self.client.publish_now(f"{base}/command_response", json.dumps(doc).encode())
        return 0

    async def __aenter__(self):
        await self.client.connect(5)  # returns once subscribed (SUBACK)
        return self

    async def __aexit__(self, *exc):
        await self.client.disconnect()


async def test_a_command_goes_out_signed_and_the_stores_answers_reach_the_engine_once(plant):
    p = await plant()
    zone = p.ruleset.zone("zt-1")
    await put_readings(p, "zt-1", water_level=80.0, ph=6.0, ec=1.5, temp_water=21.0)
    await put_pump_readings(p, "zt-1")
    await put_readings(p, "zt-2", water_level=10.0, ph=6.0, ec=1.5, temp_water=21.0)  # zt-2's pump goes off
    await p.start_service()
    async with Responder(p.mqtt_url, "zt-1", skip=(zone.channels["pump_drain"].channel_key,)):
        since = time.time()
        d = await p.start_daemon()
        off = await p.spy.wait_command("zt-2", "pump_recirc", state=False, since=since)
        off_id = off.doc["cmd_id"]
        assert signed_right(await secret_of(p, "nd-t2-pump"), off.doc)
        assert not signed_right((await secret_of(p, "nd-t2-pump")) + "x", off.doc)
        assert set(off.doc) == {"cmd", "cmd_id", "params", "ts", "sig"}

        # zt-1's solution gets older than max_solution_age (5 s): a water change starts; zt-2's node never
        # answers: its OFF is timed out by the service after the zone's response_timeout (5 s). Real time
        # passes (the store stamps answers with the database's clock)
        drain = await p.spy.wait_command("zt-1", "pump_drain", cmd="run_pump", since=since, timeout=15)
        secret = await secret_of(p, zone.channels["pump_drain"].node_uid)
        assert signed_right(secret, drain.doc) and drain.doc["params"]["duration_ms"] > 0
        rows = {c["cmd_id"]: c for c in await p.commands("zt-1")}
        row = rows[drain.doc["cmd_id"]]
        assert row["source"] == "engine" and row["rule"].startswith("state WATER_CHANGE_DRAIN (")
        assert row["ruleset_version"] == p.ruleset.ruleset_version

        # the drain's node answers ACK, then DONE: the engine hears each through the store
        drain_id = drain.doc["cmd_id"]
        await answer(p.mqtt_url, zone, "pump_drain", drain_id, "ACK")

        async def acked():
            return drain_id in channel_state(d, "zt-1", "pump_drain").acked

        await eventually(acked, 10)
        await answer(p.mqtt_url, zone, "pump_drain", drain_id, "DONE")

        async def done():
            c = channel_state(d, "zt-1", "pump_drain")
            return drain_id not in c.acked and drain_id not in c.pending

        await eventually(done, 10)
        assert channel_state(d, "zt-1", "pump_drain").failures == []

        async def timed_out():
            c = channel_state(d, "zt-2", "pump_recirc")
            return off_id not in c.pending and c.timeouts >= 1

        await eventually(timed_out, 10)
        assert len(channel_state(d, "zt-2", "pump_recirc").failures) == 1
        await answer(p.mqtt_url, p.ruleset.zone("zt-2"), "pump_recirc", off_id, "DONE")  # late: changes nothing
        await ticks(d, 3)
        assert len(channel_state(d, "zt-2", "pump_recirc").failures) == 1
        assert channel_state(d, "zt-2", "pump_recirc").timeouts == 1


async def test_a_tick_writes_commands_decisions_and_state_in_one_transaction(plant, monkeypatch):
    from hydro_rules.daemon import daemon as daemon_module

    p = await plant()
    await put_readings(p, "zt-2", water_level=10.0, ph=6.0, ec=1.5, temp_water=21.0)
    real = daemon_module.decision_store.add_many
    calls = []

    async def broken(conn, rows):
        calls.append(len(rows))
        raise RuntimeError("disk on fire")  # after the command rows, alerts and events of the same transaction

    monkeypatch.setattr(daemon_module.decision_store, "add_many", broken)
    since = time.time()
    d = await p.start_daemon()
    await ticks(d, 3)
    assert calls, "the tick tried to write"
    assert await p.commands("zt-2") == []
    assert await p.alerts("zt-2", "biz_dry_run") == []
    async with p.db.acquire() as conn:
        assert await zone_store.engine_state(conn, p.zone_id("zt-2")) is None
        assert await conn.fetchval("SELECT count(*) FROM decisions") == 0
    assert p.spy.commands("zt-2", since=since) == [], "nothing unrecorded is sent"

    monkeypatch.setattr(daemon_module.decision_store, "add_many", real)
    off = await p.spy.wait_command("zt-2", "pump_recirc", state=False, since=since)
    rows = await p.commands("zt-2", "pump_recirc")
    assert [r["cmd_id"] for r in rows] == [off.doc["cmd_id"]]
    decided = await p.decisions("zt-2", "command")
    assert any(r["details"].get("cmd_id") == off.doc["cmd_id"] for r in decided)
    async with p.db.acquire() as conn:
        state = await zone_store.engine_state(conn, p.zone_id("zt-2"))
    assert off.doc["cmd_id"] in json.dumps(state), "the state that sent it is stored with it"


async def test_a_restart_mid_drain_fails_the_water_change_and_drains_no_more(plant):
    p = await plant()
    prog = compiled(p.ruleset).program("zt-1")
    now = time.time()
    t0 = now - 120
    pumps = [b.node_uid for n, b in prog.zone.channels.items() if p.ruleset.channels[n].kind == "pump"]

    def snap(at):
        heard = {(node, m): (0.0, at) for node in pumps for m in ("pump_current", "flow_rate")}
        return {**heard, ("nd-t1-level", "water_level"): (70.0, at)}

    st = prog.new_state(t0)
    prog.evaluate(st, snap(t0), t0)
    d0 = prog.evaluate(st, snap(t0 + 10), t0 + 10)
    assert st.machines["water_cycle"] == "WATER_CHANGE_DRAIN", d0
    assert any(c.channel == "pump_drain" and c.cmd == "run_pump" for c in d0.commands)
    async with p.db.acquire() as conn:
        await zone_store.save_engine_state(conn, p.zone_id("zt-1"), st.to_json(), water_state="WATER_CHANGE_DRAIN")
    await put_readings(p, "zt-1", water_level=50.0, ph=6.0, ec=1.5, temp_water=21.0)

    since = time.time()
    d = await p.start_daemon()
    await ticks(d, 3)
    assert d.zones["zt-1"].st.machines["water_cycle"].startswith("FAILED")
    await p.wait_alert("zt-1", "biz_water_change_failed")
    recovery = await p.decisions("zt-1", "recovery")
    assert recovery and "daemon restart" in recovery[0]["summary"]
    transitions = await p.decisions("zt-1", "transition")
    assert any(t["details"].get("from") == "WATER_CHANGE_DRAIN" for t in transitions)
    drains = p.spy.commands("zt-1", "pump_drain", since=since)
    assert drains and all(m.doc["cmd"] == "set_relay" and m.doc["params"]["state"] is False for m in drains), [
        m.doc for m in drains
    ]
    await asyncio.sleep(0)
