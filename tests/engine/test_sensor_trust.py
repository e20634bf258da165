"""Readings the engine does not trust (issue 7): stale, frozen or implausible values are unknown to rules."""

from .harness import T0, Zone, healthy


def test_a_frozen_ph_stops_its_correction_at_the_frozen_limit():
    z = healthy(Zone()).set(ph=6.5)  # above target, and never changing: a frozen probe
    z.tick(30)
    assert z.prog.metric_status("ph") == "ok", "one tick before `frozen after 30m` (first reading at 1m)"
    z.tick()
    assert z.prog.metric_status("ph") == "frozen"
    assert z.prog.mv["ph"] is None, "rules see a frozen reading as unknown"
    doses_then = len(z.cmds("dose_ph_down"))
    z.tick(24 * 60)
    assert len(z.cmds("dose_ph_down")) == doses_then, "no dose on a frozen reading"
    assert ("infra_sensor_frozen", None) in z.active()


def test_a_changing_reading_is_never_frozen():
    z = healthy(Zone())
    for i in range(120):
        z.set(ph=6.0 + (0.01 if i % 2 else 0.0)).tick()
    assert z.prog.metric_status("ph") == "ok"


def test_ec_of_exactly_zero_is_implausible_and_feeds_no_drift_trigger():
    z = healthy(Zone())
    z.state.solution["ec"] = 1.4
    z.tick()
    z.set(ec=0.0)  # the probe is in air: a leak emptied the tank below it
    z.tick()
    assert z.prog.metric_status("ec") == "implausible"
    assert z.prog.drift("ec") is None
    z.tick(3 * 60)
    assert z.machine_state == "NORMAL_RECIRC", "a probe in air is no EC drift"
    assert ("infra_sensor_implausible", None) in z.active()
    assert ("biz_low_ec", None) not in z.active(), "no alert about the solution from a faulty reading"


def test_a_reading_pinned_at_its_range_limit_is_implausible():
    z = healthy(Zone()).set(ph=14.0)
    z.tick()
    assert z.prog.metric_status("ph") == "implausible"
    z.set(ph=13.9).tick()
    assert z.prog.metric_status("ph") == "ok"


def test_a_jump_no_reservoir_can_make_is_implausible_until_the_new_level_holds():
    z = healthy(Zone()).set(ph=6.0)
    z.tick(2)
    z.set(ph=8.5).tick()  # 2.5 pH in a minute: `max_step 1 per 1m`
    assert z.prog.metric_status("ph") == "implausible"
    z.tick(9)
    assert z.prog.metric_status("ph") == "implausible", "one tick before the new level has held 10 min"
    z.tick()
    assert z.prog.metric_status("ph") == "ok", "a replaced probe is believed once it holds"


def test_a_slow_change_within_max_step_is_plausible():
    z = healthy(Zone())
    for i in range(30):
        z.set(ph=6.0 + 0.05 * i).tick()
        assert z.prog.metric_status("ph") == "ok"


def test_stale_is_its_own_status():
    z = healthy(Zone())
    z.tick()
    z.set(ec=None)
    z.tick(5)
    assert z.prog.metric_status("ec") == "ok", "5 min old: still fresh (`stale after 5m`)"
    z.tick()
    assert z.prog.metric_status("ec") == "stale"
    assert z.prog.metric_status("no_such_metric") == "stale"
    assert z.now > T0
