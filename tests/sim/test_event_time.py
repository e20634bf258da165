"""Event-driven dry runs decide what the fixed-step reference decides, at the same instants (within one step).

The event loop evaluates only the instants where the engine's horizon, the twin's next change, a
response, a timeout or a reset says something may happen; on random scenarios (sites, zones, seeds,
faults, 1 to 3 days) its transitions, commands and alerts are compared with those of the fixed loop,
which evaluates every tick and fine step.
"""

from __future__ import annotations

import json
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hydro_rules.lang.loader import load
from hydro_rules.sim import dryrun
from hydro_rules.sim.times import parse_time

ROOT = Path(__file__).resolve().parents[2]
ZONES = [
    ("examples", "zn-1"),
    ("examples", "zn-2"),
    ("sites/hillside", "zn-tomato"),
    ("sites/hillside", "zn-berry"),
    ("sites/hillside", "zn-micro"),
]
FAULTS = [
    None,
    "leak@{h}h:rate=30",
    "dry_reservoir@{h}h",
    "sensor_frozen@{h}h",
    "sensor_dead@{h}h",
    "stuck_relay@{h}h",
    "overcurrent@{h}h",
    "no_flow@{h}h",
    "node_offline@{h}h:for=2h",
    "controller_crash@{h}h",
]
TICK = 60.0


@cache
def ruleset(site: str):
    return load(ROOT / site).ruleset


def decisions(zr) -> dict[str, list[tuple]]:
    """What a run decided, by kind: (what, when) in the order decided. Command parameters are left out (a dose's
    millilitres follow the twin's state to the last float bit, which the two loops reach by other steps)."""
    at = parse_time
    return {
        "transitions": [((t["machine"], t["from"], t["to"]), at(t["at"])) for t in zr.transitions],
        "commands": [((c["channel"], c["cmd"]), at(c["at"])) for c in zr.commands],
        "alerts": [((a["code"], a["channel"]), at(a["raised_at"])) for a in zr.alerts],
        "resolved": [
            ((a["code"], a["channel"]), at(a["resolved_at"])) for a in zr.alerts if a["resolved_at"] is not None
        ],
    }


def assert_same(fixed, event) -> None:
    f, e = decisions(fixed), decisions(event)
    for kind in f:
        assert [w for w, _ in e[kind]] == [w for w, _ in f[kind]], kind
        late = [(w, tf, te) for (w, tf), (_, te) in zip(f[kind], e[kind], strict=True) if abs(te - tf) > TICK]
        assert late == [], kind


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    where=st.sampled_from(ZONES),
    seed=st.integers(0, 10_000),
    fault=st.sampled_from(FAULTS),
    days=st.integers(1, 3),
    hour=st.integers(1, 20),
)
def test_event_driven_runs_decide_what_the_fixed_reference_decides(where, seed, fault, days, hour):
    site, zone = where
    rs = ruleset(site)
    faults = [fault.format(h=hour)] if fault else []
    fixed = dryrun.run(rs, [zone], days=days, seed=seed, faults=faults, step="fixed").zones[0]
    event = dryrun.run(rs, [zone], days=days, seed=seed, faults=faults, step="event").zones[0]
    assert_same(fixed, event)
    assert event.evaluations <= fixed.evaluations
    assert event.final_states == fixed.final_states


def test_event_driven_time_skips_the_instants_where_nothing_happens():
    rs = ruleset("sites/hillside")
    fixed = dryrun.run(rs, ["zn-tomato"], days=1, step="fixed").zones[0]
    event = dryrun.run(rs, ["zn-tomato"], days=1, step="event").zones[0]
    assert_same(fixed, event)
    assert event.evaluations < fixed.evaluations / 2


def test_a_hook_that_needs_every_instant_gets_every_instant():
    rs = ruleset("examples")
    seen: list[float] = []
    event = dryrun.run(rs, ["zn-1"], days=0.25, before_tick=lambda zr, now: seen.append(now)).zones[0]
    fixed = dryrun.run(rs, ["zn-1"], days=0.25, step="fixed").zones[0]
    assert len(seen) == event.evaluations == fixed.evaluations

    def sparse(zr, now):
        seen.append(now)

    sparse.skips_ok = True
    seen.clear()
    event = dryrun.run(rs, ["zn-1"], days=0.25, before_tick=sparse).zones[0]
    assert len(seen) == event.evaluations < fixed.evaluations


def test_the_cli_steps_by_events_unless_told_fixed():
    base = [sys.executable, "-m", "hydro_rules", "dry-run", str(ROOT / "examples"), "--days", "0.5", "--zone", "zn-1"]
    event = subprocess.run([*base, "--json"], capture_output=True, text=True, check=True)
    fixed = subprocess.run([*base, "--json", "--step", "fixed"], capture_output=True, text=True, check=True)
    assert json.loads(event.stdout)["zones"] == json.loads(fixed.stdout)["zones"]
    bad = subprocess.run([*base, "--step", "adaptive"], capture_output=True, text=True)
    assert bad.returncode == 2 and "fixed" in bad.stderr and "Traceback" not in bad.stderr
    with pytest.raises(ValueError, match="event, fixed"):
        dryrun.run(ruleset("examples"), ["zn-1"], days=0.1, step="adaptive")


def test_a_stuck_no_pump_on_an_empty_tank_lets_fine_steps_go():
    # the fixed run steps every 5 s while the stuck drain pump is powered; nothing changes once the tank is empty
    rs = ruleset("examples")
    faults = ["stuck_relay@2h:pump_drain"]
    fixed = dryrun.run(rs, ["zn-1"], days=1.5, faults=faults, step="fixed").zones[0]
    event = dryrun.run(rs, ["zn-1"], days=1.5, faults=faults, step="event").zones[0]
    assert_same(fixed, event)
    assert decisions(event) == decisions(fixed)  # at the very same instants
    assert event.final_states == fixed.final_states
    assert fixed.fine_steps > 10 * 1440
    assert event.evaluations < fixed.evaluations / 5
