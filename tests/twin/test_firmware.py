"""hydro2 against bounded-off: what each node firmware does with set_relay durations, restarts and reboots."""

from __future__ import annotations

import pytest

from hydro_rules.twin import FIRMWARES, TwinConfig, ZoneTwin

from .helpers import DAY, HOUR, MIN, T0, make, ruleset, run, send, statuses, values, zone


def test_hydro2_is_the_default_and_the_keyword_overrides_the_config():
    assert FIRMWARES == ("hydro2", "bounded-off")
    assert make().firmware == "hydro2"
    assert make(firmware="bounded-off").firmware == "bounded-off"
    cfg = TwinConfig(firmware="bounded-off")
    assert ZoneTwin(zone(), ruleset(), seed=1, start=T0, config=cfg, firmware="hydro2").firmware == "hydro2"
    assert cfg.firmware == "bounded-off"  # the caller's config is not changed


@pytest.mark.parametrize("bad", ["hydro1", "", "HYDRO2"])
def test_an_unknown_firmware_is_refused_naming_the_known_ones(bad):
    with pytest.raises(ValueError, match="hydro2, bounded-off"):
        ZoneTwin(zone(), ruleset(), seed=1, start=T0, firmware=bad)
    with pytest.raises(ValueError, match="hydro2, bounded-off"):
        make(firmware=bad)


def test_hydro2_nc_off_with_duration_stays_off_past_it():
    twin = make()
    off = send(twin, "pump_recirc", "set_relay", state=False, duration_ms=600_000)
    assert statuses(twin, off) == ["ACK", "DONE"]
    run(twin, 10 * MIN - 1, tick=1)
    assert not twin.running("pump_recirc")
    run(twin, 1, tick=1)
    assert not twin.running("pump_recirc")  # bounded-off would run again at this very second
    run(twin, DAY, tick=600)
    assert not twin.running("pump_recirc") and twin.drain_responses() == []
    on = send(twin, "pump_recirc", "set_relay", state=True)
    assert statuses(twin, on) == ["ACK", "DONE"] and twin.running("pump_recirc")


@pytest.mark.parametrize(("firmware", "back_on"), [("hydro2", False), ("bounded-off", True)])
def test_an_off_with_duration_at_its_boundary(firmware, back_on):
    twin = make(firmware=firmware)
    send(twin, "pump_recirc", "set_relay", state=False, duration_ms=120_000)
    run(twin, 2 * MIN - 1, tick=1)
    assert not twin.running("pump_recirc")
    run(twin, 1, tick=1)
    assert twin.running("pump_recirc") is back_on


def test_hydro2_off_of_an_open_relay_is_no_effect_whatever_its_duration():
    twin = make()
    send(twin, "pump_recirc", "set_relay", state=False)
    twin.drain_responses()
    again = send(twin, "pump_recirc", "set_relay", state=False, duration_ms=600_000)
    assert statuses(twin, again) == ["NO_EFFECT"]
    drain = send(twin, "pump_drain", "set_relay", state=False, duration_ms=60_000)
    assert statuses(twin, drain) == ["NO_EFFECT"]
    bounded = make(firmware="bounded-off")
    renew = send(bounded, "pump_drain", "set_relay", state=False, duration_ms=60_000)
    assert statuses(bounded, renew) == ["ACK", "DONE"]  # a timer to arm


def test_hydro2_timed_on_runs_for_exactly_its_duration_then_answers_done():
    twin = make()
    send(twin, "pump_recirc", "set_relay", state=False)
    twin.drain_responses()
    t0 = twin.now
    on = send(twin, "pump_recirc", "set_relay", state=True, duration_ms=120_000)
    assert [(r.status, r.ts) for r in twin.drain_responses()] == [("ACK", t0)]
    run(twin, 2 * MIN - 1, tick=1)
    assert twin.running("pump_recirc") and twin.drain_responses() == []
    run(twin, 1, tick=1)
    assert not twin.running("pump_recirc")  # contacts OPEN again: the NC pump stops
    assert [(r.cmd_id, r.status, r.ts) for r in twin.drain_responses()] == [(on.cmd_id, "DONE", t0 + 120)]
    assert twin.run_seconds["pump_recirc"] == pytest.approx(120.0)
    run(twin, HOUR)
    assert not twin.running("pump_recirc") and twin.run_seconds["pump_recirc"] == pytest.approx(120.0)


def test_bounded_off_timed_on_returns_to_the_fail_safe_default():
    twin = make(firmware="bounded-off")
    send(twin, "pump_recirc", "set_relay", state=False)
    on = send(twin, "pump_recirc", "set_relay", state=True, duration_ms=120_000)
    twin.drain_responses()
    run(twin, HOUR)
    assert twin.running("pump_recirc")  # NC default: closed
    fill = send(twin, "pump_fill", "set_relay", state=True, duration_ms=120_000)
    assert statuses(twin, fill) == ["ACK", "DONE"]  # DONE at once, not at the end
    run(twin, 2 * MIN, tick=1)
    assert not twin.running("pump_fill") and twin.run_seconds["pump_fill"] == pytest.approx(120.0)
    assert statuses(twin, on) == []


def test_hydro2_timed_on_is_capped_at_five_minutes():
    twin = make()
    cmd = send(twin, "pump_fill", "set_relay", state=True, duration_ms=3_600_000)
    t0 = twin.now
    twin.drain_responses()
    run(twin, HOUR, tick=7)
    assert twin.run_seconds["pump_fill"] == pytest.approx(300.0)
    assert [(r.cmd_id, r.status, r.ts) for r in twin.drain_responses()] == [(cmd.cmd_id, "DONE", t0 + 300)]


