"""Command statuses move forward only: every way a command ends, against every path that writes a status.

A command ends `done` (DONE, NO_EFFECT), `failed` (a node's ERROR, INVALID, BUSY or TIMEOUT, or
`mark_failed` when it could not be published) or `timeout` (the sweep, before or after an ACK).
After that, the sweep, `mark_failed`, `mark_sent`, every response word (late, then again as a
duplicate) and a response from another node leave its status and stamps as they were.
"""

from datetime import UTC, datetime, timedelta

import pytest

from hydro_rules.store import commands as C

from .test_commands_store import _cmd, _respond

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
STAMPS = ("status", "node_status", "done_at", "failed_at", "timeout_at", "ack_at", "error_code", "error_message")
WORDS = ("ACK", "DONE", "NO_EFFECT", "ERROR", "INVALID", "BUSY", "TIMEOUT")


async def _end(conn, how: str) -> None:
    """Bring c-1 (created at T0, sent) to its end the way `how` says."""
    await _cmd(conn, created_at=T0)
    await C.mark_sent(conn, "c-1", T0)
    kind, _, word = how.partition(":")
    if kind == "node":
        await _respond(conn, word, ts=5, error_code="overcurrent" if word == "ERROR" else None)
    elif kind == "acked":
        await _respond(conn, "ACK", ts=4)
        if word == "sweep":
            # the ACK is stamped by the database's clock: its run is over a day from now
            assert [c["cmd_id"] for c in await C.mark_timeouts(conn, datetime.now(UTC) + timedelta(days=1))] == ["c-1"]
        else:
            await _respond(conn, word, ts=5)
    elif kind == "publish":
        assert await C.mark_failed(conn, "c-1", "mqtt_unavailable", "the broker is gone", T0)
    elif kind == "sweep":
        assert [c["cmd_id"] for c in await C.mark_timeouts(conn, T0 + timedelta(seconds=60))] == ["c-1"]


ENDS = {
    "node:DONE": "done",
    "node:NO_EFFECT": "done",
    "acked:DONE": "done",
    "node:ERROR": "failed",
    "node:INVALID": "failed",
    "node:BUSY": "failed",
    "node:TIMEOUT": "failed",
    "acked:ERROR": "failed",
    "publish:": "failed",
    "sweep:": "timeout",
    "acked:sweep": "timeout",
}


@pytest.mark.parametrize("how", list(ENDS))
async def test_a_terminal_status_stays_against_sweep_mark_failed_mark_sent_responses_and_duplicates(db, how):
    async with db.acquire() as conn:
        await _end(conn, how)
        before = await C.get(conn, "c-1")
        assert before["status"] == ENDS[how]

        far = max(T0, datetime.now(UTC)) + timedelta(days=30)
        assert await C.mark_timeouts(conn, far, response_timeout_s=0.001) == [], "sweep"
        assert not await C.mark_failed(conn, "c-1", "mqtt_unavailable", "gone"), "mark_failed"
        assert await C.mark_sent(conn, "c-1")  # the row is there; its status is not the publisher's to move
        for i, word in enumerate(WORDS):
            r = await _respond(conn, word, ts=100 + i, error_code="overcurrent" if word == "ERROR" else None)
            assert not r.applied and not r.duplicate, word
            assert r.late == (word != "ACK" or before["status"] == "timeout"), word
            again = await _respond(conn, word, ts=100 + i)
            assert again.duplicate and not again.applied, word
        other = await _respond(conn, "DONE", ts=200, node="nd-ph-1")
        assert other.foreign and not other.applied

        after = await C.get(conn, "c-1")
        kept = [k for k in STAMPS if k != "node_status" or ENDS[how] != "timeout"]  # after a timeout: the late word
        assert {k: after[k] for k in kept} == {k: before[k] for k in kept}
        assert after["late_response_at"] is not None, "what came after the end is on the record"
        failures = await C.failure_times(conn, after["zone_id"], T0 - timedelta(hours=1))
        assert failures == (
            {} if ENDS[how] == "done" else {"pump_recirc": [(after["failed_at"] or after["timeout_at"]).timestamp()]}
        )


async def test_a_second_ack_does_not_move_an_acknowledged_command_or_its_timeout(db):
    """An ACK repeated with another timestamp is no duplicate, but it must not restart the run's clock."""
    async with db.acquire() as conn:
        await _cmd(conn, created_at=T0)
        await C.mark_sent(conn, "c-1", T0)
        for ts, late in ((1, 1), (2, 40)):
            r = await C.apply_response(
                conn,
                node_uid="nd-pump-1",
                cmd_id="c-1",
                status="ACK",
                ts=T0 + timedelta(seconds=ts),
                error_code=None,
                error_message=None,
                details=None,
                payload={"status": "ACK", "ts": ts},
                at=T0 + timedelta(seconds=late),
            )
            assert r.applied == (ts == 1) and not r.duplicate
        assert (await C.get(conn, "c-1"))["ack_at"] == T0 + timedelta(seconds=1)
        # 60 s response timeout + the run's 2.5 s, from the first ACK
        assert await C.mark_timeouts(conn, T0 + timedelta(seconds=63.4)) == []
        assert [c["cmd_id"] for c in await C.mark_timeouts(conn, T0 + timedelta(seconds=63.5))] == ["c-1"]


@pytest.mark.parametrize("status", ["queued", "sent", "ack"])
async def test_every_status_short_of_terminal_can_still_fail_or_time_out(db, status):
    async with db.acquire() as conn:
        for cmd_id in ("f", "t"):
            await _cmd(conn, cmd_id, created_at=T0)
            if status != "queued":
                await C.mark_sent(conn, cmd_id, T0)
            if status == "ack":
                await _respond(conn, "ACK", cmd_id=cmd_id, ts=1)
            assert (await C.get(conn, cmd_id))["status"] == status
        assert await C.mark_failed(conn, "f", "mqtt_unavailable", "the broker is gone")
        assert (await C.get(conn, "f"))["status"] == "failed"
        far = max(T0, datetime.now(UTC)) + timedelta(days=1)
        assert [c["cmd_id"] for c in await C.mark_timeouts(conn, far)] == ["t"]
