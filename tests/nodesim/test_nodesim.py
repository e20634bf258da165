"""The simulated nodes on a real broker: telemetry per channel, firmware checks of commands,
ACK then DONE, reboots, and the two relay firmwares."""

from __future__ import annotations

import json
import time
import uuid

import pytest

from hydro_rules.nodesim import NodeSim

from .conftest import SECRET, Listener, signed_command

pytestmark = pytest.mark.anyio

ZONE = "hydro/gh-1/zn-1"
NODES = ("nd-pump-1", "nd-drain-1", "nd-fill-1", "nd-dose-1", "nd-level-1", "nd-ph-1", "nd-ec-1")


def make_sim(site, mqtt_url, **kw) -> NodeSim:
    kw.setdefault("heartbeat_s", 0.5)
    kw.setdefault("time_sync_timeout_s", 2.0)
    return NodeSim(site, ["zn-1"], mqtt_url, dict.fromkeys(NODES, SECRET), client_tag=uuid.uuid4().hex[:6], **kw)


def responses(listener: Listener, cmd_id: str) -> list[dict]:
    return [d for _, d in listener.docs("/command_response") if d.get("cmd_id") == cmd_id]


async def test_telemetry_per_channel_status_and_heartbeat(site, mqtt_url, time_server):
    subs = (f"{ZONE}/+/+/telemetry", f"{ZONE}/+/status", f"{ZONE}/+/heartbeat")
    async with Listener(mqtt_url, *subs) as lis, make_sim(site, mqtt_url) as sim:
        wanted = {
            ("nd-ph-1", "ph_sensor", "PH"),
            ("nd-ec-1", "ec_sensor", "EC"),
            ("nd-ec-1", "solution_temp_c", "WATER_TEMPERATURE"),
            ("nd-level-1", "level_sensor", "WATER_LEVEL"),
            ("nd-pump-1", "pump_bus_current", "PUMP_CURRENT"),
            ("nd-pump-1", "flow_rate", "FLOW_RATE"),
            ("nd-drain-1", "pump_bus_current", "PUMP_CURRENT"),
        }

        def seen():
            got = {(t.split("/")[3], t.split("/")[4], d["metric_type"]) for t, d in lis.docs("/telemetry")}
            return wanted <= got and got

        got = await lis.wait_for(seen)
        assert not {n for n, _, _ in got} - set(NODES)
        assert time_server.requests >= len(NODES) and sim.counters.time_syncs == len(NODES)
        for topic, doc in lis.docs("/telemetry"):
            assert isinstance(doc["ts"], int) and abs(doc["ts"] - time.time()) < 5, (topic, doc)
            assert isinstance(doc["value"], float | int)
        level = [d for t, d in lis.docs("/telemetry") if "/nd-level-1/level_sensor/" in t][-1]
        assert level["unit"] == "%" and 80 < level["value"] < 100  # the profile's target, 90 %
        current = [d for t, d in lis.docs("/telemetry") if "/nd-pump-1/pump_bus_current/" in t][-1]
        assert current["value"] > 500  # the NC recirculation pump runs from the start
        await lis.wait_for(lambda: {t.split("/")[3] for t, _ in lis.docs("/heartbeat")} >= set(NODES))
        statuses = {t.split("/")[3]: d for t, d in lis.docs("/status")}
        assert set(statuses) == set(NODES) and all(d["status"] == "ONLINE" for d in statuses.values())
        beat = lis.docs("/heartbeat")[-1][1]
        assert beat["uptime"] >= 0 and beat["fw_version"].startswith("2.")
        await lis.wait_for(lambda: sim.counters.telemetry_sent >= len(wanted))  # acknowledged by the broker


async def test_status_is_retained_and_the_lwt_says_offline_on_stop(site, mqtt_url, time_server):
    async with make_sim(site, mqtt_url):
        pass
    async with Listener(mqtt_url, f"{ZONE}/nd-ph-1/status", f"{ZONE}/nd-ph-1/lwt") as lis:
        await lis.wait_for(lambda: len(lis.seen) >= 2)
        kept = {t.rsplit("/", 1)[1]: (p, r) for t, p, r in lis.seen}
        assert json.loads(kept["status"][0])["status"] == "ONLINE" and kept["status"][1]
        assert kept["lwt"] == (b"offline", True)


