"""Daemon heartbeats, zone ownership by advisory locks, and the reads the daemon makes each tick."""

from datetime import UTC, datetime, timedelta

import pytest

from hydro_rules.store import alerts as A
from hydro_rules.store import commands as C
from hydro_rules.store import connect_once
from hydro_rules.store import daemons as DM
from hydro_rules.store import events as E
from hydro_rules.store import telemetry as T

from .util import ids, put

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)


async def test_heartbeats_tell_live_daemons_from_dead_and_stopped_ones(db):
    async with db.acquire() as conn:
        assert await DM.newest_beat(conn) is None
        assert await DM.alive(conn, T0, 10) == []
        await DM.beat(conn, "a", host="h", pid=1, ruleset_version="rs@1", zones=["zn-1"], at=T0)
        await DM.beat(conn, "b", host="h", pid=2, ruleset_version="rs@1", zones=[], at=T0 - timedelta(seconds=30))
        await DM.beat(conn, "a", host="h", pid=1, ruleset_version="rs@2", zones=["zn-1", "zn-2"], at=T0)
        live = await DM.alive(conn, T0 + timedelta(seconds=5), 10)
        assert [(d["daemon_id"], d["ruleset_version"], d["zones"]) for d in live] == [("a", "rs@2", ["zn-1", "zn-2"])]
        # the boundary: a beat exactly `within_s` old is still alive
        assert [d["daemon_id"] for d in await DM.alive(conn, T0 + timedelta(seconds=10), 10)] == ["a"]
        assert await DM.alive(conn, T0 + timedelta(seconds=10.001), 10) == []

        await DM.stopped(conn, "a", T0 + timedelta(seconds=1))
        assert await DM.alive(conn, T0 + timedelta(seconds=1), 10) == []
        assert await DM.newest_beat(conn) == T0  # stopped or not
        row = await conn.fetchrow("SELECT * FROM daemons WHERE daemon_id = 'a'")
        assert row["zones"] == [] and row["stopped_at"] == T0 + timedelta(seconds=1)

        # beating again after a stop is a restart: alive again, a new started_at
        await DM.beat(conn, "a", host="h", pid=7, ruleset_version="rs@2", zones=["zn-1"], at=T0 + timedelta(seconds=9))
        row = await conn.fetchrow("SELECT * FROM daemons WHERE daemon_id = 'a'")
        assert row["stopped_at"] is None and row["pid"] == 7 and row["started_at"] == T0 + timedelta(seconds=9)
        assert await DM.newest_beat(conn) == T0 + timedelta(seconds=9)


def test_zone_lock_keys_are_stable_signed_64_bit_and_distinct():
    keys = {uid: DM.zone_lock_key(uid) for uid in ("zn-1", "zn-2", "zn-10", "a" * 200)}
    assert len(set(keys.values())) == len(keys)
    assert all(-(2**63) <= k < 2**63 for k in keys.values())
    assert DM.zone_lock_key("zn-1") == keys["zn-1"]  # the same in every call (and process: no hash seed)


def test_zone_lock_key_does_not_depend_on_the_process():
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", "from hydro_rules.store.daemons import zone_lock_key; print(zone_lock_key('zn-1'))"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert int(out.stdout) == DM.zone_lock_key("zn-1")


async def test_one_session_wins_a_zone_and_closing_it_frees_the_zone(database_url, db):
    first = await connect_once(database_url)
    second = await connect_once(database_url)
    try:
        assert await DM.try_lock_zone(first, "zn-1")
        assert not await DM.try_lock_zone(second, "zn-1")  # one owner, ever
        assert await DM.try_lock_zone(second, "zn-2")
        assert await DM.locked_zones(first, ["zn-1", "zn-2", "zn-3"]) == {"zn-1", "zn-2"}
        assert await DM.locked_zones(second, []) == set()

        # released explicitly: the other takes it
        assert await DM.unlock_zone(second, "zn-2")
        assert not await DM.unlock_zone(second, "zn-2")  # not held any more
        assert await DM.locked_zones(first, ["zn-1", "zn-2"]) == {"zn-1"}

        # the owner's connection goes (a killed daemon): the zone is free for the other
        await first.close()
        async with db.acquire() as conn:
            assert await DM.locked_zones(conn, ["zn-1"]) == set()
        assert await DM.try_lock_zone(second, "zn-1")
        async with db.acquire() as conn:
            assert await DM.locked_zones(conn, ["zn-1", "zn-2"]) == {"zn-1"}
    finally:
        for c in (first, second):
            if not c.is_closed():
                await c.close()


async def test_locks_survive_transactions_of_the_session(database_url, db):
    owner = await connect_once(database_url)
    other = await connect_once(database_url)
    try:
        async with owner.transaction():
            assert await DM.try_lock_zone(owner, "zn-1")
        assert await DM.try_lock_zone(owner, "zn-1")  # re-entrant for its owner
        assert not await DM.try_lock_zone(other, "zn-1")
    finally:
        await owner.close()
        await other.close()


