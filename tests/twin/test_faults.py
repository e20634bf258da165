"""What each fault does to the water, the loads, the readings and the responses."""

from __future__ import annotations

import pytest

from hydro_rules.twin.sensors import noise_max

from .helpers import DAY, HOUR, MIN, make, run, send, statuses, values


def test_dry_reservoir_empties_the_reservoir_fast():
    twin = make("dry_reservoir@1h")
    run(twin, HOUR)
    assert twin.level_pct == pytest.approx(90.0, abs=0.2)
    readings = run(twin, 15 * MIN)
    assert twin.volume_l == 0.0 and twin.loop_l < 0.1  # the loop drained back and out once the pump ran dry
    assert twin.leaked_l == pytest.approx(111.6, abs=0.2)
    assert 0.0 <= values(readings, "nd-level-1", "water_level")[-1] <= 0.2 * noise_max()  # noise clipped at 0
    assert values(readings, "nd-pump-1", "flow_rate")[-1] == 0.0  # the NC pump still runs, dry
    assert twin.running("pump_recirc")


def test_leak_loses_about_ten_percent_an_hour_and_can_stop():
    twin = make("leak@0:for=2h")
    readings = run(twin, 2 * HOUR)
    levels = values(readings, "nd-level-1", "water_level")
    assert levels[0] - levels[60] > 6.0  # what biz_water_level_falling looks for: > 6 % in an hour
    assert twin.leaked_l == pytest.approx(24.0)
    run(twin, 2 * HOUR)
    assert twin.leaked_l == pytest.approx(24.0)
    fast = make("leak@0:rate=36")
    run(fast, HOUR)
    assert fast.leaked_l == pytest.approx(36.0)


def test_stuck_relay_runs_the_recirculation_pump_whatever_is_commanded():
    twin = make("stuck_relay@1h")
    run(twin, HOUR)
    off = send(twin, "pump_recirc", "set_relay", state=False, duration_ms=600_000)
    assert statuses(twin, off) == ["ACK", "DONE"]  # the node believes it switched
    readings = run(twin, 5 * MIN)
    assert twin.running("pump_recirc") and not twin.contact("pump_recirc")
    assert min(values(readings, "nd-pump-1", "pump_current")) > 900
    assert min(values(readings, "nd-pump-1", "flow_rate")) > 18


def test_stuck_relay_on_the_drain_empties_the_reservoir():
    twin = make("stuck_relay@10m:pump_drain")
    run(twin, 9 * MIN)
    assert not twin.running("pump_drain")
    run(twin, 1 * MIN)
    assert twin.running("pump_drain")
    stop = send(twin, "pump_drain", "set_relay", state=False)
    assert statuses(twin, stop) == ["NO_EFFECT"]  # the node thinks the contacts are open already
    run(twin, 10 * MIN)
    assert twin.volume_l == 0.0 and twin.drained_l > 100


def test_overcurrent_start_is_refused_with_an_error():
    twin = make("overcurrent@0:pump_drain")
    cmd = send(twin, "pump_drain", "run_pump", duration_ms=60_000)
    got = twin.drain_responses()
    assert [(r.cmd_id, r.status) for r in got] == [(cmd.cmd_id, "ACK"), (cmd.cmd_id, "ERROR")]
    assert got[1].error_code == "overcurrent"
    assert got[1].details == {"channel": "pump_drain", "current_ma": 2300, "threshold_ma": 1500}
    assert not twin.running("pump_drain")
    run(twin, MIN)
    assert twin.drained_l == 0.0


def test_overcurrent_nc_pump_left_alone_runs_hot_and_a_start_switches_it_off():
    twin = make("overcurrent@1h:current=3000")
    readings = run(twin, 2 * HOUR)
    currents = values(readings, "nd-pump-1", "pump_current")
    assert currents[0] == pytest.approx(1050, abs=50) and currents[-1] == pytest.approx(3000, abs=50)
    assert twin.running("pump_recirc")
    on = send(twin, "pump_recirc", "set_relay", state=True)
    (err,) = [r for r in twin.drain_responses() if r.status == "ERROR"]
    assert err.cmd_id == on.cmd_id and err.details["current_ma"] == 3000
    assert not twin.running("pump_recirc")
    readings = run(twin, HOUR)
    assert not twin.running("pump_recirc")  # the node holds it off: an NC relay needs the coil energised
    assert max(values(readings, "nd-pump-1", "pump_current")) < 100


def test_no_flow_keeps_current_but_moves_no_water():
    twin = make("no_flow@1h")
    run(twin, HOUR)
    readings = run(twin, 10 * MIN)
    assert twin.running("pump_recirc")
    assert values(readings, "nd-pump-1", "flow_rate")[-5:] == [0.0] * 5
    assert min(values(readings, "nd-pump-1", "pump_current")) > 900
    assert twin.loop_l < 0.01 and twin.level_pct == pytest.approx(93.0, abs=0.1)  # the loop drained back


def test_no_flow_on_the_drain_leaves_the_level_alone():
    twin = make("no_flow@0:pump_drain")
    send(twin, "pump_drain", "run_pump", duration_ms=300_000)
    readings = run(twin, 5 * MIN)
    assert twin.drained_l == 0.0
    assert set(values(readings, "nd-drain-1", "flow_rate")) == {0.0}
    assert min(values(readings, "nd-drain-1", "pump_current")[:-1]) > 900  # the run ends at the last reading


