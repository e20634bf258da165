"""Pump nodes that report flow presence (hydro 2.0's flow_present) instead of a rate, and every
reading's channel as firmware names it."""

import pytest

from hydro_rules.twin import TwinConfig

from .helpers import MIN, make, run, send, values


def test_flag_only_pump_nodes_report_flow_present_instead_of_a_rate():
    twin = make(pump_flow="flag")
    send(twin, "pump_drain", "run_pump", duration_ms=120_000)
    out = run(twin, 1 * MIN)
    assert values(out, "nd-drain-1", "flow_rate") == [] and values(out, "nd-pump-1", "flow_rate") == []
    assert values(out, "nd-drain-1", "flow_present") == [1.0], "running: water flows"
    assert values(out, "nd-fill-1", "flow_present") == [0.0], "stopped: none"
    assert values(out, "nd-pump-1", "flow_present") == [1.0], "the NC pump runs at rest"


def test_a_blocked_line_reads_no_flow_on_the_flag():
    twin = make("no_flow@0", pump_flow="flag")
    out = run(twin, 2 * MIN)
    assert values(out, "nd-pump-1", "flow_present") == [0.0, 0.0]
    assert twin.running("pump_recirc")


def test_readings_carry_the_channel_firmware_sends_them_on():
    twin = make(pump_flow="flag")
    out = run(twin, 1 * MIN)
    channel = {(r.node_uid, r.metric): r.channel for r in out}
    assert channel[("nd-pump-1", "flow_present")] == "flow_present"
    assert channel[("nd-pump-1", "pump_current")] == "pump_bus_current"
    assert channel[("nd-ph-1", "ph")] == "ph_sensor"
    assert channel[("nd-ec-1", "temp_water")] == "solution_temp_c"


def test_an_unknown_pump_flow_is_refused():
    with pytest.raises(ValueError, match="pump_flow"):
        TwinConfig(pump_flow="gallons").check()
