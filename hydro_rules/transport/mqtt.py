"""One MQTT connection over gmqtt, with the guarantees the ingest relies on.

- QoS 1 messages are acknowledged only when the handler coroutine returns
  (`optimistic_acknowledgement=False`), with the reason code it returns.
  A handler that is still storing keeps the PUBACK back; if the process
  dies, the broker redelivers.
- Subscriptions are made again in every `on_connect`: gmqtt does not restore
  them after a reconnect. `connect()` returns only once the broker has
  acknowledged them (SUBACK): a message published after it reaches us.
- Outgoing QoS 1 publishes keep their own window below the broker's receive
  maximum (gmqtt raises once its packet ids run out).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import gmqtt
from gmqtt.mqtt.constants import MQTTv50, PubRecReasonCode
from gmqtt.storage import PersistentStorage

log = logging.getLogger(__name__)

SUCCESS = PubRecReasonCode.SUCCESS.value
PAYLOAD_FORMAT_INVALID = PubRecReasonCode.PAYLOAD_FORMAT_INVALID.value
UNSPECIFIED_ERROR = PubRecReasonCode.UNSPECIFIED_ERROR.value
TOPIC_NAME_INVALID = PubRecReasonCode.TOPIC_NAME_INVALID.value

#: handler(topic, payload, retained) -> PUBACK reason code
Handler = Callable[[str, bytes, bool], Awaitable[int]]


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    host: str
    port: int
    username: str | None = None
    password: str | None = None
    tls: bool = False


def parse_url(url: str) -> BrokerAddress:
    """mqtt://[user[:password]@]host[:port] or mqtts://..."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
        raise ValueError(f"not an MQTT URL (mqtt://host:port): {url!r}")
    tls = parts.scheme in ("mqtts", "ssl")
    return BrokerAddress(
        parts.hostname or "127.0.0.1",
        parts.port or (8883 if tls else 1883),
        unquote(parts.username) if parts.username else None,
        unquote(parts.password) if parts.password else None,
        tls,
    )


class _Window(PersistentStorage):
    """gmqtt's store of unacknowledged outgoing messages, counted so publishers can wait for room."""

    def __init__(self) -> None:
        super().__init__()
        self.changed = asyncio.Event()

    def remove_message_by_mid(self, mid):
        super().remove_message_by_mid(mid)
        self.changed.set()

    def clear(self):
        super().clear()
        self.changed.set()

    @property
    def count(self) -> int:
        return len(self._messages)


