"""`hydro-rules diff`: two versions of the demo site on small matrices, compared by behaviour.

The default matrix (2 zones, 10 seeds, every fault, 30 days) is bench/diff_matrix.py; these
runs are one zone, one seed, a day or two.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from hydro_rules.cli import main
from hydro_rules.sim import diff
from hydro_rules.sim.diff import check_fail_on, load_version, run_diff, safety_findings, without_timings
from hydro_rules.sim.scenarios import Scenario, ScenarioError, load_file, matrix

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
SMALL = ["--zones", "zn-1", "--seeds", "1", "--days", "2", "--jobs", "1"]


def site_copy(tmp_path: Path, edit=None, name: str = "new") -> Path:
    """rules/ and examples/ copied side by side under tmp_path/name; `edit(root)` changes the copy."""
    root = tmp_path / name
    shutil.copytree(ROOT / "rules", root / "rules", ignore=shutil.ignore_patterns("tests"))
    shutil.copytree(EXAMPLES, root / "examples", ignore=shutil.ignore_patterns("tests"))
    if edit is not None:
        edit(root)
    return root / "examples"


def period_16m(root: Path) -> None:
    p = root / "examples" / "profiles.hydro"
    assert "period 20m" in p.read_text()
    p.write_text(p.read_text().replace("period 20m", "period 16m"))


def recirculation_without_reservoir_has_water(root: Path) -> None:
    """The recirculation start no longer names reservoir_has_water (check calls it HR303; it still runs)."""
    wc = root / "rules" / "water_cycle.hydro"
    old = "recirculate pump_recirc guarded by can_run_pump, reservoir_has_water"
    assert old in wc.read_text()
    wc.write_text(wc.read_text().replace(old, "recirculate pump_recirc guarded by can_run_pump"))


# ---- the Done-when -----------------------------------------------------------------------------------
def test_done_when_a_16_minute_period_changes_off_stretches_and_commands_and_passes_fail_on_safety(tmp_path, capsys):
    new = site_copy(tmp_path, period_16m)
    rc = main(["diff", str(EXAMPLES), str(new), *SMALL, "--fail-on", "safety", "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert rc == 0 and doc["ok"] and doc["fail_on"]["failed"] == []
    assert doc["safety"]["worse"] == []
    faults = {r["scenario"]["fault"] for r in doc["scenarios"]}
    assert faults == {None, "node_offline", "controller_crash", "sensor_frozen_ph", "sensor_frozen_ec",
                      "sensor_dead_level", "leak", "dry_reservoir", "stuck_relay_drain", "stuck_relay_recirc",
                      "no_flow_recirc", "overcurrent_recirc"}  # fmt: skip
    base = next(r for r in doc["scenarios"] if r["scenario"]["fault"] is None)
    # duty 50 % of 20 min is 10 min OFF; of 16 min, 8 min; 72 cycles a day become 90
    assert base["old"]["recirc_off"]["duty_s"] == 600.0 and base["new"]["recirc_off"]["duty_s"] == 480.0
    assert {"key": "recirc_off.duty_s", "old": 600.0, "new": 480.0} in base["changes"]
    co, cn = base["old"]["commands"]["pump_recirc"], base["new"]["commands"]["pump_recirc"]
    assert cn / co == pytest.approx(20 / 16, rel=0.02)
    (row,) = [c for c in doc["commands"] if c["channel"] == "pump_recirc"]
    assert row["new"] > row["old"] and row["changed_in"] == len(doc["scenarios"])

    rc = main(["diff", str(EXAMPLES), str(new), *SMALL, "--faults", "none", "--fail-on", "safety"])
    out = capsys.readouterr().out
    assert rc == 0
    assert re.search(r"longest OFF under duty control \(max\)\s*│\s*10 min\s*│\s*8 min\s*│\s*−2 min", out)
    assert re.search(r"pump_recirc\s*│\s*[\d,]+\s*│\s*[\d,]+\s*│\s*\+\d+ \(\+2[45]%\)", out)
    assert "Safety: no safety figure is worse" in out
    assert "✓ no --fail-on condition holds (safety)" in out


def test_done_when_without_reservoir_has_water_a_dry_reservoir_no_longer_stops_the_pump(tmp_path, capsys):
    new = site_copy(tmp_path, recirculation_without_reservoir_has_water)
    args = ["diff", str(EXAMPLES), str(new), *SMALL, "--faults", "dry_reservoir"]
    rc = main([*args, "--fail-on", "safety"])
    out, err = capsys.readouterr()
    assert rc == 1
    assert "runs despite: HR303" in out
    assert re.search(
        r"\[dry_reservoir, 1/1 scenarios\] a dry reservoir no longer stops pump_recirc: it ran dry \d+ s", out
    )
    assert "--fail-on safety: " in err and "a dry reservoir no longer stops pump_recirc" in err
    # without --fail-on the same report exits 0: a difference is not a failure unless asked
    assert main(args) == 0
    capsys.readouterr()
    rc = main([*args, "--fail-on", "safety", "--format", "markdown"])
    md = capsys.readouterr().out
    assert rc == 1
    assert md.startswith("### Behaviour diff: ")
    assert "- ❌ **dry_reservoir** (1/1 scenarios): a dry reservoir no longer stops pump_recirc" in md
    assert "| seconds pumps ran dry | 0 s |" in md


# ---- git:REV -------------------------------------------------------------------------------------------
def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.email=t@example.com", "-c", "user.name=t", *args],
        cwd=cwd, check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip


def test_git_rev_is_the_same_path_at_that_revision_with_the_rule_sets_it_uses(tmp_path, capsys, monkeypatch):
    repo = tmp_path / "repo"
    site = site_copy(tmp_path, name="repo")
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "base")
    committed = load_version("x", site).ruleset.ruleset_version
    period_16m(repo)
    # the standard rules change in the working copy too: git:HEAD must read them at HEAD, not here
    wc = repo / "rules" / "water_cycle.hydro"
    wc.write_text(wc.read_text() + "\n# edited after the commit\n")
    monkeypatch.chdir(repo)
    rc = main(["diff", "git:HEAD", "examples", *SMALL, "--faults", "none", "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert rc == 0
    assert doc["old"]["label"] == "examples at HEAD"
    assert doc["old"]["ruleset_version"] == committed != doc["new"]["ruleset_version"]
    (row,) = doc["scenarios"]
    assert row["old"]["recirc_off"]["duty_s"] == 600.0 and row["new"]["recirc_off"]["duty_s"] == 480.0

    # the other way round, and mistakes
    assert main(["diff", "examples", "git:HEAD", *SMALL, "--faults", "none", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["new"]["ruleset_version"] == committed
    assert main(["diff", "git:no-such-rev", "examples", *SMALL]) == 2
    assert "git rev-parse" in capsys.readouterr().err
    assert main(["diff", "git:HEAD", "git:HEAD~1", *SMALL]) == 2
    assert "only one side may be git:REV" in capsys.readouterr().err


def test_git_rev_of_a_site_repository_uses_the_working_copy_of_rules_outside_it(tmp_path, capsys, monkeypatch):
    site = site_copy(tmp_path, name="x")  # x/examples is the repository; x/rules lies outside it
    _git(site, "init", "-q")
    _git(site, "add", ".")
    _git(site, "commit", "-qm", "base")
    monkeypatch.chdir(site)
    rc = main(["diff", "git:HEAD", ".", *SMALL, "--faults", "none", "--format", "markdown"])
    md = capsys.readouterr().out
    assert rc == 0
    assert f"> {(tmp_path / 'x' / 'rules').resolve()} is outside the repository: the working copy's is used" in md
    assert "The same behaviour in every scenario." in md


# ---- comparing -----------------------------------------------------------------------------------------
def test_a_site_against_itself_changes_nothing_and_the_pool_does_not_change_the_report():
    old = load_version("examples", EXAMPLES)
    new = load_version("again", EXAMPLES)
    scs = matrix(["zn-1"], seeds=2, days=1, faults=["none", "leak", "overcurrent_recirc"])
    one = run_diff(old, new, scs, jobs=1, fail_on=["any"])
    two = run_diff(old, new, scs, jobs=2, fail_on=["any"])
    assert one["ok"] and all(r["changes"] == [] for r in one["scenarios"])
    assert one["changes"] == [] and one["safety"]["worse"] == []
    leak = next(r for r in one["scenarios"] if r["scenario"]["fault"] == "leak")
    assert leak["old"]["safety"]["alert"] == "raised"  # the leak was noticed: the runs did run
    assert without_timings(one) == without_timings(two)


def test_the_language_version_of_a_side_may_differ(tmp_path, capsys):
    def to_1_2(root: Path) -> None:
        for p in [*(root / "examples").glob("*.hydro"), *(root / "rules").glob("*.hydro")]:
            p.write_text(re.sub(r"\Ahydro 1\n", "hydro 1.2\n", p.read_text()))

    new = site_copy(tmp_path, to_1_2)
    rc = main(["diff", str(EXAMPLES), str(new), *SMALL, "--faults", "none", "--json", "--fail-on", "any"])
    doc = json.loads(capsys.readouterr().out)
    assert doc["old"]["language"] == ["1", "1.1", "1.2"] and doc["new"]["language"] == ["1.1", "1.2"]
    assert rc == 0 and doc["scenarios"][0]["changes"] == []


def figs(dry=0.0, off=600.0, alert="raised", to_alert=600, to_safe=900, locks=(), broken=(), ph=(5.9, 6.2)) -> dict:
    f = diff.empty_figures()
    f["recirc_off"]["duty_s"] = off
    f["safety"] = {"alert": alert, "time_to_alert_s": to_alert, "time_to_safe_s": to_safe, "off_unexcused_s": off,
                   "dry_s": {"pump_recirc": dry} if dry else {}, "lost_l": 0.0, "locks": list(locks),
                   "ph": list(ph), "ec": [1.2, 1.6],
                   "broken": [{"invariant": b, "offset_s": 1.0, "reason": "ph 4.79 outside" if b == "bands" else "r"}
                              for b in broken]}  # fmt: skip
    return f


RS = load_version("examples", EXAMPLES).ruleset
DRY = Scenario("zn-1", 0, 2.0, "dry_reservoir", 86400.0)


def worse(old: dict, new: dict, sc: Scenario = DRY) -> list[str]:
    return [w["figure"] for w in safety_findings(sc, old, new, RS)[0]]


def test_each_safety_figure_is_worse_only_beyond_its_tolerance():
    assert worse(figs(), figs(dry=diff.DRY_TOLERANCE_S)) == []
    assert worse(figs(), figs(dry=diff.DRY_TOLERANCE_S + 0.1)) == ["dry_s.pump_recirc"]
    assert worse(figs(off=600), figs(off=600 + diff.OFF_TOLERANCE_S)) == []
    assert worse(figs(off=600), figs(off=600 + diff.OFF_TOLERANCE_S + 0.1)) == ["recirc_off.duty_s", "off_unexcused_s"]
    assert worse(figs(to_safe=900), figs(to_safe=900 + diff.SAFE_TOLERANCE_S)) == []
    assert worse(figs(to_safe=900), figs(to_safe=900 + diff.SAFE_TOLERANCE_S + 1)) == ["time_to_safe_s"]
    assert worse(figs(to_safe=900), figs(to_safe=None)) == ["time_to_safe_s"]
    # an alert that still comes within its limit has moved, not worsened; one that no longer comes is worse
    assert worse(figs(to_alert=600), figs(to_alert=3000)) == []
    assert [m["figure"] for m in safety_findings(DRY, figs(to_alert=600), figs(to_alert=3000), RS)[2]] == [
        "time_to_alert_s"
    ]
    assert worse(figs(), figs(alert="missing", to_alert=None)) == ["alert"]
    assert worse(figs(), figs(broken=["fill_after_leak"])) == ["invariant.fill_after_leak"]
    assert worse(figs(broken=["bands"]), figs(broken=["bands"])) == []
    # a band now crossed: worse when the solution went further than the old version's by more than the tolerance
    tol = diff.BAND_TOLERANCE["ph"]
    near = figs(ph=(4.85, 6.2))  # the band ends at 4.80
    assert worse(near, figs(broken=["bands"], ph=(4.85 - tol, 6.2))) == []
    assert worse(near, figs(broken=["bands"], ph=(4.85 - tol - 0.01, 6.2))) == ["invariant.bands.ph"]


def test_a_lock_that_no_longer_locks_is_worse_but_another_lock_in_its_place_is_not():
    locked = figs(locks=["biz_dry_run"])
    assert worse(locked, figs()) == ["locks"]
    assert worse(locked, figs(locks=["biz_no_flow"])) == []
    assert worse(figs(locks=["biz_no_flow"]), figs(locks=["biz_no_flow"])) == []


def test_fail_on_says_which_condition_holds():
    def report(old_alerts, new_alerts, changed_keys=(), worse_items=()):
        return {
            "alerts": [{"code": c, "old": {"count": old_alerts.get(c, 0)}, "new": {"count": new_alerts.get(c, 0)}}
                       for c in sorted(set(old_alerts) | set(new_alerts))],
            "scenarios": [{"key": "zn-1/seed 0/none/2d", "changes": [{"key": k} for k in changed_keys]}],
            "safety": {"worse": list(worse_items)},
        }  # fmt: skip

    same = report({"a": 1}, {"a": 1})
    assert check_fail_on(same, ["safety", "alerts", "water-changes", "any"]) == []
    (f,) = check_fail_on(report({"a": 1}, {"a": 1, "b": 1}), ["alerts"])
    assert f["condition"] == "alerts" and "b 0 → 1 (new)" in f["why"]
    (f,) = check_fail_on(report({"a": 1}, {"a": 2}), ["alerts", "water-changes"])
    assert "a 1 → 2" in f["why"]
    assert check_fail_on(report({"a": 2}, {"a": 1}), ["alerts"]) == []  # fewer alerts is no failure
    (f,) = check_fail_on(report({}, {}, ["water_changes.starts"]), ["water-changes", "safety"])
    assert f["condition"] == "water-changes"
    (f,) = check_fail_on(report({}, {}, ["commands.pump_recirc"]), ["water-changes", "any"])
    assert f["condition"] == "any"
    (f,) = check_fail_on(report({}, {}, [], [{"text": "x worse"}]), ["safety"])
    assert f["condition"] == "safety" and "x worse" in f["why"]


# ---- scenarios ------------------------------------------------------------------------------------------
def test_the_default_matrix_is_every_zone_seed_and_fault_at_two_days():
    scs = matrix(["zn-1", "zn-2"])
    assert len(scs) == 2 * 10 * 15
    assert {s.days for s in scs} == {30.0} and {s.at_s for s in scs if s.fault} == {2 * 86400.0}
    assert sum(1 for s in scs if s.fault is None) == 20
    assert {s.at_s for s in matrix(["zn-1"], days=3) if s.fault} == {1.5 * 86400.0}  # half a short run


def test_a_scenarios_file_names_the_scenarios(tmp_path, capsys):
    toml = tmp_path / "s.toml"
    toml.write_text(
        '[[scenario]]\nname = "a leak at noon"\nzones = ["zn-1"]\nseeds = [3]\ndays = 1\nfaults = ["leak"]\n'
        'at = "12h"\n\n[[scenario]]\nzone = "zn-2"\ndays = 1\nfaults = ["none", "sensor_frozen"]\n'
    )
    scs, recs = load_file(toml, ["zn-1", "zn-2"])
    assert recs == []
    assert [(s.zone, s.seed, s.fault, s.at_s, s.days) for s in scs] == [
        ("zn-1", 3, "leak", 43200.0, 1.0),
        ("zn-2", 0, None, 0.0, 1.0),
        ("zn-2", 0, "sensor_frozen_ph", 43200.0, 1.0),
        ("zn-2", 0, "sensor_frozen_ec", 43200.0, 1.0),
    ]
    js = tmp_path / "s.json"
    js.write_text(json.dumps({"scenario": [{"zones": ["zn-1"], "seeds": [3], "days": 1, "faults": ["leak"],
                                            "at": "12h", "name": "a leak at noon"}]}))  # fmt: skip
    assert load_file(js, ["zn-1", "zn-2"])[0] == scs[:1]
    for bad, why in (
        ('[[scenario]]\nfaults = ["lek"]\n', "unknown fault 'lek'"),
        ('[[scenario]]\nzones = ["zn-9"]\n', "no zone zn-9"),
        ("[[scenario]]\nseeds = 0\n", "seeds is a count"),
        ('[[scenario]]\ncolour = "red"\n', "unknown colour"),
        ("x = 1\n", "names no [[scenario]]"),
    ):
        toml.write_text(bad)
        with pytest.raises(ScenarioError, match=re.escape(why)):
            load_file(toml, ["zn-1", "zn-2"])
    toml.write_text('[[scenario]]\nzones = ["zn-1"]\ndays = 1\nfaults = ["none"]\n')
    assert main(["diff", str(EXAMPLES), str(EXAMPLES), "--scenarios", str(toml), "--jobs", "1", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [r["key"] for r in doc["scenarios"]] == ["zn-1/seed 0/none/1d"]
    toml.write_text('[[scenario]]\nfaults = ["lek"]\n')
    assert main(["diff", str(EXAMPLES), str(EXAMPLES), "--scenarios", str(toml)]) == 2
    assert "unknown fault 'lek'" in capsys.readouterr().err


def test_usage_errors_exit_2(capsys):
    assert main(["diff", str(EXAMPLES), "/nonexistent"]) == 2
    assert "is not a rule-set directory" in capsys.readouterr().err
    assert main(["diff", str(EXAMPLES), str(EXAMPLES), "--zones", "zn-9"]) == 2
    assert "no zone zn-9 in both versions" in capsys.readouterr().err
    assert main(["diff", str(EXAMPLES), str(EXAMPLES), "--faults", "lek"]) == 2
    assert "unknown fault 'lek'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["diff", str(EXAMPLES), str(EXAMPLES), "--fail-on", "everything"])
    assert e.value.code == 2


# ---- recorded windows ------------------------------------------------------------------------------------
def test_a_recorded_window_is_replayed_by_both_versions(tmp_path, capsys):
    from hydro_rules.sim.recording import record_dry_run, write_csv

    _, rec = record_dry_run(RS, "zn-1", days=0.5)
    csv = tmp_path / "window.csv"
    write_csv(rec, csv)
    new = site_copy(tmp_path, period_16m)
    rc = main(["diff", str(EXAMPLES), str(new), "--recording", str(csv), *SMALL, "--faults", "none", "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert rc == 0 and doc["matrix"]["recordings"] == 1
    (row,) = [r for r in doc["scenarios"] if "recording" in r["scenario"]]
    assert row["key"] == "recording window.csv/zn-1"
    # the recorded run is the old version's: it replays without a disagreement; the new one, open-loop,
    # stops at its first pump command the recording does not show
    assert row["old"]["replay"] == {"disagreements": 0, "stopped_at": None}
    assert row["new"]["replay"]["stopped_at"]["decision"]["channel"] == "pump_recirc"
    assert {"key": "replay.stopped", "old": False, "new": True} in row["changes"]
    assert main(["diff", str(EXAMPLES), str(new), "--recording", str(tmp_path / "nope.csv"), *SMALL]) == 2
