"""Every time-shaped behaviour of the engine at its boundary: one tick before, at, one tick after.

A hold, timeout or schedule that fires one tick early or late must fail the test named for it
(not only a dry-run snapshot). Ticks are the harness's minute; the response timeout, which falls
between minute ticks, is stepped by the second. The service's own sweep (`mark_timeouts`) has
its boundary test in tests/store/test_commands_store.py.
"""

from __future__ import annotations

from hydro_rules.lang.loader import load

from .harness import ROOT, T0, Zone, _fixture_with, healthy
from .v12_helpers import ruleset, zone

MIN = 60.0


def at(minutes: float) -> float:
    return T0 + minutes * MIN


def run_to(z: Zone, minutes: int) -> None:
    """Tick until the harness clock reads `minutes` after T0 (every tick on the way is evaluated)."""
    while z.now < at(minutes):
        z.tick()
    assert z.now == at(minutes)


def step_to(z: Zone, t: float) -> None:
    """One evaluation at epoch `t` (between the minute ticks)."""
    z.now = t
    z.step()


def changes(z: Zone, code: str) -> list[tuple[str, float]]:
    return [(a.change, a.at) for a in z.alerts if a.code == code]


def transitions(z: Zone) -> list[tuple[str, str, float]]:
    return [(t.source, t.target, t.at) for t in z.transitions]


def ph_zone() -> Zone:
    """The fixture zone with the pH alerts' raise hold at 15 min (clear hold: the standard 5 min)."""
    return zone(ruleset({"settings": {"alerts.ph_hold": 900.0}}))


def given_state(z: Zone, state: str) -> Zone:
    """The water cycle starts in `state`, entered at the first tick (1 min)."""
    z.state.machines["water_cycle"] = state
    return z


# ---- alerts -------------------------------------------------------------------------------------
def test_alert_raise_hold_raises_at_the_hold_not_a_tick_before():
    z = healthy(ph_zone()).set(ph=6.6)  # above target max 6.2 + 0.3 from the first tick (1 min)
    run_to(z, 15)
    assert z.state.alerts[("biz_high_ph", None)].status == "pending"
    assert changes(z, "biz_high_ph") == []
    run_to(z, 16)
    assert ("biz_high_ph", None) in z.active()
    assert changes(z, "biz_high_ph") == [("raised", at(16))]
    run_to(z, 17)
    assert changes(z, "biz_high_ph") == [("raised", at(16))], "raised once"


def test_alert_clear_hold_clears_at_the_hold_not_a_tick_before():
    z = healthy(ph_zone()).set(ph=6.6)
    run_to(z, 16)
    z.set(ph=6.1)  # below target max from 17 min: `clear when ph < target.ph.max for 5m`
    run_to(z, 21)
    assert ("biz_high_ph", None) in z.active()
    run_to(z, 22)
    assert ("biz_high_ph", None) not in z.active()
    assert changes(z, "biz_high_ph") == [("raised", at(16)), ("resolved", at(22))]
    run_to(z, 23)
    assert changes(z, "biz_high_ph")[-1] == ("resolved", at(22)), "resolved once"


def test_alert_clear_hold_starts_again_when_the_clear_condition_breaks():
    z = healthy(ph_zone()).set(ph=6.6)
    run_to(z, 16)
    z.set(ph=6.1)
    run_to(z, 20)  # 17..20 clear
    z.set(ph=6.3)  # above target max, below the raise threshold: neither raises nor clears
    run_to(z, 21)
    z.set(ph=6.1)  # clear again from 22 min: resolved at 27, not 22
    run_to(z, 26)
    assert ("biz_high_ph", None) in z.active()
    run_to(z, 27)
    assert changes(z, "biz_high_ph")[-1] == ("resolved", at(27))


# ---- transitions and rules ------------------------------------------------------------------------
def test_transition_for_hold_goes_at_the_hold_not_a_tick_before():
    # NORMAL_RECIRC -> TOP_UP when water_level < topup.below (80%) ... for topup.hold (10m)
    z = healthy(Zone(), level=75.0)  # low from the first tick (1 min)
    run_to(z, 10)
    assert z.machine_state == "NORMAL_RECIRC"
    run_to(z, 11)
    assert transitions(z) == [("NORMAL_RECIRC", "TOP_UP", at(11))]
    run_to(z, 12)
    assert z.machine_state == "TOP_UP" and len(transitions(z)) == 1


