"""Replay (issue 11): the engine over a recorded run reproduces what the run decided; a changed rule set
stops the open-loop replay at its first command the recording does not show; the CSV carries all of it."""

import shutil
from pathlib import Path

import pytest

from hydro_rules.lang.loader import load
from hydro_rules.sim.dryrun import run
from hydro_rules.sim.recording import (
    Command,
    Decision,
    Recording,
    RecordingError,
    Sample,
    read_csv,
    record_dry_run,
    write_csv,
)
from hydro_rules.sim.replay import replay
from hydro_rules.sim.times import parse_time

ROOT = Path(__file__).resolve().parents[2]
RS = load(ROOT / "examples").ruleset


def decided(zr) -> dict:
    """What a run decided, as a reviewer compares it."""
    return {
        "transitions": zr.transitions,
        "commands": [{k: c[k] for k in ("at", "channel", "cmd", "params", "rule")} for c in zr.commands],
        "alerts": zr.alerts,
        "outcomes": sorted(zr.outcomes.values()),
    }


@pytest.fixture(scope="module")
def recorded():
    """Two days of zn-1 with an overcurrent on its recirculation pump on day 1: commands, answers that fail
    with the node's details, a locking alert."""
    return record_dry_run(RS, "zn-1", days=2, faults=["overcurrent@1d:pump_recirc"])


def test_a_replay_of_a_dry_run_reproduces_every_decision_exactly(recorded):
    dry, rec = recorded
    r = replay(RS, rec)
    assert r.agrees and r.stopped_at is None and r.disagreements == []
    assert decided(r.zone_run) == decided(dry.zones[0])
    assert r.recorded_side == "decision log"
    assert [a["code"] for a in r.zone_run.alerts] == ["biz_overcurrent"]
    assert r.zone_run.summary()["commands_by_channel"] == dry.zones[0].summary()["commands_by_channel"]


def test_recorded_answers_drive_the_replay(recorded):
    """Recorded answers reach the replayed engine: told that every command succeeded, it never hears of the
    overcurrent, so instead of the recorded overcurrent lock it sees a running pump that moves no water
    (the recorded readings) and stops it: a command the recording does not show, where the replay stops."""
    _, rec = recorded
    healthy = [c._replace(status="done", node_status="DONE", error_code=None, details=None) for c in rec.commands]
    r = replay(RS, Recording(rec.zone, rec.samples, healthy, rec.decisions, rec.evaluations, rec.start, rec.end))
    codes = [a["code"] for a in r.zone_run.alerts]
    assert codes == ["biz_no_flow"]
    assert r.stopped_at["at"] == "2026-01-02T00:01:00Z"
    assert (r.stopped_at["decision"]["channel"], r.stopped_at["decision"]["params"]) == (
        "pump_recirc",
        {"state": False},
    )


def test_the_csv_round_trip_keeps_the_recording(recorded, tmp_path):
    _, rec = recorded
    path = tmp_path / "zn-1.csv"
    write_csv(rec, path)
    back = read_csv(path)
    assert back.zone == rec.zone
    assert back.samples == rec.samples
    assert back.commands == rec.commands
    assert back.decisions == rec.decisions
    assert back.evaluations == rec.evaluations
    assert path.read_text().splitlines()[0].startswith("kind,time,zone,")
    again = tmp_path / "again.csv"
    write_csv(back, again)
    assert again.read_text() == path.read_text()


def test_the_csv_keeps_sub_second_times_channels_and_statuses(tmp_path):
    t = parse_time("2026-03-01T10:00:00Z")
    rec = Recording(
        "zt-1",
        samples=[Sample(t + 0.123456, "nd-1", "water_level", 0.25, "level_main"), Sample(t + 1, "nd-2", "ph", 6.1)],
        commands=[
            Command(
                "c-1",
                t + 0.5,
                "pump_drain",
                "nd-3",
                "run_pump",
                {"duration_ms": 5000},
                "failed",
                t + 1.25,
                "overcurrent",
                t + 0.75,
                "ERROR",
                "engine",
                {"current_ma": 2300},
            ),
            Command("c-2", t + 2, "pump_recirc", "nd-4", "set_relay", {"state": True}, "timeout", t + 7),
            Command("op-1", t + 3, "pump_recirc", "nd-4", "set_relay", {"state": False}, "sent", t + 3, source="api"),
        ],  # fmt: skip
        decisions=[
            Decision(
                t + 0.5,
                "command",
                "pump_drain run_pump duration_ms=5000  ← r",
                "r",
                "pump_drain",
                {"cmd_id": "c-1", "values": {"water_level": 0.25}},
                "site@1",
            )
        ],  # fmt: skip
    )
    path = tmp_path / "r.csv"
    write_csv(rec, path)
    assert "2026-03-01T10:00:00.123456Z" in path.read_text()
    back = read_csv(path)
    assert (back.samples, back.commands, back.decisions, back.evaluations) == (
        rec.samples, rec.commands, rec.decisions, None
    )  # fmt: skip


