"""Tokens are stored hashed and checked in constant time; node registration, hello and liveness."""

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from hydro_rules.store import nodes, tokens

pytestmark = pytest.mark.anyio


async def test_tokens_are_hashed_verified_and_revocable(db):
    async with db.acquire() as conn:
        token, info = await tokens.create(conn, "ci", ["ingest", "read"])
        assert token.startswith(f"hr_{info.prefix}_")
        stored = await conn.fetchrow("SELECT * FROM api_tokens")
        assert token.encode() not in bytes(stored["token_hash"]) and token not in str(dict(stored))
        assert (await tokens.verify(conn, token)).scopes == {"ingest", "read"}
        assert await tokens.verify(conn, token[:-1] + ("A" if token[-1] != "A" else "B")) is None
        assert await tokens.verify(conn, "hr_nothing") is None
        assert await tokens.revoke(conn, info.prefix)
        assert await tokens.verify(conn, token) is None
        with pytest.raises(ValueError):
            await tokens.create(conn, "x", ["admin"])


async def test_a_revocation_is_announced_when_it_commits(db, database_url):
    """NOTIFY hydro_tokens carries the prefix, sent in the revoking transaction: a rolled-back one says nothing."""
    heard: asyncio.Queue[str] = asyncio.Queue()
    listener = await asyncpg.connect(database_url)
    await listener.add_listener(tokens.REVOKED, lambda _c, _pid, _ch, prefix: heard.put_nowait(prefix))
    try:
        async with db.acquire() as conn:
            token, info = await tokens.create(conn, "ci", ["read"])
            with pytest.raises(RuntimeError):
                async with conn.transaction():
                    assert await tokens.revoke(conn, info.prefix)
                    raise RuntimeError("rolled back")
            assert await tokens.verify(conn, token) is not None
            assert await tokens.revoke(conn, info.prefix)
            assert not await tokens.revoke(conn, info.prefix)  # only once
        assert await asyncio.wait_for(heard.get(), 2) == info.prefix
        await listener.execute("SELECT 1")  # anything more would have arrived before this answer
        assert heard.empty()
    finally:
        await listener.close()


async def test_register_validates_binds_and_gives_a_secret_once(db):
    async with db.acquire() as conn:
        await conn.execute("UPDATE nodes SET validated = false, secret = NULL WHERE uid = 'nd-ph-1'")
        node, secret = await nodes.register(conn, "nd-ph-1", firmware_version="2.0.1", hardware_revision="v1.0")
        assert node["validated"] and node["zone_uid"] == "zn-1" and len(secret) == 64
        assert node["first_seen_at"] is not None and node["firmware_version"] == "2.0.1"
        again, secret2 = await nodes.register(conn, "nd-ph-1", firmware_version="2.0.2")
        assert secret2 is None and again["secret"] == secret and again["first_seen_at"] == node["first_seen_at"]
        new, _ = await nodes.register(conn, "nd-new-1", zone_uid="zn-2")
        assert new["zone_uid"] == "zn-2" and new["validated"]
        with pytest.raises(nodes.UnknownZone):
            await nodes.register(conn, "nd-new-2", zone_uid="zn-9")


async def _hello(conn, hardware_id, at, **facts):
    """A factory-fresh pH node's hello (facts override what it says)."""
    said = {"node_uid": None, "node_type": "ph", "firmware_version": "2.0.1", "hardware_revision": "v1"}
    return await nodes.hello(conn, hardware_id=hardware_id, at=at, **{"capabilities": ["ph"], **said, **facts})


async def test_hello_creates_an_unvalidated_node_that_registration_takes_over(db):
    now = datetime.now(UTC)
    async with db.acquire() as conn:
        node, created = await _hello(conn, "esp32-AB", now)
        assert created and node["uid"] == "esp32-AB" and not node["validated"]
        _, created = await _hello(
            conn, "esp32-AB", now, firmware_version="2.0.2", hardware_revision=None, capabilities=None
        )
        assert not created
        reg, _ = await nodes.register(conn, "nd-ph-9", zone_uid="zn-1", hardware_id="esp32-AB")
        assert reg["hardware_id"] == "esp32-AB"
        # a node that says who it is (its node-level hello topic) is found by uid
        known, created = await nodes.hello(
            conn,
            hardware_id="esp32-CD",
            node_uid="nd-ec-1",
            node_type="ec",
            firmware_version="3.0.0",
            hardware_revision=None,
            capabilities=None,
            at=now,
        )
        assert not created and known["uid"] == "nd-ec-1" and known["validated"]
        assert (known["hardware_id"], known["firmware_version"], known["zone_uid"]) == ("esp32-CD", "3.0.0", "zn-1")


