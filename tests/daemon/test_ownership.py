"""Zone ownership by advisory locks on the real database: fair shares, takeovers, lost sessions, one owner ever."""

import asyncio
import random
import socket
import uuid
from datetime import UTC, datetime

import pytest

from hydro_rules.daemon.ownership import Ownership
from hydro_rules.store import connect_once
from hydro_rules.store import daemons as daemon_store

pytestmark = pytest.mark.anyio

#: the tests' clocks, far from now and apart: no other test's daemon beat is alive at a test's time
T0 = datetime(2100, 1, 1, tzinfo=UTC).timestamp()
MASK = (1 << 64) - 1


@pytest.fixture
def now():
    return T0 + random.randrange(10**6) * 3600.0


def zones(n: int) -> list[str]:
    tag = uuid.uuid4().hex[:6]
    return [f"zn-{tag}-{i}" for i in range(n)]


@pytest.fixture
async def admin(database_url):
    conn = await connect_once(database_url)
    yield conn
    await conn.close()


@pytest.fixture
async def owners(database_url, now, admin):
    made = []

    def make(zone_uids, **kw) -> Ownership:
        o = Ownership(database_url, f"d-{uuid.uuid4().hex[:6]}", zone_uids, clock=lambda: now, **kw)
        made.append(o)
        return o

    yield make
    for o in made:
        await o.close()
        await daemon_store.stopped(admin, o.daemon_id, datetime.fromtimestamp(now, UTC))  # its beat, if any


async def beat(admin, o: Ownership) -> None:
    at = datetime.fromtimestamp(o.clock(), UTC)
    await daemon_store.beat(admin, o.daemon_id, host="test", pid=1, ruleset_version="t", zones=[], at=at)


async def kill(admin, o: Ownership) -> None:
    """The daemon's session ends under it (a crash, a network cut, an administrator)."""
    pid = o._conn.get_server_pid()
    await admin.execute("SELECT pg_terminate_backend($1)", pid)
    for _ in range(500):  # the backend ends (and its locks go) a moment after the signal
        if not await admin.fetchval("SELECT count(*) FROM pg_locks WHERE pid = $1", pid):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"backend {pid} still holds locks")


async def held_by(admin, uids) -> dict[str, int]:
    """zone -> the server pid of the session holding its lock."""
    keys = {daemon_store.zone_lock_key(u) & MASK: u for u in uids}
    rows = await admin.fetch(
        """SELECT (classid::bigint << 32) | objid::bigint AS k, pid FROM pg_locks
           WHERE locktype = 'advisory' AND objsubid = 1 AND granted"""
    )
    return {keys[r["k"] & MASK]: r["pid"] for r in rows if r["k"] & MASK in keys}


async def test_a_lone_daemon_takes_every_zone_at_once(owners):
    z = zones(3)
    a = owners(z)
    assert await a.refresh() == (set(z), set())
    assert a.owned == set(z) and a.connected
    assert await a.refresh() == (set(), set())
    await a.close()
    assert a.owned == set()


async def test_a_dead_daemons_zones_are_taken_within_one_refresh(owners, admin):
    z = zones(4)
    a, b = owners(z), owners(z)
    await a.refresh()
    assert await b.refresh() == (set(), set())  # everything is held
    await kill(admin, a)
    gained, lost = await b.refresh()
    assert gained == set(z) and lost == set()
    # the old owner learns at its next look that its zones are gone, and keeps none of them
    assert await a.confirm() == set(z)
    assert a.owned == set() and a.connected
    held = await held_by(admin, z)
    assert set(held.values()) == {b._conn.get_server_pid()}


async def test_a_closed_daemon_lets_its_zones_go(owners):
    z = zones(2)
    a, b = owners(z), owners(z)
    await a.refresh()
    await a.close()
    assert (await b.refresh())[0] == set(z)


async def test_fair_share_and_free_for_two_refreshes(owners, admin):
    z = zones(4)
    a, b = owners(z), owners(z)
    await beat(admin, a)
    await beat(admin, b)
    ga, _ = await a.refresh()
    gb, _ = await b.refresh()
    assert len(ga) == len(gb) == 2 and ga.isdisjoint(gb)
    assert a.share() == b.share() == 2
    await kill(admin, a)  # its beat is still fresh: b has its share and waits
    assert await b.refresh() == (set(), set())  # free once
    gained, _ = await b.refresh()  # free at 2 refreshes in a row: taken whatever the share
    assert gained == ga and b.owned == set(z)


async def test_max_zones_caps_what_a_daemon_takes(owners):
    z = zones(3)
    a, b = owners(z, max_zones=2), owners(z)
    assert len((await a.refresh())[0]) == 2
    await a.refresh()
    await a.refresh()
    assert len(a.owned) == 2
    assert len((await b.refresh())[0]) == 1


