"""The single faults of issue 7's safety review, run through engine and twin: none may harm the plants.

Each test names the harm it guards against; each failed on the engine before issue 7.
The standard water change of the example's zn-1 runs 7d9h00m (drain) to 9h03m (fill) to 9h16m.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hydro_rules.lang.loader import load
from hydro_rules.sim.dryrun import run
from hydro_rules.sim.times import parse_time

ROOT = Path(__file__).resolve().parents[2]
CHANGE = 7 * 86400 + 9 * 3600  # offset of the first scheduled water change


@pytest.fixture(scope="module")
def example():
    loaded = load(ROOT / "examples")
    assert loaded.ruleset is not None
    return loaded.ruleset


def _run(rs, fault: str, days: float = 10.0, watch=None):
    return run(rs, ["zn-1"], days=days, faults=[fault], before_tick=watch).zones[0]


def test_a_frozen_ph_sensor_does_not_dose_the_solution_away(example):
    zr = _run(example, "sensor_frozen@4d8h20m:ph", days=9)  # frozen just above target, as a dose falls due
    doses = [c for c in zr.commands if c["channel"] == "dose_ph_down"]
    assert len(doses) <= 3
    assert zr.twin.ph > 5.0, "the real pH stays near its target"


def test_a_frozen_ec_sensor_does_not_pour_nutrient(example):
    zr = _run(example, "sensor_frozen@2d:ec", days=9)
    doses = [c for c in zr.commands if c["channel"] == "dose_nutrient"]
    assert len(doses) <= 8
    assert zr.twin.ec < 3.0


def test_a_pump_node_offline_for_eight_days_crashes_nothing(example):
    zr = _run(example, "node_offline@1d:pump_recirc,for=8d")
    assert "infra_node_offline" in zr.summary()["alerts_by_code"]
    assert zr.ticks > 0


def test_a_dead_level_sensor_does_not_stop_the_circulation_for_days(example):
    zr = _run(example, "sensor_dead@2d:water_level")
    s = zr.summary()
    assert s["max_recirc_off_any_cause_minutes"] <= 10.0
    assert "infra_sensor_stale" in s["alerts_by_code"]


def test_a_controller_crash_mid_fill_leaves_the_plants_watered(example):
    # a minute into the fill; the run ends 15 h later, with the operator not yet there
    zr = _run(example, f"controller_crash@{CHANGE // 60 + 4}m", days=8)
    s = zr.summary()
    assert s["max_recirc_off_any_cause_minutes"] <= 60, "no day-long stretch without circulation"
    assert zr.twin.level_pct >= 15.0, "the reservoir is not left near empty"
    assert zr.twin.running("pump_recirc")


@pytest.mark.parametrize("fault", ["leak@2d", "dry_reservoir@2d"])
def test_a_leaking_or_burst_tank_gets_no_water_change_and_no_water(example, fault):
    after_alert = {}

    def watch(zr, now):
        if any(a["code"] in ("biz_water_level_falling", "biz_reservoir_burst") for a in zr.alerts):
            after_alert.setdefault("filled", zr.twin.filled_l)

    zr = _run(example, fault, watch=watch)
    s = zr.summary()
    assert after_alert, "the leak is reported"
    assert s["water_changes_started"] == 0, "a probe in air (EC 0) is no EC drift, and the tank is not sound"
    assert zr.twin.filled_l == after_alert["filled"], "no water goes into the tank after its leak alert"


def test_commands_lost_in_a_controller_crash_do_not_hold_the_nc_pump_off(example):
    zr = _run(example, "controller_crash@2d", days=3)
    assert zr.summary()["max_recirc_off_any_cause_minutes"] <= 11.0  # max_recirc_off, plus the reboot's tick


def test_no_water_change_starts_while_the_recirculation_relay_is_stuck(example):
    zr = _run(example, f"stuck_relay@{CHANGE - 3 * 3600}s:pump_recirc")
    s = zr.summary()
    assert "biz_pump_stuck_on" in s["alerts_by_code"]
    assert s["water_changes_started"] == 0 and s["drained_l"] == 0.0
    assert "biz_water_change_waiting" in s["alerts_by_code"]


def test_the_drain_pump_does_not_run_on_an_empty_tank(example):
    dry = {"s": 0.0, "last": None}

    def watch(zr, now):
        if zr.twin.running("pump_drain") and zr.twin.volume_l <= 0.0 and dry["last"] is not None:
            dry["s"] += now - dry["last"]
        dry["last"] = now

    _run(example, "sensor_frozen@9d:ph", days=8, watch=watch)  # a harmless fault: just the water change
    assert dry["s"] <= 10.0


def test_no_dose_lands_where_circulation_stops(example):
    off_after_dose = []

    def watch(zr, now):
        doses = [c for c in zr.commands if c["channel"].startswith("dose_")]
        if doses and not zr.twin.running("pump_recirc"):
            last = doses[-1]["at"]
            off_after_dose.append((last, now))

    zr = _run(example, "sensor_frozen@9d:ph", days=6, watch=watch)
    mixing = 15 * 60
    assert [c for c in zr.commands if c["channel"].startswith("dose_")], "the run doses at all"
    assert all(now - parse_time(at) >= mixing for at, now in off_after_dose)


def test_explain_says_why_a_due_change_waits_and_why_a_reading_is_not_used(example):
    from hydro_rules.sim.explain import explain_tick

    at = CHANGE + 3600.0
    found = []

    def capture(zr, now):
        if now == run_start + at:
            found.append(explain_tick(zr, now, run_start))

    run_start = parse_time("2026-01-01T00:00:00Z")
    run(
        example,
        ["zn-1"],
        days=at / 86400.0,
        faults=[f"stuck_relay@{CHANGE - 3 * 3600:.0f}s:pump_recirc", "sensor_frozen@7d:ec"],
        before_tick=capture,
        start=run_start,
    )
    text = "\n".join(f"{ln.title} {ln.detail}" for sec in found[0].sections for ln in sec.lines)
    assert "held since 2026-01-08T09:00:00Z: biz_pump_stuck_on on pump_recirc is active" in text
    assert "unchanged for" in text and "frozen" in text


def test_the_timeline_says_when_and_why_a_change_waits(example):
    zr = _run(example, f"stuck_relay@{CHANGE - 3 * 3600}s:pump_recirc", days=8)
    held = [e for e in zr.timeline if e.kind == "held"]
    assert [e.text for e in held] == [
        "NORMAL_RECIRC → WATER_CHANGE_DRAIN waits: biz_pump_stuck_on on pump_recirc is active"
    ]
