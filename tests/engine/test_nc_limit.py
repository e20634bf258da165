"""The NC recirculation pump's OFF never exceeds max_recirc_off unless a lock, a water-change state or an
unreachable node holds it (issue 7 item 4), and nodes that come back get their relays re-asserted (item 5)."""

from hydro_rules.engine.state import ACTIVE, AlertState
from hydro_rules.messages import CommandResponse

from .harness import Zone, healthy
from .test_recirculation import bounded_off_fixture, off_stretches


def _failures(z: Zone, n: int = 3) -> None:
    """n failed commands of the recirculation pump just now: a deny that does not lock."""
    z.state.channels["pump_recirc"].failures = [z.now] * n


def _off_minutes(z: Zone) -> float:
    c = z.state.channels["pump_recirc"]
    return 0.0 if c.is_on else (z.now - c.since) / 60.0


def test_a_deny_that_does_not_lock_holds_the_nc_pump_off_no_longer_than_max_recirc_off():
    z = healthy(Zone())
    z.tick()
    _failures(z)  # can_run_pump: 3 or more failed commands in the last hour
    z.tick()
    assert not z.is_on("pump_recirc")
    start = z.state.channels["pump_recirc"].since
    while z.now - start < 9 * 60:
        z.tick()
        assert not z.is_on("pump_recirc"), "one tick before max_recirc_off it is still held"
    z.tick()
    assert z.now - start == 10 * 60 and z.is_on("pump_recirc"), "at max_recirc_off it runs again"
    on = z.cmds("pump_recirc")[-1]
    assert on.params == {"state": True} and on.rule.startswith("max_recirc_off reached")
    z.tick(4)
    assert z.is_on("pump_recirc"), "for min_on (5m)"
    z.tick()
    assert not z.is_on("pump_recirc"), "then the deny holds it off again"
    assert _off_minutes(z) == 0.0 or _off_minutes(z) <= 10


def test_failures_counted_while_a_node_was_silent_are_forgotten_when_it_comes_back():
    z = healthy(Zone(answer=None))  # nobody answers: the controller's link to the nodes is down
    z.tick(60)
    c = z.state.channels["pump_recirc"]
    assert c.failures, "commands timed out while the node was away"
    silent_since = z.now - 30 * 60
    z.prog.node_came_back(z.state, "nd-pump", z.now, silent_since)
    assert all(t < silent_since for t in c.failures)
    assert c.reassert and c.timeouts == 0 and c.retry_at is None


def test_a_locking_alert_holds_the_nc_pump_off_past_the_limit():
    z = healthy(Zone(), level=10.0)  # below levels.min: biz_dry_run locks
    z.tick(60)
    assert ("biz_dry_run", "pump_recirc") in z.active()
    assert not z.is_on("pump_recirc") and _off_minutes(z) >= 59


def test_a_dead_level_sensor_alone_does_not_hold_the_nc_pump_off():
    z = healthy(Zone())
    z.tick()
    z.set(water_level=None)  # the level sensor dies; flow and current still read
    z.tick(3 * 60)
    assert z.prog.metric_status("water_level") == "stale"
    assert max(off_stretches(z, 3 * 60), default=0) <= 10
    assert ("infra_sensor_stale", None) in z.active()


def test_a_bounded_off_is_renewed_before_it_ends_never_at_the_instant(tmp_path):
    z = healthy(Zone(bounded_off_fixture(tmp_path)), level=10.0)  # a lock holds it off: renewed OFFs
    z.tick(45)
    offs = [c for c in z.cmds("pump_recirc") if c.params["state"] is False]
    assert len(offs) >= 4
    for a, b in zip(offs, offs[1:]):
        ends = a.at + a.params["duration_ms"] / 1000.0
        assert b.at < ends, "the next OFF is sent while the previous one still holds"
        assert ends - b.at >= 60.0, "at least a tick before it would end"
    assert not z.is_on("pump_recirc")


def test_a_node_heard_again_after_a_silence_gets_its_relays_reasserted():
    z = healthy(Zone())
    z.tick()
    assert z.is_on("pump_recirc")
    before = len(z.cmds("pump_recirc"))
    z.set(pump_recirc__current=None, pump_recirc__flow=None)  # the pump node stops publishing
    z.tick(3)
    assert z.state.nodes_heard["nd-pump"][1] is None, "3 minutes: not yet silent"
    z.tick()
    assert z.state.nodes_heard["nd-pump"][1] is not None, "silent for more than 3 minutes"
    del z.readings["pump_recirc__current"], z.readings["pump_recirc__flow"]
    z.tick()  # it publishes again (after a reboot its relays are open)
    new = z.cmds("pump_recirc")[before:]
    assert [c.params for c in new] == [{"state": True}], "the engine re-asserts the NC pump ON (duty ON phase)"


def test_a_command_that_got_no_answer_is_sent_again_whatever_the_engine_believed():
    z = healthy(Zone(answer=None))
    z.tick(10)  # duty sends OFF at 10 min: no answer
    off = z.cmds("pump_recirc")[-1]
    assert off.params == {"state": False}
    z.tick()  # times out (response_timeout 1m): the node may or may not have done it
    c = z.state.channels["pump_recirc"]
    assert c.timeouts == 1 and c.reassert and c.retry_at == z.now + 60.0
    assert z.cmds("pump_recirc")[-1] is off, "nothing sent before the back-off ends"
    z.tick()
    again = z.cmds("pump_recirc")[-1]
    assert again is not off and again.params == {"state": False}, "the OFF is sent again"
    assert not c.reassert


def test_a_year_of_timeouts_never_overflows_the_back_off():
    z = healthy(Zone(answer=None))
    c = z.state.channels["pump_recirc"]
    c.timeouts = 5000
    z.tick(30)
    assert c.retry_at is not None and c.retry_at - z.now <= 600


def test_apply_response_from_a_late_node_does_not_crash():
    z = healthy(Zone())
    z.tick()
    z.prog.apply_response(z.state, CommandResponse("nope", "DONE", z.now), z.now)
    z.state.alerts[("biz_no_flow", "pump_recirc")] = AlertState("biz_no_flow", "pump_recirc", ACTIVE, z.now)
    z.tick(30)
    assert not z.is_on("pump_recirc"), "a locking alert: held off"
