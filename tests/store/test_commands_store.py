"""Command statuses move forward only; responses are idempotent; late answers do not revive a command."""

from datetime import UTC, datetime, timedelta

import pytest

from hydro_rules.store import commands as C

from .util import ids

pytestmark = pytest.mark.anyio


async def _cmd(conn, cmd_id="c-1", cmd="run_pump", params=None, **extra):
    """A command on zn-1's recirculation pump; `extra` goes to commands.create as it is."""
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
        **extra,
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


# ---- commands end (issue 8); a terminal status stays terminal: test_command_statuses.py ------------------
async def _ended(conn, how: str, cmd_id: str = "c-1") -> dict:
    """A command brought to a terminal status: done, failed, or timeout."""
    await _cmd(conn, cmd_id)
    await C.mark_sent(conn, cmd_id)
    if how == "done":
        await _respond(conn, "DONE", cmd_id=cmd_id, ts=5)
    elif how == "failed":
        await _respond(conn, "ERROR", cmd_id=cmd_id, ts=5, error_code="overcurrent")
    else:
        await C.mark_timeouts(conn, datetime.now(UTC) + timedelta(hours=1))
    row = await C.get(conn, cmd_id)
    assert row["status"] == how
    return row


async def test_each_command_times_out_at_its_own_response_timeout(db):
    t0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    async with db.acquire() as conn:
        for cmd_id, timeout in (("fast", 5.0), ("slow", 90.0), ("old", None)):
            await _cmd(conn, cmd_id, "set_relay", {"state": False}, response_timeout_s=timeout, created_at=t0)
        tick = timedelta(microseconds=1)
        assert await C.mark_timeouts(conn, t0 + timedelta(seconds=5) - tick, response_timeout_s=60) == []
        [fast] = await C.mark_timeouts(conn, t0 + timedelta(seconds=5), response_timeout_s=60)
        assert fast["cmd_id"] == "fast" and fast["timeout_at"] == t0 + timedelta(seconds=5)
        assert await C.mark_timeouts(conn, t0 + timedelta(seconds=60) - tick, response_timeout_s=60) == []
        assert [
            c["cmd_id"] for c in await C.mark_timeouts(conn, t0 + timedelta(seconds=60), response_timeout_s=60)
        ] == [
            "old"  # stored without a timeout of its own: the sweep's
        ]
        assert [c["cmd_id"] for c in await C.mark_timeouts(conn, t0 + timedelta(seconds=90))] == ["slow"]


async def test_a_response_from_an_unknown_sender_is_foreign_and_does_not_hide_the_real_one(db):
    async with db.acquire() as conn:
        await _cmd(conn)
        await C.mark_sent(conn, "c-1")
        ts = datetime.fromtimestamp(1710003399.123, UTC)
        common = dict(cmd_id="c-1", status="DONE", ts=ts, error_code=None, error_message=None, details=None)
        ghost = await C.apply_response(conn, node_uid="nd-ghost", payload={"from": "ghost"}, **common)
        assert ghost.foreign and not ghost.applied and (await C.get(conn, "c-1"))["status"] == "sent"
        with pytest.raises(ValueError):
            await C.apply_response(conn, payload={}, **common)  # a response names its sender
        real = await C.apply_response(conn, node_uid="nd-pump-1", payload={"from": "real"}, **common)
        assert real.applied and not real.duplicate and real.command["status"] == "done"
        rows = await C.responses(conn, "c-1")
        assert [(r["sender_uid"], r["foreign"], r["applied"]) for r in rows] == [
            ("nd-ghost", True, False),
            ("nd-pump-1", False, True),
        ]


async def test_a_late_error_after_done_is_recorded_and_flagged_without_moving_the_command(db):
    async with db.acquire() as conn:
        await _ended(conn, "done")
        r = await _respond(conn, "ERROR", ts=9, error_code="overcurrent")
        assert r.late and r.late_error and r.ended_as == "done" and not r.applied
        row = await C.get(conn, "c-1")
        assert (row["status"], row["node_status"], row["error_code"]) == ("done", "DONE", None)
        assert row["details"]["late_response"]["status"] == "ERROR"
        ack = await _respond(conn, "ACK", ts=1)  # an ACK overtaken by DONE is not late news
        assert not ack.late and not ack.late_error
        await _ended(conn, "timeout", "c-2")
        assert not (await _respond(conn, "ERROR", cmd_id="c-2", ts=9)).late_error  # after a timeout: its answer


async def test_refusals_are_recorded_and_listed_newest_first(db):
    async with db.acquire() as conn:
        first = await C.record_refusal(
            conn, http_status=403, code="insufficient_scope", message="needs operator", token_name="t-read"
        )
        second = await C.record_refusal(
            conn,
            http_status=409,
            code="guard_refused",
            message="reservoir_has_water: water level below the dry-run minimum",
            token_name="t-op",
            token_scopes=["operator"],
            zone_uid="zn-1",
            channel="pump_recirc",
            cmd="set_relay",
            params={"state": True},
            guard="reservoir_has_water",
        )
        rows = await C.list_refusals(conn)
        assert [r["id"] for r in rows] == [second["id"], first["id"]]
        assert [r["id"] for r in await C.list_refusals(conn, zone_uid="zn-1")] == [second["id"]]
        assert rows[0]["params"] == {"state": True} and rows[0]["token_scopes"] == ["operator"]


async def test_a_restart_is_re_asserted_once_on_done_and_closed_when_the_node_is_seen_booted(db):
    sent = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    async with db.acquire() as conn:
        await _cmd(conn, "rs-1", "restart", {}, reassert_channels=["pump_recirc"], created_at=sent)
        await C.mark_sent(conn, "rs-1", sent)
        booted = "UPDATE nodes SET last_heartbeat_at = $1, uptime_s = $2 WHERE uid = 'nd-pump-1'"
        await conn.execute(booted, sent + timedelta(seconds=5), 3600)  # the old boot
        assert await C.claim_reassertions(conn, sent + timedelta(seconds=6)) == []
        await _respond(conn, "DONE", cmd_id="rs-1")
        [on_done] = await C.claim_reassertions(conn, sent + timedelta(seconds=7))
        assert on_done["reassert_channels"] == ["pump_recirc"] and not on_done["booted"]
        assert on_done["zone_uid"] == "zn-1" and on_done["node_uid"] == "nd-pump-1"
        assert await C.claim_reassertions(conn, sent + timedelta(seconds=8)) == []  # DONE re-asserts once
        await conn.execute(booted, sent + timedelta(seconds=12), 2)  # booted 10 s after the restart was sent
        [on_boot] = await C.claim_reassertions(conn, sent + timedelta(seconds=13))
        assert on_boot["booted"]
        row = await C.get(conn, "rs-1")
        assert not row["reassert_open"] and row["reasserted_at"] == sent + timedelta(seconds=13)
        assert await C.claim_reassertions(conn, sent + timedelta(seconds=14)) == []
