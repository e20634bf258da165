"""End to end (issue 9, item 12): the broker away for 30 s, and the daemon killed with SIGKILL in the middle
of a drain (while the service's dead-man or the node itself brings the NC pump back)."""

import time

import pytest

from hydro_rules.service.devservers import ThrowawayMosquitto
from hydro_rules.twin import TwinConfig

from .conftest import eventually, ticks, until

pytestmark = pytest.mark.anyio

BROKER_AWAY_S = 30


async def test_the_broker_away_loses_no_sample_and_leaves_no_command_open(plant, broker_sizing):
    broker = ThrowawayMosquitto(extra=broker_sizing).start()
    try:
        p = await plant(mqtt=broker.url)
        await p.start_service()
        sim = await p.start_sim(["zt-1", "zt-2"])
        # the daemon's infra alert says when the broker has been away 30 s: that is when it comes back
        d = await p.start_daemon(broker_down_alert_s=BROKER_AWAY_S)
        await p.spy.wait_command("zt-1", "pump_drain", state=True, timeout=20)  # a water change under way
        await ticks(d, 1)

        broker.stop()
        away = time.monotonic()
        await p.wait_alert(None, "infra_mqtt_unreachable", timeout=BROKER_AWAY_S + 15)
        assert time.monotonic() - away >= BROKER_AWAY_S - 1
        broker.start()
        back = time.time()

        await p.wait_alert(None, "infra_mqtt_unreachable", status="RESOLVED", timeout=20)
        # every sample a node published reaches the database, none was dropped on the way
        zones = ("zt-1", "zt-2")

        async def stored():
            total = sum([await p.samples(z) for z in zones])
            return total >= sim.counters.telemetry_sent and total

        await sim.wait_ticks(2)
        await eventually(stored, timeout=30, every=0.2)
        assert sim.counters.telemetry_dropped == 0
        # and every command the daemon made ended: answered, failed or timed out by the service
        commands = await p.wait_terminal(timeout=30)
        assert commands
        # control goes on: the water change of zt-1 is commanded again over the broker
        await p.spy.wait(lambda m: m.type == "command" and m.parts[2] == "zt-1", since=back, timeout=20)
        await p.close()  # while the broker is still there
    finally:
        broker.remove()


async def test_a_daemon_killed_mid_drain(plant):
    """zt-1 (hydro2: an OFF holds until someone ends it) drains slowly: one chunk leaves water above the
    minimum, so the service's dead-man may switch its NC pump back ON. zt-3 (bounded-off: the node ends
    an OFF by itself) drains fast: the reservoir is empty when the daemon comes back, which refills it."""
    p = await plant()
    fast = p.ruleset.profiles["fast_change"].settings
    chunk_s = fast["commands.run_chunk"]
    max_off_s = fast["water_cycle.recirc.max_recirc_off"]
    level_min = fast["levels.min"]
    # no daemon for 2 s: the dead-man counts from each NC pump's recorded OFF-since, ON 5 s before its limit
    await p.start_service(daemon_dead_after_s=2, deadman_margin_s=5)
    sims = {
        "zt-1": await p.start_sim(["zt-1"], firmware="hydro2", config=TwinConfig(drain_flow_l_min=6.0)),
        "zt-3": await p.start_sim(["zt-3"], firmware="bounded-off"),
    }
    zones = sorted(sims)

    def twin(z):
        return sims[z].twins[z]

    proc = p.spawn_daemon("killed")
    offs = {}
    for z in zones:
        await p.spy.wait_command(z, "pump_drain", state=True, timeout=30)
        offs[z] = p.spy.commands(z, "pump_recirc")[-1]
        assert offs[z].doc["params"]["state"] is False
    await until(lambda: all(twin(z).running("pump_drain") for z in zones), timeout=5)
    proc.kill()
    last_off = {z: p.spy.commands(z, "pump_recirc")[-1] for z in zones}  # a bounded OFF is renewed while held

    # the drains stop by themselves within one chunk of their last (re)start: nobody renews them
    await until(lambda: not any(twin(z).running("pump_drain") for z in zones), timeout=chunk_s + 5)
    for z in zones:
        last_run = [m for m in p.spy.commands(z, "pump_drain") if m.doc["cmd"] == "run_pump"][-1]
        assert last_run.doc["params"]["duration_ms"] <= chunk_s * 1000
        assert time.time() - last_run.at <= chunk_s + 3
    assert twin("zt-1").level_pct > level_min and twin("zt-3").level_pct < level_min

    # the NC pumps run again within max_recirc_off: zt-1's by the dead-man (counted from the recorded
    # OFF-since), zt-3's by its node (counted from the last bounded OFF it got)
    on_at: dict = {}

    def recirc_back():
        for z in zones:
            if z not in on_at and twin(z).running("pump_recirc"):
                on_at[z] = time.time()
        return len(on_at) == len(zones)

    await until(recirc_back, timeout=max_off_s + 10, every=0.05)
    assert on_at["zt-1"] - offs["zt-1"].at <= max_off_s + 1.5, on_at["zt-1"] - offs["zt-1"].at
    assert on_at["zt-3"] - last_off["zt-3"].at <= max_off_s + 1.5, on_at["zt-3"] - last_off["zt-3"].at
    assert await p.events("zt-1", "DEADMAN_ON"), "the service's dead-man switched zt-1's pump (hydro2 holds an OFF)"
    await p.wait_alert(None, "infra_service_down_daemon", timeout=5)

    # the restarted daemon fails the change (no drain resumes), refills what is below the minimum and
    # circulates again
    restarted = time.time()
    p.spawn_daemon("killed")  # systemd starts it again, under its configured daemon_id
    for z in zones:
        await p.wait_alert(z, "biz_water_change_failed", timeout=20)
        recovery = await eventually(lambda z=z: _kind(p, z, "recovery"), timeout=10)
        assert "restart" in recovery[0]["summary"], recovery
    await p.wait_state("zt-3", "FAILED_WAIT", timeout=30)
    assert any("FAILED_REFILL" in x["summary"] for x in await p.decisions("zt-3", kind="transition")), (
        "zt-3 was refilled first"
    )
    await until(lambda: twin("zt-3").running("pump_recirc") and twin("zt-3").level_pct >= level_min, timeout=20)
    for z in zones:
        assert not [m for m in p.spy.commands(z, "pump_drain", since=restarted) if m.doc["cmd"] == "run_pump"]
    await p.wait_alert(None, "infra_service_down_daemon", status="RESOLVED", timeout=20)


async def _kind(p, zone: str, kind: str):
    return await p.decisions(zone, kind=kind)
