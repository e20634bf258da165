"""The decision log: rows stored as given, read back oldest first, narrowed by time, kind and channel."""

from datetime import UTC, datetime, timedelta

import pytest

from hydro_rules.store import decisions as D

from .util import ids

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)


def _row(zone_id, minute, kind="command", channel="pump_drain", summary=None, **kw):
    return D.DecisionRow(
        zone_id=zone_id,
        at=T0 + timedelta(minutes=minute),
        kind=kind,
        ruleset_version="rs@1",
        summary=summary or f"{kind} at {minute}",
        channel=channel,
        **kw,
    )


async def test_rows_come_back_as_stored_oldest_first(db):
    async with db.acquire() as conn:
        k = await ids(conn)
        stop = _row(
            k["zn-1"],
            12,
            summary="pump_drain set_relay state=false",
            rule="state WATER_CHANGE_FILL (rules/water_cycle.hydro:41)",
            details={"values": {"water_level": 0.12}, "cmd_id": "c-9"},
            daemon_id="host-1",
        )
        # stored out of order: the read orders by time
        assert await D.add_many(conn, [stop, _row(k["zn-1"], 5, kind="transition", channel=None)]) == 2
        assert await D.add_many(conn, []) == 0
        rows = await D.list_decisions(conn, k["zn-1"])
    assert [r["summary"] for r in rows] == ["transition at 5", "pump_drain set_relay state=false"]
    last = rows[-1]
    assert {f: last[f] for f in D.FIELDS} == {
        "at": T0 + timedelta(minutes=12),
        "kind": "command",
        "ruleset_version": "rs@1",
        "rule": "state WATER_CHANGE_FILL (rules/water_cycle.hydro:41)",
        "channel": "pump_drain",
        "summary": "pump_drain set_relay state=false",
        "details": {"values": {"water_level": 0.12}, "cmd_id": "c-9"},
        "daemon_id": "host-1",
    }
    assert rows[0]["details"] == {} and rows[0]["rule"] is None and rows[0]["channel"] is None


async def test_filters_window_kind_channel_and_other_zones(db):
    async with db.acquire() as conn:
        k = await ids(conn)
        await D.add_many(
            conn,
            [
                _row(k["zn-1"], 0),
                _row(k["zn-1"], 10, kind="transition", channel=None),
                _row(k["zn-1"], 12, channel="pump_fill"),
                _row(k["zn-1"], 20),
                _row(k["zn-2"], 12),
            ],
        )
        window = await D.list_decisions(
            conn, k["zn-1"], since=T0 + timedelta(minutes=10), until=T0 + timedelta(minutes=20)
        )
        # since inclusive, until exclusive, the other zone never shows
        assert [(r["at"] - T0) / timedelta(minutes=1) for r in window] == [10, 12]
        kinds = await D.list_decisions(conn, k["zn-1"], kind="transition")
        assert [r["summary"] for r in kinds] == ["transition at 10"]
        fill = await D.list_decisions(conn, k["zn-1"], channel="pump_fill")
        assert [r["summary"] for r in fill] == ["command at 12"]
        assert [r["summary"] for r in await D.list_decisions(conn, k["zn-2"])] == ["command at 12"]


async def test_limit_takes_the_first_from_since_or_else_the_newest(db):
    async with db.acquire() as conn:
        k = await ids(conn)
        await D.add_many(conn, [_row(k["zn-1"], m) for m in range(6)])
        first = await D.list_decisions(conn, k["zn-1"], since=T0 + timedelta(minutes=1), limit=2)
        newest = await D.list_decisions(conn, k["zn-1"], limit=2)
        before = await D.list_decisions(conn, k["zn-1"], until=T0 + timedelta(minutes=3), limit=2)
    assert [r["summary"] for r in first] == ["command at 1", "command at 2"]
    assert [r["summary"] for r in newest] == ["command at 4", "command at 5"]
    assert [r["summary"] for r in before] == ["command at 1", "command at 2"]


async def test_rows_of_one_instant_keep_their_insertion_order(db):
    async with db.acquire() as conn:
        k = await ids(conn)
        rows = [_row(k["zn-1"], 1, summary=s) for s in ("enter FAILED", "raise biz_x", "pump_fill on")]
        await D.add_many(conn, rows)
        assert [r["summary"] for r in await D.list_decisions(conn, k["zn-1"])] == [
            "enter FAILED",
            "raise biz_x",
            "pump_fill on",
        ]
