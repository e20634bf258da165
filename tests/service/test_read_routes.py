"""The read routes return what they must: the rows, newest first (water usage: in time order), and
only those their path and query select. Each route gets rows of two zones and of both sides of
each filter, so an empty list, a dropped filter or a reversed order fails."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from hydro_rules.store import alerts as alert_store
from hydro_rules.store import commands as command_store
from hydro_rules.store import events as event_store
from hydro_rules.store import nodes as node_store
from hydro_rules.store import water as water_store

from .conftest import auth

pytestmark = pytest.mark.anyio


async def _ids(conn) -> dict[str, int]:
    rows = await conn.fetch("SELECT uid, id FROM zones UNION ALL SELECT uid, id FROM nodes")
    return {r["uid"]: r["id"] for r in rows}


async def get(http, tokens, path: str) -> dict:
    r = await http.get(path, headers=auth(tokens["read"]))
    assert r.status_code == 200, (path, r.text)
    return r.json()


def q(t: datetime) -> str:
    return f"{t.timestamp():.3f}"


async def test_alerts_newest_first_by_zone_status_source_and_limit(http, tokens, db):
    now = datetime.now(UTC)
    async with db.acquire() as conn:
        k = await _ids(conn)
        for zone, code, source, ago in (
            ("zn-1", "infra_sensor_stale", "infra", 3),
            ("zn-1", "biz_high_ph", "biz", 2),
            ("zn-2", "biz_low_ec", "biz", 1),
        ):
            at = now - timedelta(hours=ago)
            await alert_store.raise_alert(conn, zone_id=k[zone], source=source, code=code, type=code, at=at)
        await alert_store.resolve(
            conn, zone_id=k["zn-1"], code="infra_sensor_stale", by=None, reason="fresh again", at=now
        )
        # seen at the same instant as biz_high_ph, stored after it: the later row comes first
        tie = now - timedelta(hours=2)
        await alert_store.raise_alert(conn, zone_id=k["zn-1"], source="biz", code="biz_low_ph", type="x", at=tie)

    def codes(doc):
        return [(a["zone_uid"], a["code"], a["status"]) for a in doc["alerts"]]

    every = [
        ("zn-2", "biz_low_ec", "ACTIVE"),
        ("zn-1", "biz_low_ph", "ACTIVE"),
        ("zn-1", "biz_high_ph", "ACTIVE"),
        ("zn-1", "infra_sensor_stale", "RESOLVED"),
    ]
    assert codes(await get(http, tokens, "/alerts")) == every
    assert codes(await get(http, tokens, "/zones/zn-1/alerts")) == every[1:]
    assert codes(await get(http, tokens, "/alerts?zone=zn-2")) == every[:1]
    assert codes(await get(http, tokens, "/alerts?status=ACTIVE")) == every[:3]
    assert codes(await get(http, tokens, "/zones/zn-1/alerts?status=RESOLVED")) == every[3:]
    assert codes(await get(http, tokens, "/alerts?source=infra")) == every[3:]
    assert codes(await get(http, tokens, "/alerts?limit=2")) == every[:2]
    resolved = (await get(http, tokens, "/zones/zn-1/alerts?status=RESOLVED"))["alerts"][0]
    assert resolved["resolved_reason"] == "fresh again"


async def test_commands_newest_first_by_zone_status_and_limit(http, tokens, db):
    now = datetime.now(UTC)
    async with db.acquire() as conn:
        k = await _ids(conn)
        # c-tie: created at the same instant as c-mid, stored after it: the later row comes first
        for cmd_id, zone, ago in (
            ("c-old", "zn-1", 3),
            ("c-mid", "zn-2", 2),
            ("c-tie", "zn-2", 2),
            ("c-new", "zn-1", 1),
        ):
            await command_store.create(
                conn,
                cmd_id=cmd_id,
                zone_id=k[zone],
                node_id=k[f"nd-pump-{zone[-1]}"],
                channel="pump_recirc",
                channel_key="pump_recirc",
                cmd="set_relay",
                params={"state": False},
                ruleset_version="rs@1",
                rule="test",
                created_at=now - timedelta(hours=ago),
            )
        await command_store.mark_sent(conn, "c-new")
        await command_store.mark_sent(conn, "c-old")
        await command_store.apply_response(
            conn,
            node_uid="nd-pump-1",
            cmd_id="c-old",
            status="DONE",
            ts=now,
            error_code=None,
            error_message=None,
            details=None,
            payload={},
        )

    def rows(doc):
        return [(c["cmd_id"], c["zone_uid"], c["status"]) for c in doc["commands"]]

    every = [
        ("c-new", "zn-1", "sent"),
        ("c-tie", "zn-2", "queued"),
        ("c-mid", "zn-2", "queued"),
        ("c-old", "zn-1", "done"),
    ]
    assert rows(await get(http, tokens, "/commands")) == every
    assert rows(await get(http, tokens, "/zones/zn-1/commands")) == [every[0], every[3]]
    assert rows(await get(http, tokens, "/commands?zone=zn-2")) == every[1:3]
    assert rows(await get(http, tokens, "/commands?status=done")) == [every[3]]
    assert rows(await get(http, tokens, "/zones/zn-1/commands?status=queued")) == []
    assert rows(await get(http, tokens, "/commands?limit=1")) == every[:1]
    one = await get(http, tokens, "/commands/c-old")
    assert one["status"] == "done" and [r["status"] for r in one["responses"]] == ["DONE"]


async def test_zone_events_newest_first_by_type_since_and_limit(http, tokens, db):
    now = datetime.now(UTC)
    async with db.acquire() as conn:
        k = await _ids(conn)
        for zone, type_, ago in (
            ("zn-1", "WATER_CHANGE_STARTED", 3),
            ("zn-2", "TOP_UP_STARTED", 2),
            ("zn-1", "TOP_UP_STARTED", 1),
        ):
            await event_store.add(
                conn, zone_id=k[zone], type=type_, details={"ago_h": ago}, ts=now - timedelta(hours=ago)
            )

    def rows(doc):
        return [(e["type"], e["details"]["ago_h"]) for e in doc["events"]]

    doc = await get(http, tokens, "/zones/zn-1/events")
    assert doc["zone_uid"] == "zn-1"
    assert rows(doc) == [("TOP_UP_STARTED", 1), ("WATER_CHANGE_STARTED", 3)]
    assert rows(await get(http, tokens, "/zones/zn-2/events")) == [("TOP_UP_STARTED", 2)]
    assert rows(await get(http, tokens, "/zones/zn-1/events?type=WATER_CHANGE_STARTED")) == [
        ("WATER_CHANGE_STARTED", 3)
    ]
    since = q(now - timedelta(hours=2))
    assert rows(await get(http, tokens, f"/zones/zn-1/events?since={since}")) == [("TOP_UP_STARTED", 1)]
    assert rows(await get(http, tokens, "/zones/zn-1/events?limit=1")) == [("TOP_UP_STARTED", 1)]


async def test_water_usage_lists_the_zones_runs_in_time_order_within_the_window(http, tokens, db):
    now = datetime.now(UTC).replace(microsecond=0)  # whole seconds: the window's edges are exact in the query
    async with db.acquire() as conn:
        k = await _ids(conn)
        runs = (("w-10d", "zn-1", timedelta(days=10)), ("w-3h", "zn-1", timedelta(hours=3)))
        runs += (("w-2h", "zn-2", timedelta(hours=2)), ("w-1h", "zn-1", timedelta(hours=1)))
        for cmd_id, zone, ago in runs:
            node = f"nd-pump-{zone[-1]}"
            at = now - ago
            await command_store.create(
                conn,
                cmd_id=cmd_id,
                zone_id=k[zone],
                node_id=k[node],
                channel="pump_recirc",
                channel_key="pump_recirc",
                cmd="run_pump",
                params={"duration_ms": 60_000},
                ruleset_version="rs@1",
                rule="test",
                created_at=at,
            )
            await command_store.mark_sent(conn, cmd_id, at)
            await command_store.apply_response(
                conn,
                node_uid=node,
                cmd_id=cmd_id,
                status="DONE",
                ts=at,
                error_code=None,
                error_message=None,
                details=None,
                payload={},
            )
        logged = await water_store.log_pump_runs(conn, now, lookback_s=30 * 86400)
        assert len(logged) == 4

    def runs_of(doc):
        return [(r["cmd_id"], r["duration_ms"]) for r in doc["logs"]]

    doc = await get(http, tokens, "/zones/zn-1/water-usage")  # the last 7 days
    assert doc["zone_uid"] == "zn-1"
    assert runs_of(doc) == [("w-3h", 60_000), ("w-1h", 60_000)]
    assert sum(d["irrigation_count"] for d in doc["daily"]) == 2
    assert runs_of(await get(http, tokens, "/zones/zn-2/water-usage")) == [("w-2h", 60_000)]
    # the window takes runs that started at `since`, not those that started at `until`
    since, until = q(now - timedelta(hours=3)), q(now - timedelta(hours=1))
    assert runs_of(await get(http, tokens, f"/zones/zn-1/water-usage?since={since}&until={until}")) == [
        ("w-3h", 60_000)
    ]
    old = await get(http, tokens, f"/zones/zn-1/water-usage?since={q(now - timedelta(days=11))}")
    assert [r["cmd_id"] for r in old["logs"]] == ["w-10d", "w-3h", "w-1h"]
    days = [d["date"] for d in old["daily"]]
    assert days == sorted(days) and len(days) >= 2
    # daily totals reach back one day before `since` (local days of zones east of UTC)
    day_after = datetime.combine((now - timedelta(days=10)).date() + timedelta(days=1), datetime.min.time(), UTC)
    edge = await get(http, tokens, f"/zones/zn-1/water-usage?since={q(day_after)}")
    assert edge["daily"][0]["date"] == (now - timedelta(days=10)).date().isoformat()


async def test_nodes_by_uid_with_liveness_and_the_zone_filter(http, tokens, db, site):
    now = datetime.now(UTC)
    async with db.acquire() as conn:
        await node_store.heartbeat(
            conn, "nd-pump-2", uptime=120, free_heap=40_000, rssi=-61, firmware_version="hydro2 2.1.0", at=now
        )
    zone_nodes = {z: sorted(site.zone(z).nodes) for z in ("zn-1", "zn-2")}
    every = (await get(http, tokens, "/nodes"))["nodes"]
    assert [n["uid"] for n in every] == sorted(zone_nodes["zn-1"] + zone_nodes["zn-2"])
    one = (await get(http, tokens, "/nodes?zone=zn-1"))["nodes"]
    assert [(n["uid"], n["zone_uid"]) for n in one] == [(u, "zn-1") for u in zone_nodes["zn-1"]]
    [pump] = [n for n in every if n["uid"] == "nd-pump-2"]
    assert (pump["zone_uid"], pump["uptime_s"], pump["rssi"], pump["free_heap"]) == ("zn-2", 120, -61, 40_000)
    assert pump["firmware_version"] == "hydro2 2.1.0" and pump["last_heartbeat_at"] is not None
    assert all(n["last_heartbeat_at"] is None for n in every if n["uid"] != "nd-pump-2")
