"""Dry runs of the demo site: a clean month, and each fault with its alert and its safe reaction."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hydro_rules.lang.loader import load
from hydro_rules.sim.dryrun import run
from hydro_rules.sim.report import summary_lines, timeline_lines

ROOT = Path(__file__).resolve().parents[2]
RS = load(ROOT / "examples").ruleset
DAY = 86400.0


def starts(zr, channel: str, after: float = 0.0) -> list[dict]:
    """Commands that would power a load: a run, or closing an NC/NO relay."""
    return [
        c
        for c in zr.commands
        if c["channel"] == channel
        and _t(c["at"]) >= after
        and (c["cmd"] == "run_pump" or c["params"].get("state") is True)
    ]


def _t(iso: str) -> float:
    from hydro_rules.sim.times import parse_time

    return parse_time(iso)


def raised(zr, code: str) -> list[dict]:
    return [a for a in zr.alerts if a["code"] == code]


def test_a_clean_month_completes_every_scheduled_water_change_without_alerts():
    out = subprocess.run(
        [sys.executable, "-m", "hydro_rules", "dry-run", str(ROOT / "examples"), "--days", "30", "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    doc = json.loads(out.stdout)
    assert doc["ruleset_version"].startswith("demo_site@2026.11.1+")
    assert len(doc["zones"]) == 2
    for z in doc["zones"]:
        s = z["summary"]
        assert s["water_changes_completed"] == 4, z["zone"]
        assert s["water_changes_failed"] == 0
        assert z["alerts"] == []
        assert 0 < s["max_recirc_off_minutes"] <= 10
        assert s["drained_l"] > 0 and s["filled_l"] > 0
        reasons = [t["reason"] for t in z["transitions"] if t["to"] == "WATER_CHANGE_DRAIN"]
        assert len(reasons) == 4 and all(r.startswith("schedule") for r in reasons)
        assert all(set(c) >= {"at", "channel", "cmd", "params", "rule"} for c in z["commands"])


def test_no_duty_off_outlasts_max_recirc_off_and_each_ends_with_an_explicit_on():
    """hydro2 nodes do not end an OFF by themselves: the engine must switch the NC pump back on."""
    r = run(RS, ["zn-1"], days=10)
    zr = r.zones[0]
    assert 0 < zr.recirc_off_max_s <= 600  # the twin's truth, not the commands
    cmds = [c for c in zr.commands if c["channel"] == "pump_recirc"]
    offs = [c for c in cmds if c["params"].get("state") is False and c["rule"].startswith("recirculation duty")]
    assert offs and all(c["params"].get("duration_ms", 0) <= 600_000 for c in offs)
    changes = [_t(t["at"]) for t in zr.transitions]
    for off in offs[:-1]:
        t = _t(off["at"])
        if any(t < c <= t + 600 for c in changes):
            continue  # a water change took over: its own timeout bounds the stretch
        after = [c for c in cmds if _t(c["at"]) > t]
        assert after[0]["params"].get("state") is True and _t(after[0]["at"]) - t <= 600, off


def test_dry_reservoir_raises_dry_run_and_no_pump_starts_while_dry():
    r = run(RS, ["zn-1"], days=6, faults=["dry_reservoir@3d"])
    zr = r.zones[0]
    a = raised(zr, "biz_dry_run")
    assert a and a[0]["channel"] == "pump_recirc"
    at = _t(a[0]["raised_at"])
    assert starts(zr, "pump_recirc", after=at) == []
    assert not zr.twin.running("pump_recirc")
    assert raised(zr, "biz_water_level_falling")


def test_leak_is_noticed_before_the_reservoir_runs_dry():
    r = run(RS, ["zn-1"], days=4, faults=["leak@2d"])
    zr = r.zones[0]
    falling = raised(zr, "biz_water_level_falling")
    dry = raised(zr, "biz_dry_run")
    assert falling
    assert not dry or falling[0]["raised_at"] < dry[0]["raised_at"]


def test_stuck_relay_raises_pump_stuck_on():
    r = run(RS, ["zn-1"], days=4, faults=["stuck_relay@3d"])
    a = raised(r.zones[0], "biz_pump_stuck_on")
    assert a and a[0]["channel"] == "pump_recirc"


def test_locked_channel_stays_locked_until_the_operator_resets_it():
    running = []

    def watch(zr, now):
        running.append((now, zr.twin.running("pump_recirc")))

    r = run(
        RS, ["zn-1"], days=8, faults=["overcurrent@3d:for=1d"], resets=[(5 * DAY, "pump replaced")], before_tick=watch
    )
    zr = r.zones[0]
    a = raised(zr, "biz_overcurrent")
    assert a and a[0]["channel"] == "pump_recirc"
    locked_at, reset_at = _t(a[0]["raised_at"]), r.start + 5 * DAY
    assert a[0]["resolved_at"] is not None and _t(a[0]["resolved_at"]) == reset_at
    # while locked nothing switches the NC pump on, and it stands (a hydro2 OFF holds without renewals)
    held = [c for c in zr.commands if c["channel"] == "pump_recirc" and locked_at <= _t(c["at"]) < reset_at]
    assert all(c["params"].get("state") is False and "locked" in c["rule"] for c in held)
    assert not any(on for t, on in running if locked_at <= t < reset_at)
    # the fault was gone after a day, but nothing ran again before the reset; after it the pump runs again
    assert any(on for t, on in running if t >= reset_at)
    assert zr.summary()["max_recirc_off_any_cause_minutes"] >= (reset_at - locked_at) / 60 - 1


def test_no_flow_locks_the_pump():
    r = run(RS, ["zn-1"], days=4, faults=["no_flow@3d"])
    zr = r.zones[0]
    a = raised(zr, "biz_no_flow")
    assert a and a[0]["channel"] == "pump_recirc" and a[0]["resolved_at"] is None
    assert not zr.twin.running("pump_recirc")


def test_pump_nodes_that_report_only_a_flow_flag_still_stop_a_pump_that_moves_no_water():
    r = run(RS, ["zn-1"], days=3.05, faults=["no_flow@3d"], pump_flow="flag")
    zr = r.zones[0]
    assert r.to_json()["pump_flow"] == "flag"
    assert ("nd-pump-1", "flow_rate") not in zr.snapshot and ("nd-pump-1", "flow_present") in zr.snapshot
    a = raised(zr, "biz_no_flow")
    assert a and a[0]["channel"] == "pump_recirc" and a[0]["resolved_at"] is None
    assert _t(a[0]["raised_at"]) - r.start - 3 * DAY <= 5 * 60
    assert not zr.twin.running("pump_recirc")
    assert raised(zr, "biz_dry_run") == [] and len(zr.alerts) == 1


def test_frozen_sensor_raises_an_alert():
    r = run(RS, ["zn-1"], days=4, faults=["sensor_frozen@3d:ph"])
    assert raised(r.zones[0], "infra_sensor_frozen")


def test_dead_level_sensor_raises_stale_and_circulation_goes_on_by_flow_and_current():
    r = run(RS, ["zn-1"], days=5, faults=["sensor_dead@3d:water_level"])
    zr = r.zones[0]
    stale = raised(zr, "infra_sensor_stale")
    assert stale
    at = _t(stale[0]["raised_at"])
    assert starts(zr, "pump_recirc", after=at), "the NC pump keeps cycling: its flow and current show it moving water"
    assert starts(zr, "pump_drain", after=at) == [] and starts(zr, "pump_fill", after=at) == []
    assert zr.recirc_off_max_s <= 600


def test_offline_node_is_reported():
    r = run(RS, ["zn-1"], days=4, faults=["node_offline@3d:pump_recirc"])
    a = raised(r.zones[0], "infra_node_offline")
    assert a and a[0]["channel"] == "pump_recirc"


def test_controller_crash_leaves_the_nc_pump_running_and_a_failed_change_restores_circulation():
    base = run(RS, ["zn-1"], days=12).zones[0]
    first = next(_t(t["at"]) for t in base.transitions if t["to"] == "WATER_CHANGE_DRAIN")
    crash = first - base.state.created_at + 120  # two minutes into the first water change
    running_during_crash, no_pump_running = [], []

    def watch(zr, now):
        if crash + 60 <= now - zr.state.created_at < crash + 30 * 60:
            running_during_crash.append(zr.twin.running("pump_recirc"))
            no_pump_running.append(not zr.twin.running("pump_drain") and not zr.twin.running("pump_fill"))

    days = crash / DAY + 1
    r = run(RS, ["zn-1"], days=days, faults=[f"controller_crash@{crash:.0f}s:for=30m"], before_tick=watch)
    zr = r.zones[0]
    assert running_during_crash and all(running_during_crash), "the NC recirculation pump runs by itself"
    assert all(no_pump_running), "normally-open pumps stop when outputs drop"
    failed = [t for t in zr.transitions if t["to"] == "FAILED"]
    assert failed and failed[0]["from"] in ("WATER_CHANGE_DRAIN", "WATER_CHANGE_FILL")
    assert raised(zr, "biz_water_change_failed")
    on = [
        c
        for c in zr.commands
        if c["channel"] == "pump_recirc" and c["params"].get("state") is True and c["at"] >= failed[0]["at"]
    ]
    assert on, "recirculation is switched back on after FAILED"
    assert zr.twin.running("pump_recirc")


def test_timeline_and_summary_golden(snapshot):
    r = run(RS, ["zn-1"], days=9, faults=["overcurrent@8d:for=2h"], resets=[(8.5 * DAY, "bearing replaced")])
    zr = r.zones[0]
    lines = [f"{t}  {kind:<10} {text}" for t, kind, text in timeline_lines(zr, "brief")]
    lines += [f"{label}: {value}" for label, value in summary_lines(zr)]
    assert "\n".join(lines) == snapshot


@pytest.mark.parametrize("bad", ["melt@1d", "leak@soon", "overcurrent@1d:pump_nope"])
def test_bad_fault_is_a_usage_error(bad):
    out = subprocess.run(
        [sys.executable, "-m", "hydro_rules", "dry-run", str(ROOT / "examples"), "--days", "1", "--fault", bad],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2
    assert "Traceback" not in out.stderr and out.stderr.strip()


# ---- node firmware and fine stepping --------------------------------------------------------------


def test_the_run_records_its_firmware_and_fine_tick():
    doc = run(RS, ["zn-1"], days=0.1).to_json()
    assert (doc["firmware"], doc["fine_tick_seconds"], doc["tick_seconds"]) == ("hydro2", 5.0, 60.0)
    doc = run(RS, ["zn-1"], days=0.1, firmware="bounded-off", fine_tick=None).to_json()
    assert (doc["firmware"], doc["fine_tick_seconds"]) == ("bounded-off", None)
    assert run(RS, ["zn-1"], days=0.1, tick_s=5, fine_tick=5).fine_tick_s is None  # never coarser than the tick
    assert run(RS, ["zn-1"], days=0.1, tick_s=5).zones[0].twin.firmware == "hydro2"


@pytest.mark.parametrize(("kw", "match"), [({"firmware": "hydro3"}, "hydro2, bounded-off"), ({"fine_tick": 0}, "fine")])
def test_a_bad_firmware_or_fine_tick_is_a_value_error(kw, match):
    with pytest.raises(ValueError, match=match):
        run(RS, ["zn-1"], days=0.1, **kw)


def test_the_cli_takes_firmware_and_refuses_an_unknown_one():
    base = [sys.executable, "-m", "hydro_rules", "dry-run", str(ROOT / "examples"), "--days", "0.05", "--zone", "zn-1"]
    out = subprocess.run([*base, "--json", "--firmware", "bounded-off"], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout)["firmware"] == "bounded-off"
    out = subprocess.run([*base, "--json"], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout)["firmware"] == "hydro2"
    out = subprocess.run([*base, "--firmware", "hydro1"], capture_output=True, text=True)
    assert out.returncode == 2 and "hydro2" in out.stderr and "Traceback" not in out.stderr


DRAIN_START = "2026-01-01T18:00:00Z"  # the scheduled drain of zn-1 then ends between two 1-minute ticks


def drain_to_empty(fine_tick):
    """Eight days of zn-1 with its scheduled water change: the twin's lowest level and the drain's dry seconds."""
    lowest = [100.0]
    instants = []

    def watch(zr, now):
        lowest[0] = min(lowest[0], zr.twin.level_pct)
        instants.append(now)

    r = run(RS, ["zn-1"], days=8, start=DRAIN_START, fine_tick=fine_tick, before_tick=watch)
    zr = r.zones[0]
    assert zr.summary()["water_changes_started"] == 1
    return lowest[0], zr.twin.dry_seconds["pump_drain"], zr, instants


def check_drain_stops_at_empty(fine_tick):
    lowest, dry_s, _, _ = drain_to_empty(fine_tick)
    assert lowest > 2.0, f"the reservoir went down to {lowest:.2f} %"
    assert dry_s < 10.0, f"the drain pump ran {dry_s:.1f} s on an empty tank"


def test_fine_stepping_stops_a_drain_within_seconds_of_empty():
    check_drain_stops_at_empty(5.0)


def test_without_fine_stepping_the_drain_is_bounded_by_its_one_minute_runs():
    """Evaluated once a minute, the engine cannot stop the drain within seconds of empty; what
    bounds it is its run: one `commands.run_chunk` (1 minute), which the node ends by itself."""
    _, dry_s, zr, _ = drain_to_empty(None)
    runs = [c for c in zr.commands if c["channel"] == "pump_drain" and c["cmd"] == "run_pump"]
    assert runs and all(c["params"] == {"duration_ms": 60_000} for c in runs)
    assert dry_s < 60.0


def test_fine_steps_fall_between_ticks_only_while_an_no_pump_runs():
    _, _, zr, instants = drain_to_empty(5.0)
    t0 = zr.state.created_at
    ticks = [t for t in instants if (t - t0) % 60 == 0]
    fine = [t for t in instants if (t - t0) % 60 != 0]
    assert len(ticks) == zr.ticks == 8 * 1440 + 1  # the tick grid is whole
    assert len(fine) == zr.fine_steps and 0 < len(fine) < 1000
    assert all(round((t - t0) % 5, 6) == 0 for t in fine)
    assert instants == sorted(instants) and len(set(instants)) == len(instants)
    drain = [c for c in zr.commands if c["channel"] in ("pump_drain", "pump_fill")]
    first, last = _t(drain[0]["at"]), _t(drain[-1]["at"])
    assert all(first < t <= last + 60 for t in fine)  # only during the water change's drain and fill


def test_a_node_offline_for_a_year_and_a_controller_crash_run_to_the_end():
    r = run(RS, ["zn-1"], days=365, tick_s=3600, faults=["node_offline@1h:pump_recirc"])
    assert r.zones[0].ticks == 365 * 24 + 1
    r = run(RS, ["zn-1"], days=9, faults=["controller_crash@7d9h2m:for=30m", "controller_crash@8d:for=2h"])
    assert r.zones[0].ticks == 9 * 1440 + 1
