"""What a replay reads of a zone's window: its samples (and what telemetry_last held as the window opened),
its commands with how and when they ended, its decision log; nothing of other zones or other times."""

import pytest

from hydro_rules.sim.recording import from_store, read_csv, write_csv
from hydro_rules.store import commands as C
from hydro_rules.store import decisions as D
from hydro_rules.store.recording import zone_window

from .util import at, ids, put

pytestmark = pytest.mark.anyio

T0 = 1_790_000_000.0  # the window's start (2026-09-21T14:13:20Z)
T1 = T0 + 600


async def _command(conn, k, cmd_id, created, cmd="set_relay", params=None):
    return await C.create(
        conn,
        cmd_id=cmd_id,
        zone_id=k["zn-1"],
        node_id=k["nd-pump-1"],
        channel="pump_recirc",
        channel_key="pump_recirc",
        cmd=cmd,
        params=params or {"state": False},
        ruleset_version="rs@1",
        rule="recirculation duty",
        created_at=at(created),
    )


async def _answer(conn, k, cmd_id, status, when, error_code=None):
    await C.apply_response(
        conn, node_id=k["nd-pump-1"], cmd_id=cmd_id, status=status, ts=at(when), error_code=error_code,
        error_message=None, details={"current_ma": 2300} if error_code else None, payload={}, at=at(when),
    )  # fmt: skip


async def test_a_window_of_one_zone(db):
    async with db.acquire() as conn:
        k = await ids(conn)
        await put(
            conn,
            [
                (T0 - 7200, "zn-1", "nd-ph-1", "ph", 5.0),  # older than the lookback (1 h)
                (T0 - 120, "zn-1", "nd-ph-1", "ph", 6.0),  # superseded before the window opens
                (T0 - 60, "zn-1", "nd-ph-1", "ph", 6.1),  # what telemetry_last held at T0
                (T0 - 30, "zn-1", "nd-level-1", "water_level", 0.9, "level_main"),
                (T0, "zn-1", "nd-ph-1", "ph", 6.2),
                (T0 + 5, "zn-1", "nd-level-1", "water_level", 0.8, "level_main"),
                (T0 + 6, "zn-1", "nd-ec-1", "ec", 9.9, None, True),  # a stub: never read by the rules
                (T0 + 7, "zn-2", "nd-ph-2", "ph", 7.0),  # another zone
                (T1, "zn-1", "nd-ph-1", "ph", 6.3),  # the window's end is exclusive
            ],
        )
        await _command(conn, k, "c-before", T0 - 1)
        await _command(conn, k, "c-done", T0 + 10)
        await _answer(conn, k, "c-done", "ACK", T0 + 10.5)
        await _answer(conn, k, "c-done", "DONE", T0 + 11.25)
        await _command(conn, k, "c-fail", T0 + 20, "run_pump", {"duration_ms": 60000})
        await _answer(conn, k, "c-fail", "ERROR", T0 + 21, "overcurrent")
        await _command(conn, k, "c-sent", T0 + 30)
        await C.mark_sent(conn, "c-sent", at(T0 + 30.1))
        await C.mark_timeouts(conn, at(T0 + 120), response_timeout_s=60)
        row = lambda m, kind: D.DecisionRow(k["zn-1"], at(T0 + m), kind, "rs@1", f"{kind} {m}")  # noqa: E731
        await D.add_many(conn, [row(-1, "command"), row(10, "command"), row(599, "transition"), row(600, "event")])
        found = await zone_window(conn, "zn-1", at(T0), at(T1))
        assert await zone_window(conn, "zn-9", at(T0), at(T1)) is None

    samples = [
        (r["ts"].timestamp() - T0, r["node_uid"], r["metric"], r["value"], r["channel"]) for r in found["samples"]
    ]
    assert samples == [
        (-60, "nd-ph-1", "ph", 6.1, None),
        (-30, "nd-level-1", "water_level", 0.9, "level_main"),
        (0, "nd-ph-1", "ph", 6.2, None),
        (5, "nd-level-1", "water_level", 0.8, "level_main"),
    ]
    assert all(r["received_at"] is not None for r in found["samples"])
    by_id = {r["cmd_id"]: r for r in found["commands"]}
    assert list(by_id) == ["c-done", "c-fail", "c-sent"]
    assert (by_id["c-done"]["status"], by_id["c-done"]["status_at"], by_id["c-done"]["ack_at"]) == (
        "done", at(T0 + 11.25), at(T0 + 10.5)
    )  # fmt: skip
    assert by_id["c-done"]["node_status"] == "DONE"
    fail = by_id["c-fail"]
    assert (fail["status"], fail["status_at"], fail["error_code"], fail["details"]) == (
        "failed", at(T0 + 21), "overcurrent", {"current_ma": 2300}
    )  # fmt: skip
    assert (by_id["c-sent"]["status"], by_id["c-sent"]["status_at"]) == ("timeout", at(T0 + 120))
    assert [r["summary"] for r in found["decisions"]] == ["command 10", "transition 599"]


async def test_the_window_as_a_recording_and_its_csv(db, tmp_path):
    async with db.acquire() as conn:
        k = await ids(conn)
        await put(conn, [(T0 + 1, "zn-1", "nd-ph-1", "ph", 6.2), (T0 + 2, "zn-1", "nd-level-1", "water_level", 0.8)])
        await _command(conn, k, "c-1", T0 + 3)
        await _answer(conn, k, "c-1", "DONE", T0 + 3.5)
        await D.add_many(conn, [D.DecisionRow(k["zn-1"], at(T0 + 3), "command", "rs@1", "pump_recirc set_relay",
                                              channel="pump_recirc", details={"cmd_id": "c-1"})])  # fmt: skip
        found = await zone_window(conn, "zn-1", at(T0), at(T1))
    rec = from_store("zn-1", found, T0, T1)
    assert [(s.ts - T0, s.metric, s.value) for s in rec.samples] == [(1, "ph", 6.2), (2, "water_level", 0.8)]
    assert all(s.received_ts is not None and s.seen_at >= s.ts for s in rec.samples)
    (c,) = rec.commands
    assert (c.cmd_id, c.ts, c.status, c.status_ts, c.node_status, c.source) == (
        "c-1", T0 + 3, "done", T0 + 3.5, "DONE", "engine"
    )  # fmt: skip
    assert [(d.kind, d.channel, d.details) for d in rec.decisions] == [("command", "pump_recirc", {"cmd_id": "c-1"})]
    path = tmp_path / "zn-1.csv"
    write_csv(rec, path)
    back = read_csv(path)
    assert (back.zone, back.samples, back.commands, back.decisions) == (
        "zn-1",
        rec.samples,
        rec.commands,
        rec.decisions,
    )
