"""A revoked token is refused at once by the instance that revoked it, and by every other instance as soon as
PostgreSQL's NOTIFY reaches it: not after the token cache's 10 s."""

import asyncio
import time

import asyncpg
import pytest

from hydro_rules.cli import main
from hydro_rules.store import tokens as token_store

from .conftest import auth, client_for, make_settings, start_service

pytestmark = pytest.mark.anyio

#: how long another instance may keep honouring a revoked token while it listens (the cache keeps 10 s)
BOUND_S = 2.0


@pytest.fixture
async def two_services(db, database_url, site):
    """Two instances of the service on one database, the second listening for revocations."""
    a = await start_service(make_settings(database_url, None), site)
    b = await start_service(make_settings(database_url, None), site)
    await asyncio.wait_for(b.auth.listening.wait(), 5)
    try:
        yield a, b
    finally:
        await a.stop()
        await b.stop()


async def _new_token(db, name: str = "victim"):
    async with db.acquire() as conn:
        return await token_store.create(conn, name, ["read"])


async def _deaf(svc) -> None:
    """Stop the instance's listening for revocations: what it refuses now, it refuses on its own."""
    [task] = [t for t in svc._tasks if t.get_name() == "token-revocations"]
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert not svc.auth.listening.is_set()


async def _status(svc, token: str) -> int:
    async with client_for(svc) as http:
        return (await http.get("/zones", headers=auth(token))).status_code


async def _refused_within(svc, token: str, bound_s: float) -> float:
    """Seconds until `svc` answers 401 to the token; fails after `bound_s`."""
    start = time.monotonic()
    while await _status(svc, token) != 401:
        assert time.monotonic() - start < bound_s, f"still accepted after {bound_s} s"
        await asyncio.sleep(0.02)
    return time.monotonic() - start


async def test_revoked_through_one_instance_refused_there_at_once_and_elsewhere_on_notify(db, two_services, tokens):
    a, b = two_services
    await _deaf(a)  # a must not need its own NOTIFY
    victim, info = await _new_token(db)
    assert await _status(a, victim) == 200 and await _status(b, victim) == 200  # both have it cached now

    async with client_for(a) as http:
        r = await http.delete(f"/tokens/{info.prefix}", headers=auth(tokens["override"]))
        assert r.status_code == 200, r.text
        assert r.json() == {"prefix": info.prefix, "revoked": True, "by": "test-override"}
        assert (await http.get("/zones", headers=auth(victim))).status_code == 401  # at once, no waiting
        again = await http.delete(f"/tokens/{info.prefix}", headers=auth(tokens["override"]))
        assert again.status_code == 404 and again.json()["error"] == "unknown_token"
        denied = await http.delete(f"/tokens/{info.prefix}", headers=auth(tokens["operator"]))
        assert denied.status_code == 403

    await _refused_within(b, victim, BOUND_S)


async def test_revoked_from_the_command_line_refused_by_a_running_instance(db, database_url, two_services):
    _, b = two_services
    victim, info = await _new_token(db)
    assert await _status(b, victim) == 200
    code = await asyncio.to_thread(main, ["token", "revoke", info.prefix, "--database-url", database_url])
    assert code == 0
    await _refused_within(b, victim, BOUND_S)


async def test_revocations_missed_while_the_listener_was_down_are_not_honoured(db, database_url, two_services):
    """The listening connection is killed; a token revoked before it is back was never heard of, so the
    instance drops its whole cache when it listens again."""
    _, b = two_services
    victim, info = await _new_token(db)
    assert await _status(b, victim) == 200
    admin = await asyncpg.connect(database_url)
    try:
        killed = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND query = $1",
            f'LISTEN "{token_store.REVOKED}"',
        )
        assert killed >= 1
        deadline = time.monotonic() + 5
        while b.auth.listening.is_set():
            assert time.monotonic() < deadline, "the instance did not notice its listener was gone"
            await asyncio.sleep(0.01)
        assert await token_store.revoke(admin, info.prefix)  # nobody of b hears this NOTIFY
    finally:
        await admin.close()
    await asyncio.wait_for(b.auth.listening.wait(), 5)
    await _refused_within(b, victim, BOUND_S)