async def test_the_database_unreachable_keeps_the_zones_and_a_new_session_retakes_them(owners, admin, database_url):
    z = zones(3)
    a = owners(z)
    await a.refresh()
    a.dsn = "postgresql://nobody@127.0.0.1:9/none"  # nothing listens: the database is gone for this daemon
    a.connect_timeout_s = 1
    await kill(admin, a)
    assert await a.refresh() == (set(), set())
    assert a.owned == set(z) and not a.connected  # controls from memory meanwhile
    # another daemon takes one zone while a cannot reach the database
    b = owners(z[:1])
    assert (await b.refresh())[0] == {z[0]}
    a.dsn = database_url
    gained, lost = await a.refresh()
    assert lost == {z[0]} and gained == set()  # dropped at once
    assert a.owned == set(z[1:]) and a.connected
    held = await held_by(admin, z)
    assert held[z[1]] == held[z[2]] == a._conn.get_server_pid() and held[z[0]] == b._conn.get_server_pid()


async def test_a_reload_without_a_zone_lets_it_go(owners):
    z = zones(3)
    a, b = owners(z), owners(z)
    await a.refresh()
    a.set_zones(z[:2])
    assert a.owned == set(z[:2])
    assert await a.refresh() == (set(), {z[2]})
    assert (await b.refresh())[0] == {z[2]}


async def test_never_two_owners_whatever_happens(owners, admin):
    """Random refreshes and killed sessions of three daemons: after its refresh, what a daemon
    owns is held by its own session, and no zone is ever owned by two daemons at once."""
    rnd = random.Random(9)
    z = zones(6)
    ds = [owners(z) for _ in range(3)]
    for d in ds:
        await beat(admin, d)
    for _ in range(60):
        d = rnd.choice(ds)
        if rnd.random() < 0.25 and d._conn is not None:
            await kill(admin, d)
            continue
        await d.refresh()
        held = await held_by(admin, z)
        pid = d._conn.get_server_pid()
        assert all(held.get(u) == pid for u in d.owned)
        for x in ds:  # each daemon looks before it commands (a killed session learns it here)
            await x.confirm()
        for i, x in enumerate(ds):
            for y in ds[i + 1 :]:
                assert x.owned.isdisjoint(y.owned), (x.owned, y.owned)
    for d in ds:
        await d.refresh()
    assert set().union(*(d.owned for d in ds)) == set(z)  # and none left without an owner


async def test_a_confirm_during_a_refresh_waits_its_turn(owners):
    z = zones(3)
    a = owners(z)
    results = await asyncio.gather(a.refresh(), a.confirm(), a.refresh(), a.confirm())
    assert results[0] == (set(z), set()) and results[2] == (set(), set())
    assert a.owned == set(z)


async def test_a_session_the_server_keeps_after_we_lost_it_is_ended_and_the_zones_retaken(owners, admin):
    """A half-open link: the daemon gave its connection up, the server still holds the session and its
    locks (until TCP gives up, hours later). The new session ends the old one and takes the zones again."""
    z = zones(2)
    a = owners(z)
    await a.refresh()
    zombie = a._conn
    a._conn = None  # lost to us, alive to the server
    try:
        assert await a.confirm() == set()
        assert a.owned == set(z) and a.connected
        held = await held_by(admin, z)
        assert set(held.values()) == {a._conn.get_server_pid()}
        assert zombie.get_server_pid() not in {r["pid"] for r in await admin.fetch("SELECT pid FROM pg_stat_activity")}
    finally:
        zombie.terminate()


async def test_a_database_that_does_not_answer_holds_a_refresh_briefly(owners, admin):
    """A black-holed database (nothing answers, nothing refuses): the attempt goes on in the
    background and each call returns after reconnect_wait_s, keeping the zones."""
    z = zones(1)
    a = owners(z, reconnect_wait_s=0.2)
    await a.refresh()
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(0)  # accepts the TCP connection, never speaks PostgreSQL
    try:
        dsn = a.dsn
        a.dsn = f"postgresql://nobody@127.0.0.1:{silent.getsockname()[1]}/none"
        await kill(admin, a)
        t0 = asyncio.get_running_loop().time()
        assert await a.refresh() == (set(), set())
        assert asyncio.get_running_loop().time() - t0 < 2.0
        assert a.owned == set(z) and not a.connected
        a.dsn = dsn
        a._connecting.cancel()  # (the attempt to the silent port would give up after connect_timeout_s)
        a._connecting = None
        assert await a.refresh() == (set(), set())
        assert a.connected and a.owned == set(z)
    finally:
        silent.close()
