"""End to end (issue 9, item 12): two daemons share a site's zones (PostgreSQL advisory locks), never both
command one zone, and one takes over the zones of the other when it is killed (a takeover is a restart)."""

import pytest

from .conftest import eventually, until

pytestmark = pytest.mark.anyio

ZONES = {"zt-1", "zt-2", "zt-3"}


async def test_two_daemons_never_both_command_a_zone_and_one_takes_over(plant):
    p = await plant()
    await p.start_service()
    await p.start_sim(sorted(ZONES))
    # zones are never taken from a live owner: the first daemon takes at most two, the second the rest
    a = p.spawn_daemon("daemon-a", MAX_ZONES=2)

    async def a_owns_two():
        async with p.db.acquire() as conn:
            zones = await conn.fetchval("SELECT zones FROM daemons WHERE daemon_id = 'daemon-a'")
        return zones and len(zones) == 2

    await eventually(a_owns_two, timeout=30, every=0.2)
    b = await p.start_daemon(daemon_id="daemon-b")

    async def shared():
        async with p.db.acquire() as conn:
            rows = await conn.fetch("SELECT daemon_id, zones FROM daemons WHERE stopped_at IS NULL")
        owned = {r["daemon_id"]: set(r["zones"]) for r in rows}
        if set(owned) != {"daemon-a", "daemon-b"} or not all(owned.values()):
            return None
        if owned["daemon-a"] & owned["daemon-b"] or owned["daemon-a"] | owned["daemon-b"] != ZONES:
            return None
        return owned

    owned = await eventually(shared, timeout=30, every=0.2)
    assert set(b.zones) == owned["daemon-b"]
    a_zones = owned["daemon-a"]
    # both command their zones (a water change starts in zt-1 and zt-3 within seconds)
    await eventually(lambda: _commanded_by(p, "daemon-a"), timeout=20)

    a.kill()
    await until(lambda: set(b.zones) == ZONES, timeout=20)
    for z in a_zones:
        recovery = await eventually(lambda z=z: _kinds(p, z, "recovery"), timeout=10)
        assert recovery

    # never both: per zone, the daemons that decided commands follow each other, never interleave
    for z in ZONES:
        deciders = [x["daemon_id"] for x in await p.decisions(z, kind="command")]
        runs = [who for i, who in enumerate(deciders) if i == 0 or deciders[i - 1] != who]
        assert len(runs) == len(set(runs)), (z, runs)
        if z in a_zones and runs:
            assert runs[-1] == "daemon-b" or runs == ["daemon-a"], (z, runs)


async def _commanded_by(p, daemon_id: str):
    for z in ZONES:
        if any(x["daemon_id"] == daemon_id for x in await p.decisions(z, kind="command")):
            return True
    return False


async def _kinds(p, zone: str, kind: str):
    return [x for x in await p.decisions(zone, kind=kind) if x["daemon_id"] == "daemon-b"]
