"""Nodesim fixtures: a listener on the broker, a time server, independent command signing."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import time
import uuid

import pytest
from service.conftest import mqtt_service  # noqa: F401 - the service with its MQTT door, for test_with_service

from hydro_rules.transport.mqtt import SUCCESS, MqttClient

SECRET = "a-node-secret-of-at-least-32-characters!"


def canonical(doc: dict) -> bytes:
    """The protocol's canonical JSON, written out here rather than taken from transport.signing."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def signed_command(cmd: str, params: dict, *, ts: int | None = None, secret: str = SECRET, cmd_id=None) -> bytes:
    body = {"cmd": cmd, "cmd_id": cmd_id or f"t-{uuid.uuid4().hex[:10]}", "params": params,
            "ts": int(time.time()) if ts is None else ts}  # fmt: skip
    body["sig"] = hmac.new(secret.encode(), canonical(body), hashlib.sha256).hexdigest()
    return json.dumps(body).encode()


class Listener:
    """A backend-side client recording what arrives on its subscriptions, in order."""

    def __init__(self, url: str, *subscriptions: str, serve_time: bool = False, persistent: bool = False) -> None:
        self.seen: list[tuple[str, bytes, bool]] = []
        self.arrived = asyncio.Event()
        self.time_requests = 0
        subs = (*subscriptions, "hydro/time/request") if serve_time else subscriptions
        self.client = MqttClient(url, client_id=f"listener-{uuid.uuid4().hex[:8]}", handler=self._on,
                                 subscriptions=subs, clean_session=not persistent,
                                 receive_maximum=1000 if persistent else None)  # fmt: skip

    async def _on(self, topic: str, payload: bytes, retained: bool) -> int:
        if topic == "hydro/time/request":  # answered as the service does (one login can be one client only)
            self.time_requests += 1
            t = int(time.time())
            doc = {"message_type": "time_response", "unix_ts": t, "server_time": t}
            await self.client.publish("hydro/time/response", json.dumps(doc).encode())
            return SUCCESS
        self.seen.append((topic, payload, retained))
        self.arrived.set()
        return SUCCESS

    async def __aenter__(self) -> Listener:
        await self.client.connect(5)  # returns once subscribed (SUBACK)
        return self

    async def __aexit__(self, *exc) -> None:
        await self.client.disconnect()

    def docs(self, suffix: str, *, live_only: bool = True) -> list[tuple[str, dict]]:
        out = []
        for topic, payload, retained in self.seen:
            if topic.endswith(suffix) and not (live_only and retained):
                try:
                    out.append((topic, json.loads(payload)))
                except ValueError:
                    out.append((topic, {"raw": payload.decode(errors="replace")}))
        return out

    async def wait_for(self, check, timeout: float = 10.0):
        """Until `check()` returns something truthy (re-checked on every arrival); that value."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            got = check()
            if got:
                return got
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise AssertionError(f"not seen within {timeout} s; last {len(self.seen)} messages: {self.seen[-5:]}")
            self.arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.arrived.wait(), min(left, 0.5))


class TimeServer:
    """Answers hydro/time/request as the service does, with an offset from the local clock."""

    def __init__(self, url: str, offset_s: float = 0.0) -> None:
        self.offset_s = offset_s
        self.requests = 0
        self.client = MqttClient(url, client_id=f"time-{uuid.uuid4().hex[:8]}", handler=self._on,
                                 subscriptions=("hydro/time/request",))  # fmt: skip

    async def _on(self, topic: str, payload: bytes, retained: bool) -> int:
        if not retained:
            self.requests += 1
            t = int(time.time() + self.offset_s)
            doc = {"message_type": "time_response", "unix_ts": t, "server_time": t}
            await self.client.publish("hydro/time/response", json.dumps(doc).encode())
        return SUCCESS

    async def __aenter__(self) -> TimeServer:
        await self.client.connect(5)  # returns once subscribed (SUBACK)
        return self

    async def __aexit__(self, *exc) -> None:
        await self.client.disconnect()


@pytest.fixture
async def time_server(mqtt_url):
    async with TimeServer(mqtt_url) as ts:
        yield ts


@pytest.fixture(autouse=True)
def _no_retained_left(no_retained_left):
    """Simulated nodes leave retained status and lwt behind: gone before the next test."""
