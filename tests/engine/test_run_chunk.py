"""NO pumps run in short renewed chunks (`commands.run_chunk`), and a channel never has two
commands of opposite effect in flight (issue 9 item 2)."""

from hydro_rules.engine.state import OFF, ON
from hydro_rules.messages import CommandResponse

from .harness import T0, Zone, fixture_ruleset, healthy

PROFILE_2M = """profile test_standard {
  water_cycle {
    recirc {
      window 00:00 to 24:00 duty 50% period 20m
      max_recirc_off 10m
    }
  }
  commands { run_chunk 2m }
}"""


def _draining(z: Zone) -> Zone:
    healthy(z, level=50.0)
    z.state.solution_started_at = T0 - 8 * 86400
    z.run_until("WATER_CHANGE_DRAIN", 600)
    return z


def _runs(z: Zone) -> list:
    return [c for c in z.cmds("pump_drain") if c.cmd == "run_pump"]


def _second(z: Zone) -> None:
    """One evaluation one second later (a site daemon's tick)."""
    z.now += 1.0
    z.step()


def test_a_run_lasts_one_chunk_and_is_renewed_once_less_than_half_is_left():
    z = _draining(Zone(run_chunk=None))
    first = _runs(z)[-1]
    assert first.params == {"duration_ms": 60_000}, "commands.run_chunk defaults to 1 minute"
    while z.now < first.at + 29:
        _second(z)
    assert _runs(z)[-1] is first, "31 s left: not yet"
    _second(z)
    assert z.now == first.at + 30 and _runs(z)[-1] is first, "30 s left, exactly half: not yet"
    _second(z)
    renewal = _runs(z)[-1]
    assert renewal is not first and renewal.at == first.at + 31, "29 s left: renewed"
    assert renewal.params == {"duration_ms": 60_000}
    assert z.state.channels["pump_drain"].since <= first.at, "the pump never stopped: on_for goes on"


def test_run_chunk_is_a_setting(tmp_path):
    z = _draining(Zone(fixture_ruleset(tmp_path, PROFILE_2M), run_chunk=None))
    first = _runs(z)[-1]
    assert first.params == {"duration_ms": 120_000}
    while z.now < first.at + 59:
        _second(z)
    assert _runs(z)[-1] is first, "61 s of 120 left"
    _second(z)
    assert _runs(z)[-1] is first, "60 s left, exactly half"
    _second(z)
    assert _runs(z)[-1].at == first.at + 61


def test_a_run_renewed_only_as_it_ends_has_stopped():
    """Evaluated once a minute, a one-minute chunk ends at each evaluation: the node stopped the
    pump, however briefly, and the engine says so (on_for starts again). The daemon's ticks and the
    dry run's fine steps come often enough that this never happens there."""
    z = _draining(Zone(run_chunk=None))
    for level in (45.0, 40.0, 35.0):  # it drains: biz_no_flow has no reason to stop it
        z.set(water_level=level).tick()
    runs = _runs(z)
    assert [b.at - a.at for a, b in zip(runs, runs[1:])][-3:] == [60.0] * 3
    c = z.state.channels["pump_drain"]
    assert c.is_on and c.since == z.now == runs[-1].at


def test_a_three_minute_chunk_runs_on_unbroken_at_one_minute_ticks():
    z = _draining(Zone(run_chunk=180.0))
    since = z.state.channels["pump_drain"].since
    for level in (45.0, 40.0, 35.0, 30.0, 25.0):
        z.set(water_level=level).tick()
    runs = _runs(z)
    assert [b.at - a.at for a, b in zip(runs, runs[1:])][-2:] == [120.0] * 2, "renewed with 1 of 3 minutes left"
    assert z.state.channels["pump_drain"].since == since and z.prog.on_for("pump_drain") == z.now - since


def test_a_timed_start_ends_with_its_last_shorter_chunk_and_no_extra_off():
    z = healthy(Zone(run_chunk=None))
    z.tick()
    c = z.state.channels["pump_fill"]
    c.desired, c.desired_until, c.guards, c.cause = ON, z.now + 60 + 150.0, (), "test: start pump_fill for 150s"
    z.tick(5)  # asked from the next tick on
    runs = [r for r in z.cmds("pump_fill") if r.cmd == "run_pump"]
    assert [r.params["duration_ms"] for r in runs] == [60_000, 60_000, 30_000]
    assert not z.is_on("pump_fill")
    assert not [r for r in z.cmds("pump_fill") if r.intent == "off"], "the node ends the last chunk by itself"


# ---- never two commands of opposite effect in flight ---------------------------------------------------
def _quiet(z: Zone) -> Zone:
    """Nodes that do not answer until the test says, and no service timing commands out."""
    z.answer, z.sweep = None, None
    return z


def test_no_on_while_an_off_of_the_channel_is_unanswered():
    z = healthy(Zone())
    z.tick()
    assert z.is_on("pump_recirc")
    _quiet(z)
    rc = z.state.channels["pump_recirc"]
    rc.desired, rc.guards = OFF, ()
    z.tick()
    [off] = z.cmds("pump_recirc")[-1:]
    assert off.params == {"state": False} and off.cmd_id in rc.pending
    rc.desired = ON  # the rules want it on again before the node answered
    before = len(z.commands)
    z.tick(3)
    assert len(z.commands) == before, "no ON while the OFF is unanswered"
    z.prog.apply_response(z.state, CommandResponse(off.cmd_id, "ACK", z.now), z.now)
    z.tick()
    [on] = z.commands[before:]
    assert (on.channel, on.params) == ("pump_recirc", {"state": True}), "answered: the ON goes out"


def test_an_off_supersedes_an_unanswered_run_and_its_late_answer_changes_nothing():
    z = _draining(_quiet(Zone()))
    dr = z.state.channels["pump_drain"]
    run = _runs(z)[-1]
    assert run.cmd_id in dr.pending
    z.prog.apply_response(z.state, CommandResponse(run.cmd_id, "ACK", z.now), z.now)
    assert run.cmd_id in dr.acked
    z.set(water_level=4.0).tick()  # empty: the fill begins, the drain is told OFF
    assert z.machine_state == "WATER_CHANGE_FILL"
    off = z.cmds("pump_drain")[-1]
    assert off.params == {"state": False}
    assert run.cmd_id not in dr.pending and run.cmd_id not in dr.acked, "the run is off the books"
    assert list(dr.pending) == [off.cmd_id]
    late = CommandResponse(run.cmd_id, "ERROR", z.now, "overcurrent", {"channel": "pump_drain"})
    d = z.prog.apply_response(z.state, late, z.now)
    assert not d and not dr.failures and not z.active(), "a late answer to a superseded run changes nothing"
    d = z.prog.apply_response(z.state, CommandResponse(run.cmd_id, "TIMEOUT", z.now + 60), z.now + 60)
    assert not d and dr.timeouts == 0 and dr.retry_at is None


def test_a_run_ending_at_the_instant_the_rules_stop_it_still_gets_its_off():
    """The node may not have ended its run yet at that instant: the OFF goes out all the same."""
    z = _draining(Zone(run_chunk=None))
    z.set(water_level=30.0).tick()
    last = _runs(z)[-1]
    z.set(water_level=4.0).tick()
    assert z.now == last.at + 60.0 and z.machine_state == "WATER_CHANGE_FILL"
    off = z.cmds("pump_drain")[-1]
    assert off.at == z.now and off.params == {"state": False}
    z.tick()
    assert z.cmds("pump_drain")[-1] is off, "once"