def test_transition_for_hold_starts_again_when_its_condition_breaks():
    z = healthy(Zone(), level=75.0)
    run_to(z, 5)
    z.set(water_level=85.0)
    run_to(z, 6)
    z.set(water_level=75.0)  # low again from 7 min: TOP_UP at 17
    run_to(z, 16)
    assert z.machine_state == "NORMAL_RECIRC"
    run_to(z, 17)
    assert transitions(z) == [("NORMAL_RECIRC", "TOP_UP", at(17))]


def test_transition_after_goes_at_its_time_in_the_state_not_a_tick_before():
    # TOP_UP -> NORMAL_RECIRC after topup.timeout (20m), raising biz_topup_failed
    z = given_state(healthy(Zone(), level=75.0), "TOP_UP")
    run_to(z, 20)
    assert z.machine_state == "TOP_UP" and changes(z, "biz_topup_failed") == []
    run_to(z, 21)
    assert transitions(z) == [("TOP_UP", "NORMAL_RECIRC", at(21))]
    assert changes(z, "biz_topup_failed") == [("raised", at(21))]
    run_to(z, 22)
    assert len(transitions(z)) == 1


def test_state_timeout_fail_after_fails_at_the_timeout_not_a_tick_before():
    # WATER_CHANGE_DRAIN: fail after water_change.drain_timeout (30m) -> FAILED
    z = given_state(healthy(Zone(), level=70.0), "WATER_CHANGE_DRAIN")
    run_to(z, 30)
    assert z.machine_state == "WATER_CHANGE_DRAIN" and changes(z, "biz_water_change_failed") == []
    run_to(z, 31)
    assert transitions(z)[0] == ("WATER_CHANGE_DRAIN", "FAILED", at(31))
    assert changes(z, "biz_water_change_failed") == [("raised", at(31))]
    assert ("WATER_CHANGE_FAILED", at(31)) in [(e.type, e.at) for e in z.events]
    run_to(z, 32)
    assert changes(z, "biz_water_change_failed") == [("raised", at(31))]


def test_rule_for_hold_fires_at_the_hold_not_a_tick_before():
    # correct_high_ph: ph > target.ph.max (6.2) for dosing.ph_hold (5m); circulating since T0
    z = healthy(Zone()).set(ph=6.3)  # high from the first tick (1 min)
    run_to(z, 5)
    assert z.cmds("dose_ph_down") == []
    run_to(z, 6)
    assert [(c.cmd, c.at) for c in z.cmds("dose_ph_down")] == [("dose", at(6))]
    run_to(z, 7)
    assert len(z.cmds("dose_ph_down")) == 1


def test_rule_repeat_fires_again_at_its_interval_not_a_tick_before():
    # `repeat every dosing.repeat` (5m); can_dose waits dosing.mixing_time, set to 1m here, and the
    # pump circulates all along (no duty)
    settings = {"dosing.mixing_time": 60.0, "water_cycle.recirc.enabled": False}
    z = healthy(zone(ruleset({"settings": settings}))).set(ph=6.3)
    run_to(z, 6)
    assert len(z.cmds("dose_ph_down")) == 1
    run_to(z, 10)
    assert len(z.cmds("dose_ph_down")) == 1
    run_to(z, 11)
    assert [c.at for c in z.cmds("dose_ph_down")] == [at(6), at(11)]


# ---- schedules ----------------------------------------------------------------------------------
def test_schedule_every_at_is_due_at_its_time_not_a_tick_before():
    # every water_change.interval (7d) at water_change.time_of_day (09:00), from the solution's day
    z = healthy(Zone(start=at(9 * 60 - 3)))
    z.state.solution_started_at = T0 - 7 * 86400.0 + 3600.0  # a week ago, 01:00
    run_to(z, 9 * 60 - 1)
    assert z.machine_state == "NORMAL_RECIRC"
    run_to(z, 9 * 60)
    assert transitions(z) == [("NORMAL_RECIRC", "WATER_CHANGE_DRAIN", at(9 * 60))]
    run_to(z, 9 * 60 + 1)
    assert z.machine_state == "WATER_CHANGE_DRAIN"


# ---- recirculation duty and OFF bounds ----------------------------------------------------------------
def relay(z: Zone) -> list[tuple[bool, float]]:
    return [(c.params["state"], c.at) for c in z.cmds("pump_recirc")]


def test_duty_off_edge_switches_off_at_the_duty_share_of_the_period():
    # window 00:00 to 24:00 duty 50% period 20m: on 0..10 min of each period, off 10..20
    z = healthy(Zone())
    run_to(z, 9)
    assert z.is_on("pump_recirc") and relay(z) == []
    run_to(z, 10)
    assert not z.is_on("pump_recirc") and relay(z) == [(False, at(10))]
    run_to(z, 11)
    assert relay(z) == [(False, at(10))]


