"""Outages mid-stream, on throwaway servers of their own: nothing is lost.

- The broker restarts: the service reconnects, subscribes again and every sample lands.
- The database restarts: HTTP answers 503 (the client retries); MQTT messages stay
  unacknowledged until stored, then all of them are stored.
"""

import asyncio
import time

import pytest

from hydro_rules.service.devservers import ThrowawayMosquitto, ThrowawayPostgres, postgres_available
from hydro_rules.store import connect_once
from hydro_rules.store.migrate import migrate
from hydro_rules.store.sites import sync

from .conftest import Node, auth, client_for, eventually, make_settings, start_service

pytestmark = pytest.mark.anyio


async def _count(db_or_url, sql):
    conn = await connect_once(db_or_url) if isinstance(db_or_url, str) else None
    try:
        if conn is not None:
            return await conn.fetchval(sql)
        async with db_or_url.acquire() as c:
            return await c.fetchval(sql)
    finally:
        if conn is not None:
            await conn.close()


async def test_broker_restart_mid_stream_loses_nothing(db, database_url, site, broker_sizing):
    n = 400
    t0 = time.time() - 3600
    with ThrowawayMosquitto(extra=broker_sizing) as broker:
        svc = await start_service(make_settings(database_url, broker.url), site)  # subscribed (SUBACK)
        try:
            node = Node(broker.url, "nd-ph-1")
            node.client = type(node.client)(
                broker.url, client_id="nd-ph-1-restart", clean_session=False, window=16, reconnect_delay_s=0.3
            )
            async with node:
                for i in range(n):
                    if i == n // 2:
                        broker.stop()  # SIGTERM, with messages in flight: the broker saves sessions and queues
                        await asyncio.sleep(0.5)
                        broker.start()
                    await node.telemetry("PH", 6.0 + (i % 10) / 10, t0 + i)
            await eventually(lambda: _count(db, f"SELECT count(*) = {n} FROM telemetry_samples"), timeout=20)
            assert svc.mqtt.connects >= 2, "the service must have reconnected"
            assert await _count(db, "SELECT count(DISTINCT ts) FROM telemetry_samples") == n
        finally:
            await svc.stop()


@pytest.mark.skipif(not postgres_available(), reason="needs the PostgreSQL server binaries")
async def test_database_restart_mid_stream_loses_nothing(site, mqtt_url):
    with ThrowawayPostgres() as pg:
        conn = await connect_once(pg.dsn)
        await migrate(conn)
        await sync(conn, site, validate=True)
        await conn.close()
        from hydro_rules.store import tokens

        conn = await connect_once(pg.dsn)
        token, _ = await tokens.create(conn, "ingest", ["ingest"])
        await conn.close()

        svc = await start_service(make_settings(pg.dsn, mqtt_url), site)
        acked, arrived = [], []
        handle = svc.door.handle

        async def recording(topic, payload, retained):
            arrived.append(topic)
            code = await handle(topic, payload, retained)
            acked.append(code)
            return code

        svc.mqtt.handler = recording  # the service is subscribed once start_service returns (SUBACK)
        now = time.time()
        sample = {"node_uid": "nd-ph-1", "metric_type": "PH", "value": 6.0, "ts": now - 100}
        try:
            async with client_for(svc) as http, Node(mqtt_url, "nd-ec-1") as node:
                r = await http.post("/ingest/telemetry", json={"samples": [sample]}, headers=auth(token))
                assert r.status_code == 200

                pg.stop()
                r = await http.post(
                    "/ingest/telemetry", json={"samples": [{**sample, "ts": now - 99}]}, headers=auth(token)
                )
                assert r.status_code == 503 and r.headers["retry-after"]
                assert r.json()["error"] == "database_unavailable"
                for i in range(20):  # while the database is away
                    await node.telemetry("EC", 1.5, now - 50 + i)
                # every message reached the door and its batch failed at least once: still none acknowledged
                await eventually(lambda: asyncio.sleep(0, len(arrived) == 20 and svc.batcher.waiting_for_db))
                assert acked == [], "nothing may be acknowledged before it is stored"
                health = await http.get("/health")
                assert health.status_code == 503 and health.json()["database"] is False

                pg.start()
                for _ in range(100):  # the client retries as told
                    r = await http.post(
                        "/ingest/telemetry", json={"samples": [{**sample, "ts": now - 99}]}, headers=auth(token)
                    )
                    if r.status_code != 503:
                        break
                    await asyncio.sleep(0.2)
                assert r.status_code == 200 and r.json()["counts"]["accepted"] == 1
                await eventually(lambda: asyncio.sleep(0, len(acked) == 20), timeout=20)
                assert set(acked) == {0}
            assert await _count(pg.dsn, "SELECT count(*) FROM telemetry_samples WHERE metric_type = 'ec'") == 20
            assert await _count(pg.dsn, "SELECT count(*) FROM telemetry_samples WHERE metric_type = 'ph'") == 2
        finally:
            await svc.stop()
