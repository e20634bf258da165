"""Pump safety (§14): no_flow, pump_stuck_on, overcurrent; locks until the operator resets (§16.2)."""

from .harness import T0, Zone, healthy


def test_no_flow_raises_and_locks_the_pump_until_reset():
    z = healthy(Zone()).set(pump_recirc__flow=0.0)
    z.tick(8)
    assert ("biz_no_flow", "pump_recirc") in z.active()
    assert not z.is_on("pump_recirc")
    z.set(pump_recirc__flow=20.0).tick(60)
    assert ("biz_no_flow", "pump_recirc") in z.active(), "it does not clear by itself"
    assert not z.is_on("pump_recirc")
    d = z.reset("boris", "unblocked the line")
    resolved = [a for a in d.alerts if a.change == "resolved"]
    assert resolved and resolved[0].by == "boris" and resolved[0].why == "unblocked the line"
    assert z.tick_until_on("pump_recirc")


def _at(z: Zone, seconds: float):
    z.now = T0 + seconds
    return z.step()


def test_a_running_pump_without_flow_is_stopped_and_locked_after_ten_seconds():
    z = healthy(Zone()).set(pump_recirc__flow=0.0)  # the NC pump runs from T0 and moves nothing
    _at(z, 9)
    assert not z.active() and z.is_on("pump_recirc"), "one evaluation before 10 s: a pump may take a moment"
    _at(z, 10)
    assert ("biz_no_flow", "pump_recirc") in z.active()
    assert not z.is_on("pump_recirc")
    assert z.refusals[-1].reason == "the pump runs but moves no water"


def test_no_flow_reading_does_not_stop_a_pump_without_one():
    z = healthy(Zone()).set(pump_recirc__flow=None)
    z.readings.pop("pump_recirc__flow")
    z.snap.pop(("nd-pump", "flow_rate"), None)
    z.set(pump_recirc__flow=None)
    z.tick(3)
    assert z.is_on("pump_recirc") and not z.active(), "an unknown flow is no proof of a dry pump"


def test_pump_stuck_on_when_current_flows_while_off():
    z = healthy(Zone())
    z.tick(11)
    assert not z.is_on("pump_recirc")
    z.set(pump_recirc__current=1100.0)  # relay welded: the pump keeps drawing current
    z.tick(5)
    assert ("biz_pump_stuck_on", "pump_recirc") in z.active()


def test_overcurrent_error_response_raises_and_locks():
    z = healthy(Zone(answer="overcurrent"))
    z.state.solution_started_at = T0 - 8 * 86400
    z.run_until("WATER_CHANGE_DRAIN", 600)
    z.tick()
    assert ("biz_overcurrent", "pump_drain") in z.active()
    a = z.state.alerts[("biz_overcurrent", "pump_drain")]
    assert a.details["current_ma"] == 2300 and a.details["error_code"] == "overcurrent"
    assert not z.is_on("pump_drain")
    starts = len([c for c in z.cmds("pump_drain") if c.cmd == "run_pump"])
    z.tick(20)
    assert len([c for c in z.cmds("pump_drain") if c.cmd == "run_pump"]) == starts, "locked: no new start"


def test_silent_node_times_out_with_backoff_and_late_answers_change_nothing():
    from hydro_rules.messages import CommandResponse

    z = healthy(Zone(answer=None))
    z.tick(11)
    first = z.cmds("pump_recirc")[0]
    z.tick(60)
    c = z.state.channels["pump_recirc"]
    assert c.timeouts >= 2
    sent = z.cmds("pump_recirc")
    assert len(sent) < 10, "a node that does not answer is asked again with growing pauses"
    assert ("infra_node_offline", "pump_recirc") in z.active()
    fails, timeouts = list(c.failures), c.timeouts
    for _ in range(2):  # a late answer, twice
        z.prog.apply_response(z.state, CommandResponse(first.cmd_id, "DONE", z.now), z.now)
    assert c.failures == fails and c.timeouts == timeouts
