"""Where no service runs, the simulation plays its timeout sweep (sim.timeouts)."""

from pathlib import Path

from hydro_rules.engine.decisions import Command
from hydro_rules.lang.loader import load
from hydro_rules.messages import ACK, DONE, ERROR
from hydro_rules.messages import CommandResponse as R
from hydro_rules.sim.dryrun import run
from hydro_rules.sim.timeouts import TimeoutSweep
from hydro_rules.sim.times import parse_time

ROOT = Path(__file__).resolve().parents[2]
RS = load(ROOT / "examples").ruleset


def _cmd(cmd_id: str, at: float, **params) -> Command:
    return Command(cmd_id, "zn", "pump_drain", "nd", "pump", "run_pump", params, at, "test", "on")


def test_an_unanswered_command_times_out_at_response_timeout_once():
    s = TimeoutSweep(60.0)
    s.sent([_cmd("a", 100.0)])
    assert s.due(159.0) == []
    [t] = s.due(160.0)
    assert (t.cmd_id, t.status, t.ts) == ("a", "TIMEOUT", 160.0)
    assert s.due(161.0) == [] and s.waiting == frozenset()


def test_an_acknowledged_command_gets_its_own_duration_on_top():
    s = TimeoutSweep(60.0)
    s.sent([_cmd("run", 0.0, duration_ms=600_000), _cmd("other", 0.0)])
    s.heard([R("run", ACK, 10.0)], 10.0)
    assert [t.cmd_id for t in s.due(60.0)] == ["other"]
    assert s.due(669.0) == []
    assert [t.cmd_id for t in s.due(670.0)] == ["run"]


def test_a_terminal_answer_ends_the_wait_and_late_answers_are_ignored():
    s = TimeoutSweep(60.0)
    s.sent([_cmd("a", 0.0), _cmd("b", 0.0)])
    s.heard([R("a", DONE, 5.0), R("b", ERROR, 5.0), R("zzz", DONE, 5.0)], 5.0)
    assert s.due(1e9) == [] and s.waiting == frozenset()


def test_a_node_that_never_answers_times_out_in_the_dry_run_one_tick_before_at_after():
    seen: dict[float, int] = {}

    def watch(zr, now):  # after the answers (and the service's timeouts) are in, before the engine
        seen[now] = zr.state.channels["pump_recirc"].timeouts

    fault_at = 600.0
    r = run(
        RS, ["zn-1"], days=0.05, tick_s=30.0, fine_tick=None, faults=["node_offline@10m:pump_recirc"], before_tick=watch
    )
    zr = r.zones[0]
    t0 = r.start
    first = next(c for c in zr.commands if c["channel"] == "pump_recirc" and parse_time(c["at"]) - t0 >= fault_at)
    sent = parse_time(first["at"])
    assert (seen[sent + 30.0], seen[sent + 60.0], seen[sent + 90.0]) == (0, 1, 1)
    assert zr.outcomes[first["cmd_id"]] == "TIMEOUT"
    assert any(e.kind == "response" and e.text == "pump_recirc: TIMEOUT" and e.at == sent + 60.0 for e in zr.timeline)