async def test_signed_command_ack_then_done_and_the_relay_switches(site, mqtt_url, time_server):
    async with Listener(mqtt_url, f"{ZONE}/+/+/command_response") as lis, make_sim(site, mqtt_url) as sim:
        twin = sim.twins["zn-1"]
        assert twin.contact("pump_recirc")  # NC: closed, running
        body = signed_command("set_relay", {"state": False}, cmd_id="off-1")
        await lis.client.publish(f"{ZONE}/nd-pump-1/pump_recirc/command", body)
        got = await lis.wait_for(lambda: len(responses(lis, "off-1")) >= 2 and responses(lis, "off-1"))
        assert [d["status"] for d in got] == ["ACK", "DONE"]
        assert all(isinstance(d["ts"], int) and d["ts"] > 1e12 for d in got)  # milliseconds
        assert lis.seen[-1][0] == f"{ZONE}/nd-pump-1/pump_recirc/command_response"
        assert not twin.contact("pump_recirc") and not twin.running("pump_recirc")
        # a timed run of the drain: ACK now, DONE when it ends, relay open again
        await lis.client.publish(
            f"{ZONE}/nd-drain-1/pump_drain/command",
            signed_command("run_pump", {"duration_ms": 1500}, cmd_id="drain-1"),
        )
        await lis.wait_for(lambda: responses(lis, "drain-1"))
        assert twin.running("pump_drain")
        got = await lis.wait_for(lambda: len(responses(lis, "drain-1")) >= 2 and responses(lis, "drain-1"))
        assert [d["status"] for d in got] == ["ACK", "DONE"] and not twin.running("pump_drain")
        # the same OFF again: nothing to do
        await lis.client.publish(
            f"{ZONE}/nd-pump-1/pump_recirc/command", signed_command("set_relay", {"state": False}, cmd_id="off-2")
        )
        got = await lis.wait_for(lambda: responses(lis, "off-2"))
        assert got[0]["status"] == "NO_EFFECT"
        assert sim.counters.commands_accepted == 3 and not sim.counters.commands_refused


async def test_badly_signed_stale_and_unsigned_commands_are_refused(site, mqtt_url, time_server):
    async with Listener(mqtt_url, f"{ZONE}/+/+/command_response") as lis, make_sim(site, mqtt_url) as sim:
        twin = sim.twins["zn-1"]
        topic = f"{ZONE}/nd-pump-1/pump_recirc/command"
        await lis.client.publish(topic, signed_command("set_relay", {"state": False}, cmd_id="bad-sig",
                                                       secret="another-secret-of-at-least-32-chars!!"))  # fmt: skip
        await lis.client.publish(topic, signed_command("set_relay", {"state": False}, cmd_id="stale",
                                                       ts=int(time.time()) - 10))  # fmt: skip
        await lis.client.publish(topic, signed_command("set_relay", {"state": False}, cmd_id="future",
                                                       ts=int(time.time()) + 30))  # fmt: skip
        tampered = json.loads(signed_command("set_relay", {"state": True}, cmd_id="tampered"))
        tampered["params"]["state"] = False
        await lis.client.publish(topic, json.dumps(tampered).encode())
        unsigned = json.loads(signed_command("set_relay", {"state": False}, cmd_id="no-sig"))
        del unsigned["sig"]
        await lis.client.publish(topic, json.dumps(unsigned).encode())
        await lis.client.publish(topic, b"not json")
        want = {
            "bad-sig": "invalid_signature",
            "stale": "timestamp_expired",
            "future": "timestamp_expired",
            "tampered": "invalid_signature",
            "no-sig": "invalid_hmac_format",
            "unknown": "invalid_command_format",
        }
        await lis.wait_for(lambda: all(responses(lis, c) for c in want))
        for cmd_id, code in want.items():
            (doc,) = responses(lis, cmd_id)
            assert doc["status"] == "ERROR" and doc["error_code"] == code, doc
        assert twin.contact("pump_recirc") and twin.running("pump_recirc")  # nothing changed
        assert sim.counters.commands_refused == {
            "invalid_signature": 2, "timestamp_expired": 2, "invalid_hmac_format": 1, "invalid_command_format": 1
        }  # fmt: skip
        assert sim.counters.commands_accepted == 0


