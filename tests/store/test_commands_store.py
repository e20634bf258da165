"""Command statuses move forward only; responses are idempotent; late answers do not revive a command."""

from datetime import UTC, datetime, timedelta

import pytest

from hydro_rules.store import commands as C

from .util import ids

pytestmark = pytest.mark.anyio


async def _cmd(conn, cmd_id="c-1", cmd="run_pump", params=None):
    k = await ids(conn)
    return await C.create(
        conn,
        cmd_id=cmd_id,
        zone_id=k["zn-1"],
        node_id=k["nd-pump-1"],
        channel="pump_recirc",
        channel_key="pump_recirc",
        cmd=cmd,
        params=params if params is not None else {"duration_ms": 2500},
        ruleset_version="rs@1",
        rule="test",
    )


async def _respond(conn, status, cmd_id="c-1", ts=1710003399.123, error_code=None, node="nd-pump-1"):
    k = await ids(conn)
    payload = {"cmd_id": cmd_id, "status": status, "ts": int(ts * 1000)}
    return await C.apply_response(
        conn,
        node_id=k[node],
        cmd_id=cmd_id,
        status=status,
        ts=datetime.fromtimestamp(ts, UTC),
        error_code=error_code,
        error_message=None,
        details={"result": status.lower()},
        payload=payload,
    )


async def test_sent_ack_done(db):
    async with db.acquire() as conn:
        assert (await _cmd(conn))["status"] == "queued"
        await C.mark_sent(conn, "c-1")
        assert (await _respond(conn, "ACK", ts=1)).command["status"] == "ack"
        r = await _respond(conn, "DONE", ts=2)
        assert r.applied and r.command["status"] == "done" and r.command["node_status"] == "DONE"
        row = await C.get(conn, "c-1")
        assert row["sent_at"] <= row["ack_at"] <= row["done_at"]


async def test_duplicates_and_backward_moves_change_nothing(db):
    async with db.acquire() as conn:
        await _cmd(conn)
        await C.mark_sent(conn, "c-1")
        await _respond(conn, "DONE", ts=2)
        dup = await _respond(conn, "DONE", ts=2)
        assert dup.duplicate and not dup.applied
        ack_late = await _respond(conn, "ACK", ts=1)  # ACK overtaken by DONE
        assert not ack_late.applied and (await C.get(conn, "c-1"))["status"] == "done"
        err = await _respond(conn, "ERROR", ts=3, error_code="overcurrent")
        assert not err.applied and (await C.get(conn, "c-1"))["status"] == "done"
        assert await conn.fetchval("SELECT count(*) FROM command_responses") == 3


async def test_a_response_before_mark_sent_is_kept(db):
    """The node may answer before the publisher records `sent`; the answer must not be lost."""
    async with db.acquire() as conn:
        await _cmd(conn)
        await _respond(conn, "DONE")
        await C.mark_sent(conn, "c-1")
        row = await C.get(conn, "c-1")
        assert row["status"] == "done" and row["sent_at"] is not None


async def test_error_statuses_fail_the_command(db):
    async with db.acquire() as conn:
        for i, status in enumerate(("ERROR", "INVALID", "BUSY", "TIMEOUT")):
            await _cmd(conn, f"e-{i}")
            r = await _respond(conn, status, cmd_id=f"e-{i}", error_code="overcurrent" if status == "ERROR" else None)
            assert r.command["status"] == "failed", status
        assert (await C.get(conn, "e-0"))["error_code"] == "overcurrent"
        await _cmd(conn, "n-1", cmd="set_relay", params={"state": True})
        assert (await _respond(conn, "NO_EFFECT", cmd_id="n-1")).command["status"] == "done"


async def test_late_response_after_timeout_is_recorded_without_reviving(db):
    async with db.acquire() as conn:
        await _cmd(conn)
        await C.mark_sent(conn, "c-1")
        timed_out = await C.mark_timeouts(conn, datetime.now(UTC) + timedelta(seconds=61), response_timeout_s=60)
        assert [t["cmd_id"] for t in timed_out] == ["c-1"] and timed_out[0]["zone_uid"] == "zn-1"
        late = await _respond(conn, "DONE")
        assert late.late and not late.applied
        row = await C.get(conn, "c-1")
        assert row["status"] == "timeout" and row["late_response_at"] is not None
        assert row["details"]["late_response"]["status"] == "DONE"


async def test_timeouts_give_an_acknowledged_run_its_duration(db):
    async with db.acquire() as conn:
        await _cmd(conn, "long", params={"duration_ms": 600_000})
        await C.mark_sent(conn, "long")
        await _respond(conn, "ACK", cmd_id="long")
        now = datetime.now(UTC)
        assert await C.mark_timeouts(conn, now + timedelta(seconds=120), response_timeout_s=60) == []
        assert [
            t["cmd_id"] for t in await C.mark_timeouts(conn, now + timedelta(seconds=700), response_timeout_s=60)
        ] == ["long"]
        assert await C.mark_timeouts(conn, now + timedelta(days=1)) == []  # terminal stays terminal


async def test_a_response_from_another_node_is_not_applied(db):
    async with db.acquire() as conn:
        await _cmd(conn)
        r = await _respond(conn, "DONE", node="nd-ph-1")
        assert r.foreign and not r.applied and (await C.get(conn, "c-1"))["status"] == "queued"
        own = await _respond(conn, "DONE", ts=2)
        assert own.applied and not own.foreign


async def test_unknown_command_and_duplicate_ids(db):
    async with db.acquire() as conn:
        r = await _respond(conn, "DONE", cmd_id="nobody")
        assert r.command is None
        await _cmd(conn)
        with pytest.raises(C.CommandExists):
            await _cmd(conn)
