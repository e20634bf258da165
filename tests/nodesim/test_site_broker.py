"""On a broker set up as the deployment kit says (logins, client id = login, the kit's ACL): each
simulated node logs in as its node uid, publishes under its own name and gets its commands."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid

import pytest

from hydro_rules.nodesim import NodeSim
from hydro_rules.service.devservers import ThrowawayMosquitto

from .conftest import SECRET, Listener, signed_command

pytestmark = pytest.mark.anyio

REPO_ACL = "runtime/mosquitto/hydro.acl"
NODES = ("nd-pump-1", "nd-drain-1", "nd-fill-1", "nd-dose-1", "nd-level-1", "nd-ph-1", "nd-ec-1")


@pytest.fixture(scope="module")
def site_broker(tmp_path_factory, broker_sizing):
    from conftest import REPO

    if shutil.which("mosquitto_passwd") is None:
        pytest.skip("no mosquitto_passwd")
    root = tmp_path_factory.mktemp("site-broker")
    passwd = root / "hydro.passwd"
    logins = {uid: f"pw-{uid}" for uid in (*NODES, "hydro-ingest")}
    for i, (user, password) in enumerate(logins.items()):
        subprocess.run(["mosquitto_passwd", *(["-c"] if i == 0 else []), "-b", str(passwd), user, password], check=True)
    passwd.chmod(0o600)
    extra = "\n".join(
        [
            broker_sizing,
            "use_username_as_clientid true",
            "allow_anonymous false",
            f"password_file {passwd}",
            f"acl_file {REPO / REPO_ACL}",
        ]
    )
    try:
        broker = ThrowawayMosquitto(extra=extra).start()
    except RuntimeError:
        pytest.skip("no mosquitto")
    yield broker, logins
    broker.remove()


async def test_every_node_logs_in_as_itself_under_the_kits_acl(site, site_broker):
    broker, logins = site_broker
    ingest = f"mqtt://hydro-ingest:{logins['hydro-ingest']}@127.0.0.1:{broker.port}"
    zone = "hydro/gh-1/zn-1"
    subs = ("hydro/+/+/+/+/telemetry", "hydro/+/+/+/+/command_response", "hydro/+/+/+/status")
    async with Listener(ingest, *subs, serve_time=True) as lis:  # one client per login on this broker
        passwords = {uid: pw for uid, pw in logins.items() if uid in NODES}
        # the URL's own login is ignored for nodes that have one of their own
        url = f"mqtt://someone:else@127.0.0.1:{broker.port}"
        sim = NodeSim(site, ["zn-1"], url, dict.fromkeys(NODES, SECRET), node_passwords=passwords,
                      client_tag=uuid.uuid4().hex[:4])  # fmt: skip
        async with sim:
            assert lis.time_requests >= len(NODES) and not sim.counters.time_sync_fallbacks

            def senders():
                got = {t.split("/")[3] for t, _ in lis.docs("/telemetry")}
                return got >= {"nd-pump-1", "nd-ph-1", "nd-ec-1", "nd-level-1", "nd-drain-1", "nd-fill-1"}

            await lis.wait_for(senders)
            await lis.wait_for(lambda: {t.split("/")[3] for t, _ in lis.docs("/status")} >= set(NODES))
            await lis.client.publish(
                f"{zone}/nd-pump-1/pump_recirc/command", signed_command("set_relay", {"state": False}, cmd_id="kit-1")
            )

            def answers():
                got = [d["status"] for _, d in lis.docs("/command_response") if d.get("cmd_id") == "kit-1"]
                return len(got) >= 2 and got

            assert await lis.wait_for(answers) == ["ACK", "DONE"]
            assert not sim.twins["zn-1"].contact("pump_recirc")
            statuses = [json.loads(p)["status"] for t, p, _ in lis.seen if t.endswith("/status")]
            assert set(statuses) == {"ONLINE"}


async def test_the_broker_away_loses_no_acknowledged_sample_and_nodes_say_online_again(site, broker_sizing):
    broker = ThrowawayMosquitto(extra=broker_sizing).start()
    try:
        subs = ("hydro/gh-1/zn-1/+/+/telemetry", "hydro/gh-1/zn-1/+/status")
        async with (
            Listener(broker.url, *subs, serve_time=True, persistent=True) as lis,
            NodeSim(site, ["zn-1"], broker.url, {}, heartbeat_s=1.0) as sim,
        ):
            await sim.wait_ticks(2)
            broker.stop()  # SIGTERM: the broker saves the listener's session and queue
            await sim.wait_ticks(3)  # the nodes go on measuring, and hold what they cannot send
            broker.start()
            await sim.wait_ticks(3)

            def all_here():
                got = {(t, json.loads(p)["ts"]) for t, p, _ in lis.seen if t.endswith("/telemetry")}
                return len(got) >= sim.counters.telemetry_sent and got

            await lis.wait_for(all_here, timeout=15)
            assert sim.counters.telemetry_dropped == 0
            online = [t for t, _, r in lis.seen if t.endswith("/status") and not r]
            assert len(online) >= 2 * len(NODES)  # at start, and again when the broker was back
    finally:
        broker.remove()