async def test_the_node_checks_time_against_its_synced_clock(site, mqtt_url):
    """A node whose time server runs 60 s ahead refuses a command stamped with our clock."""
    from .conftest import TimeServer

    async with (
        TimeServer(mqtt_url, offset_s=60) as ts,
        Listener(mqtt_url, f"{ZONE}/+/+/command_response") as lis,
        make_sim(site, mqtt_url) as sim,
    ):
        assert ts.requests >= 1 and sim.counters.time_sync_fallbacks == 0
        topic = f"{ZONE}/nd-pump-1/pump_recirc/command"
        await lis.client.publish(topic, signed_command("set_relay", {"state": False}, cmd_id="ours"))
        await lis.client.publish(
            topic, signed_command("set_relay", {"state": False}, cmd_id="theirs", ts=int(time.time()) + 60)
        )
        await lis.wait_for(lambda: responses(lis, "ours") and len(responses(lis, "theirs")) >= 2)
        assert responses(lis, "ours")[0]["error_code"] == "timestamp_expired"
        assert [d["status"] for d in responses(lis, "theirs")] == ["ACK", "DONE"]


async def test_reboot_opens_every_relay_resends_status_and_restarts_uptime(site, mqtt_url, time_server):
    subs = (f"{ZONE}/nd-pump-1/status", f"{ZONE}/nd-pump-1/lwt", f"{ZONE}/nd-pump-1/heartbeat")
    async with Listener(mqtt_url, *subs) as lis, make_sim(site, mqtt_url) as sim:
        twin = sim.twins["zn-1"]
        await lis.wait_for(lambda: any(d["uptime"] >= 2 for _, d in lis.docs("/heartbeat")), timeout=10)
        before = len(lis.seen)
        assert twin.contact("pump_recirc")
        await sim.reboot("nd-pump-1")
        assert not twin.contact("pump_recirc") and not twin.running("pump_recirc")  # hydro2: OPEN, NC pump off
        await lis.wait_for(lambda: any(t.endswith("/heartbeat") for t, _, _ in lis.seen[before:]))
        after = [(t.rsplit("/", 1)[1], p) for t, p, _ in lis.seen[before:]]
        kinds = [k for k, _ in after]
        assert kinds.index("lwt") < kinds.index("status") < kinds.index("heartbeat")
        assert dict(after)["lwt"] == b"offline"
        assert json.loads(dict(after)["status"])["status"] == "ONLINE"
        assert json.loads(dict(after)["heartbeat"])["uptime"] < 2
        assert sim.counters.reboots == 1


async def test_restart_command_is_a_reboot(site, mqtt_url, time_server):
    subs = (f"{ZONE}/nd-pump-1/+/command_response", f"{ZONE}/nd-pump-1/status", f"{ZONE}/nd-pump-1/lwt")
    async with Listener(mqtt_url, *subs) as lis, make_sim(site, mqtt_url) as sim:
        await lis.wait_for(lambda: lis.docs("/status"))  # its first ONLINE
        before = len(lis.seen)
        await lis.client.publish(
            f"{ZONE}/nd-pump-1/pump_recirc/command", signed_command("restart", {}, cmd_id="restart-1")
        )
        await lis.wait_for(lambda: any(t.endswith("/status") for t, _, _ in lis.seen[before:]))
        kinds = [t.rsplit("/", 1)[1] for t, _, r in lis.seen[before:] if not r]
        assert kinds == ["command_response", "command_response", "lwt", "status"]
        assert [d["status"] for d in responses(lis, "restart-1")] == ["ACK", "DONE"]
        assert not sim.twins["zn-1"].contact("pump_recirc")


@pytest.mark.parametrize("firmware", ["hydro2", "bounded-off"])
async def test_a_timed_off_ends_by_itself_only_under_bounded_off(site, mqtt_url, time_server, firmware):
    async with (
        Listener(mqtt_url, f"{ZONE}/+/+/command_response") as lis,
        make_sim(site, mqtt_url, firmware=firmware) as sim,
    ):
        twin = sim.twins["zn-1"]
        off = signed_command("set_relay", {"state": False, "duration_ms": 1500}, cmd_id="timed-off")
        await lis.client.publish(f"{ZONE}/nd-pump-1/pump_recirc/command", off)
        await lis.wait_for(lambda: len(responses(lis, "timed-off")) >= 2)
        assert not twin.contact("pump_recirc")
        sent_at = twin.now
        await sim.wait_ticks(1)
        while twin.now < sent_at + 1.5:  # past the end of the OFF, by the twin's own time
            await sim.wait_ticks(1)
        await sim.wait_ticks(1)
        assert twin.contact("pump_recirc") is (firmware == "bounded-off")