@pytest.mark.parametrize(
    ("text", "where", "what"),
    [
        ("", ":1:", "empty file"),
        ("time,zone\n", ":1:", "lacks kind"),
        (
            "kind,time,zone,node,metric,value\nsample,2026-01-01T00:00:00Z,zn-1,nd,ph,6\nreading,x,zn-1,,,\n",
            ":3:",
            "kind 'reading'",
        ),
        ("kind,time,zone,node,metric,value\nsample,yesterday,zn-1,nd,ph,6\n", ":2:", "'yesterday' is not an ISO"),
        ("kind,time,zone,node,metric,value\nsample,2026-01-01T00:00:00Z,zn-1,nd,ph,high\n", ":2:", "not a number"),
        ("kind,time,zone,node,metric\nsample,2026-01-01T00:00:00Z,zn-1,nd,ph\n", ":2:", "needs value"),
        (
            "kind,time,zone,node,cmd_id,cmd,status,params\ncommand,2026-01-01T00:00:00Z,zn-1,nd,c1,dose,done,{ml:2}\n",
            ":2:",
            "params is not JSON",
        ),
        (
            "kind,time,zone,node,cmd_id,cmd,status\ncommand,2026-01-01T00:00:00Z,zn-1,nd,c1,dose,finished\n",
            ":2:",
            "status 'finished'",
        ),
        (
            "kind,time,zone,node,metric,value\nsample,2026-01-01T00:00:00Z,zn-1,nd,ph,6\n"
            "sample,2026-01-01T00:00:01Z,zn-2,nd,ph,6\n",
            ":3:",
            "zone 'zn-2'",
        ),
        ("kind,time,zone\nevaluation,2026-01-01T00:00:00Z,zn-1,extra\n", ":2:", "4 fields"),
    ],  # fmt: skip
)
def test_a_malformed_csv_names_its_line(tmp_path, text, where, what):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(RecordingError) as e:
        read_csv(path)
    assert f"bad.csv{where}" in str(e.value) and what in str(e.value)


def changed_site(tmp_path: Path, old: str, new: str) -> Path:
    """The example site with one edit, using the standard rules where they are."""
    site = tmp_path / "site"
    shutil.copytree(ROOT / "examples", site)
    (site / "ruleset.hydro").write_text(
        (site / "ruleset.hydro").read_text().replace('"../rules"', f'"{ROOT / "rules"}"')
    )
    profiles = site / "profiles.hydro"
    assert old in profiles.read_text()
    profiles.write_text(profiles.read_text().replace(old, new))
    loaded = load(site)
    assert loaded.ok, [d.message for d in loaded.diags.items]
    return site


def test_a_changed_rule_set_stops_at_its_first_new_command(tmp_path):
    """The recirculation period 16 min instead of 20: the replay follows the recording until the new rules
    switch the pump where the old ones did not, and stops there, naming that command. It is the first
    command by which the two rule sets' own dry runs (same twin, same seed) differ."""
    dry, rec = record_dry_run(RS, "zn-1", days=1)
    new = load(changed_site(tmp_path, "duty 50% period 20m", "duty 50% period 16m")).ruleset
    r = replay(new, rec)

    theirs = run(new, ["zn-1"], days=1).zones[0].commands
    ours = dry.zones[0].commands
    shown = [(c["at"], c["channel"], c["cmd"], c["params"]) for c in ours]
    first = next(
        c for i, c in enumerate(theirs) if i >= len(shown) or shown[i] != (c["at"], c["channel"], c["cmd"], c["params"])
    )
    assert r.stopped_at is not None and not r.agrees
    stop = r.stopped_at["decision"]
    assert (r.stopped_at["at"], stop["channel"], stop["cmd"], stop["params"]) == (
        first["at"], first["channel"], first["cmd"], first["params"]
    )  # fmt: skip
    assert stop["channel"] == "pump_recirc"
    # listed among the disagreements, and the replay went no further
    assert {"kind": "command", "side": "replay", "at": first["at"], "channel": "pump_recirc"}.items() <= next(
        d for d in r.disagreements if d["side"] == "replay"
    ).items()
    assert r.zone_run.commands[-1]["at"] == first["at"]
    assert all(parse_time(c["at"]) <= parse_time(first["at"]) for c in r.zone_run.commands)


def test_the_same_rule_set_runs_the_whole_window(recorded):
    """Control for the test above: the unchanged rules replay to the end of the window."""
    _, rec = recorded
    r = replay(RS, rec)
    assert r.zone_run.ticks == len(rec.evaluations)


def test_a_zone_the_rule_set_lacks_is_refused(recorded):
    _, rec = recorded
    with pytest.raises(ValueError, match="no zone 'zn-9'"):
        replay(RS, rec, "zn-9")
