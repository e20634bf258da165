"""can_run_pump and the other guards (§16): asked before every start and while a pump runs."""

from hydro_rules.engine.api import check_start
from hydro_rules.engine.state import AlertState
from hydro_rules.messages import Reading

from .harness import T0, Zone, healthy


def test_stale_reading_is_unknown_and_a_guard_that_needs_it_denies():
    z = healthy(Zone())
    z.tick(2)
    assert z.is_on("pump_recirc")
    # the level sensor goes silent, and so do the pump's flow and current: nothing shows the water
    z.set(water_level=None, pump_recirc__flow=None, pump_recirc__current=None)
    z.tick(3)  # exactly 3 minutes old: still within `stale after 3m`
    assert z.prog.mv["water_level"] == 90.0
    z.tick(1)  # older than its staleness limit: unknown
    assert z.prog.mv["water_level"] is None
    assert not z.is_on("pump_recirc"), "a guard that cannot decide keeps the pump off"
    refusal = [r for r in z.refusals if r.channel == "pump_recirc"][0]
    assert refusal.guard == "reservoir_has_water" and "unknown" in refusal.reason
    # the alert says what is known: no dry run was seen, so no lock; the sensor is reported instead
    assert ("biz_dry_run", "pump_recirc") not in z.active()
    z.tick(5)
    assert ("infra_sensor_stale", None) in z.active()
    z.set(water_level=88.0)
    assert z.tick_until_on("pump_recirc"), "circulation resumes by itself once the level is known again"


def test_a_dead_level_sensor_alone_keeps_the_recirculation_running_on_flow_and_current():
    z = healthy(Zone())
    z.tick(2)
    z.set(water_level=None)
    z.tick(4)
    assert z.prog.mv["water_level"] is None
    assert z.is_on("pump_recirc"), "flow and current show the pump moving water"
    assert not [r for r in z.refusals if r.channel == "pump_recirc"]


def test_fresh_reading_within_staleness_limit_is_used():
    z = healthy(Zone())
    z.tick()
    z.set(water_level=None)
    z.tick(2)
    assert z.prog.mv["water_level"] == 90.0


def test_low_level_refuses_recirculation_and_raises_dry_run_which_locks():
    z = healthy(Zone(), level=10.0)
    z.tick()
    assert not z.is_on("pump_recirc")
    assert ("biz_dry_run", "pump_recirc") in z.active()
    off = z.cmds("pump_recirc")[-1]
    assert off.params == {"state": False}
    assert "guard reservoir_has_water" in off.rule
    z.set(water_level=80.0).tick(30)
    assert not z.is_on("pump_recirc"), "the lock holds until an operator reset"
    z.reset("anna", "refilled the reservoir")
    assert z.tick_until_on("pump_recirc")


def test_check_start_asks_every_guard_protecting_the_channel():
    z = Zone()
    rs = z.loaded.ruleset
    level = [Reading("nd-level", "water_level", 50.0, T0)]
    assert check_start(rs, "zn-t", "pump_drain", None, level, T0 + 30).allowed
    v = check_start(rs, "zn-t", "pump_fill", None, [Reading("nd-level", "water_level", 99.0, T0)], T0 + 30)
    assert not v.allowed and v.guard == "no_overflow" and v.raises == "biz_overflow"
    v = check_start(rs, "zn-t", "pump_drain", None, level, T0 + 3600)  # reading an hour old
    assert not v.allowed and v.guard == "drain_has_water"


def test_too_many_failures_refuse_a_start():
    z = healthy(Zone(answer="current_not_detected"))
    z.state.solution_started_at = T0 - 8 * 86400
    z.run_until("WATER_CHANGE_DRAIN", 600)
    z.tick(45)
    starts = [c for c in z.cmds("pump_drain") if c.cmd == "run_pump"]
    fails = z.state.channels["pump_drain"].failures
    assert len(fails) >= 3
    refused = [r for r in z.refusals if r.channel == "pump_drain" and r.guard == "can_run_pump"]
    assert refused and "failed commands" in refused[0].reason
    assert len(starts) <= 3


def test_check_start_takes_the_stores_alerts_as_the_record():
    z = Zone()
    rs = z.loaded.ruleset
    level = [Reading("nd-level", "water_level", 50.0, T0)]
    locked = check_start(
        rs, "zn-t", "pump_drain", None, level, T0 + 30, active_alerts=[("biz_overcurrent", "pump_drain")]
    )
    assert not locked.allowed and locked.guard == "can_run_pump"
    # the engine's saved state still has the lock, but the operator's reset resolved it in the store
    z.state.alerts[("biz_no_flow", "pump_drain")] = AlertState("biz_no_flow", "pump_drain", "active", T0)
    saved = z.state.to_json()
    assert not check_start(rs, "zn-t", "pump_drain", saved, level, T0 + 30).allowed
    assert check_start(rs, "zn-t", "pump_drain", saved, level, T0 + 30, active_alerts=[]).allowed
    assert z.state.to_json() == saved, "the state passed in is not changed"
    # an alert still pending in the engine's state but active in the store locks too
    z.state.alerts[("biz_no_flow", "pump_drain")] = AlertState("biz_no_flow", "pump_drain", "pending", T0)
    pending = z.state.to_json()
    assert check_start(rs, "zn-t", "pump_drain", pending, level, T0 + 30, active_alerts=[]).allowed
    v = check_start(rs, "zn-t", "pump_drain", pending, level, T0 + 30, active_alerts=[("biz_no_flow", "pump_drain")])
    assert not v.allowed and v.guard == "can_run_pump"
    fails = {"pump_drain": [T0 - 600, T0 - 300, T0 - 60]}
    v = check_start(rs, "zn-t", "pump_drain", None, level, T0 + 30, failures=fails)
    assert not v.allowed and "failed commands" in v.reason


def test_a_guard_check_does_not_touch_a_zone_program_running_elsewhere():
    """The service checks guards while a dry run of the same zone may run in a worker thread."""
    z = healthy(Zone())
    z.tick()
    assert z.prog.mv["water_level"] == 90.0
    full = [Reading("nd-level", "water_level", 99.0, z.now)]
    assert not check_start(z.loaded.ruleset, "zn-t", "pump_fill", None, full, z.now).allowed
    assert z.prog.mv["water_level"] == 90.0 and z.prog.st is z.state
