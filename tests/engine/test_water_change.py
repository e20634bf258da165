"""Water changes (§13): triggers, drain until empty, fill until target, stabilize, timeouts to FAILED."""

from hydro_rules.engine.state import ACTIVE, OFF, AlertState

from .harness import T0, Zone, healthy


def test_schedule_starts_the_change_at_time_of_day_after_interval():
    z = healthy(Zone(start=T0))
    z.state.solution_started_at = T0 - 7 * 86400 + 3600  # started 7 days ago at 01:00 -> due today 09:00
    z.run_until("WATER_CHANGE_DRAIN")
    assert (z.now - T0) / 3600 == 9.0
    assert z.transitions[-1].reason.startswith("schedule: every 7d at 09:00")


def test_full_water_change_sequence():
    z = healthy(Zone())
    z.state.solution_started_at = T0 - 8 * 86400
    z.run_until("WATER_CHANGE_DRAIN", 600)
    assert not z.is_on("pump_recirc"), "recirculation is deliberately off while draining"
    assert z.cmds("pump_drain")[-1].cmd == "run_pump"
    assert z.is_on("pump_drain")
    z.set(water_level=40.0).tick(2)
    assert z.machine_state == "WATER_CHANGE_DRAIN"
    z.set(water_level=4.0).tick()
    assert z.machine_state == "WATER_CHANGE_FILL"
    assert not z.is_on("pump_drain") and z.is_on("pump_fill")
    assert z.cmds("pump_drain")[-1].params == {"state": False}
    z.set(water_level=60.0).tick(2)
    z.set(water_level=91.0).tick()
    assert z.machine_state == "WATER_CHANGE_STABILIZE"
    assert not z.is_on("pump_fill") and z.is_on("pump_recirc")
    z.set(ph=5.9, ec=1.5)
    before = z.now
    z.run_until("NORMAL_RECIRC", 30)
    # on target from the first tick in STABILIZE, held for water_change.stabilize_time (15m)
    assert z.now - before == 16 * 60
    done = [e for e in z.events if e.type == "WATER_CHANGE_COMPLETED"]
    assert len(done) == 1
    assert done[0].details["ph"] == 5.9 and done[0].details["ec"] == 1.5
    assert z.state.solution_started_at == z.now
    assert z.state.solution["ec"] == 1.5
    assert not z.active()


def test_drain_timeout_goes_to_failed_with_recirculation_on_and_an_alert():
    z = healthy(Zone())
    z.state.solution_started_at = T0 - 8 * 86400
    z.run_until("WATER_CHANGE_DRAIN", 600)
    entered = z.now
    z.set(water_level=50.0)  # the level never drops: blocked drain
    z.tick(29)
    assert z.machine_state == "WATER_CHANGE_DRAIN", "one tick before the timeout"
    z.tick()
    assert z.machine_state == "FAILED" and z.now - entered == 30 * 60
    assert ("biz_water_change_failed", None) in z.active()
    assert any(e.type == "WATER_CHANGE_FAILED" for e in z.events)
    z.tick()
    assert z.machine_state == "FAILED_WAIT", "the level is above levels.min: no refill"
    assert z.is_on("pump_recirc") and not z.is_on("pump_drain") and not z.is_on("pump_fill")
    z.tick(60)
    assert z.machine_state == "FAILED_WAIT", "a failed change waits for the operator"
    assert sum(e.type == "WATER_CHANGE_FAILED" for e in z.events) == 1
    z.reset("anna", "drain line cleared")
    z.tick()
    assert z.machine_state == "NORMAL_RECIRC"


def _failed_fill(z: Zone) -> None:
    """A fill has just timed out with the reservoir nearly empty (the drain stopped the recirculation)."""
    z.set(water_level=3.0)
    z.state.machines["water_cycle"] = "FAILED"
    z.state.entered_at["water_cycle"] = None
    recirc = z.state.channels["pump_recirc"]
    recirc.desired, recirc.is_on = OFF, False
    z.state.alerts[("biz_water_change_failed", None)] = AlertState("biz_water_change_failed", None, ACTIVE, z.now)
    z.tick()  # enters FAILED, and leaves it in the same tick


def test_a_failed_fill_below_the_minimum_refills_to_it_then_circulates():
    z = healthy(Zone())
    _failed_fill(z)
    assert z.machine_state == "FAILED_REFILL"
    assert z.is_on("pump_fill") and not z.is_on("pump_recirc"), "no circulation on an empty tank"
    z.set(water_level=19.0).tick(3)
    assert z.is_on("pump_fill"), "up to a margin over levels.min: the recirculation fills its pipes"
    z.set(water_level=20.0).tick()
    assert z.machine_state == "FAILED_WAIT"
    assert not z.is_on("pump_fill") and z.is_on("pump_recirc")
    assert ("biz_dry_run", "pump_recirc") not in z.active(), "the plants get water again without an operator"
    assert ("biz_water_change_failed", None) in z.active(), "the operator still hears of the failure"


def test_a_refill_that_cannot_reach_the_minimum_gives_up_and_never_runs_the_pump_dry():
    z = healthy(Zone())
    _failed_fill(z)
    assert z.machine_state == "FAILED_REFILL"
    z.tick(19)
    assert z.machine_state == "FAILED_REFILL", "one tick before its own timeout"
    z.tick()
    assert ("biz_refill_failed", None) in z.active()
    z.tick()
    assert z.machine_state == "FAILED_WAIT"
    assert not z.is_on("pump_fill")
    assert not z.is_on("pump_recirc"), "the level is below the dry-run minimum: recirculation is refused"
    assert ("biz_dry_run", "pump_recirc") in z.active()
    z.tick(120)
    assert z.machine_state == "FAILED_WAIT", "no second refill until the operator resets"
    assert not z.is_on("pump_fill")


def test_no_refill_into_a_leaking_tank():
    z = healthy(Zone())
    _failed_fill(z)
    z.state.alerts[("biz_water_level_falling", None)] = AlertState("biz_water_level_falling", None, ACTIVE, z.now)
    z.tick(5)
    assert not z.is_on("pump_fill")
    assert any(r.channel == "pump_fill" and r.guard == "tank_is_sound" for r in z.refusals)


def test_unknown_level_never_ends_a_drain():
    z = healthy(Zone())
    z.state.solution_started_at = T0 - 8 * 86400
    z.run_until("WATER_CHANGE_DRAIN", 600)
    z.set(water_level=None)
    z.tick(10)
    assert z.machine_state == "WATER_CHANGE_DRAIN"
