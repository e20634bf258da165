"""The deployment kit's broker configuration: it loads, and a node cannot speak under another node's name."""

import asyncio
import re
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from hydro_rules.service.devservers import ThrowawayMosquitto
from hydro_rules.transport.mqtt import MqttClient

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(shutil.which("mosquitto_passwd") is None, reason="needs mosquitto_passwd"),
]

KIT = Path(__file__).resolve().parents[2] / "runtime" / "mosquitto"


@pytest.fixture
def kit_broker(tmp_path):
    passwd = tmp_path / "hydro.passwd"
    for i, user in enumerate(("hydro-ingest", "nd-ph-1", "nd-ec-1")):
        subprocess.run(
            ["mosquitto_passwd", *(["-c"] if i == 0 else []), "-b", str(passwd), user, "pw-" + user],
            check=True,
            capture_output=True,
        )
    conf = (KIT / "hydro.conf").read_text()
    conf = re.sub(r"(?m)^listener .*$", "", conf)
    conf = re.sub(r"(?m)^(persistence true|persistence_location .*|autosave_interval .*)$", "", conf)
    conf = conf.replace("/etc/mosquitto/hydro.passwd", str(passwd)).replace(
        "/etc/mosquitto/hydro.acl", str(KIT / "hydro.acl")
    )
    broker = ThrowawayMosquitto(extra=conf)
    # the generated head allows anonymous clients; the kit's own line must win
    broker.conf.write_text(broker.conf.read_text().replace("allow_anonymous true\n", ""))
    broker.start()
    yield broker
    broker.remove()


def _url(broker, user):
    return f"mqtt://{user}:pw-{user}@127.0.0.1:{broker.port}"


async def test_node_cannot_publish_under_another_nodes_name(kit_broker):
    got = asyncio.Queue()

    async def handler(topic, payload, retained):
        await got.put((topic, payload))
        return 0

    ingest = MqttClient(
        _url(kit_broker, "hydro-ingest"),
        client_id="hydro-ingest",
        handler=handler,
        subscriptions=["hydro/+/+/+/+/telemetry"],
    )
    await ingest.connect(5)
    await asyncio.sleep(0.2)
    node = MqttClient(_url(kit_broker, "nd-ph-1"), client_id=f"nd-ph-1-{uuid.uuid4().hex[:4]}")
    await node.connect(5)
    await node.publish("hydro/gh-1/zn-1/nd-ec-1/ec_sensor/telemetry", b'{"spoofed": true}')
    await node.publish("hydro/gh-1/zn-1/nd-ph-1/ph_sensor/telemetry", b'{"own": true}')
    topic, payload = await asyncio.wait_for(got.get(), 5)
    assert topic == "hydro/gh-1/zn-1/nd-ph-1/ph_sensor/telemetry"
    await asyncio.sleep(0.3)
    assert got.empty(), "the spoofed message must not reach the ingest"
    await node.disconnect()
    await ingest.disconnect()


async def test_anonymous_clients_are_refused(kit_broker):
    anon = MqttClient(f"mqtt://127.0.0.1:{kit_broker.port}", client_id="anon")
    with pytest.raises(ConnectionError):
        await anon.connect(1)
