"""`hydro-rules log ZONE`: the decision log on the command line, read from the database."""

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest

from hydro_rules.cli import main
from hydro_rules.commands import log as log_cmd
from hydro_rules.store import connect_once
from hydro_rules.store import decisions as D

NOW = datetime(2026, 11, 27, 9, 30, tzinfo=UTC)  # "today" for HH:MM
STOP_AT = datetime(2026, 11, 27, 3, 12, 4, tzinfo=UTC)
FILL_RULE = "transition WATER_CHANGE_DRAIN -> WATER_CHANGE_FILL (rules/water_cycle.hydro:41)"
STOP_LINE = (
    "2026-11-27 03:12:04  command  pump_drain set_relay state=false  ← " + FILL_RULE + "  (seen: water_level = 0.12)"
)


async def _seed(url, timezone="UTC"):
    conn = await connect_once(url)
    try:
        zid = {r["uid"]: r["id"] for r in await conn.fetch("SELECT uid, id FROM zones")}
        await conn.execute("UPDATE zones SET timezone = $1 WHERE uid = 'zn-1'", timezone)

        def row(zone, at, kind, summary, channel=None, **kw):
            return D.DecisionRow(zid[zone], at, kind, "rs@3", summary, channel=channel, **kw)

        await D.add_many(
            conn,
            [
                row("zn-1", STOP_AT - timedelta(minutes=20), "command", "pump_drain run_pump 60s", "pump_drain"),
                row(
                    "zn-1",
                    STOP_AT - timedelta(seconds=1),
                    "transition",
                    "WATER_CHANGE_DRAIN -> WATER_CHANGE_FILL",
                    rule=FILL_RULE,
                    details={"values": {"water_level": 0.12}},
                ),
                row(
                    "zn-1",
                    STOP_AT,
                    "command",
                    "pump_drain set_relay state=false",
                    "pump_drain",
                    rule=FILL_RULE,
                    details={"values": {"water_level": 0.12}, "cmd_id": "c-77"},
                    daemon_id="site-1",
                ),
                row("zn-1", STOP_AT + timedelta(seconds=2), "command", "pump_fill run_pump 60s", "pump_fill"),
                row("zn-1", STOP_AT + timedelta(minutes=11), "command", "pump_drain late", "pump_drain"),
                row("zn-2", STOP_AT, "command", "pump_drain of the other zone", "pump_drain"),
            ],
        )
    finally:
        await conn.close()


@pytest.fixture
def seeded(site_database, monkeypatch):
    monkeypatch.setattr(log_cmd, "_now", lambda: NOW)
    asyncio.run(_seed(site_database))
    return site_database


def _log(capsys, url, *args):
    code = main(["log", *args, "--database-url", url])
    out, err = capsys.readouterr()
    return code, out.splitlines(), err


def test_why_did_the_drain_pump_stop_at_0312(seeded, capsys):
    code, lines, _ = _log(capsys, seeded, "zn-1", "--around", "03:12", "--channel", "pump_drain")
    assert code == 0
    assert lines == [STOP_LINE]  # the run 20 min before and the one 11 min after are outside the 10 min window


def test_around_shows_every_kind_in_order_and_the_window_widens(seeded, capsys):
    code, lines, _ = _log(capsys, seeded, "zn-1", "--around", "03:12")
    assert code == 0
    assert [ln[21:] for ln in lines] == [
        "transition  WATER_CHANGE_DRAIN -> WATER_CHANGE_FILL  ← " + FILL_RULE + "  (seen: water_level = 0.12)",
        "command     pump_drain set_relay state=false  ← " + FILL_RULE + "  (seen: water_level = 0.12)",
        "command     pump_fill run_pump 60s",
    ]
    code, lines, _ = _log(capsys, seeded, "zn-1", "--around", "03:12", "--window", "30m", "--kind", "command")
    assert [ln.split("  ")[2] for ln in lines] == [
        "pump_drain run_pump 60s",
        "pump_drain set_relay state=false",
        "pump_fill run_pump 60s",
        "pump_drain late",
    ]


def test_since_until_iso_and_clock_times(seeded, capsys):
    _, lines, _ = _log(capsys, seeded, "zn-1", "--since", "2026-11-27T03:12:04Z", "--until", "03:20")
    assert [ln.split("  ")[2] for ln in lines] == ["pump_drain set_relay state=false", "pump_fill run_pump 60s"]
    _, lines, _ = _log(capsys, seeded, "zn-1", "--since", "2026-11-27T03:12:05")  # naive: zone time (UTC)
    assert [ln.split("  ")[2] for ln in lines] == ["pump_fill run_pump 60s", "pump_drain late"]
    _, lines, _ = _log(capsys, seeded, "zn-1", "--limit", "1")  # newest
    assert len(lines) == 1 and "pump_drain late" in lines[0]


def test_clock_times_and_output_are_in_the_zones_timezone(site_database, monkeypatch, capsys):
    monkeypatch.setattr(log_cmd, "_now", lambda: NOW)
    asyncio.run(_seed(site_database, timezone="Europe/Berlin"))  # UTC+1 in November
    code, lines, _ = _log(capsys, site_database, "zn-1", "--around", "04:12", "--channel", "pump_drain")
    assert code == 0
    assert lines == [STOP_LINE.replace("03:12:04", "04:12:04")]
    _, lines, _ = _log(capsys, site_database, "zn-1", "--around", "03:12", "--channel", "pump_drain", "--window", "5m")
    assert lines == []


def test_json_has_the_api_shape(seeded, capsys):
    code, lines, _ = _log(capsys, seeded, "zn-1", "--around", "03:12", "--channel", "pump_drain", "--json")
    assert code == 0
    body = json.loads("\n".join(lines))
    assert body["zone_uid"] == "zn-1" and body["timezone"] == "UTC"
    assert body["since"] == "2026-11-27T03:02:00+00:00" and body["until"] == "2026-11-27T03:22:00+00:00"
    assert body["decisions"] == [
        {
            "at": STOP_AT.isoformat(),
            "kind": "command",
            "ruleset_version": "rs@3",
            "rule": FILL_RULE,
            "channel": "pump_drain",
            "summary": "pump_drain set_relay state=false",
            "details": {"values": {"water_level": 0.12}, "cmd_id": "c-77"},
            "daemon_id": "site-1",
        }
    ]


def test_nothing_in_the_window_is_said_on_stderr_and_exits_0(seeded, capsys):
    code, lines, err = _log(capsys, seeded, "zn-1", "--around", "08:00")
    assert (code, lines) == (0, [])
    assert "no decisions for zn-1 from 2026-11-27 07:50:00 to 2026-11-27 08:10:00 (UTC)" in err


def test_unknown_zone_unreachable_database_and_bad_times(seeded, capsys):
    code, lines, err = _log(capsys, seeded, "zn-9")
    assert (code, lines) == (1, [])
    assert err.strip() == "hydro-rules log: no zone 'zn-9' in the database (see `hydro-rules db sync`)"
    code, lines, err = _log(capsys, "postgresql://postgres@127.0.0.1:1/nothing", "zn-1")
    assert (code, lines) == (1, [])
    assert err.startswith("hydro-rules log: cannot connect to the database") and err.count("\n") == 1
    code, _, err = _log(capsys, seeded, "zn-1", "--around", "25:99")
    assert code == 2 and "--around '25:99' is not a time" in err
    code, _, err = _log(capsys, seeded, "zn-1", "--around", "03:12", "--since", "03:00")
    assert code == 2 and "--around goes without" in err
