"""The NC pump's dead-man in the service (issue 9, item 8): when the site daemon's heartbeat stops, the
recirculation pump is switched back ON before `max_recirc_off` runs out, counted from its recorded
OFF-since; never while a locking alert holds it, never while a daemon beats; a node that reboots while no
daemon runs gets its NC pump re-asserted. Real PostgreSQL and Mosquitto; the service's clock is moved by
the test, the dead-man passes every 20 ms."""

import asyncio
import time
from datetime import UTC, datetime

import pytest

from hydro_rules.engine import api as engine_api
from hydro_rules.service.deadman import DeadMan
from hydro_rules.store import alerts as alert_store
from hydro_rules.store import daemons as daemon_store
from hydro_rules.store import decisions as decision_store
from hydro_rules.store import events as event_store
from hydro_rules.store import zones as zone_store

from .conftest import Node, auth, client_for, eventually, make_settings, start_service
from .test_commands_end import Clock, ScriptedNode, _level, _recirc_off_command, _secret

pytestmark = pytest.mark.anyio

MAX_OFF, MARGIN, DEAD_AFTER = 600.0, 60.0, 10.0  # examples/: max_recirc_off 10m; the settings' defaults
DOWN = "infra_service_down_daemon"


def _at(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


@pytest.fixture
async def svc(db, database_url, mqtt_url, site):
    """The service with its MQTT door, a clock the test moves, and the dead-man passing every 20 ms."""
    clock = Clock(float(int(time.time())))
    settings = make_settings(database_url, mqtt_url, deadman_every_s=0.02, command_sweep_every_s=0.02)
    assert (settings.deadman_margin_s, settings.daemon_dead_after_s) == (MARGIN, DEAD_AFTER)
    service = await start_service(settings, site, clock=clock)
    service.test_clock = clock
    yield service
    await service.stop()


async def _passes(svc, n: int = 3) -> None:
    """Wait until the running dead-man has made `n` more passes (each sees the clock as set before)."""
    start = svc.deadman.sweeps
    await eventually(lambda: asyncio.sleep(0, svc.deadman.sweeps >= start + n), timeout=5)


async def _beat(db, at: float, daemon_id: str = "site-daemon-1") -> None:
    async with db.acquire() as conn:
        await daemon_store.beat(conn, daemon_id, host="h", pid=1, ruleset_version="rs", zones=["zn-1"], at=_at(at))


async def _recirc(db, site, *, on: bool, since: float, now: float) -> None:
    """The daemon's saved record of zn-1: the NC recirculation pump on or off since `since`."""
    st = engine_api.compiled(site).program("zn-1").new_state(now - 86400)
    st.channels["pump_recirc"].is_on, st.channels["pump_recirc"].since = on, since
    async with db.acquire() as conn:
        zone = await zone_store.get(conn, "zn-1")
        await zone_store.save_engine_state(conn, zone["id"], st.to_json())


async def _alerts(db, code: str) -> list[dict]:
    async with db.acquire() as conn:
        return [a for a in await alert_store.list_alerts(conn, source="infra") if a["code"] == code]


async def _deadman_events(db) -> list[dict]:
    async with db.acquire() as conn:
        zone = await zone_store.get(conn, "zn-1")
        return await event_store.list_events(conn, zone["id"], type="DEADMAN_ON")


async def _move(http, tokens, clock, t: float) -> None:
    """The service's clock to `t`, with a water level read then (the guard reservoir_has_water reads it)."""
    clock.t = t
    await _level(http, tokens, 60, ts=t)


async def _quiet(svc, node, n: int = 3) -> None:
    """`n` passes go by and the node is sent nothing."""
    await _passes(svc, n)
    assert node.received.empty(), node.received._queue  # noqa: SLF001


def answered(cmd):
    """DONE at once: an ACK would be stamped with the database's time, and the service's clock runs minutes
    ahead of it here, so the sweep would time the command out before its DONE came."""
    return [("DONE", {})]


@pytest.fixture
async def plant(svc, db, site, tokens, mqtt_url):
    """nd-pump-1 (the NC recirculation pump's node) answering DONE, and a fresh water level
    (the guard reservoir_has_water reads it) at the service's time. Yields (http, node, clock)."""
    async with client_for(svc) as http:
        secret = await _secret(http, tokens, "nd-pump-1")
        await _level(http, tokens, 60, ts=svc.test_clock.t)
        async with ScriptedNode(mqtt_url, "nd-pump-1", secret, answered) as node:
            yield http, node, svc.test_clock


async def test_the_pump_goes_on_margin_before_max_recirc_off_counted_from_its_off_since(svc, db, site, plant, tokens):
    http, node, clock = plant
    t0 = clock.t
    x = t0 - 300  # the pump is off since X: on at X + max_recirc_off - margin
    await _recirc(db, site, on=False, since=x, now=t0)
    await _beat(db, t0)  # the daemon beats
    await _quiet(svc, node)
    assert svc.deadman.daemon_down is False and not await _alerts(db, DOWN)

    clock.t = t0 + DEAD_AFTER + 1  # its heartbeat is stale: the dead-man is on duty, the pump's deadline not near
    await _quiet(svc, node)
    [alert] = await _alerts(db, DOWN)
    assert alert["status"] == "ACTIVE" and alert["severity"] == "critical" and alert["zone_uid"] is None

    on_at = x + MAX_OFF - MARGIN
    await _move(http, tokens, clock, on_at - 1)  # a pass before the boundary
    await _quiet(svc, node)
    clock.t = on_at  # at it
    channel, wire = await node.next()
    assert (channel, wire["cmd"], wire["params"]) == ("pump_recirc", "set_relay", {"state": True})
    r = await http.get(f"/commands/{wire['cmd_id']}", headers=auth(tokens["read"]))
    cmd = r.json()
    assert cmd["requested_by"] == "deadman" and "off since" in cmd["reason"] and "max_recirc_off" in cmd["reason"]
    assert cmd["created_at"].startswith(_at(on_at).isoformat()[:19])

    clock.t = on_at + 1  # after: the ON stands (the newest evidence), nothing more is sent
    await _quiet(svc, node, 5)
    [event] = await _deadman_events(db)
    d = event["details"]
    assert (d["cause"], d["channel"], d["cmd_id"], d["margin_s"]) == (
        "max_recirc_off",
        "pump_recirc",
        cmd["cmd_id"],
        60,
    )
    assert d["off_since"] == _at(x).isoformat().replace("+00:00", "Z")
    assert d["deadline"] == _at(x + MAX_OFF).isoformat().replace("+00:00", "Z")
    async with db.acquire() as conn:
        zone = await zone_store.get(conn, "zn-1")
        [row] = await decision_store.list_decisions(conn, zone["id"], kind="deadman")
    assert row["channel"] == "pump_recirc" and "set_relay state=true" in row["summary"]
    assert len(await _alerts(db, DOWN)) == 1 and (await _alerts(db, DOWN))[0]["occurrences"] == 1  # raised once

    await _beat(db, clock.t)  # the daemon is back: the alert is resolved
    await _passes(svc)
    [alert] = await _alerts(db, DOWN)
    assert alert["status"] == "RESOLVED" and alert["resolved_by"] == "deadman"


async def test_an_off_command_sent_after_the_daemons_last_save_is_the_newer_evidence(svc, db, site, plant, tokens):
    """The daemon's record says ON; it then switched the pump off (the command's ACK at Y) and died
    before saving: the dead-man counts from Y."""
    http, node, clock = plant
    t0 = clock.t
    await _recirc(db, site, on=True, since=t0 - 3600, now=t0)
    y = t0 - 200
    await _recirc_off_command(db, y)
    await _beat(db, t0 - DEAD_AFTER - 5)
    on_at = y + MAX_OFF - MARGIN
    await _move(http, tokens, clock, on_at - 2)
    clock.t = on_at - 1
    await _quiet(svc, node)
    clock.t = on_at
    channel, wire = await node.next()
    assert (channel, wire["params"]) == ("pump_recirc", {"state": True})


async def test_a_locking_alert_keeps_the_pump_off(svc, db, site, plant, tokens):
    http, node, clock = plant
    t0 = clock.t
    await _recirc(db, site, on=False, since=t0 - 300, now=t0)
    await _beat(db, t0 - DEAD_AFTER - 5)
    async with db.acquire() as conn:
        zone = await zone_store.get(conn, "zn-1")
        await alert_store.raise_alert(
            conn, zone_id=zone["id"], source="biz", code="biz_overcurrent", type="Pump overcurrent",
            severity="critical", channel="pump_recirc", locks=True,
        )  # fmt: skip
    await _move(http, tokens, clock, t0 - 300 + MAX_OFF + 5)  # past the deadline itself
    await _quiet(svc, node, 5)
    assert not await _deadman_events(db)
    async with db.acquire() as conn:  # an operator's reset resolves it: the pump goes on
        await alert_store.resolve(conn, zone_id=zone["id"], code="biz_overcurrent", dedup_key="pump_recirc", by="op",
                                  reason="checked")  # fmt: skip
    channel, wire = await node.next()
    assert (channel, wire["params"]) == ("pump_recirc", {"state": True})


async def test_nothing_while_a_daemon_beats_and_the_dead_man_stands_down_when_one_beats_again(svc, db, site, plant):
    http, node, clock = plant
    t0 = clock.t
    x = t0 - 300
    await _recirc(db, site, on=False, since=x, now=t0)
    await _beat(db, t0 - DEAD_AFTER - 1)
    await _passes(svc)
    assert svc.deadman.daemon_down and len(await _alerts(db, DOWN)) == 1
    clock.t = x + MAX_OFF - MARGIN - 1
    await _beat(db, clock.t, "site-daemon-2")  # another daemon beats just before the boundary
    await _passes(svc)
    assert not svc.deadman.daemon_down and (await _alerts(db, DOWN))[0]["status"] == "RESOLVED"
    for t in (x + MAX_OFF - MARGIN, x + MAX_OFF + 1):  # the daemon's business now
        clock.t = t
        await _beat(db, t, "site-daemon-2")
        await _quiet(svc, node)
    assert not await _deadman_events(db) and svc.deadman.sent == []


async def test_no_daemon_ever_ran_nothing_happens(svc, db, site, plant):
    http, node, clock = plant
    t0 = clock.t
    await _recirc(db, site, on=False, since=t0 - MAX_OFF, now=t0)
    await _quiet(svc, node, 5)
    assert svc.deadman.daemon_down is None and not await _alerts(db, DOWN) and not await _deadman_events(db)


@pytest.mark.parametrize("comeback", ["uptime", "will"])
async def test_a_node_that_reboots_while_no_daemon_runs_gets_its_nc_pump_re_asserted(
    svc, db, site, plant, mqtt_url, tokens, comeback
):
    http, node, clock = plant
    t0 = clock.t
    await _recirc(db, site, on=True, since=t0 - 3600, now=t0)  # the daemon's record: the pump runs
    await _beat(db, t0 - DEAD_AFTER - 5)
    async with Node(mqtt_url, "nd-pump-1") as beat:
        await beat.send("heartbeat", {"uptime": 3600})
        await _quiet(svc, node)  # the record has it on: nothing to do
        clock.t += 1
        if comeback == "uptime":
            await beat.send("heartbeat", {"uptime": 2})  # rebooted: relays OPEN, the NC pump stands still
        else:
            await beat.send("lwt", b"offline")
            await _passes(svc)
            await beat.send("status", {"status": "ONLINE"})
        channel, wire = await node.next()
        assert (channel, wire["cmd"], wire["params"]) == ("pump_recirc", "set_relay", {"state": True})
        cmd = (await http.get(f"/commands/{wire['cmd_id']}", headers=auth(tokens["read"]))).json()
        assert cmd["requested_by"] == "deadman" and "re-assert after nd-pump-1" in cmd["reason"]
        await _quiet(svc, node, 5)  # once
        if comeback == "uptime":
            await beat.send("heartbeat", {"uptime": 3})  # the same boot
            await _quiet(svc, node)
    [event] = await _deadman_events(db)
    assert event["details"]["cause"] == "node_back" and event["details"]["node_uid"] == "nd-pump-1"


async def test_a_node_that_reboots_while_a_daemon_beats_is_left_to_the_daemon(svc, db, site, plant, mqtt_url):
    http, node, clock = plant
    t0 = clock.t
    await _recirc(db, site, on=True, since=t0 - 3600, now=t0)
    await _beat(db, t0)
    async with Node(mqtt_url, "nd-pump-1") as beat:
        await beat.send("heartbeat", {"uptime": 3600})
        await _passes(svc)
        await beat.send("heartbeat", {"uptime": 2})
        await _quiet(svc, node, 5)
    assert not await _deadman_events(db)


def test_the_settings_have_their_documented_defaults():
    from hydro_rules.service.config import Settings

    s = Settings()
    assert (s.daemon_dead_after_s, s.deadman_margin_s, s.deadman_every_s) == (10, 60, 1)


async def test_a_guard_refusal_is_audited_and_asked_again_later(svc, db, site, plant, tokens):
    """No fresh water level at the deadline: reservoir_has_water refuses; the refusal is audited and the
    ON asked again 30 s later, when the level is known."""
    http, node, clock = plant
    t0 = clock.t
    x = t0 - 300
    await _recirc(db, site, on=False, since=x, now=t0)
    await _beat(db, t0 - DEAD_AFTER - 5)
    on_at = x + MAX_OFF - MARGIN
    clock.t = on_at + 200  # the level read at t0 is stale by now
    await _quiet(svc, node)
    r = await http.get("/commands/refusals", headers=auth(tokens["read"]))
    [refusal] = r.json()["refusals"]
    assert (refusal["token_name"], refusal["code"], refusal["guard"]) == (
        "deadman",
        "guard_refused",
        "reservoir_has_water",
    )
    async with db.acquire() as conn:
        zone = await zone_store.get(conn, "zn-1")
        [row] = await decision_store.list_decisions(conn, zone["id"], kind="refusal")
    assert row["channel"] == "pump_recirc" and "refused" in row["summary"]
    await _move(http, tokens, clock, on_at + 200 + 29)  # the level is back; not asked again yet
    await _quiet(svc, node)
    clock.t = on_at + 200 + 30
    channel, wire = await node.next()
    assert (channel, wire["params"]) == ("pump_recirc", {"state": True})


async def test_a_restarted_service_does_not_raise_the_outage_again(svc, db, site, plant):
    http, node, clock = plant
    await _beat(db, clock.t - DEAD_AFTER - 5)
    await _passes(svc)
    again = DeadMan(svc.db, site, svc.commands, svc.settings, clock=clock)  # as after a restart of the service
    assert (await again.sweep())["daemon"] == "down"
    [alert] = await _alerts(db, DOWN)
    assert alert["status"] == "ACTIVE" and alert["occurrences"] == 1