class MqttClient:
    """A gmqtt client that resubscribes on every connect and reconnects forever.

    `clean_session=False` with a session expiry gives a persistent session: the
    broker keeps queueing for us while we are away (sized by its
    max_queued_messages) and redelivers what we did not acknowledge.
    """

    def __init__(
        self,
        url: str,
        *,
        client_id: str | None = None,
        handler: Handler | None = None,
        subscriptions: Iterable[str] = (),
        clean_session: bool = True,
        session_expiry_s: int = 7 * 86400,
        receive_maximum: int | None = None,
        window: int = 16,
        reconnect_delay_s: float = 1.0,
        will: tuple[str, bytes, bool] | None = None,
    ) -> None:
        self.address = parse_url(url)
        self.client_id = client_id or f"hydro-{uuid.uuid4().hex[:12]}"
        self.handler = handler
        self.subscriptions = tuple(subscriptions)
        self.window = window
        self.connected = asyncio.Event()
        #: set once the broker acknowledged this connection's subscriptions (SUBACK), cleared on a loss
        self.subscribed = asyncio.Event()
        #: topic filters the broker refused in its last SUBACK (reason code >= 0x80)
        self.refused_subscriptions: tuple[str, ...] = ()
        self._subscribe_mid: int | None = None
        self.connects = 0  # how many times the broker accepted us (first connect and reconnects)
        self._storage = _Window()
        props: dict = {}
        if not clean_session:
            props["session_expiry_interval"] = session_expiry_s
        if receive_maximum:
            props["receive_maximum"] = receive_maximum
        will_message = gmqtt.Message(will[0], will[1], qos=1, retain=will[2]) if will else None
        self._client = gmqtt.Client(
            self.client_id,
            clean_session=clean_session,
            optimistic_acknowledgement=False,
            persistent_storage=self._storage,
            will_message=will_message,
            logger=logging.getLogger("gmqtt"),
            **props,
        )
        self._client.set_config({"reconnect_retries": -1, "reconnect_delay": reconnect_delay_s})
        if self.address.username:
            self._client.set_auth_credentials(self.address.username, self.address.password)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._client.on_subscribe = self._on_subscribe

    # ---- callbacks -------------------------------------------------------------------
    def _on_connect(self, client, flags, rc, properties) -> None:
        self.connects += 1
        self.subscribed.clear()
        if self.subscriptions:
            client.subscriptions = []  # gmqtt keeps every subscribe in a list; start it afresh each time
            self._subscribe_mid = client.subscribe([gmqtt.Subscription(t, qos=1) for t in self.subscriptions])
        else:
            self.subscribed.set()
        self.connected.set()
        log.info("mqtt connected to %s:%s (session present: %s)", self.address.host, self.address.port, flags)

    def _on_subscribe(self, client, mid, granted, properties) -> None:
        if mid != self._subscribe_mid:
            return
        refused = tuple(t for t, code in zip(self.subscriptions, granted, strict=False) if code >= 0x80)
        if refused:
            log.error("mqtt broker refused the subscriptions %s", ", ".join(refused))
        self.refused_subscriptions = refused
        self.subscribed.set()

    def _on_disconnect(self, client, packet, exc=None) -> None:
        if self.connected.is_set():
            log.warning("mqtt connection to %s:%s lost", self.address.host, self.address.port)
        self.connected.clear()
        self.subscribed.clear()

    async def _on_message(self, client, topic, payload, qos, properties) -> int:
        if self.handler is None:
            return SUCCESS
        retained = bool(properties.get("retain"))
        try:
            return await self.handler(topic, payload, retained)
        except Exception:  # raised into gmqtt it would go unseen: say it, and answer with an error code
            log.exception("handling a message on %s failed; not acknowledged", topic)
            return UNSPECIFIED_ERROR

    # ---- life ------------------------------------------------------------------------
    async def connect(self, timeout: float | None = None) -> None:
        """Connect, retrying until the broker accepts (or `timeout` seconds pass), and return once it
        has acknowledged the subscriptions (SUBACK): what is published after that reaches the handler."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        delay = 0.2
        while True:
            try:
                await self._client.connect(
                    self.address.host, self.address.port, ssl=self.address.tls, keepalive=30, version=MQTTv50
                )
                left = None if deadline is None else max(0.0, deadline - loop.time())
                try:
                    await asyncio.wait_for(self.subscribed.wait(), left)
                except TimeoutError as e:
                    raise ConnectionError(
                        f"MQTT broker {self.address.host}:{self.address.port}: no SUBACK within {timeout} s"
                    ) from e
                return
            except (OSError, gmqtt.MQTTConnectError) as e:
                if deadline is not None and loop.time() + delay > deadline:
                    raise ConnectionError(f"MQTT broker {self.address.host}:{self.address.port}: {e}") from e
                log.warning("mqtt broker %s:%s not reachable (%s); retrying", self.address.host, self.address.port, e)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def disconnect(self) -> None:
        self.connected.clear()  # first: a disconnect we asked for is not a lost connection
        self.subscribed.clear()
        with contextlib.suppress(OSError, asyncio.TimeoutError, AttributeError):
            await asyncio.wait_for(self._client.disconnect(), 5)

    @property
    def is_connected(self) -> bool:
        return self.connected.is_set() and self._client.is_connected

    @property
    def unacknowledged(self) -> int:
        """QoS 1 messages published and not yet acknowledged by the broker."""
        return self._storage.count

    # ---- publishing ------------------------------------------------------------------
    async def publish(self, topic: str, payload: bytes | str, *, qos: int = 1, retain: bool = False) -> None:
        """Publish, waiting while `window` QoS 1 messages are unacknowledged or the link is down."""
        while True:
            if not self.is_connected:
                if self.connected.is_set():  # gmqtt saw the loss first; yield so its on_disconnect can run
                    await asyncio.sleep(0.01)
                else:
                    await self.connected.wait()
                continue
            if qos == 0 or self._storage.count < self.window:
                break
            self._storage.changed.clear()
            await self._storage.changed.wait()
        self._client.publish(topic, payload, qos=qos, retain=retain)

    def publish_now(self, topic: str, payload: bytes | str, *, qos: int = 1, retain: bool = False) -> bool:
        """Publish without waiting; False (nothing sent) when disconnected or the window is full."""
        if not self.is_connected or (qos and self._storage.count >= self.window):
            return False
        self._client.publish(topic, payload, qos=qos, retain=retain)
        return True

    async def drain(self, timeout: float | None = None) -> bool:
        """Wait until every QoS 1 publish is acknowledged by the broker."""

        async def _wait():
            while self._storage.count:
                self._storage.changed.clear()
                await self._storage.changed.wait()

        try:
            await asyncio.wait_for(_wait(), timeout)
            return True
        except TimeoutError:
            return False
