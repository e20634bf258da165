"""`pump.flow_flag`: a node's 0/1 flow presence, trusted like `pump.flow`."""

from .harness import T0, Zone, healthy

FLAG_ONLY = {"pump_recirc__flow": None, "pump_drain__flow": None, "pump_fill__flow": None}


def _flag_at(z: Zone, value: float, ts: float, now: float):
    z.snap[("nd-pump", "flow_present")] = (value, ts)
    z.prog.prepare(z.state, z.snap, now)
    return z.prog.flow_flag("pump_recirc")


def test_a_flag_is_read_fresh_after_the_pumps_last_switch_and_inside_its_range():
    z = Zone()
    c = z.state.channels["pump_recirc"]
    c.is_on, c.since = True, T0 + 60.0
    now = T0 + 120.0
    assert _flag_at(z, 0.0, now, now) == 0.0
    assert _flag_at(z, 1.0, now, now) == 1.0
    assert _flag_at(z, 0.0, T0 + 30.0, now) is None, "from before the switch: the pump as it was"
    assert _flag_at(z, 3.0, now, now) is None, "a flag of 3 is no flag"
    later = T0 + 600.0  # stale after 3m: a reading 180 s old counts, 181 s old does not
    assert _flag_at(z, 0.0, later - 180.0, later) == 0.0
    assert _flag_at(z, 0.0, later - 181.0, later) is None


def test_a_flag_only_node_that_reports_no_flow_stops_and_locks_its_pump_within_seconds():
    z = healthy(Zone()).set(**FLAG_ONLY, pump_recirc__flow_flag=1.0)
    z.tick(2)
    assert z.is_on("pump_recirc")
    z.set(pump_recirc__flow_flag=0.0)
    z.tick()
    assert ("biz_no_flow", "pump_recirc") in z.active()
    assert not z.is_on("pump_recirc")
    assert z.refusals[-1].reason == "the pump runs but moves no water"


def test_with_neither_rate_nor_flag_known_the_no_flow_deny_does_not_hold():
    z = healthy(Zone()).set(**FLAG_ONLY)
    z.tick(5)
    assert z.is_on("pump_recirc") and not z.refusals
    assert ("biz_no_flow", "pump_recirc") not in z.active()
