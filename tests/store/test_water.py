"""Water usage (§15): a log row per pump run with volume from flow, and daily totals."""

import time
from datetime import UTC, datetime, timedelta

import pytest

from hydro_rules.store import commands as C
from hydro_rules.store import water

from .util import ids, put

pytestmark = pytest.mark.anyio


async def _done(conn, cmd_id, cmd, params, channel="pump_fill", node="nd-fill-1"):
    k = await ids(conn)
    await C.create(
        conn,
        cmd_id=cmd_id,
        zone_id=k["zn-1"],
        node_id=k[node],
        channel=channel,
        channel_key=channel,
        cmd=cmd,
        params=params,
        ruleset_version="rs@1",
        rule="test",
    )
    await C.mark_sent(conn, cmd_id)
    for i, status in enumerate(("ACK", "DONE")):
        await C.apply_response(
            conn,
            node_id=k[node],
            cmd_id=cmd_id,
            status=status,
            ts=datetime.now(UTC) + timedelta(seconds=i),
            error_code=None,
            error_message=None,
            details=None,
            payload={"status": status},
        )
    return await C.get(conn, cmd_id)


async def test_a_run_pump_gets_volume_from_its_flow_readings(db):
    async with db.acquire() as conn:
        cmd = await _done(conn, "fill-1", "run_pump", {"duration_ms": 60_000})
        start = cmd["ack_at"].timestamp()
        await put(
            conn,
            [
                (start + 10, "zn-1", "nd-fill-1", "flow_rate", 10.0),
                (start + 40, "zn-1", "nd-fill-1", "flow_rate", 14.0),
                (start + 300, "zn-1", "nd-fill-1", "flow_rate", 99.0),
            ],
        )  # after the run
        assert await water.log_pump_runs(conn, cmd["ack_at"] + timedelta(seconds=30), grace_s=0) == []  # running
        logs = await water.log_pump_runs(conn, cmd["ack_at"] + timedelta(minutes=2), grace_s=0)
        assert len(logs) == 1
        log = logs[0]
        assert (log["duration_ms"], log["avg_flow_l_min"], log["volume_l"]) == (60_000, 12.0, pytest.approx(12.0))
        daily = await conn.fetchrow("SELECT * FROM water_usage_daily")
        assert (daily["total_volume_l"], daily["irrigation_count"]) == (pytest.approx(12.0), 1)
        assert await water.log_pump_runs(conn, cmd["ack_at"] + timedelta(minutes=5), grace_s=0) == []  # once


async def test_a_relay_run_lasts_from_on_to_off_and_counts_without_flow(db):
    async with db.acquire() as conn:
        await _done(conn, "on-1", "set_relay", {"state": True}, channel="pump_drain", node="nd-drain-1")
        time.sleep(0.05)
        off = await _done(conn, "off-1", "set_relay", {"state": False}, channel="pump_drain", node="nd-drain-1")
        logs = await water.log_pump_runs(conn, off["ack_at"] + timedelta(minutes=1), grace_s=0)
        assert [entry["cmd_id"] for entry in logs] == ["on-1"]
        assert logs[0]["volume_l"] is None and logs[0]["duration_ms"] >= 50
        daily = await conn.fetchrow("SELECT * FROM water_usage_daily")
        assert (daily["total_volume_l"], daily["irrigation_count"]) == (0, 1)


async def test_doser_and_failed_commands_are_not_pump_runs(db):
    async with db.acquire() as conn:
        await _done(conn, "dose-1", "dose", {"ml": 2.0}, channel="dose_ph_down", node="nd-dose-1")
        assert await water.log_pump_runs(conn, datetime.now(UTC) + timedelta(hours=1), grace_s=0) == []


def test_pairing_skips_repeated_starts():
    t = datetime(2026, 1, 1, tzinfo=UTC)

    def c(i, state):
        return {
            "cmd_id": f"c{i}",
            "cmd": "set_relay",
            "params": {"state": state},
            "ack_at": t + timedelta(minutes=i),
            "sent_at": None,
            "created_at": t,
        }

    runs = water.pair_runs([c(0, True), c(1, True), c(2, False), c(3, False), c(4, True)], t + timedelta(hours=1))
    assert [(r["cmd_id"], r["finished_at"] - r["started_at"]) for r in runs] == [("c0", timedelta(minutes=2))]