def test_sensor_frozen_repeats_the_last_reading_with_fresh_timestamps():
    twin = make("sensor_frozen@1h")
    before = run(twin, HOUR)
    assert len(set(values(before, "nd-ph-1", "ph"))) > 50
    after = [r for r in run(twin, HOUR) if r.metric == "ph"]
    assert len({r.value for r in after}) == 1
    assert [r.ts for r in after] == [twin.now - HOUR + 60 * (i + 1) for i in range(60)]
    assert len(set(values(after, "nd-ec-1", "ec"))) <= 1  # nothing else froze
    ec = make("sensor_frozen@0:ec,for=1h")
    readings = run(ec, 2 * HOUR)
    frozen, thawed = values(readings, "nd-ec-1", "ec")[:59], values(readings, "nd-ec-1", "ec")[61:]
    assert len(set(frozen)) == 1 and len(set(thawed)) > 50


def test_sensor_dead_stops_reporting():
    twin = make("sensor_dead@1h:for=1h")
    readings = run(twin, 3 * HOUR)
    level_ts = [r.ts for r in readings if r.metric == "water_level"]
    assert len(level_ts) == 120 and not any(twin.now - 2 * HOUR < ts < twin.now - HOUR for ts in level_ts)
    assert len(values(readings, "nd-ph-1", "ph")) == 180


def test_sensor_dead_on_one_node_of_a_shared_metric():
    twin = make("sensor_dead@0:pump_current,node=nd-fill-1")
    readings = run(twin, 10 * MIN)
    assert values(readings, "nd-fill-1", "pump_current") == []
    assert len(values(readings, "nd-drain-1", "pump_current")) == 10


def test_node_offline_is_silent_and_deaf_but_its_timers_run():
    twin = make("node_offline@1h:for=1h", firmware="bounded-off")
    run(twin, 55 * MIN)
    twin.drain_responses()
    off = send(twin, "pump_recirc", "set_relay", state=False, duration_ms=600_000)
    assert statuses(twin, off) == ["ACK", "DONE"]
    readings = run(twin, 15 * MIN)
    assert not [r for r in readings[50:] if r.node_uid == "nd-pump-1"]
    assert twin.running("pump_recirc")  # the OFF expired on the node's own clock while it was offline
    send(twin, "pump_recirc", "set_relay", state=False)  # lost
    assert twin.drain_responses() == [] and twin.running("pump_recirc")
    readings = run(twin, HOUR)
    assert values(readings, "nd-pump-1", "pump_current")  # back online
    back = send(twin, "pump_recirc", "set_relay", state=False)
    assert statuses(twin, back) == ["ACK", "DONE"]


def test_node_offline_by_channel_name_and_run_pump_done_is_lost():
    twin = make("node_offline@1m:pump_drain")
    send(twin, "pump_drain", "run_pump", duration_ms=120_000)
    assert [r.status for r in twin.drain_responses()] == ["ACK"]
    readings = run(twin, 10 * MIN)
    assert twin.drain_responses() == []  # the DONE was never published
    assert twin.run_seconds["pump_drain"] == pytest.approx(120.0)
    assert {r.node_uid for r in readings[10:]} == {"nd-ph-1", "nd-ec-1", "nd-level-1", "nd-pump-1", "nd-fill-1"}


def test_bounded_off_controller_crash_drops_outputs_to_fail_safe_and_silences_nodes():
    twin = make("controller_crash@1h", firmware="bounded-off")
    run(twin, 50 * MIN)
    send(twin, "pump_recirc", "set_relay", state=False, duration_ms=600_000)
    send(twin, "pump_fill", "set_relay", state=True)
    twin.drain_responses()
    run(twin, 10 * MIN)
    assert twin.running("pump_recirc")  # NC falls back closed: the pump runs
    assert not twin.running("pump_fill")  # NO falls back open
    send(twin, "pump_recirc", "set_relay", state=False)
    send(twin, "pump_drain", "run_pump", duration_ms=60_000)
    readings = run(twin, 29 * MIN)
    assert twin.drain_responses() == [] and readings == []
    assert twin.running("pump_recirc") and twin.drained_l == 0.0  # commands sent meanwhile were lost
    readings = run(twin, 6 * MIN)
    assert len(readings) == 60  # rebooted after 30 minutes: everyone reports again
    assert twin.running("pump_recirc") and not twin.running("pump_fill")
    off = send(twin, "pump_recirc", "set_relay", state=False)
    assert statuses(twin, off) == ["ACK", "DONE"]


def test_controller_crash_for_a_given_time():
    twin = make("controller_crash@0:for=10m")
    assert twin.drain_telemetry() == []
    assert run(twin, 10 * MIN)[-1].ts == twin.now  # silent until 10m, reporting again at 10m


def test_faults_beyond_the_run_never_fire():
    twin = make("dry_reservoir@30d", "controller_crash@40d")
    readings = run(twin, DAY, tick=600)
    assert twin.leaked_l == 0.0 and len(readings) == 144 * 10


def test_a_fault_with_for_clears_and_rates_are_litres_per_hour():
    twin = make("stuck_relay@0:pump_drain,for=5m", "dry_reservoir@0:rate=60")
    run(twin, 5 * MIN)
    assert not twin.running("pump_drain")  # unstuck: back to the open contacts the node holds
    assert twin.run_seconds["pump_drain"] == 300.0 and twin.volume_l == 0.0
    slow = make("dry_reservoir@0:rate=60")
    run(slow, 10 * MIN)
    assert slow.leaked_l == pytest.approx(10.0)
