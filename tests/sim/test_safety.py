"""`hydro-rules safety`: a reduced matrix on the demo site, and each invariant checker made to fire.

The full matrix (every fault, four moments, three seeds, twelve days) is the command
itself and bench/safety_matrix.py; these runs stay small (a day or a few, one seed).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from hydro_rules.cli import main
from hydro_rules.lang.loader import load
from hydro_rules.sim import safety
from hydro_rules.sim.safety import (
    FAULTS_BY_ID,
    Checker,
    find_moments,
    leak_alerts,
    run_matrix,
    stop_states,
    without_timings,
)
from hydro_rules.sim.times import iso, parse_time

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
RS = load(EXAMPLES).ruleset
ZONE = RS.zone("zn-1")
T0 = parse_time("2026-01-01T00:00:00Z")
H = 3600.0


def site_copy(tmp_path: Path, edit=None) -> Path:
    """rules/ and examples/ copied side by side (examples uses "../rules"); `edit(rules_dir)` changes the copy."""
    shutil.copytree(ROOT / "rules", tmp_path / "rules", ignore=shutil.ignore_patterns("tests"))
    shutil.copytree(EXAMPLES, tmp_path / "examples")
    if edit is not None:
        edit(tmp_path / "rules")
    return tmp_path / "examples"


def without_reservoir_has_water(rules: Path) -> None:
    """The recirculation start no longer names reservoir_has_water (the guard goes too: check demands it)."""
    wc = rules / "water_cycle.hydro"
    wc.write_text(wc.read_text().replace(", reservoir_has_water", ""))
    g = rules / "guards.hydro"
    g.write_text(re.sub(r"guard reservoir_has_water for pump_recirc \{.*?\n\}\n", "", g.read_text(), flags=re.S))
    assert "reservoir_has_water" not in wc.read_text() + g.read_text()


def without_alert(code: str):
    def edit(rules: Path) -> None:
        a = rules / "alerts.hydro"
        a.write_text(re.sub(rf"alert {code}\b.*?\n\}}\n", "", a.read_text(), flags=re.S))
        assert code not in a.read_text()

    return edit


# ---- the rule set, read -----------------------------------------------------------------------------
def test_what_the_standard_rules_say_to_the_checker():
    codes = leak_alerts(RS)
    assert "biz_water_level_falling" in codes
    assert all(any(w in c or w in RS.alerts[c].text.lower() for w in ("leak", "burst", "falling")) for c in codes)
    # DRAIN stops the NC pump; FILL leaves it alone and is entered only from DRAIN
    stopping = stop_states(RS, "pump_recirc")
    assert {"WATER_CHANGE_DRAIN", "WATER_CHANGE_FILL"} <= stopping
    assert not stopping & {"NORMAL_RECIRC", "WATER_CHANGE_STABILIZE"}


def test_moments_come_from_the_baseline_transitions():
    tr = [
        {"at": iso(T0 + 7 * 86400 + 9 * H + m * 60), "from": a, "to": b}
        for m, a, b in (
            (0, "NORMAL_RECIRC", "WATER_CHANGE_DRAIN"),
            (4, "WATER_CHANGE_DRAIN", "WATER_CHANGE_FILL"),
            (16, "WATER_CHANGE_FILL", "WATER_CHANGE_STABILIZE"),
            (31, "WATER_CHANGE_STABILIZE", "NORMAL_RECIRC"),
        )
    ]
    m = find_moments(tr, T0, T0 + 12 * 86400, "NORMAL_RECIRC")
    change = T0 + 7 * 86400 + 9 * H
    assert m == {
        "mid-drain": change + 120,
        "mid-fill": change + 600,
        "mid-stabilize": change + 1410,
        "between": T0 + 2 * 86400,
    }
    # a change close to 2 days in: `between` moves mid-way into the longest quiet stretch
    shift = 5 * 86400 + 6 * H  # the change at 03:00 on day 2
    near = [dict(t, at=iso(parse_time(t["at"]) - shift)) for t in tr]
    m = find_moments(near, T0, T0 + 12 * 86400, "NORMAL_RECIRC")
    assert m["between"] == (change - shift + 31 * 60 + T0 + 12 * 86400) / 2


# ---- a reduced matrix on the demo site ---------------------------------------------------------------------
def test_a_reduced_matrix_reports_every_cell_with_its_figures():
    r = run_matrix(
        str(EXAMPLES),
        zones=["zn-1"],
        seeds=1,
        days=7.5,
        faults=["sensor_dead_level", "controller_crash"],
        moments=["between", "mid-fill"],
        jobs=2,
    )
    assert r["runs"] == 1 + 2 * 2 and r["seeds"] == 1 and r["jobs"] == 2
    assert [f["id"] for f in r["faults"]] == ["sensor_dead_level", "controller_crash"]
    assert set(r["invariants"]) == {"bands", "dry_run", "recirc_off", "fill_after_leak", "alert", "exception"}
    (z,) = r["zones"]
    assert set(z["moments"]["0"]) == {"between", "mid-drain", "mid-fill", "mid-stabilize"}
    assert z["moments"]["0"]["mid-fill"].startswith("2026-01-08T09:")
    cells = {(c["fault"], c["moment"]): c for c in z["cells"]}
    assert set(cells) == {
        ("none", "-"),
        ("sensor_dead_level", "between"),
        ("sensor_dead_level", "mid-fill"),
        ("controller_crash", "between"),
        ("controller_crash", "mid-fill"),
    }
    for c in cells.values():
        assert set(c) >= {"alert", "time_to_alert_s", "time_to_safe_s", "ph", "ec", "lost_l", "broken", "runs"}
        (run,) = c["runs"]
        assert run["seed"] == 0
        if c["fault"] != "none":
            assert run["spec"].startswith(FAULTS_BY_ID[c["fault"]].kind + "@")
    assert cells[("controller_crash", "between")]["runs"][0]["spec"] == "controller_crash@172800s:for=1800s"
    assert cells[("controller_crash", "between")]["alert"] == "not required"
    dead = cells[("sensor_dead_level", "between")]
    assert dead["alert"] == "raised" and 0 < dead["time_to_alert_s"] <= 1800
    assert 5.0 < dead["ph"][0] <= dead["ph"][1] < 7.0
    for v in r["broken"]:
        assert set(v) >= {"zone", "fault", "moment", "seed", "invariant", "at", "reason"} and v["reason"]
    assert r["ok"] == (not r["broken"])
    json.dumps(r)  # one JSON document


def test_a_parallel_matrix_gives_what_a_serial_one_does():
    kw = dict(zones=["zn-2"], seeds=1, days=1.0, faults=["dry_reservoir", "sensor_frozen_ec"], moments=["between"])
    a = run_matrix(str(EXAMPLES), jobs=1, **kw)
    b = run_matrix(str(EXAMPLES), jobs=2, **kw)
    assert without_timings(a) == without_timings(b)


# The full matrix (`hydro-rules safety examples`, bench/safety_matrix.py) must pass too: issue 7's "Done when".
def test_the_standard_rules_pass_a_reduced_matrix():
    r = run_matrix(
        str(EXAMPLES),
        zones=["zn-1"],
        seeds=1,
        days=3,
        faults=["dry_reservoir", "leak", "sensor_dead_level"],
        moments=["between"],
        jobs=2,
    )
    assert r["broken"] == []


# ---- each invariant made to break ---------------------------------------------------------------------------
def test_done_when_a_recirculation_start_without_reservoir_has_water_runs_the_pump_dry(tmp_path, capsys):
    # Losing water at 12 L/h or 600 L/h, the NC pump then starts on an empty tank (how long it
    # runs dry before the flow shows it depends on the other guards: either fault may be the one).
    site = site_copy(tmp_path, without_reservoir_has_water)
    args = ["safety", str(site), "--zone", "zn-1", "--seeds", "1", "--days", "3", "--jobs", "1"]
    args += ["--faults", "leak,dry_reservoir", "--moments", "between"]
    rc = main(args)
    out = capsys.readouterr().out
    assert rc == 1
    assert re.search(
        r"(leak|dry_reservoir) at between, seed 0, .*dry_run \(no pump runs dry\) — pump_recirc ran dry", out
    )
    assert re.search(r"✗ unsafe: dry_run: (leak|dry_reservoir)", out)

    rc = main(args + ["--json"])
    doc = json.loads(capsys.readouterr().out)
    assert rc == 1 and doc["ok"] is False
    assert {v["invariant"] for v in doc["broken"]} == {"dry_run"}
    assert {v["fault"] for v in doc["broken"]} <= {"leak", "dry_reservoir"}


def test_done_when_the_recirculation_start_merely_drops_the_guard_name(tmp_path, capsys):
    # The copy as an agronomist would make it: only `recirculate` loses the name. check calls
    # that HR303; safety still runs it, says so, and shows what it does.
    def drop_name(rules: Path) -> None:
        wc = rules / "water_cycle.hydro"
        old = "recirculate pump_recirc guarded by can_run_pump, reservoir_has_water"
        assert old in wc.read_text()
        wc.write_text(wc.read_text().replace(old, "recirculate pump_recirc guarded by can_run_pump"))

    site = site_copy(tmp_path, drop_name)
    args = ["safety", str(site), "--zone", "zn-1", "--seeds", "1", "--days", "3", "--jobs", "1"]
    rc = main(args + ["--faults", "leak,dry_reservoir", "--moments", "between"])
    out, err = capsys.readouterr()
    assert "HR303" in err and "running the matrix anyway" in err
    assert rc == 1
    broken = r"(leak|dry_reservoir) at between, seed 0, .*dry_run \(no pump runs dry\) — pump_recirc ran dry"
    assert re.search(broken, out)


def test_other_errors_still_stop_safety(tmp_path, capsys):
    def break_name(rules: Path) -> None:
        wc = rules / "water_cycle.hydro"
        wc.write_text(wc.read_text().replace("stop pump_drain", "stop pump_drian", 1))

    site = site_copy(tmp_path, break_name)
    assert main(["safety", str(site), "--zone", "zn-1", "--seeds", "1"]) == 2
    assert "has errors" in capsys.readouterr().err


def test_a_fault_without_its_alert_breaks_the_alert_invariant(tmp_path):
    site = site_copy(tmp_path, without_alert("biz_pump_stuck_on"))
    r = run_matrix(str(site), zones=["zn-1"], seeds=1, days=1, faults=["stuck_relay_recirc"], moments=["between"])
    (v,) = [v for v in r["broken"] if v["invariant"] == "alert"]
    assert v["fault"] == "stuck_relay_recirc"
    assert "the rule set has none of the alerts biz_pump_stuck_on" in v["reason"]
    (cell,) = [c for c in r["zones"][0]["cells"] if c["fault"] == "stuck_relay_recirc"]
    assert cell["alert"] == "missing"


def test_an_engine_exception_is_a_broken_invariant_with_its_message(monkeypatch):
    real = safety.dryrun.run

    def failing(*a, **kw):
        if kw.get("faults"):
            raise OverflowError("math range error in the command back-off")
        return real(*a, **kw)

    monkeypatch.setattr(safety.dryrun, "run", failing)
    r = run_matrix(str(EXAMPLES), zones=["zn-1"], seeds=1, days=0.5, faults=["leak"], moments=["between"], jobs=1)
    (v,) = [v for v in r["broken"] if v["fault"] == "leak"]
    assert v["invariant"] == "exception"
    assert v["reason"] == "OverflowError: math range error in the command back-off"


def test_the_command_tells_usage_errors_apart(tmp_path, capsys):
    assert main(["safety", str(EXAMPLES), "--faults", "meteor"]) == 2
    assert "unknown fault 'meteor'" in capsys.readouterr().err
    assert main(["safety", str(EXAMPLES), "--moments", "dawn"]) == 2
    assert main(["safety", str(EXAMPLES), "--zone", "zn-9"]) == 2
    assert main(["safety", str(tmp_path)]) == 2
    with pytest.raises(SystemExit) as e:
        main(["safety", str(EXAMPLES), "--seeds", "0"])
    assert e.value.code == 2


def test_markdown_is_a_table_for_a_pull_request(tmp_path, capsys):
    site = site_copy(tmp_path, without_reservoir_has_water)
    rc = main(
        ["safety", str(site), "--zone", "zn-1", "--seeds", "1", "--days", "3", "--jobs", "1"]
        + ["--faults", "leak,dry_reservoir", "--moments", "between", "--format", "markdown"]
    )
    out = capsys.readouterr().out
    assert rc == 1
    assert "| fault | moment | alert after | safe after | pH | EC | lost L | invariants |" in out
    assert re.search(r"\| (leak|dry_reservoir) \| between \| .* \| ❌ dry_run \|", out)
    assert "| none | - | — | 0 s |" in out
    assert re.search(r"\*\*\d+ broken invariant\(s\)\*\*", out)


# ---- the checkers, on a twin and a state made by hand ---------------------------------------------------------
class FakeTwin:
    def __init__(self):
        self.run_seconds = {"pump_recirc": 0.0, "pump_drain": 0.0, "pump_fill": 0.0}
        self.powered = {"pump_recirc": True}
        self.ph, self.ec, self.level_pct, self.volume_l = 6.0, 1.2, 90.0, 108.0
        self.filled_l = self.drained_l = self.leaked_l = self.overflow_l = 0.0
        self.dry_seconds = dict.fromkeys(self.run_seconds, 0.0)
        self.dry: set = set()  # pumps with nothing to pump: their powered seconds are dry

    def running(self, ch):
        return self.powered.get(ch, False)

    def contact(self, ch):
        return self.powered.get(ch, False)


class Alert(SimpleNamespace):
    pass


def fake_run():
    st = SimpleNamespace(
        alerts={},
        machines={"water_cycle": "NORMAL_RECIRC"},
        channels={n: SimpleNamespace(desired="off", denied_by=None) for n in ("pump_drain", "pump_fill")},
    )
    return SimpleNamespace(twin=FakeTwin(), state=st, alerts=[], commands=[])


def drive(checker, zr, t_from: float, t_to: float, step: float = 60.0, each=None):
    """Call the checker every `step`; powered pumps gain run seconds; `each(zr, now)` changes the world."""
    now = t_from
    while now <= t_to:
        if each:
            each(zr, now)
        checker(zr, now)
        for ch, on in zr.twin.powered.items():
            if on:
                zr.twin.run_seconds[ch] += step
                if ch in zr.twin.dry:
                    zr.twin.dry_seconds[ch] += step
        now += step


def checker(fault=None, onset=T0, target=""):
    return Checker(RS, ZONE, t0=T0, end=T0 + 86400, fault=fault, target=target, onset=onset)


def test_the_bands_checker_fires_on_ph_far_below_the_targets():
    c, zr = checker(), fake_run()

    def acid(zr, now):
        zr.twin.ph = 6.0 - (now - T0) / H  # one pH unit an hour
        if now - T0 >= 3 * H:
            zr.twin.level_pct = 2.0  # near empty: not judged any more

    drive(c, zr, T0, T0 + 6 * H, each=acid)
    (v,) = c.broken
    assert v["invariant"] == "bands" and v["reason"].startswith("ph 4.78 outside 4.80 .. 7.20")
    res = c.finish(zr.twin, T0 + 6 * H)
    assert res["ph"][0] > 3.0  # the near-empty instants are not counted


def test_the_recirc_checker_fires_past_max_recirc_off_unless_something_excuses_it():
    max_off = RS.profiles[ZONE.profile].settings["water_cycle.recirc.max_recirc_off"]
    c, zr = checker(), fake_run()
    zr.twin.powered["pump_recirc"] = False
    drive(c, zr, T0, T0 + max_off + 60)
    (v,) = c.broken
    assert v["invariant"] == "recirc_off" and "pump_recirc off for 11.0 min (max_recirc_off 10 min)" in v["reason"]

    # held off by a locking alert, by a state that stops it, by its node being offline: no break
    c, zr = checker(), fake_run()
    zr.twin.powered["pump_recirc"] = False
    zr.state.alerts[("biz_overcurrent", "pump_recirc")] = Alert(status="active", since=T0)
    drive(c, zr, T0, T0 + 3 * H)
    assert c.broken == []

    c, zr = checker(), fake_run()
    zr.twin.powered["pump_recirc"] = False
    zr.state.machines["water_cycle"] = "WATER_CHANGE_FILL"
    drive(c, zr, T0, T0 + 3 * H)
    assert c.broken == []

    c, zr = checker(FAULTS_BY_ID["node_offline"], T0, "pump_recirc"), fake_run()
    zr.twin.powered["pump_recirc"] = False
    drive(c, zr, T0, T0 + 3 * H)
    assert c.broken == []

    # a non-locking alert does not excuse it
    c, zr = checker(), fake_run()
    zr.twin.powered["pump_recirc"] = False
    zr.state.alerts[("infra_sensor_stale", None)] = Alert(status="active", since=T0)
    drive(c, zr, T0, T0 + H)
    assert [v["invariant"] for v in c.broken] == ["recirc_off"]


def test_the_fill_checker_fires_when_water_comes_in_after_a_leak_alert():
    c, zr = checker(), fake_run()

    def leak_then_fill(zr, now):
        if now - T0 >= H:
            zr.state.alerts[("biz_water_level_falling", None)] = Alert(status="active", since=T0 + H)
        if now - T0 >= 2 * H:
            zr.twin.filled_l += 8.0

    drive(c, zr, T0, T0 + 3 * H, each=leak_then_fill)
    (v,) = c.broken
    assert v["invariant"] == "fill_after_leak"
    assert v["reason"] == "488.0 L filled while biz_water_level_falling was active"


def test_the_dry_checker_measures_powered_dry_seconds_and_excuses_only_a_stuck_drain():
    def drain_empty(zr, now):
        zr.twin.volume_l = 0.0  # nothing left: every powered second is dry
        zr.twin.dry.add("pump_drain")
        zr.twin.powered["pump_drain"] = True

    c, zr = checker(), fake_run()
    drive(c, zr, T0, T0 + 600, step=5.0, each=drain_empty)
    (v,) = c.broken
    assert v["invariant"] == "dry_run" and v["reason"] == "pump_drain ran dry for 600 s (allowance 15 s)"

    c, zr = checker(FAULTS_BY_ID["stuck_relay_drain"], T0, "pump_drain"), fake_run()
    drive(c, zr, T0, T0 + 600, step=5.0, each=drain_empty)
    assert [v["invariant"] for v in c.broken if v["invariant"] == "dry_run"] == []

    # a recirculation pump sucking air for 10 s is within the allowance; for 20 s it is not
    for seconds, broken in ((10, False), (20, True)):
        c, zr = checker(), fake_run()

        def air(zr, now, seconds=seconds):
            sucks_air = T0 + 100 <= now < T0 + 100 + seconds  # dry over the step that follows
            (zr.twin.dry.add if sucks_air else zr.twin.dry.discard)("pump_recirc")

        drive(c, zr, T0, T0 + 300, step=5.0, each=air)
        assert bool(c.broken) == broken


def test_heating_faults_run_where_a_zone_has_a_heater_and_are_skipped_elsewhere(tmp_path):
    site = site_copy(tmp_path)
    profiles = site / "profiles.hydro"
    text = profiles.read_text().rstrip()
    profiles.write_text(text[: text.rindex("}")] + "  plant {\n    heater yes\n    air_temp 14 °C\n  }\n}\n")
    r = run_matrix(str(site), zones=["zn-1"], seeds=1, days=1, faults=["heater_failed"], moments=["between"])
    (cell,) = [c for c in r["zones"][0]["cells"] if c["fault"] == "heater_failed"]
    assert not [v for v in r["broken"] if v["fault"] == "heater_failed"]
    r = run_matrix(str(EXAMPLES), zones=["zn-1"], seeds=1, days=1, faults=["heater_failed"], moments=["between"])
    assert {"zone": "zn-1", "fault": "heater_failed", "why": "the zone has no heater"} in r["skipped"]


def test_the_recirc_checker_takes_each_windows_own_bound_and_excuses_an_off_window():
    import dataclasses

    from hydro_rules.lang.model import Window

    span = ZONE.span
    windows = (
        Window(0.0, 12 * H, 0.5, 1200.0, span, max_off_s=15 * 60.0),
        Window(12 * H, 24 * H, 0.0, 0.0, span, off=True),
    )
    zone = dataclasses.replace(ZONE, windows=windows)

    def off_from(start: float, end: float):
        c, zr = Checker(RS, zone, t0=T0, end=T0 + 86400, fault=None, target="", onset=T0), fake_run()
        zr.twin.powered["pump_recirc"] = False
        drive(c, zr, start, end)
        return c.broken

    assert off_from(T0 + H, T0 + H + 14 * 60) == []  # 14 min: within the window's own 15 min
    (v,) = off_from(T0 + H, T0 + H + 17 * 60)
    assert "pump_recirc off for 17.0 min (the window's max_off 15 min)" in v["reason"]
    assert off_from(T0 + 12 * H, T0 + 23 * H) == []  # held off all night by the `off` window
