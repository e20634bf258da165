"""Infra alerts of the daemon at their boundaries: one observation before, at and after each threshold."""

from types import SimpleNamespace

from hydro_rules.daemon.infra import DB_UNREACHABLE, MQTT_UNREACHABLE, NODE_SILENT, RAISE, RESOLVE, InfraWatch

SETTINGS = SimpleNamespace(broker_down_alert_s=30, db_down_alert_s=10, node_silent_after_s=120)
T0 = 1_800_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def watch():
    clock = Clock()
    return InfraWatch(SETTINGS, clock), clock


def changes(out):
    return [(a.action, a.code, a.dedup_key) for a in out]


def test_broker_down_raises_after_its_threshold_and_resolves_when_back():
    w, clock = watch()
    assert w.observe(mqtt_connected=True, db_ok=True, node_last_seen={}) == []
    clock.now = T0 + 1
    assert w.observe(mqtt_connected=False, db_ok=True, node_last_seen={}) == []  # down from here
    clock.now = T0 + 30  # one tick before the threshold
    assert w.observe(mqtt_connected=False, db_ok=True, node_last_seen={}) == []
    clock.now = T0 + 31  # exactly 30 s: not longer than 30 s yet
    assert w.observe(mqtt_connected=False, db_ok=True, node_last_seen={}) == []
    clock.now = T0 + 32  # one tick after
    out = w.observe(mqtt_connected=False, db_ok=True, node_last_seen={})
    assert changes(out) == [(RAISE, MQTT_UNREACHABLE, "")]
    assert out[0].severity == "critical" and out[0].details == {"down_since": T0 + 1} and out[0].at == T0 + 32
    clock.now = T0 + 40
    assert w.observe(mqtt_connected=False, db_ok=True, node_last_seen={}) == []  # raised once
    clock.now = T0 + 41
    out = w.observe(mqtt_connected=True, db_ok=True, node_last_seen={})
    assert changes(out) == [(RESOLVE, MQTT_UNREACHABLE, "")] and "40 s" in out[0].text
    assert w.observe(mqtt_connected=True, db_ok=True, node_last_seen={}) == []


def test_a_short_broker_outage_raises_nothing():
    w, clock = watch()
    w.observe(mqtt_connected=False, db_ok=True, node_last_seen={})
    clock.now = T0 + 30
    assert w.observe(mqtt_connected=False, db_ok=True, node_last_seen={}) == []
    clock.now = T0 + 31
    assert w.observe(mqtt_connected=True, db_ok=True, node_last_seen={}) == []
    clock.now = T0 + 32  # down again: counted afresh
    w.observe(mqtt_connected=False, db_ok=True, node_last_seen={})
    clock.now = T0 + 62
    assert w.observe(mqtt_connected=False, db_ok=True, node_last_seen={}) == []


def test_database_down_at_its_threshold():
    w, clock = watch()
    w.observe(mqtt_connected=True, db_ok=False, node_last_seen={})
    for dt, expect in ((9, []), (10, []), (11, [(RAISE, DB_UNREACHABLE, "")]), (12, [])):
        clock.now = T0 + dt
        assert changes(w.observe(mqtt_connected=True, db_ok=False, node_last_seen={})) == expect, dt
    clock.now = T0 + 13
    out = w.observe(mqtt_connected=True, db_ok=True, node_last_seen={})
    assert changes(out) == [(RESOLVE, DB_UNREACHABLE, "")]


def test_a_silent_node_at_its_threshold_and_heard_again():
    w, clock = watch()
    seen = {"nd-1": T0, "nd-2": T0}
    w.observe(mqtt_connected=True, db_ok=True, node_last_seen=seen)
    seen["nd-2"] = T0 + 100
    for dt, expect in ((119, []), (120, []), (121, [(RAISE, NODE_SILENT, "nd-1")]), (122, [])):
        clock.now = T0 + dt
        assert changes(w.observe(mqtt_connected=True, db_ok=True, node_last_seen=seen)) == expect, dt
    clock.now = T0 + 130
    seen["nd-1"] = T0 + 129
    out = w.observe(mqtt_connected=True, db_ok=True, node_last_seen=seen)
    assert changes(out) == [(RESOLVE, NODE_SILENT, "nd-1")] and out[0].node_uid == "nd-1"


def test_node_silence_is_not_judged_while_the_broker_is_down_and_counts_from_its_return():
    w, clock = watch()
    seen = {"nd-1": T0}
    w.observe(mqtt_connected=True, db_ok=True, node_last_seen=seen)
    clock.now = T0 + 50
    w.observe(mqtt_connected=False, db_ok=True, node_last_seen=seen)
    clock.now = T0 + 200  # the broker alert, not one per node
    assert changes(w.observe(mqtt_connected=False, db_ok=True, node_last_seen=seen)) == [(RAISE, MQTT_UNREACHABLE, "")]
    clock.now = T0 + 201
    assert changes(w.observe(mqtt_connected=True, db_ok=True, node_last_seen=seen)) == [(RESOLVE, MQTT_UNREACHABLE, "")]
    clock.now = T0 + 321  # 120 s after the broker came back: not longer yet
    assert w.observe(mqtt_connected=True, db_ok=True, node_last_seen=seen) == []
    clock.now = T0 + 322
    assert changes(w.observe(mqtt_connected=True, db_ok=True, node_last_seen=seen)) == [(RAISE, NODE_SILENT, "nd-1")]


def test_alerts_left_active_by_a_previous_run_are_resolved_when_their_condition_is_gone():
    w, clock = watch()
    w.adopt([(MQTT_UNREACHABLE, ""), (NODE_SILENT, "nd-1"), ("biz_dry_run", "")])
    out = w.observe(mqtt_connected=True, db_ok=True, node_last_seen={"nd-1": T0 - 5})
    assert changes(out) == [(RESOLVE, MQTT_UNREACHABLE, ""), (RESOLVE, NODE_SILENT, "nd-1")]