async def test_heartbeat_detects_reboots(db):
    now = datetime.now(UTC)
    async with db.acquire() as conn:
        for uptime in (100, 160, 220):
            hb = await nodes.heartbeat(
                conn, "nd-ph-1", uptime=uptime, free_heap=1, rssi=-60, firmware_version="1", at=now
            )
            assert not hb.rebooted
        hb = await nodes.heartbeat(conn, "nd-ph-1", uptime=5, free_heap=1, rssi=-60, firmware_version="1", at=now)
        assert hb.rebooted and hb.previous_uptime == 220
        ev = await conn.fetchrow("SELECT * FROM zone_events")
        assert ev["type"] == "NODE_REBOOTED" and ev["details"]["previous_uptime"] == 220
        assert not (
            await nodes.heartbeat(conn, "nd-nobody", uptime=1, free_heap=None, rssi=None, firmware_version=None, at=now)
        ).known
        assert (await nodes.get(conn, "nd-ph-1"))["status"] == "ONLINE"


async def test_status_changes_follow_time_and_stale_wills_are_ignored(db):
    now = datetime.now(UTC)
    async with db.acquire() as conn:
        assert await nodes.set_status(conn, "nd-ph-1", "ONLINE", now)
        assert not await nodes.set_status(conn, "nd-ph-1", "OFFLINE", now - timedelta(minutes=5))  # older
        assert (await nodes.get(conn, "nd-ph-1"))["status"] == "ONLINE"
        # a retained will at subscribe time, for a node seen just now: not believed
        assert not await nodes.set_status(
            conn, "nd-ph-1", "OFFLINE", now + timedelta(seconds=1), only_if_silent_since=now - timedelta(minutes=2)
        )
        assert await nodes.set_status(conn, "nd-ph-1", "OFFLINE", now + timedelta(seconds=2))
        assert await nodes.set_status(conn, "nd-nobody", "ONLINE", now) is None


async def test_validation_takes_over_the_record_a_hello_and_an_early_status_made(db):
    now = datetime(2026, 5, 1, 12, tzinfo=UTC)
    async with db.acquire() as conn:
        # the status overtook the hello: a pending record by hardware id keeps it
        uid = await nodes.for_hardware(conn, "esp32-P1", now)
        assert uid == "esp32-P1" and await nodes.set_status(conn, uid, "ONLINE", now)
        hello, created = await _hello(conn, "esp32-P1", now)
        assert not created and (hello["uid"], hello["status"], hello["node_type"]) == ("esp32-P1", "ONLINE", "ph")
        assert await nodes.for_hardware(conn, "esp32-P1", now) == "esp32-P1"
        # the operator names it after the rule set's nd-ph-1 (a synced record without hardware): one record left
        node, _ = await nodes.register(conn, "nd-ph-1", hardware_id="esp32-P1")
        assert (node["hardware_id"], node["node_type"], node["status"], node["zone_uid"]) == (
            "esp32-P1",
            "ph",
            "ONLINE",
            "zn-1",
        )
        assert await nodes.get(conn, "esp32-P1") is None
        assert await nodes.for_hardware(conn, "esp32-P1", now) == "nd-ph-1"
        with pytest.raises(nodes.HardwareTaken):
            await nodes.register(conn, "nd-ec-1", hardware_id="esp32-P1")


async def test_a_hello_only_adds_facts_to_its_own_hardwares_record(db):
    now = datetime(2026, 5, 1, 12, tzinfo=UTC)
    facts = {"node_type": "ec", "firmware_version": "6.6.6", "hardware_revision": None, "capabilities": None, "at": now}
    async with db.acquire() as conn:
        await nodes.register(conn, "nd-ph-1", hardware_id="esp32-PH1", firmware_version="2.0.1")
        await conn.execute("INSERT INTO nodes (uid) VALUES ('esp32-X')")  # a uid that looks like a hardware id
        for hw, uid in (("esp32-OTHER", "nd-ph-1"), ("esp32-PH1", "nd-new-1"), ("esp32-X", None)):
            with pytest.raises(nodes.HelloRefused):
                await nodes.hello(conn, hardware_id=hw, node_uid=uid, **facts)
        ph = await nodes.get(conn, "nd-ph-1")
        assert (ph["hardware_id"], ph["firmware_version"], ph["node_type"]) == ("esp32-PH1", "2.0.1", None)
        assert await nodes.get(conn, "nd-new-1") is None
        assert await conn.fetchval("SELECT count(*) FROM nodes WHERE hardware_id = 'esp32-OTHER'") == 0