async def test_reboot_fault_and_injected_stuck_relay(site, mqtt_url, time_server):
    async with (
        Listener(mqtt_url, f"{ZONE}/nd-drain-1/lwt") as lis,
        make_sim(site, mqtt_url, faults=["reboot@1s:pump_drain"]) as sim,
    ):
        await lis.wait_for(lambda: any(not r for _, _, r in lis.seen))
        await lis.wait_for(lambda: sim.counters.reboots == 1 or None)
        twin = sim.twins["zn-1"]
        sim.stuck("pump_drain")
        await sim.wait_ticks(2)
        assert twin.running("pump_drain") and not twin.contact("pump_drain")


async def test_under_bounded_off_a_reboot_leaves_the_nc_pump_running(site, mqtt_url, time_server):
    async with make_sim(site, mqtt_url, firmware="bounded-off") as sim:
        twin = sim.twins["zn-1"]
        await sim.reboot("nd-pump-1")
        assert twin.contact("pump_recirc") and twin.running("pump_recirc")
        assert sim.nodes["nd-pump-1"].live


async def test_a_controller_crash_takes_the_nodes_off_the_broker_and_they_come_back_rebooted(
    site, mqtt_url, time_server
):
    subs = (f"{ZONE}/+/lwt", f"{ZONE}/+/status", f"{ZONE}/nd-pump-1/heartbeat")
    async with Listener(mqtt_url, *subs) as lis, make_sim(site, mqtt_url, faults=["controller_crash@2s:for=2s"]) as sim:
        twin = sim.twins["zn-1"]
        await lis.wait_for(
            lambda: {t.split("/")[3] for t, _, r in lis.seen if t.endswith("/lwt") and not r} >= set(NODES)
        )
        at_crash = len(lis.seen)
        assert twin.node_state("nd-pump-1") == "down"

        def back():
            later = lis.seen[at_crash:]
            online = {t.split("/")[3] for t, _, _ in later if t.endswith("/status")}
            beats = [json.loads(p) for t, p, _ in later if t.endswith("/heartbeat")]
            return online >= set(NODES) and beats and beats

        beats = await lis.wait_for(back, timeout=15)
        assert beats[0]["uptime"] <= 1  # the firmware started afresh
        assert not twin.contact("pump_recirc")  # hydro2 boots every relay OPEN
        assert sim.counters.reboots == len(NODES)


async def test_a_node_offline_fault_drops_its_commands(site, mqtt_url, time_server):
    async with (
        Listener(mqtt_url, f"{ZONE}/nd-drain-1/lwt", f"{ZONE}/+/+/command_response") as lis,
        make_sim(site, mqtt_url, faults=["node_offline@0:nd-drain-1,for=1h"]) as sim,
    ):
        await lis.wait_for(lambda: any(t.endswith("/lwt") and not r for t, _, r in lis.seen))
        await lis.client.publish(
            f"{ZONE}/nd-drain-1/pump_drain/command", signed_command("run_pump", {"duration_ms": 1000}, cmd_id="lost")
        )
        await lis.client.publish(
            f"{ZONE}/nd-pump-1/pump_recirc/command", signed_command("set_relay", {"state": False}, cmd_id="heard")
        )
        await lis.wait_for(lambda: len(responses(lis, "heard")) >= 2)
        assert not responses(lis, "lost") and not sim.twins["zn-1"].running("pump_drain")


async def test_a_config_push_gives_the_node_a_new_secret_and_gets_a_report(site, mqtt_url, time_server):
    new = "a-newer-secret-pushed-with-the-nodeconfig!"
    subs = (f"{ZONE}/nd-pump-1/config_report", f"{ZONE}/+/+/command_response")
    async with Listener(mqtt_url, *subs) as lis, make_sim(site, mqtt_url) as sim:
        push = {"node_id": "nd-pump-1", "version": 3, "gh_uid": "gh-1", "zone_uid": "zn-1", "node_secret": new}
        await lis.client.publish(f"{ZONE}/nd-pump-1/config", json.dumps(push).encode())
        (_, report), *_ = await lis.wait_for(lambda: lis.docs("/config_report"))
        assert report["node_id"] == "nd-pump-1" and "node_secret" not in report
        topic = f"{ZONE}/nd-pump-1/pump_recirc/command"
        await lis.client.publish(topic, signed_command("set_relay", {"state": False}, cmd_id="old-key"))
        await lis.client.publish(topic, signed_command("set_relay", {"state": False}, cmd_id="new-key", secret=new))
        await lis.wait_for(lambda: responses(lis, "old-key") and len(responses(lis, "new-key")) >= 2)
        assert responses(lis, "old-key")[0]["error_code"] == "invalid_signature"
        assert [d["status"] for d in responses(lis, "new-key")] == ["ACK", "DONE"]
        assert sim.secrets["nd-pump-1"] == new