def test_hydro2_timed_on_cut_short_answers_done_at_once():
    twin = make()
    on = send(twin, "pump_drain", "set_relay", state=True, duration_ms=120_000)
    run(twin, 30)
    twin.drain_responses()
    off = send(twin, "pump_drain", "set_relay", state=False, duration_ms=60_000)
    got = [(r.cmd_id, r.status) for r in twin.drain_responses()]
    assert got == [(off.cmd_id, "ACK"), (on.cmd_id, "DONE"), (off.cmd_id, "DONE")]
    run(twin, HOUR)
    assert not twin.running("pump_drain") and twin.run_seconds["pump_drain"] == pytest.approx(30.0)


def test_hydro2_on_without_duration_holds_but_an_no_pump_is_clamped():
    twin = make(max_run_ms=300_000)
    fill = send(twin, "pump_fill", "set_relay", state=True)
    assert statuses(twin, fill) == ["ACK", "DONE"]
    valve = send(twin, "pump_recirc", "set_relay", state=True)
    assert statuses(twin, valve) == ["NO_EFFECT"]  # the NC pump runs already
    run(twin, HOUR, tick=600)
    assert twin.run_seconds["pump_fill"] == pytest.approx(300.0)
    assert twin.running("pump_recirc") and twin.drain_responses() == []


@pytest.mark.parametrize(("firmware", "nc_runs"), [("hydro2", False), ("bounded-off", True)])
def test_restart_reboots_the_node(firmware, nc_runs):
    twin = make(firmware=firmware)
    send(twin, "pump_recirc", "set_relay", state=False)
    send(twin, "pump_drain", "run_pump", duration_ms=600_000)
    restart = send(twin, "pump_recirc", "restart")
    assert statuses(twin, restart) == ["ACK", "DONE"]
    assert twin.running("pump_recirc") is nc_runs
    assert twin.running("pump_drain")  # another node: untouched
    run(twin, HOUR)
    assert twin.running("pump_recirc") is nc_runs


def test_hydro2_restart_opens_a_running_nc_pump():
    twin = make()
    assert twin.running("pump_recirc")
    send(twin, "pump_recirc", "restart")
    assert not twin.running("pump_recirc")
    on = send(twin, "pump_recirc", "set_relay", state=True)
    assert statuses(twin, on) == ["ACK", "DONE"] and twin.running("pump_recirc")


def test_hydro2_controller_crash_runs_the_nc_pump_without_power_and_stops_it_at_the_reboot():
    twin = make("controller_crash@1h:for=30m")
    run(twin, 50 * MIN)
    send(twin, "pump_recirc", "set_relay", state=False)
    send(twin, "pump_fill", "set_relay", state=True)
    twin.drain_responses()
    run(twin, 10 * MIN)
    assert twin.running("pump_recirc") and not twin.running("pump_fill")  # no power: the NC spring closes
    run(twin, 30 * MIN - 1, tick=1)
    assert twin.running("pump_recirc")
    readings = run(twin, 1, tick=1)
    assert readings  # rebooted: everyone reports again
    assert not twin.running("pump_recirc") and not twin.running("pump_fill")  # the firmware opened every relay
    run(twin, DAY, tick=600)
    assert not twin.running("pump_recirc"), "nothing switches it on but a command"
    on = send(twin, "pump_recirc", "set_relay", state=True)
    assert statuses(twin, on) == ["ACK", "DONE"] and twin.running("pump_recirc")


def test_hydro2_overlapping_crashes_reboot_once_power_is_back():
    twin = make("controller_crash@1h:for=30m", "controller_crash@1h10m:for=1h")
    run(twin, 90 * MIN + 1)
    assert twin.running("pump_recirc")  # the second crash still holds
    run(twin, HOUR)
    assert not twin.running("pump_recirc")


def test_hydro2_timed_run_ends_on_the_node_clock_while_it_is_offline():
    twin = make("node_offline@1m:pump_drain")
    cmd = send(twin, "pump_drain", "set_relay", state=True, duration_ms=120_000)
    assert statuses(twin, cmd) == ["ACK"]
    run(twin, 10 * MIN)
    assert twin.drain_responses() == []  # the DONE was never published
    assert twin.run_seconds["pump_drain"] == pytest.approx(120.0)


@pytest.mark.parametrize("firmware", ["hydro2", "bounded-off"])
def test_a_node_offline_for_a_whole_year(firmware):
    twin = make("node_offline@0", firmware=firmware)
    send(twin, "pump_recirc", "set_relay", state=False)
    readings = run(twin, 365 * DAY, tick=6 * HOUR)
    assert not values(readings, "nd-pump-1", "pump_current")
    assert twin.running("pump_recirc")  # the OFF was lost: the NC pump ran all year
    assert twin.run_seconds["pump_recirc"] == pytest.approx(365 * DAY)


@pytest.mark.parametrize("firmware", ["hydro2", "bounded-off"])
def test_a_controller_crash_lasting_a_year(firmware):
    twin = make("controller_crash@1h:for=400d", firmware=firmware)
    readings = run(twin, 365 * DAY, tick=6 * HOUR)
    assert [r for r in readings if r.ts > T0 + HOUR] == []
    assert twin.running("pump_recirc") and not twin.running("pump_drain")
