"""The simulated nodes and the real service: time sync, telemetry stored per channel, node status,
and a command through the API answered by the node that holds the secret from the nodes table."""

from __future__ import annotations

import uuid

import pytest
from service.conftest import auth, client_for, eventually

from hydro_rules.nodesim import NodeSim, read_secrets
from hydro_rules.store import nodes as node_store
from hydro_rules.store import telemetry as telemetry_store
from hydro_rules.store import tokens as token_store

pytestmark = pytest.mark.anyio


async def test_the_service_stores_what_the_simulated_nodes_send(db, mqtt_service, mqtt_url, site):
    zone = site.zone("zn-1")
    async with db.acquire() as conn:
        for uid in zone.nodes:
            await node_store.register(conn, uid)  # the technician's registration gives each its secret
        secrets = await read_secrets(conn, zone.nodes)
        zone_id = await conn.fetchval("SELECT id FROM zones WHERE uid = 'zn-1'")
        operator, _ = await token_store.create(conn, "test-operator", ["operator"])
        reader, _ = await token_store.create(conn, "test-read", ["read"])
    assert set(secrets) == set(zone.nodes)
    sim = NodeSim(site, ["zn-1"], mqtt_url, secrets, heartbeat_s=1.0, client_tag=uuid.uuid4().hex[:6])
    async with sim:
        assert sim.counters.time_syncs == len(zone.nodes) and not sim.counters.time_sync_fallbacks  # the service
        wanted = {
            ("nd-ph-1", "ph", "ph_sensor"),
            ("nd-ec-1", "ec", "ec_sensor"),
            ("nd-ec-1", "temp_water", "solution_temp_c"),
            ("nd-level-1", "water_level", "level_sensor"),
            ("nd-pump-1", "pump_current", "pump_bus_current"),
            ("nd-pump-1", "flow_rate", "flow_rate"),
            ("nd-drain-1", "pump_current", "pump_bus_current"),
        }

        async def stored():
            async with db.acquire() as conn:
                rows = await telemetry_store.latest(conn, zone_id)
            got = {(r["node_uid"], r["metric_type"], r["channel"]): r for r in rows}
            return got if wanted <= set(got) else None

        rows = await eventually(stored, timeout=15)
        assert 80 < rows[("nd-level-1", "water_level", "level_sensor")]["value"] < 100
        assert rows[("nd-pump-1", "pump_current", "pump_bus_current")]["value"] > 500

        async def online():
            async with db.acquire() as conn:
                got = [await node_store.get(conn, uid) for uid in zone.nodes]
            return all(n["status"] == "ONLINE" and n["uptime_s"] is not None for n in got)

        await eventually(online)

        async with client_for(mqtt_service) as http:
            off = {"zone_uid": "zn-1", "channel": "pump_recirc", "cmd": "set_relay", "params": {"state": False}}
            r = await http.post("/commands", headers=auth(operator), json=off)
            assert r.status_code == 202, r.text
            cmd_id = r.json()["cmd_id"]

            async def done():
                c = (await http.get(f"/commands/{cmd_id}", headers=auth(reader))).json()
                return c if c["status"] == "done" else None

            cmd = await eventually(done)
        assert cmd["node_status"] in ("DONE", None)
        assert not sim.twins["zn-1"].contact("pump_recirc")
        assert sim.counters.commands_accepted == 1 and not sim.counters.commands_refused
    # every sample the nodes sent is stored (none refused: metric, unit, channel and ts all as the service wants)
    sent = sim.counters.telemetry_sent

    async def all_stored():
        async with db.acquire() as conn:
            n = await conn.fetchval("SELECT count(*) FROM telemetry_samples WHERE zone_id = $1", zone_id)
        return n == sent or None

    await eventually(all_stored, timeout=15)
    async with db.acquire() as conn:
        assert not await conn.fetch("SELECT code FROM alerts WHERE code LIKE 'infra_%'")
