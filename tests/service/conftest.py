"""Service fixtures: the real service on the run's database (and broker), an HTTP client, tokens, nodes."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import httpx
import pytest

from hydro_rules.service.app import Service, create_app
from hydro_rules.service.config import Settings
from hydro_rules.store import tokens as token_store
from hydro_rules.transport.mqtt import MqttClient


def make_settings(database_url: str, mqtt_url: str | None, **kw) -> Settings:
    return Settings(
        database_url=database_url,
        mqtt_url=mqtt_url,
        mqtt_client_id=f"ingest-{uuid.uuid4().hex[:8]}",
        aggregate_every_s=0,
        db_pool_size=4,
        **kw,
    )


async def start_service(settings: Settings, site, **kw) -> Service:
    svc = Service(settings, site, with_aggregator=False, **kw)
    await svc.start()
    await svc.wait_ready(15)
    return svc


@pytest.fixture
async def http_service(db, database_url, site):
    """The service without an MQTT door."""
    svc = await start_service(make_settings(database_url, None), site)
    yield svc
    await svc.stop()


@pytest.fixture
def acks(mqtt_service):
    """Every (topic, PUBACK reason code) the service answered, in order."""
    seen = []
    handle = mqtt_service.door.handle

    async def recording(topic, payload, retained):
        code = await handle(topic, payload, retained)
        seen.append((topic, code))
        return code

    mqtt_service.mqtt.handler = recording
    return seen


@pytest.fixture
async def mqtt_service(db, database_url, mqtt_url, site):
    """The service with its MQTT door connected and subscribed."""
    svc = await start_service(make_settings(database_url, mqtt_url), site)  # ready: subscribed (SUBACK)
    yield svc
    await svc.stop()


def client_for(svc: Service) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(svc, manage=False)), base_url="http://hydro")


@pytest.fixture
async def http(http_service):
    async with client_for(http_service) as c:
        yield c


@pytest.fixture
async def tokens(db):
    """A bearer token per scope: {"ingest": "hr_...", ...}."""
    out = {}
    async with db.acquire() as conn:
        for scope in ("ingest", "read", "operator", "override"):
            out[scope], _ = await token_store.create(conn, f"test-{scope}", [scope])
    return out


def auth(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


async def eventually(check, timeout: float = 10.0, every: float = 0.05):
    """Poll an async check until it returns something truthy; return that, or fail after `timeout`."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(every)
    raise AssertionError(f"not reached within {timeout} s (last: {last!r})")


class Node:
    """A node simulator publishing the protocol's payloads the way field nodes do."""

    def __init__(self, url: str, uid: str, zone: str = "zn-1", gh: str = "gh-1") -> None:
        self.uid, self.zone, self.gh = uid, zone, gh
        self.client = MqttClient(url, client_id=f"{uid}-{uuid.uuid4().hex[:6]}", window=16)

    async def __aenter__(self) -> Node:
        await self.client.connect(5)
        return self

    async def __aexit__(self, *exc) -> None:
        await self.client.drain(5)
        await self.client.disconnect()

    def topic(self, type: str, channel: str | None = None) -> str:
        base = f"hydro/{self.gh}/{self.zone}/{self.uid}"
        return f"{base}/{channel}/{type}" if channel else f"{base}/{type}"

    async def send(self, type: str, payload, channel: str | None = None, retain: bool = False) -> None:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        await self.client.publish(self.topic(type, channel), body, retain=retain)

    async def telemetry(self, metric: str, value, ts: float | None = None, channel: str = "sensor", **extra) -> None:
        doc = {"metric_type": metric, "value": value, "ts": ts if ts is not None else time.time(), **extra}
        await self.send("telemetry", doc, channel)
