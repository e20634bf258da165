"""No crash, ever, from time (issue 7 item 6): a year of any single fault, driven by hypothesis."""

from __future__ import annotations

import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .harness import T0, Zone, healthy

YEAR_S = 365 * 86400.0

SENSORS = ["ph", "ec", "water_level", "pump_recirc__current", "pump_recirc__flow"]
FAULTS = st.one_of(
    st.tuples(st.just("silent"), st.sampled_from(SENSORS)),  # a dead sensor, or a node offline
    st.tuples(st.just("value"), st.sampled_from(SENSORS)),  # any number a broken probe may send
    st.tuples(st.just("answer"), st.sampled_from([None, "overcurrent", "current_not_detected"])),  # nodes
)
VALUES = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12),
    st.sampled_from([0.0, -0.0, 1e300, -1e300, math.inf, -math.inf]),
)


def _live(z: Zone, i: int) -> None:
    """Healthy readings that move a little, as live probes do."""
    healthy(z).set(ph=6.0 + 0.01 * (i % 3), ec=1.4 + 0.01 * (i % 2))


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    fault=FAULTS,
    start=st.floats(min_value=0.0, max_value=YEAR_S),
    length=st.floats(min_value=60.0, max_value=YEAR_S),
    value=VALUES,
    tick_s=st.sampled_from([1800.0, 3600.0, 4 * 3600.0]),
)
def test_a_year_of_one_fault_never_raises(fault, start, length, value, tick_s):
    z = Zone()
    kind, what = fault
    i = 0
    while z.now - T0 < YEAR_S:
        faulty = start <= z.now - T0 < start + length
        _live(z, i)
        z.answer = "DONE"
        if faulty and kind == "silent":
            z.readings[what] = None
        elif faulty and kind == "value":
            z.readings[what] = value
        elif faulty:
            z.answer = what
        z.now += tick_s - 60.0
        z.tick()  # one evaluation per coarse tick: timers, back-offs and holds jump far
        i += 1
    assert z.machine_state in z.loaded.ruleset.machines["water_cycle"].states
    c = z.state.channels["pump_recirc"]
    assert c.retry_at is None or c.retry_at - z.now <= 600.0


def test_a_pump_node_that_never_answers_all_year():
    z = Zone(answer=None)
    while z.now - T0 < YEAR_S:
        _live(z, int(z.now))
        z.now += 3540.0
        z.tick()
    c = z.state.channels["pump_recirc"]
    assert c.timeouts > 1000
    assert ("infra_node_offline", "pump_recirc") in z.active()
