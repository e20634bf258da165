"""Water changes only into a sound tank (issue 7 item 3): a change waits while its water path is not sound."""

from hydro_rules.engine.state import ACTIVE, AlertState

from .harness import T0, Zone, healthy


def _due(z: Zone) -> None:
    z.state.solution_started_at = T0 - 11 * 86400  # older than max_solution_age: a change is due now


def _alert(z: Zone, code: str, channel: str | None = None) -> None:
    z.state.alerts[(code, channel)] = AlertState(code, channel, ACTIVE, z.now)


def test_a_change_waits_while_a_critical_alert_is_active_on_its_water_path():
    z = healthy(Zone())
    _due(z)
    _alert(z, "biz_pump_stuck_on", "pump_recirc")  # a pump the drain needs stopped cannot be stopped
    z.tick(30)
    assert z.machine_state == "NORMAL_RECIRC"
    assert not z.cmds("pump_drain") or all(c.params == {"state": False} for c in z.cmds("pump_drain"))
    held = [h for h in z.state.waiting.values()]
    assert held and held[0][1] == "biz_pump_stuck_on on pump_recirc is active" and held[0][3] == "WATER_CHANGE_DRAIN"
    assert len(z.prog.dec.held) == 0, "the reason is reported once, when it changes"
    z.reset("anna", "relay replaced")
    z.tick()
    assert z.machine_state == "WATER_CHANGE_DRAIN", "the change starts once the path is sound"
    assert not z.state.waiting


def test_a_change_waits_while_a_pump_it_must_stop_has_a_silent_node():
    z = healthy(Zone())
    z.tick()
    z.set(pump_recirc__current=None, pump_recirc__flow=None)  # the recirculation node falls silent
    z.tick(4)
    _due(z)
    z.tick()
    assert z.machine_state == "NORMAL_RECIRC"
    assert "pump_recirc must stop, but its node has gone silent" in [w[1] for w in z.state.waiting.values()]


def test_a_waiting_change_raises_an_alert_at_max_wait_and_resolves_it_when_it_starts():
    z = healthy(Zone())
    _due(z)
    _alert(z, "biz_water_level_falling")
    z.tick()
    since = z.state.waiting["water_cycle"][0]
    z.tick(6 * 60 - 1)
    assert z.now - since == 6 * 3600 - 60
    assert ("biz_water_change_waiting", None) not in z.active(), "one tick before max_wait (6h)"
    z.tick()
    assert ("biz_water_change_waiting", None) in z.active(), "at max_wait"
    del z.state.alerts[("biz_water_level_falling", None)]
    z.tick()
    assert z.machine_state == "WATER_CHANGE_DRAIN"
    assert ("biz_water_change_waiting", None) not in z.active()
    assert any(a.code == "biz_water_change_waiting" and a.change == "resolved" for a in z.alerts)


def test_the_fail_path_is_recovery_not_a_change():
    z = healthy(Zone(), level=10.0)
    _alert(z, "biz_water_level_falling")
    z.state.machines["water_cycle"] = "FAILED"
    z.state.entered_at["water_cycle"] = None
    _alert(z, "biz_water_change_failed")
    z.tick()
    assert z.machine_state == "FAILED_REFILL", "a refill is not held like a change..."
    z.tick(3)
    assert not z.is_on("pump_fill"), "...but its guard pours no water into a leaking tank"
