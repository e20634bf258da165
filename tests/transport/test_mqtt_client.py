"""The MQTT connection's guarantees, against a real Mosquitto."""

import asyncio
import uuid

import pytest

from hydro_rules.service.devservers import ThrowawayMosquitto
from hydro_rules.transport.mqtt import MqttClient, parse_url

pytestmark = pytest.mark.anyio


def _id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_broker_urls():
    a = parse_url("mqtt://ingest:s%40cret@broker.local:1884")
    assert (a.host, a.port, a.username, a.password, a.tls) == ("broker.local", 1884, "ingest", "s@cret", False)
    assert parse_url("mqtts://b").port == 8883
    with pytest.raises(ValueError):
        parse_url("http://b")


async def test_unacknowledged_message_is_redelivered_to_the_next_session(mqtt_url):
    """A handler that never finished (the process died) sends no PUBACK: the broker delivers again."""
    topic = f"test/{uuid.uuid4().hex}/x"
    client_id = _id("ack")
    first_seen = asyncio.Event()

    async def hang(t, payload, retained):
        first_seen.set()
        await asyncio.Event().wait()  # never returns: like a crash before the database commit

    sub = MqttClient(mqtt_url, client_id=client_id, handler=hang, subscriptions=[topic], clean_session=False)
    await sub.connect(5)
    await asyncio.sleep(0.1)
    pub = MqttClient(mqtt_url, client_id=_id("pub"))
    await pub.connect(5)
    await pub.publish(topic, b"payload-1")
    await asyncio.wait_for(first_seen.wait(), 5)
    await sub.disconnect()

    again = asyncio.get_running_loop().create_future()

    async def store(t, payload, retained):
        if not again.done():
            again.set_result(payload)
        return 0

    sub2 = MqttClient(mqtt_url, client_id=client_id, handler=store, subscriptions=[topic], clean_session=False)
    await sub2.connect(5)
    assert await asyncio.wait_for(again, 5) == b"payload-1"
    await sub2.disconnect()
    await pub.disconnect()


async def test_publisher_keeps_within_the_brokers_window(mqtt_url):
    """Far more QoS 1 messages than the in-flight window: no overflow, all delivered."""
    topic = f"test/{uuid.uuid4().hex}/w"
    got = []
    done = asyncio.Event()

    async def handler(t, payload, retained):
        got.append(payload)
        if len(got) == 500:
            done.set()
        return 0

    sub = MqttClient(mqtt_url, client_id=_id("win"), handler=handler, subscriptions=[topic])
    await sub.connect(5)
    await asyncio.sleep(0.1)
    pub = MqttClient(mqtt_url, client_id=_id("pub"), window=19)
    await pub.connect(5)
    for i in range(500):
        await pub.publish(topic, str(i).encode())
    assert await pub.drain(5)
    await asyncio.wait_for(done.wait(), 10)
    assert sorted(int(p) for p in got) == list(range(500))
    await pub.disconnect()
    await sub.disconnect()


async def test_subscriptions_come_back_after_a_broker_restart():
    """gmqtt does not restore subscriptions; ours are made again in on_connect."""
    with ThrowawayMosquitto() as broker:
        # no persistence of the session on the broker side: a restart forgets it
        broker.conf.write_text(broker.conf.read_text().replace("persistence true", "persistence false"))
        broker.stop()
        broker.start()
        got = asyncio.Queue()

        async def handler(t, payload, retained):
            await got.put(payload)
            return 0

        sub = MqttClient(broker.url, client_id=_id("re"), handler=handler, subscriptions=["t/+"], reconnect_delay_s=0.2)
        await sub.connect(5)
        broker.stop()
        broker.start()
        await asyncio.sleep(0.1)
        for _ in range(100):
            if sub.connects >= 2 and sub.is_connected:
                break
            await asyncio.sleep(0.1)
        assert sub.connects >= 2
        await asyncio.sleep(0.2)  # the SUBACK
        pub = MqttClient(broker.url, client_id=_id("pub"))
        await pub.connect(5)
        await pub.publish("t/after", b"after-restart")
        assert await asyncio.wait_for(got.get(), 5) == b"after-restart"
        await pub.disconnect()
        await sub.disconnect()


async def test_a_handler_that_raises_is_logged_and_the_subscriber_keeps_running(mqtt_url, caplog):
    """An exception inside a handler (a database gone mid-write) neither escapes into gmqtt unseen
    nor stops the messages after it."""
    topic = f"test/{uuid.uuid4().hex}/x"
    got: list[bytes] = []
    second = asyncio.Event()
    errors: list = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _loop, context: errors.append(context))

    async def handler(t, payload, retained):
        if payload == b"boom":
            raise ConnectionError("unexpected connection_lost() call")
        got.append(payload)
        second.set()
        return 0

    sub = MqttClient(mqtt_url, client_id=_id("raise"), handler=handler, subscriptions=[topic])
    pub = MqttClient(mqtt_url, client_id=_id("pub"))
    await sub.connect(5)
    await pub.connect(5)
    try:
        for _ in range(50):  # until the subscription is in place: connect does not wait for its SUBACK
            await pub.publish(topic, b"probe")
            try:
                await asyncio.wait_for(second.wait(), 0.1)
                break
            except TimeoutError:
                continue
        second.clear()
        await pub.publish(topic, b"boom")
        await pub.publish(topic, b"after")
        await asyncio.wait_for(second.wait(), 5)
    finally:
        loop.set_exception_handler(None)
        await sub.disconnect()
        await pub.disconnect()
    assert got[-1] == b"after"
    assert "handling a message on" in caplog.text and "connection_lost" in caplog.text
    assert errors == []
