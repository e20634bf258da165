"""Node firmware: NC/NO contacts, timers, run clamps and the responses to each command."""

from __future__ import annotations

import pytest

from hydro_rules.messages import WireCommand

from .helpers import HOUR, MIN, make, run, send, statuses, values


def test_without_commands_the_nc_pump_runs_and_no_pumps_stay_off():
    twin = make()
    readings = run(twin, 6 * HOUR, tick=600)
    assert twin.running("pump_recirc")
    assert not twin.running("pump_drain") and not twin.running("pump_fill")
    assert twin.run_seconds["pump_recirc"] == 6 * HOUR
    assert twin.run_seconds["pump_drain"] == twin.run_seconds["pump_fill"] == 0
    assert min(values(readings, "nd-pump-1", "pump_current")) > 900
    assert max(values(readings, "nd-drain-1", "pump_current")) < 100
    assert set(values(readings, "nd-fill-1", "flow_rate")) == {0.0}
    assert min(values(readings, "nd-pump-1", "flow_rate")) > 18


def test_bounded_off_nc_off_with_duration_falls_back_on_by_itself():
    twin = make(firmware="bounded-off")
    off = send(twin, "pump_recirc", "set_relay", state=False, duration_ms=600_000)
    assert statuses(twin, off) == ["ACK", "DONE"]
    assert not twin.running("pump_recirc")
    run(twin, 10 * MIN - 1, tick=1)
    assert not twin.running("pump_recirc")
    run(twin, 1, tick=1)
    assert twin.running("pump_recirc")
    assert twin.drain_responses() == []  # the fallback is the node's own timer, nothing to answer
    run(twin, HOUR)
    assert twin.running("pump_recirc")


def test_nc_off_without_duration_holds_until_switched_on():
    twin = make()
    send(twin, "pump_recirc", "set_relay", state=False)
    run(twin, 3 * HOUR, tick=600)
    assert not twin.running("pump_recirc")
    on = send(twin, "pump_recirc", "set_relay", state=True)
    assert statuses(twin, on) == ["ACK", "DONE"]
    assert twin.running("pump_recirc")
    again = send(twin, "pump_recirc", "set_relay", state=True)
    assert statuses(twin, again) == ["NO_EFFECT"]


def test_bounded_off_off_renewed_before_it_expires_extends_the_off_stretch():
    twin = make(firmware="bounded-off")
    send(twin, "pump_recirc", "set_relay", state=False, duration_ms=600_000)
    run(twin, 8 * MIN)
    renew = send(twin, "pump_recirc", "set_relay", state=False, duration_ms=600_000)
    assert statuses(twin, renew) == ["ACK", "DONE"]  # same state, new timer: not NO_EFFECT
    run(twin, 9 * MIN)
    assert not twin.running("pump_recirc")
    run(twin, 1 * MIN)
    assert twin.running("pump_recirc")


def test_run_pump_runs_for_its_duration_then_answers_done():
    twin = make()
    cmd = send(twin, "pump_drain", "run_pump", duration_ms=150_000)
    t0 = twin.now
    assert [(r.status, r.ts) for r in twin.drain_responses()] == [("ACK", t0)]
    run(twin, 7 * MIN, tick=420)  # one step crosses the end of the run
    assert not twin.running("pump_drain")
    assert [(r.cmd_id, r.status, r.ts) for r in twin.drain_responses()] == [(cmd.cmd_id, "DONE", t0 + 150)]
    assert twin.run_seconds["pump_drain"] == pytest.approx(150.0)
    assert twin.drained_l == pytest.approx(75.0)


def test_run_pump_is_clamped_to_the_node_limit():
    twin = make(max_run_ms=300_000)
    send(twin, "pump_fill", "run_pump", duration_ms=3_600_000)
    run(twin, HOUR, tick=600)
    assert twin.run_seconds["pump_fill"] == pytest.approx(300.0)
    assert [r.status for r in twin.drain_responses()] == ["ACK", "DONE"]


def test_a_new_run_replaces_the_running_one():
    twin = make()
    first = send(twin, "pump_drain", "run_pump", duration_ms=60_000)
    run(twin, 30)
    second = send(twin, "pump_drain", "run_pump", duration_ms=60_000)
    got = [(r.cmd_id, r.status) for r in twin.drain_responses()]
    assert got == [(first.cmd_id, "ACK"), (second.cmd_id, "ACK"), (first.cmd_id, "DONE")]
    run(twin, 2 * MIN)
    assert twin.run_seconds["pump_drain"] == pytest.approx(90.0)
    assert statuses(twin, second) == ["DONE"]


