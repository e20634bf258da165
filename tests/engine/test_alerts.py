"""Alert lifecycle: pending during `for`, active, resolved with hysteresis, one per (zone, code, channel)."""

from .harness import healthy
from .v12_helpers import ruleset, zone


def Zone():  # noqa: N802 - the fixture zone with the pH alerts' hold at 15 min (the standard: 30 min)
    return zone(ruleset({"settings": {"alerts.ph_hold": 900.0}}))


def test_alert_is_pending_during_its_hold_then_active_once():
    z = healthy(Zone()).set(ph=6.6)  # target max 6.2 + 0.3
    z.tick(14)
    a = z.state.alerts[("biz_high_ph", None)]
    assert a.status == "pending"
    assert not [x for x in z.alerts if x.code == "biz_high_ph"]
    z.tick(2)
    assert ("biz_high_ph", None) in z.active()
    z.tick(30)
    assert len([x for x in z.alerts if x.code == "biz_high_ph" and x.change == "raised"]) == 1


def test_condition_dropping_during_hold_cancels_the_pending_alert():
    z = healthy(Zone()).set(ph=6.6)
    z.tick(10)
    z.set(ph=6.0).tick()
    assert ("biz_high_ph", None) not in z.state.alerts
    z.set(ph=6.6).tick(10)
    assert not z.active()


def test_clear_needs_its_own_condition_held_hysteresis():
    z = healthy(Zone()).set(ph=6.6)
    z.tick(16)
    z.set(ph=6.3).tick(30)  # below the raise threshold but above target max: still active
    assert ("biz_high_ph", None) in z.active()
    z.set(ph=6.1).tick(4)
    assert ("biz_high_ph", None) in z.active()
    z.tick(2)
    assert ("biz_high_ph", None) not in z.active()
    assert [x.change for x in z.alerts if x.code == "biz_high_ph"] == ["raised", "resolved"]


def test_unknown_reading_neither_raises_nor_clears():
    z = healthy(Zone()).set(ph=None)
    z.tick(30)
    assert ("biz_high_ph", None) not in z.state.alerts
    assert ("infra_sensor_stale", None) in z.active()


def test_per_channel_alerts_are_separate():
    z = healthy(Zone()).set(pump_recirc__flow=0.0)
    z.tick(8)
    codes = [k for k in z.active() if k[0] == "biz_no_flow"]
    assert codes == [("biz_no_flow", "pump_recirc")]
