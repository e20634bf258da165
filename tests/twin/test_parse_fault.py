"""`KIND@OFFSET[:ARGS]`: what parses, the defaults, and one-line errors for the rest."""

from __future__ import annotations

import dataclasses

import pytest

from hydro_rules.twin import Fault, FaultError, ZoneTwin, applies_to, check_fault, parse_duration, parse_fault

from .helpers import ruleset, zone


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("6d", 518400),
        ("36h", 129600),
        ("90m", 5400),
        ("1h30m", 5400),
        ("45s", 45),
        ("0", 0),
        ("1d2h3m4s", 93784),
        ("1w", 604800),  # every unit the rules know
        ("1.5h", 5400),
        ("500ms", 0.5),
    ],
)
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "6", "6x", "-1h", "h", "1h 30m", "1.h"])
def test_not_durations(text):
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("dry_reservoir@6d", Fault("dry_reservoir", 518400, None, None, 600.0)),
        ("leak@36h", Fault("leak", 129600, None, None, 12.0)),
        ("leak@36h:rate=20", Fault("leak", 129600, None, None, 20.0)),
        ("leak@0:rate=0.5L/min,for=2h", Fault("leak", 0, None, 7200, 30.0)),
        ("stuck_relay@90m", Fault("stuck_relay", 5400, "pump_recirc")),
        ("stuck_relay@90m:pump_drain", Fault("stuck_relay", 5400, "pump_drain")),
        ("overcurrent@1h", Fault("overcurrent", 3600, "pump_recirc")),
        ("overcurrent@1h:pump_fill,current=2.5A", Fault("overcurrent", 3600, "pump_fill", current_ma=2500)),
        ("no_flow@1h30m", Fault("no_flow", 5400, "pump_recirc")),
        ("sensor_frozen@2d", Fault("sensor_frozen", 172800, "ph")),
        ("sensor_frozen@2d:ec,node=nd-ec-1", Fault("sensor_frozen", 172800, "ec", node="nd-ec-1")),
        ("sensor_dead@2d", Fault("sensor_dead", 172800, "water_level")),
        ("node_offline@3h", Fault("node_offline", 10800, "pump_recirc")),
        ("node_offline@3h:nd-ph-1,for=2h", Fault("node_offline", 10800, "nd-ph-1", 7200)),
        ("controller_crash@1d", Fault("controller_crash", 86400, None, 1800)),
        ("controller_crash@1d:for=2h", Fault("controller_crash", 86400, None, 7200)),
    ],
)
def test_parse(text, expected):
    got = parse_fault(text)
    assert got == dataclasses.replace(expected, text=text)
    assert str(got) == text


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("flood@1h", "unknown kind 'flood'"),
        ("leak", "expected KIND@OFFSET"),
        ("leak@", "offset '' is not a duration"),
        ("leak@6x", "offset '6x' is not a duration"),
        ("leak@-1h", "offset '-1h' is not a duration"),
        ("leak@1h:", "empty argument"),
        ("leak@1h:rate=", "empty argument"),
        ("leak@1h:rate=abc", "rate 'abc' is not a positive number"),
        ("leak@1h:rate=0", "rate must be positive"),
        ("leak@1h:rate=5gal", "rate '5gal' is not a positive number"),
        ("leak@1h:pump_recirc", "leak takes no target"),
        ("leak@1h:speed=3", "leak has no parameter 'speed'"),
        ("leak@1h:for=1h,for=2h", "parameter 'for' given twice"),
        ("leak@1h:for=0", "for= must be longer than 0"),
        ("leak@1h:for=soon", "for='soon' is not a duration"),
        ("stuck_relay@1h:pump_drain,pump_fill", "more than one target"),
        ("stuck_relay@1h:rate=3", "stuck_relay has no parameter 'rate'"),
        ("stuck_relay@1h:9pumps", "is not a channel, metric or node name"),
        ("controller_crash@1h:nd-pump-1", "controller_crash takes no target"),
        ("overcurrent@1h:current=-3", "current '-3' is not a positive number"),
    ],
)
def test_malformed_faults_raise_one_line_errors(text, says):
    with pytest.raises(FaultError) as err:
        parse_fault(text)
    assert says in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("stuck_relay@1h:pump_mist", "has no channel 'pump_mist'"),
        ("no_flow@1h:dose_ph_down", "needs a pump or valve channel"),
        ("overcurrent@1h:level_sensor", "needs a pump or valve channel"),
        ("sensor_dead@1h:co2", "no node of zone zn-1 reports metric 'co2'"),
        ("sensor_frozen@1h:ph,node=nd-ec-1", "node 'nd-ec-1' does not report 'ph'"),
        ("node_offline@1h:nd-pump-2", "neither a node nor a channel of zone zn-1"),
    ],
)
def test_targets_the_zone_lacks_raise_fault_errors(text, says):
    fault = parse_fault(text)
    with pytest.raises(FaultError, match=says):
        check_fault(fault, zone(), ruleset())
    with pytest.raises(FaultError, match=says):
        ZoneTwin(zone(), ruleset(), seed=1, start=0.0, faults=[fault])


def test_targets_the_zone_has_pass():
    for text in (
        "node_offline@1h:pump_drain",
        "node_offline@1h:nd-dose-1",
        "sensor_dead@1h:pump_current,node=nd-fill-1",
    ):
        check_fault(parse_fault(text), zone(), ruleset())


def test_faults_naming_a_node_apply_only_to_its_zone():
    zn1, zn2 = zone("zn-1"), zone("zn-2")
    assert applies_to(parse_fault("node_offline@1h:nd-pump-1"), zn1)
    assert not applies_to(parse_fault("node_offline@1h:nd-pump-1"), zn2)
    assert applies_to(parse_fault("node_offline@1h"), zn2)  # a channel name: every zone has one
    assert not applies_to(parse_fault("sensor_dead@1h:ph,node=nd-ph-1"), zn2)
    assert applies_to(parse_fault("leak@1h"), zn2)