def test_set_relay_off_cuts_a_run_short():
    twin = make()
    run_cmd = send(twin, "pump_drain", "run_pump", duration_ms=300_000)
    run(twin, MIN)
    twin.drain_responses()
    off = send(twin, "pump_drain", "set_relay", state=False)
    got = [(r.cmd_id, r.status) for r in twin.drain_responses()]
    assert got == [(off.cmd_id, "ACK"), (run_cmd.cmd_id, "DONE"), (off.cmd_id, "DONE")]
    assert not twin.running("pump_drain")


@pytest.mark.parametrize("firmware", ["hydro2", "bounded-off"])
def test_set_relay_on_a_no_pump_with_duration_returns_to_open(firmware):
    twin = make(firmware=firmware)
    send(twin, "pump_fill", "set_relay", state=True, duration_ms=60_000)
    assert twin.running("pump_fill")
    run(twin, MIN)
    assert not twin.running("pump_fill")


def test_dose_is_done_at_once():
    twin = make()
    cmd = send(twin, "dose_ph_down", "dose", ml=2.0)
    got = twin.drain_responses()
    assert [(r.cmd_id, r.status) for r in got] == [(cmd.cmd_id, "ACK"), (cmd.cmd_id, "DONE")]
    assert got[1].details == {"ml": 2.0}


@pytest.mark.parametrize(
    ("channel", "cmd", "params", "code"),
    [
        ("pump_recirc", "dose", {"ml": 2}, "not_a_doser"),
        ("dose_ph_down", "dose", {"ml": -1}, "bad_params"),
        ("dose_ph_down", "dose", {"ml": "2"}, "bad_params"),
        ("dose_ph_down", "dose", {}, "bad_params"),
        ("dose_ph_down", "run_pump", {"duration_ms": 1000}, "not_a_pump"),
        ("pump_drain", "run_pump", {"duration_ms": 0}, "bad_params"),
        ("pump_drain", "run_pump", {"duration_ms": True}, "bad_params"),
        ("pump_drain", "set_relay", {"state": 1}, "bad_params"),
        ("pump_drain", "set_relay", {"state": False, "duration_ms": -5}, "bad_params"),
        ("level_sensor", "set_relay", {"state": True}, "not_a_relay"),
        ("pump_drain", "fly", {}, "unknown_command"),
        ("pump_drain", "set_pwm", {"value": 10}, "unknown_command"),
    ],
)
def test_invalid_commands(channel, cmd, params, code):
    twin = make()
    c = send(twin, channel, cmd, **params)
    (resp,) = twin.drain_responses()
    assert (resp.cmd_id, resp.status, resp.error_code) == (c.cmd_id, "INVALID", code)
    assert not twin.running("pump_drain")


def test_unknown_channel_key_is_invalid_and_unknown_node_is_silent():
    twin = make()
    twin.send(WireCommand("c1", "nd-drain-1", "pump_x", "run_pump", {"duration_ms": 1000}, twin.now))
    twin.send(WireCommand("c2", "nd-ghost-9", "pump_drain", "run_pump", {"duration_ms": 1000}, twin.now))
    assert [(r.cmd_id, r.status, r.error_code) for r in twin.drain_responses()] == [
        ("c1", "INVALID", "unknown_channel")
    ]


def test_stale_command_is_rejected_by_the_node_clock():
    twin = make()
    run(twin, MIN)
    cmd = send(twin, "pump_drain", "run_pump", ts=twin.now - 30, duration_ms=60_000)
    (resp,) = twin.drain_responses()
    assert (resp.cmd_id, resp.status, resp.error_code) == (cmd.cmd_id, "ERROR", "timestamp_expired")
    assert not twin.running("pump_drain")
    lenient = make(max_clock_skew_s=None)
    run(lenient, MIN)
    send(lenient, "pump_drain", "run_pump", ts=lenient.now - 30, duration_ms=60_000)
    assert lenient.running("pump_drain")


def test_a_command_from_the_future_arrives_at_its_time():
    twin = make()
    t0 = twin.now
    cmd = send(twin, "pump_drain", "run_pump", ts=t0 + 90, duration_ms=60_000)
    run(twin, MIN)
    assert not twin.running("pump_drain") and twin.drain_responses() == []
    run(twin, MIN)
    assert twin.running("pump_drain")
    assert [(r.cmd_id, r.status, r.ts) for r in twin.drain_responses()] == [(cmd.cmd_id, "ACK", t0 + 90)]
    assert twin.run_seconds["pump_drain"] == pytest.approx(30.0)


def test_bounded_off_restart_drops_outputs_to_default():
    twin = make(firmware="bounded-off")
    send(twin, "pump_recirc", "set_relay", state=False)
    restart = send(twin, "pump_recirc", "restart")
    assert statuses(twin, restart) == ["ACK", "DONE"]
    assert twin.running("pump_recirc")


def test_running_of_unknown_channel_raises():
    with pytest.raises(KeyError):
        make().running("pump_nope")
