"""End to end (issue 9, item 12): faults of the plant on simulated nodes, and what the daemon does about
them: a dry reservoir, an overcurrent (locked until the safety reset), a stuck relay, a node reboot."""

import time

import httpx
import pytest

from hydro_rules.service.app import create_app
from hydro_rules.store import tokens as token_store

from .conftest import ticks

pytestmark = pytest.mark.anyio


async def _circulating(plant):
    """Service, simulated nodes and daemon of the steady zone zt-2, its recirculation pump running."""
    p = await plant()
    await p.start_service()
    sim = await p.start_sim(["zt-2"])
    d = await p.start_daemon()
    await ticks(d, 2)
    assert sim.twins["zt-2"].running("pump_recirc")
    return p, sim, d


async def test_a_dry_reservoir_stops_the_pump_and_raises_dry_run(plant):
    p, sim, d = await _circulating(plant)

    since = time.time()
    sim.inject("dry_reservoir@0:rate=120L/min", "zt-2")  # 6 L: below the 25 % minimum within seconds
    off = await p.spy.wait_command("zt-2", "pump_recirc", state=False, since=since, timeout=20)
    alert = await p.wait_alert("zt-2", "biz_dry_run", "pump_recirc")
    assert alert["locks"] and alert["rule"] and "reservoir_has_water" in alert["rule"]
    assert off.doc["cmd"] == "set_relay"
    # the node got it and the pump stands
    rows = await p.wait_terminal()
    row = next(c for c in rows if c["cmd_id"] == off.doc["cmd_id"])
    assert row["status"] == "done" and "reservoir_has_water" in (row["rule"] or "") or row["rule"]
    await sim.wait_ticks(1)
    assert not sim.twins["zt-2"].running("pump_recirc")


async def test_an_overcurrent_locks_the_pump_until_the_safety_reset(plant):
    p = await plant()
    svc = await p.start_service()
    # the drain pump of zt-1 trips its node's INA209 when the water change starts it
    sim = await p.start_sim(["zt-1"], faults=["overcurrent@0s:pump_drain"])
    d = await p.start_daemon()

    first = await p.spy.wait_command("zt-1", "pump_drain", state=True, timeout=20)
    alert = await p.wait_alert("zt-1", "biz_overcurrent", "pump_drain")
    assert alert["locks"]
    row = next(c for c in await p.commands("zt-1", "pump_drain") if c["cmd_id"] == first.doc["cmd_id"])
    assert row["status"] == "failed" and row["error_code"] == "overcurrent"

    # locked: the state still wants the drain, the daemon does not start it again
    locked_at = time.time()
    await ticks(d, 3)
    assert not p.spy.commands("zt-1", "pump_drain", since=locked_at) or all(
        m.doc.get("params", {}).get("state") is False for m in p.spy.commands("zt-1", "pump_drain", since=locked_at)
    )
    assert not sim.twins["zt-1"].running("pump_drain")

    async with svc.db.acquire() as conn:
        token, _ = await token_store.create(conn, "technician", ["operator"])
    app = create_app(svc, manage=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hydro") as http:
        r = await http.post(
            "/zones/zt-1/safety/reset",
            headers={"Authorization": f"Bearer {token}"},
            json={"reason": "drain pump replaced", "by": "anna"},
        )
    assert r.status_code == 200, r.text
    assert any(a["code"] == "biz_overcurrent" for a in r.json()["resolved"])
    reset_at = time.time()

    # within a tick or two the daemon knows, and the next start goes through its guards again
    again = await p.spy.wait_command("zt-1", "pump_drain", state=True, since=reset_at, timeout=10)
    assert again.doc["cmd_id"] != first.doc["cmd_id"]
    resets = await p.decisions("zt-1", kind="reset")
    assert resets and "anna" in str(resets[-1]["details"]) + resets[-1]["summary"]


async def test_a_stuck_relay_raises_pump_stuck_on(plant):
    p = await plant()
    await p.start_service()
    sim = await p.start_sim(["zt-2"])
    d = await p.start_daemon(node_silent_after_s=3600)
    await ticks(d, 2)
    sim.stuck("pump_drain", "zt-2")  # the drain's relay welds closed: it runs while switched off
    await sim.wait_ticks(2)
    assert sim.twins["zt-2"].running("pump_drain")

    # the alert wants the pump off for 1 minute and its current above 300 mA for 3 more: let the plant's
    # time pass in steps short enough that every reading stays fresh
    async def alerted():
        return [a for a in await p.alerts("zt-2", "biz_pump_stuck_on", "ACTIVE") if a["channel"] == "pump_drain"]

    for _ in range(10):
        if await alerted():
            break
        p.clock.jump(45)  # readings go stale after 3 minutes: each step is followed by fresh ones
        await sim.wait_ticks(1)
        await ticks(d, 1)
    alert = (await alerted())[0]
    assert alert["rule"] and "biz_pump_stuck_on" in (alert["rule"] or "") or alert["rule"]
    raised = [x for x in await p.decisions("zt-2", kind="alert_raised") if "biz_pump_stuck_on" in x["summary"]]
    assert raised and raised[0]["details"].get("values"), raised


async def test_a_node_reboot_gets_its_relays_reasserted(plant):
    p, sim, d = await _circulating(plant)

    since = time.time()
    await sim.reboot("nd-t2-pump")  # hydro2: every relay comes up OPEN, which holds the NC pump off
    on = await p.spy.wait_command("zt-2", "pump_recirc", state=True, since=since, timeout=15)
    rows = await p.wait_terminal()
    assert next(c for c in rows if c["cmd_id"] == on.doc["cmd_id"])["status"] == "done"
    await sim.wait_ticks(1)
    assert sim.twins["zt-2"].running("pump_recirc")
    reasserted = [x for x in await p.decisions("zt-2") if x["kind"] in ("reassert", "command")]
    assert any(x["at"].timestamp() >= since - 1 for x in reasserted)
