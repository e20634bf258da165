"""A dry run shows times in the site's time zone: the timeline, the header, explain's words and the JSON
(which keeps its UTC times and adds local ones)."""

from __future__ import annotations

import io
import re
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from rich.console import Console

from hydro_rules.lang.loader import load
from hydro_rules.sim import report
from hydro_rules.sim.dryrun import run
from hydro_rules.sim.explain import explain_tick
from hydro_rules.sim.times import local_iso, minute, stamp, zone_info

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def berlin(tmp_path_factory):
    """The example site in Europe/Berlin (UTC+1 in January)."""
    d = tmp_path_factory.mktemp("berlin")
    shutil.copytree(ROOT / "rules", d / "rules")
    shutil.copytree(ROOT / "examples", d / "examples")
    site = d / "examples" / "site.hydro"
    site.write_text(site.read_text().replace('timezone "UTC"', 'timezone "Europe/Berlin"'))
    rs = load(d / "examples").ruleset
    assert rs.zone("zn-1").timezone == "Europe/Berlin"
    return rs


def test_times_in_a_zone_and_in_utc():
    t = datetime(2026, 1, 8, 8, 0, tzinfo=UTC).timestamp()
    assert minute(t, "Europe/Berlin") == "2026-01-08 09:00"
    assert local_iso(t, "Europe/Berlin") == "2026-01-08T09:00:00+01:00"
    assert stamp(t, "Europe/Berlin") == "2026-01-08T09:00:00+01:00"
    assert stamp(t, "UTC") == "2026-01-08T08:00:00Z"  # a UTC site reads as before
    assert local_iso(datetime(2026, 7, 1, tzinfo=UTC).timestamp(), "Europe/Berlin").endswith("+02:00")  # summer
    assert zone_info("Nowhere/Atlantis") is None and minute(t, "Nowhere/Atlantis") == "2026-01-08 08:00"


def test_the_timeline_json_and_header_are_local(berlin):
    r = run(berlin, ["zn-1"], days=8)
    zr = r.zones[0]
    # the engine schedules the change at 09:00 local time: the timeline says 09:00
    lines = report.timeline_lines(zr, "brief")
    started = [t for t, kind, text in lines if kind == "event" and text.startswith("WATER_CHANGE_STARTED")]
    assert started and started[0] == "2026-01-08 09:00"
    doc = r.to_json()
    assert doc["timezone"] == "Europe/Berlin"
    assert (doc["start"], doc["start_local"]) == ("2026-01-01T00:00:00Z", "2026-01-01T01:00:00+01:00")
    event = next(e for e in doc["zones"][0]["events"] if e["type"] == "WATER_CHANGE_STARTED")
    assert (event["at"], event["at_local"]) == ("2026-01-08T08:00:00Z", "2026-01-08T09:00:00+01:00")
    for key in ("transitions", "commands"):
        assert all(x["at_local"].endswith("+01:00") for x in doc["zones"][0][key])
    out = io.StringIO()
    report.print_run(r, Console(file=out, width=200), "none")
    assert "8 days from 2026-01-01 01:00 Europe/Berlin" in out.getvalue()


def test_explain_words_are_local(berlin):
    at = datetime(2026, 1, 8, 8, 0, tzinfo=UTC).timestamp()
    found = []

    def capture(zr, now):
        if not found and now >= at:
            found.append(explain_tick(zr, now, zr.state.created_at))

    run(berlin, ["zn-1"], days=8, stop_at=at, before_tick=capture)
    e = found[0]
    assert e.when == "2026-01-08T09:00:00+01:00" and e.timezone == "Europe/Berlin"
    assert re.search(r"since 2026-01-0\dT\d\d:\d\d:\d\d\+01:00", e.head[0]), e.head[0]


def test_a_utc_site_keeps_its_json_times():
    r = run(load(ROOT / "examples").ruleset, ["zn-1"], days=0.05)
    doc = r.to_json()
    assert doc["timezone"] == "UTC" and doc["start_local"] == "2026-01-01T00:00:00+00:00"


def test_a_profiles_plant_settings_reach_the_twin(tmp_path):
    """`plant { drain_flow 10 L/min }` in the profile: the dry run's drain moves 10 L per minute it pumps water."""
    shutil.copytree(ROOT / "rules", tmp_path / "rules")
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    profiles = tmp_path / "examples" / "profiles.hydro"
    text = profiles.read_text().rstrip()
    plant = "  plant {\n    drain_flow 10 L/min\n    fill_flow 20 L/min\n  }\n}\n"
    profiles.write_text(text[: text.rindex("}")] + plant)
    rs = load(tmp_path / "examples").ruleset
    r = run(rs, ["zn-1"], days=8)
    tw = r.zones[0].twin
    assert (tw.plant["plant.drain_flow"], tw.plant["plant.fill_flow"]) == (10.0, 20.0)
    assert tw.drained_l > 90.0 and tw.filled_l > 90.0
    wet_s = tw.run_seconds["pump_drain"] - tw.dry_seconds["pump_drain"]
    assert wet_s == pytest.approx(tw.drained_l / 10.0 * 60.0, rel=1e-9)  # V litres at Q L/min: V/Q minutes
    assert tw.run_seconds["pump_fill"] == pytest.approx(tw.filled_l / 20.0 * 60.0, rel=1e-9)
