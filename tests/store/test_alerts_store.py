"""Alerts: one active row per zone, code and channel; repeats count; resolution records who and why."""

import pytest

from hydro_rules.store import alerts as A

from .util import ids

pytestmark = pytest.mark.anyio


async def _raise(conn, code="biz_overcurrent", channel="pump_recirc", **kw):
    k = await ids(conn)
    return await A.raise_alert(
        conn,
        zone_id=k["zn-1"],
        source="biz",
        code=code,
        type="Pump overcurrent",
        severity="critical",
        channel=channel,
        locks=True,
        **kw,
    )


async def test_repeats_of_an_active_alert_count_occurrences(db):
    async with db.acquire() as conn:
        first = await _raise(conn, details={"current_ma": 2300})
        second = await _raise(conn, details={"current_ma": 2500})
        assert first.created and not second.created and second.id == first.id and second.occurrences == 2
        other_channel = await _raise(conn, channel="pump_drain")
        assert other_channel.created
        row = await conn.fetchrow("SELECT * FROM alerts WHERE id = $1", first.id)
        assert row["details"] == {"current_ma": 2500} and row["status"] == "ACTIVE"
        assert row["last_seen_at"] >= row["first_seen_at"]


async def test_after_resolution_the_same_problem_is_a_new_alert(db):
    async with db.acquire() as conn:
        first = await _raise(conn)
        k = await ids(conn)
        assert (
            await A.resolve(
                conn,
                zone_id=k["zn-1"],
                code="biz_overcurrent",
                dedup_key="pump_recirc",
                by="anna",
                reason="pump replaced",
            )
            == first.id
        )
        row = await conn.fetchrow("SELECT * FROM alerts WHERE id = $1", first.id)
        assert (row["status"], row["resolved_by"], row["resolved_reason"]) == ("RESOLVED", "anna", "pump replaced")
        again = await _raise(conn)
        assert again.created and again.id != first.id


async def test_resolve_codes_for_a_safety_reset(db):
    async with db.acquire() as conn:
        await _raise(conn)
        await _raise(conn, code="biz_dry_run")
        await _raise(conn, code="biz_high_ph", channel=None)
        k = await ids(conn)
        done = await A.resolve_codes(conn, k["zn-1"], ["biz_overcurrent", "biz_dry_run"], by="op", reason="fixed")
        assert sorted(a["code"] for a in done) == ["biz_dry_run", "biz_overcurrent"]
        active = await A.list_alerts(conn, zone_id=k["zn-1"], status="ACTIVE")
        assert [a["code"] for a in active] == ["biz_high_ph"]


async def test_infra_alerts_without_zone_deduplicate_too(db):
    async with db.acquire() as conn:
        for _ in range(3):
            r = await A.raise_alert(
                conn, zone_id=None, source="infra", code="infra_unknown_metric", type="x", dedup_key="nd-x/ORP"
            )
        assert r.occurrences == 3


async def test_the_same_failed_command_reported_twice_is_one_occurrence(db):
    async with db.acquire() as conn:
        await _raise(conn, details={"cmd_id": "c-1", "current_ma": 2300})
        again = await _raise(conn, details={"error_code": "overcurrent", "cmd_id": "c-1"})
        assert again.occurrences == 1
        assert (await _raise(conn, details={"cmd_id": "c-2"})).occurrences == 2
