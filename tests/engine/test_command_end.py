"""A command ends once, and the engine does not end it by itself: TIMEOUT is the service's answer."""

from hydro_rules.messages import CommandResponse

from .harness import Zone, healthy


def _silent_zone() -> Zone:
    """zn-t whose pump nodes never answer, with no service to time their commands out."""
    z = healthy(Zone(answer=None))
    z.sweep = None
    return z


def test_without_the_service_the_engine_never_times_a_command_out():
    z = _silent_zone()
    z.tick(10)  # the duty cycle sends OFF at 10 min: no answer, ever
    off = z.cmds("pump_recirc")[-1]
    z.tick(120)
    c = z.state.channels["pump_recirc"]
    assert off.cmd_id in c.pending, "still waiting for an answer: only the service ends it"
    assert c.timeouts == 0 and c.failures == [] and c.retry_at is None
    assert ("infra_node_offline", "pump_recirc") not in z.active()


def test_a_timeout_then_a_late_error_counts_once():
    z = _silent_zone()
    z.tick(10)
    off = z.cmds("pump_recirc")[-1]
    z.now += 60.0
    z.prog.apply_response(z.state, CommandResponse(off.cmd_id, "TIMEOUT", z.now), z.now)
    c = z.state.channels["pump_recirc"]
    assert c.timeouts == 1 and c.reassert and c.retry_at == z.now + 60.0
    assert c.failures == [z.now]
    for status in ("ERROR", "DONE", "TIMEOUT"):  # late, then duplicated
        z.prog.apply_response(z.state, CommandResponse(off.cmd_id, status, z.now + 5, "overcurrent"), z.now + 5)
    assert c.failures == [z.now] and c.timeouts == 1, "one command, one failure"
    assert ("biz_overcurrent", "pump_recirc") not in z.active(), "a late answer raises nothing"


def test_the_harness_times_out_a_silent_command_at_response_timeout():
    z = healthy(Zone(answer=None))  # the harness plays the service (response_timeout 1m)
    z.tick(10)
    off = z.cmds("pump_recirc")[-1]
    c = z.state.channels["pump_recirc"]
    z.now += 30.0
    z.step()
    assert c.timeouts == 0 and off.cmd_id in c.pending, "30 s: not yet"
    z.now += 30.0
    z.step()
    assert c.timeouts == 1 and off.cmd_id not in c.pending, "60 s: timed out"
    z.now += 30.0
    z.step()
    assert c.timeouts == 1 and len(c.failures) == 1, "90 s: counted once"
