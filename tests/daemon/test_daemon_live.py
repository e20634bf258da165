"""The daemon's fast path and node comebacks, through the real live feed: a dry-reservoir sample on
MQTT stops the pump at once (not a tick later), and a node that comes back gets its relays re-asserted."""

from __future__ import annotations

import json
import time

import pytest

from hydro_rules.transport.mqtt import MqttClient

from .conftest import eventually, ticks
from .test_daemon_core import put_pump_readings, put_readings

pytestmark = pytest.mark.anyio


async def publish(url: str, topic: str, doc) -> None:
    client = MqttClient(url, client_id=f"node-{time.monotonic_ns()}")
    await client.connect(5)
    try:
        await client.publish(topic, doc if isinstance(doc, bytes) else json.dumps(doc).encode())
        await client.drain(5)
    finally:
        await client.disconnect()


async def test_a_dry_reservoir_sample_stops_the_pump_at_once_not_a_tick_later(plant):
    p = await plant()
    await put_readings(p, "zt-2", water_level=60.0, ph=6.0, ec=1.5, temp_water=21.0)
    await put_pump_readings(p, "zt-2")
    d = await p.start_daemon(tick_s=60)  # a tick a minute: only the fast path can answer within seconds
    await ticks(d, 1, timeout=5)
    assert d.zones["zt-2"].st.channels["pump_recirc"].is_on
    fast = d.evaluated
    since = time.time()
    level = p.ruleset.zone("zt-2").metric_nodes["water_level"]
    doc = {"metric_type": "WATER_LEVEL", "value": 3.0, "ts": int(time.time() * 1000)}
    await publish(p.mqtt_url, f"hydro/gh-t/zt-2/{level}/level/telemetry", doc)
    off = await p.spy.wait_command("zt-2", "pump_recirc", state=False, since=since, timeout=5)
    assert off.at - since < 2.0

    async def fast_path():
        return d.evaluated > fast

    await eventually(fast_path, 5)
    assert d.ticks == 1, "the fast path, not a tick"
    await p.wait_alert("zt-2", "biz_dry_run", "pump_recirc", timeout=5)


async def test_a_node_that_comes_back_gets_the_desired_state_of_its_relays_again(plant):
    p = await plant()
    await put_readings(p, "zt-2", water_level=60.0, ph=6.0, ec=1.5, temp_water=21.0)
    await put_pump_readings(p, "zt-2")
    d = await p.start_daemon()
    await ticks(d, 2)
    c = d.zones["zt-2"].st.channels["pump_recirc"]
    assert c.is_on and not c.pending, "believed on, nothing to send"
    since = time.time()
    node = p.ruleset.zone("zt-2").channels["pump_recirc"].node_uid
    await publish(p.mqtt_url, f"hydro/gh-t/zt-2/{node}/lwt", b"offline")
    await publish(p.mqtt_url, f"hydro/gh-t/zt-2/{node}/status", {"status": "ONLINE", "ts": int(time.time() * 1000)})
    on = await p.spy.wait_command("zt-2", "pump_recirc", state=True, since=since, timeout=5)
    assert on.doc["cmd"] == "set_relay"

    async def reasserted():
        return [r for r in await p.decisions("zt-2", "reassert") if r["details"]["node_uid"] == node]

    row = (await eventually(reasserted, 5))[0]
    assert "lwt" in row["summary"] and row["summary"].startswith(f"{node} came back")
