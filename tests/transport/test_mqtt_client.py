"""The MQTT connection's guarantees, against a real Mosquitto."""

import asyncio
import uuid

import pytest

from hydro_rules.service.devservers import ThrowawayMosquitto
from hydro_rules.transport.mqtt import MqttClient, parse_url

pytestmark = pytest.mark.anyio


def _id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def _until(check) -> None:
    """Wait for a state the client's callbacks set (a reconnect has no awaitable of its own)."""
    while not check():
        await asyncio.sleep(0.02)


class SlowSuback:
    """A TCP proxy in front of the broker that holds each SUBACK back `delay_s` (a loaded broker):
    on loopback the SUBACK otherwise comes so fast that a connect() not waiting for it still wins."""

    def __init__(self, url: str, delay_s: float) -> None:
        self.target = parse_url(url)
        self.delay_s = delay_s
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self._connection, "127.0.0.1", 0)
        return f"mqtt://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def __aexit__(self, *exc) -> None:
        self.server.close()

    async def _connection(self, reader, writer) -> None:
        up_reader, up_writer = await asyncio.open_connection(self.target.host, self.target.port)
        await asyncio.gather(self._bytes(reader, up_writer), self._packets(up_reader, writer), return_exceptions=True)
        writer.close()
        up_writer.close()

    @staticmethod
    async def _bytes(reader, writer) -> None:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()

    async def _packets(self, reader, writer) -> None:
        while True:
            head = await reader.readexactly(1)
            size, shift = 0, 0
            while True:  # the remaining length: 7 bits a byte, low first
                b = await reader.readexactly(1)
                head += b
                size |= (b[0] & 0x7F) << shift
                shift += 7
                if not b[0] & 0x80:
                    break
            body = await reader.readexactly(size)
            if head[0] >> 4 == 9:  # SUBACK
                await asyncio.sleep(self.delay_s)
            writer.write(head + body)
            await writer.drain()


async def test_connect_returns_once_the_subscriptions_are_acknowledged(mqtt_url):
    """What is published right after connect() returns reaches the handler: no sleep for the SUBACK."""
    got = asyncio.Queue()

    async def handler(t, payload, retained):
        await got.put(payload)
        return 0

    pub = MqttClient(mqtt_url, client_id=_id("pub"))
    await pub.connect(5)
    async with SlowSuback(mqtt_url, 0.3) as slow_url:
        topic = f"test/{uuid.uuid4().hex}/s"
        sub = MqttClient(slow_url, client_id=_id("sub"), handler=handler, subscriptions=[topic, f"{topic}/more"])
        await sub.connect(5)
        assert sub.subscribed.is_set() and sub.refused_subscriptions == ()
        await pub.publish(topic, b"first")
        assert await asyncio.wait_for(got.get(), 5) == b"first"
        await sub.disconnect()
        assert not sub.subscribed.is_set()
        late = MqttClient(slow_url, client_id=_id("late"), subscriptions=[topic])
        with pytest.raises(ConnectionError, match="no SUBACK"):
            await late.connect(0.1)
        await late.disconnect()
    plain = MqttClient(mqtt_url, client_id=_id("plain"))
    await plain.connect(5)
    assert plain.subscribed.is_set(), "nothing to subscribe: connected is enough"
    await plain.disconnect()
    await pub.disconnect()


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
        await asyncio.wait_for(_until(lambda: not sub.subscribed.is_set()), 5)  # the loss is seen
        broker.start()
        await asyncio.wait_for(_until(lambda: sub.connects >= 2 and sub.subscribed.is_set()), 10)
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
