"""Shared fixtures: a real PostgreSQL database and a real Mosquitto broker for the service tests.

PostgreSQL: the server named by HYDRO_DATABASE_URL, else the local one at
127.0.0.1:5432 (user postgres), else a throwaway cluster started here
(initdb into a temp dir, as the `postgres` user when running as root). Each
test run creates its own database, migrates it once and drops it at the end.

Mosquitto: the broker named by HYDRO_MQTT_URL; else a throwaway broker on a
free port with the deployment kit's sizing (runtime/mosquitto/), because a
broker has no namespaces: on a shared one, concurrent test runs and retained
messages of earlier runs would leak into each other. If the mosquitto binary
is missing, the local broker at 127.0.0.1:1883 is used.

Everything is lazy: tests that do not ask for these fixtures start nothing. In CI (`CI=true`) a
storage or messaging test that skips fails instead (ci_policy.py).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from ci_policy import pytest_runtest_makereport  # noqa: F401 - the hook: in CI, a skipped service test fails

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
KIT_BROKER_CONF = REPO / "runtime" / "mosquitto" / "hydro.conf"

#: children before parents; DELETE is far quicker than TRUNCATE on tables this small
_DATA_TABLES = (
    "daemons",
    "decisions",
    "telemetry_samples",
    "telemetry_last",
    "command_responses",
    "command_refusals",
    "commands",
    "alerts",
    "zone_events",
    "water_usage_logs",
    "water_usage_daily",
    "telemetry_agg_1m",
    "telemetry_agg_1h",
    "telemetry_agg_daily",
    "aggregator_state",
    "api_tokens",
    "zone_channels",
    "zone_metrics",
    "nodes",
    "zones",
    "greenhouses",
)


@pytest.fixture(scope="session")
def anyio_backend():
    return "asyncio"


def _with_db(dsn: str, name: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{name}"))


async def _can_connect(dsn: str) -> bool:
    import asyncpg

    try:
        conn = await asyncpg.connect(dsn, timeout=3)
    except (TimeoutError, OSError, asyncpg.PostgresError):
        return False
    await conn.close()
    return True


@pytest.fixture(scope="session")
def pg_server():
    """A DSN with rights to create databases."""
    from hydro_rules.service.devservers import ThrowawayPostgres, postgres_available

    url = os.environ.get("HYDRO_DATABASE_URL")
    if url:
        yield url
        return
    local = "postgresql://postgres@127.0.0.1:5432/postgres"
    if asyncio.run(_can_connect(local)):
        yield local
        return
    if not postgres_available():
        pytest.skip("no PostgreSQL: set HYDRO_DATABASE_URL or install the server (initdb, pg_ctl)")
    pg = ThrowawayPostgres().start()
    try:
        yield pg.dsn
    finally:
        pg.remove()


async def _admin(pg_server: str, *statements: str) -> None:
    """Run statements (CREATE/DROP DATABASE) on the server's maintenance database."""
    import asyncpg

    admin = await asyncpg.connect(pg_server)
    try:
        for sql in statements:
            await admin.execute(sql)
    finally:
        await admin.close()


@pytest.fixture(scope="session")
def fresh_database(pg_server):
    """A factory of empty databases (no migrations), dropped at the end of the run."""
    made: list[str] = []

    def make(prefix: str = "hydro_empty") -> str:
        name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        asyncio.run(_admin(pg_server, f'CREATE DATABASE "{name}"'))
        made.append(name)
        return _with_db(pg_server, name)

    yield make
    if made:
        asyncio.run(_admin(pg_server, *(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)' for name in made)))


@pytest.fixture(scope="session")
def database_url(fresh_database):
    """A fresh, migrated database for this test run; dropped afterwards."""
    from hydro_rules.store import connect_once
    from hydro_rules.store.migrate import migrate

    url = fresh_database("hydro_test")

    async def migrated():
        conn = await connect_once(url)
        try:
            await migrate(conn)
        finally:
            await conn.close()

    asyncio.run(migrated())
    return url


@pytest.fixture(scope="session")
def broker_sizing() -> str:
    """The deployment kit's broker limits (in-flight window, queue), for throwaway brokers."""
    from hydro_rules.service.devservers import broker_sizing

    return broker_sizing(KIT_BROKER_CONF)


@pytest.fixture(scope="session")
def mqtt_url():
    from hydro_rules.service.devservers import ThrowawayMosquitto, broker_sizing, reachable

    url = os.environ.get("HYDRO_MQTT_URL")
    if url:
        yield url
        return
    try:
        broker = ThrowawayMosquitto(extra=broker_sizing(KIT_BROKER_CONF)).start()
    except RuntimeError:
        if reachable("127.0.0.1", 1883):
            yield "mqtt://127.0.0.1:1883"
            return
        pytest.skip("no MQTT broker: set HYDRO_MQTT_URL or install mosquitto")
    try:
        yield broker.url
    finally:
        broker.remove()


@pytest.fixture(scope="session")
def site():
    """The demo site's checked rule set (examples/)."""
    from hydro_rules.lang.loader import load

    loaded = load(EXAMPLES)
    assert loaded.ok, [d.message for d in loaded.diags.items]
    return loaded.ruleset


async def reset_database(url: str, ruleset, *, validate: bool = True) -> None:
    """Empty every data table and store the site again (nodes validated unless told otherwise)."""
    from hydro_rules.store import connect_once
    from hydro_rules.store.sites import sync

    conn = await connect_once(url)
    try:
        async with conn.transaction():
            for table in _DATA_TABLES:
                await conn.execute(f"DELETE FROM {table}")
            await sync(conn, ruleset, validate=validate)
    finally:
        await conn.close()


@pytest.fixture
async def db(database_url, site):
    """A pool on the run's database, emptied and holding the demo site with validated nodes."""
    from hydro_rules.store import Database

    await reset_database(database_url, site)
    database = await Database.connect(database_url, max_size=4)
    try:
        yield database
    finally:
        await database.close()


@pytest.fixture
def site_database(database_url, site) -> str:
    """For synchronous tests: the run's database, emptied and holding the demo site; its URL."""
    asyncio.run(reset_database(database_url, site))
    return database_url


async def clear_retained(url: str, topics: str = "hydro/#") -> int:
    """Delete every retained message under `topics` on the broker; how many there were.

    Simulated nodes leave their retained `status` and `lwt` behind, as real ones do; on a broker
    the tests share, a later test's subscriber would hear them. An empty retained publish deletes
    one. A marker published after the SUBSCRIBE comes back after every retained message.
    """
    from hydro_rules.transport.mqtt import MqttClient

    marker = f"hydro-test/marker/{uuid.uuid4().hex}"
    found: set[str] = set()
    back = asyncio.Event()

    async def on(topic: str, payload: bytes, retained: bool) -> int:
        if topic == marker:
            back.set()
        elif retained and payload:
            found.add(topic)
        return 0

    client = MqttClient(url, handler=on, subscriptions=[topics, marker])
    await client.connect(5)
    try:
        for _ in range(100):
            await client.publish(marker, b"marker")
            try:
                await asyncio.wait_for(back.wait(), 0.1)
                break
            except TimeoutError:
                continue
        for topic in found:
            await client.publish(topic, b"", retain=True)
        await client.drain(5)
    finally:
        await client.disconnect()
    return len(found)


@pytest.fixture
def no_retained_left(request):
    """After a test that used the shared broker, nothing it left retained is heard by the next."""
    yield
    if "mqtt_url" in request.fixturenames:
        asyncio.run(clear_retained(request.getfixturevalue("mqtt_url")))