def test_duty_on_edge_switches_on_at_the_end_of_the_period():
    z = healthy(Zone())
    run_to(z, 19)
    assert not z.is_on("pump_recirc")
    run_to(z, 20)
    assert z.is_on("pump_recirc") and relay(z) == [(False, at(10)), (True, at(20))]
    run_to(z, 21)
    assert len(relay(z)) == 2


def test_window_max_off_ends_the_off_stretch_at_its_bound_not_a_tick_before(tmp_path):
    profile = """profile test_standard {
  water_cycle {
    recirc {
      window 00:00 to 24:00 duty 25% period 40m max_off 15m
      max_recirc_off 30m
      min_on 5m
    }
    water_change { enabled no }
  }
}"""
    loaded = load(ROOT / "rules", extra=[_fixture_with(tmp_path, profile)])
    z = healthy(Zone(loaded))  # on 0..10 min, then the duty would keep it off until 40
    run_to(z, 10)
    assert relay(z) == [(False, at(10))]
    run_to(z, 24)
    assert not z.is_on("pump_recirc")
    run_to(z, 25)
    assert z.is_on("pump_recirc") and relay(z) == [(False, at(10)), (True, at(25))]
    run_to(z, 26)
    assert len(relay(z)) == 2


def test_max_recirc_off_ends_an_off_a_guard_holds_at_its_bound_not_a_tick_before():
    # level unknown and neither flow nor current of the pump read: reservoir_has_water denies without
    # a lock, so the NC pump may stay off only max_recirc_off (10m)
    z = Zone().set(ph=6.0, ec=1.4, temp_water=21.0, water_level=None, pump_recirc__flow=None, pump_recirc__current=None)
    run_to(z, 1)
    assert relay(z) == [(False, at(1))]
    run_to(z, 10)
    assert not z.is_on("pump_recirc")
    run_to(z, 11)
    assert z.is_on("pump_recirc") and relay(z)[1] == (True, at(11))


# ---- readings: stale and frozen -----------------------------------------------------------------
def test_staleness_a_reading_is_unknown_once_older_than_stale_after():
    # ph: stale after 5m. The last reading comes at 4 min; a site daemon evaluates every second.
    z = healthy(Zone())
    run_to(z, 4)
    z.set(ph=None)
    step_to(z, at(9))  # 5 min old: still fresh
    assert z.prog.metric_status("ph") == "ok" and z.prog.mv["ph"] == 6.0
    assert ("infra_sensor_stale", None) not in z.state.alerts
    step_to(z, at(9) + 1.0)
    assert z.prog.metric_status("ph") == "stale" and z.prog.mv["ph"] is None
    assert z.state.alerts[("infra_sensor_stale", None)].status == "pending"
    step_to(z, at(9) + 2.0)
    assert z.prog.metric_status("ph") == "stale"


def test_frozen_a_reading_unchanged_for_frozen_after_is_unknown():
    # ph: frozen after 30m. 6.0 from the first reading (1 min) on; ec varies so only ph freezes.
    z = healthy(Zone())
    for m in range(1, 31):
        z.set(ec=1.4 + 0.01 * (m % 2))
        run_to(z, m)
    assert z.prog.metric_status("ph") == "ok"
    assert ("infra_sensor_frozen", None) not in z.state.alerts
    z.set(ec=1.41)
    run_to(z, 31)
    assert z.prog.metric_status("ph") == "frozen" and z.prog.mv["ph"] is None
    assert changes(z, "infra_sensor_frozen") == [("raised", at(31))]
    z.set(ec=1.4)
    run_to(z, 32)
    assert z.prog.metric_status("ph") == "frozen"


# ---- commands -------------------------------------------------------------------------------------
def test_command_response_timeout_times_out_at_the_limit_not_a_second_before():
    # nodes never answer; the service's stand-in times a command out after commands.response_timeout (60 s)
    z = healthy(Zone(answer=None))
    run_to(z, 10)
    [off] = z.cmds("pump_recirc")
    assert off.at == at(10) and z.prog.S["commands.response_timeout"] == 60.0
    c = z.state.channels["pump_recirc"]
    step_to(z, at(11) - 1.0)
    assert c.timeouts == 0 and not c.is_on
    step_to(z, at(11))
    assert c.timeouts == 1 and c.is_on, "timed out: believed back at its fail-safe default (NC: on)"
    step_to(z, at(11) + 1.0)
    assert c.timeouts == 1