async def test_statuses_of_outstanding_commands_in_one_read(db):
    async with db.acquire() as conn:
        k = await ids(conn)
        for cmd_id in ("c-1", "c-2"):
            await C.create(
                conn,
                cmd_id=cmd_id,
                zone_id=k["zn-1"],
                node_id=k["nd-drain-1"],
                channel="pump_drain",
                channel_key="pump_drain",
                cmd="set_relay",
                params={"state": False},
                ruleset_version="rs@1",
                rule="state X (rules/a.hydro:1)",
            )
        await C.mark_failed(conn, "c-2", "publish_failed", "broker down", at=T0)
        rows = await C.statuses(conn, ["c-1", "c-2", "nope"])
        assert await C.statuses(conn, []) == []
    by_id = {r["cmd_id"]: r for r in rows}
    assert set(by_id) == {"c-1", "c-2"}
    assert set(by_id["c-1"]) == {
        "cmd_id",
        "status",
        "node_status",
        "error_code",
        "error_message",
        "details",
        "ack_at",
        "done_at",
        "failed_at",
        "timeout_at",
    }
    assert by_id["c-1"]["status"] == "queued"
    assert (by_id["c-2"]["status"], by_id["c-2"]["error_code"], by_id["c-2"]["failed_at"]) == (
        "failed",
        "publish_failed",
        T0,
    )


async def test_latest_many_is_latest_for_each_zone(db):
    now = T0.timestamp()
    async with db.acquire() as conn:
        await put(
            conn,
            [
                (now, "zn-1", "nd-level-1", "water_level", 0.5),
                (now + 1, "zn-1", "nd-level-1", "water_level", 0.4),
                (now, "zn-2", "nd-ph-2", "ph", 6.1),
            ],
        )
        k = await ids(conn)
        many = await T.latest_many(conn, [k["zn-1"], k["zn-2"], 999999])
        assert many == {
            k["zn-1"]: await T.latest(conn, k["zn-1"]),
            k["zn-2"]: await T.latest(conn, k["zn-2"]),
            999999: [],
        }
        assert await T.latest_many(conn, []) == {}
    assert [(r["metric_type"], r["value"]) for r in many[k["zn-1"]]] == [("water_level", 0.4)]


async def test_events_after_a_cursor_by_type_and_zone(db):
    async with db.acquire() as conn:
        k = await ids(conn)
        first = await E.add(conn, zone_id=k["zn-1"], type="SAFETY_RESET", details={"by": "anna", "reason": "fixed"})
        await E.add(conn, zone_id=k["zn-1"], type="NODE_REBOOT", details={})
        await E.add(conn, zone_id=k["zn-2"], type="SAFETY_RESET", details={"by": "bob"})
        third = await E.add(
            conn,
            zone_id=k["zn-1"],
            type="SAFETY_RESET",
            details={"by": "carl"},
            rule="state FAILED (rules/water_cycle.hydro:50)",
        )
        rows = await E.after(conn, [k["zn-1"]], 0, ["SAFETY_RESET"])
        assert [(r["id"], r["details"]["by"]) for r in rows] == [(first, "anna"), (third, "carl")]
        assert set(rows[0]) == {"id", "zone_id", "type", "details", "ts"}
        assert [r["id"] for r in await E.after(conn, [k["zn-1"]], first, ["SAFETY_RESET"])] == [third]
        both = await E.after(conn, [k["zn-1"], k["zn-2"]], 0, ["SAFETY_RESET", "NODE_REBOOT"])
        assert len(both) == 4 and [r["id"] for r in both] == sorted(r["id"] for r in both)
        assert await E.after(conn, [], 0, ["SAFETY_RESET"]) == []
        listed = await E.list_events(conn, k["zn-1"], type="SAFETY_RESET")
        assert [e["rule"] for e in listed] == ["state FAILED (rules/water_cycle.hydro:50)", None]


async def test_alerts_keep_their_causing_rule(db):
    async with db.acquire() as conn:
        k = await ids(conn)
        kw = dict(zone_id=k["zn-1"], source="biz", code="biz_dry_run", type="Dry run", channel="pump_drain")
        raised = await A.raise_alert(conn, **kw, rule="guard dry_run (rules/protect.hydro:12)")
        await A.raise_alert(conn, **kw)  # a repeat without a rule keeps it
        plain = await A.raise_alert(conn, **{**kw, "code": "biz_other"})
        rows = {a["id"]: a for a in await A.list_alerts(conn, zone_id=k["zn-1"])}
    assert rows[raised.id]["rule"] == "guard dry_run (rules/protect.hydro:12)" and rows[raised.id]["occurrences"] == 2
    assert rows[plain.id]["rule"] is None
