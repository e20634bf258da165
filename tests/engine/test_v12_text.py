"""Language 1.2 from rule text to the engine: a site written `hydro 1.2` (tests/engine/v12_site)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hydro_rules.engine.api import compiled
from hydro_rules.lang.loader import load

from .harness import ROOT, T0, Zone, healthy

SITE = Path(__file__).parent / "v12_site" / "site.hydro"


@pytest.fixture(scope="module")
def loaded():
    got = load(ROOT / "rules", extra=[SITE])
    assert got.ruleset is not None, [(d.code, d.message) for d in got.diags.items]
    assert not [d for d in got.diags.items if d.severity == "error"]
    return got


def test_a_zone_without_dosers_ticks_a_day_with_no_dose(loaded):
    prog = compiled(loaded.ruleset).program("zn-micro")
    st = prog.new_state(T0)
    snap = {}
    for i in range(24 * 60):
        now = T0 + 60.0 * (i + 1)
        for node, metric, v in (("nd-level-2", "water_level", 90.0), ("nd-ec-2", "ec", 0.8), ("nd-ph-2", "ph", 6.9)):
            snap[(node, metric)] = (v, now)
        d = prog.evaluate(st, snap, now)
        assert not [c for c in d.commands if c.cmd == "dose"]
    assert "dose_nutrient" not in st.channels


def test_zone_settings_night_targets_and_an_off_window_from_text(loaded):
    z = healthy(Zone(loaded, zone="zn-drip"))
    z.tick()
    assert z.prog.T["ec.min"] == 1.0, "00:01 is night: the lights are on 06:00 to 20:00"
    assert not z.is_on("pump_recirc"), "the off window holds the pump off at night"
    assert z.prog.S["dosing.nutrient_dose"] == 0.006, "the phase's dose"
    z.now = T0 + 6 * 3600 - 60.0
    z.tick()  # 06:00
    assert z.is_on("pump_recirc") and z.prog.T["ec.min"] == 1.2


def test_a_dose_group_with_a_hold_and_a_wait_written_as_settings(loaded):
    z = healthy(Zone(loaded, zone="zn-drip"))
    z.now = T0 + 8 * 3600
    for i in range(30):  # circulating by day; a live pH probe wobbles (a flat one reads frozen)
        z.set(ph=6.0 + 0.01 * (i % 2)).tick()
    z.set(ec=1.1)
    doses = []
    for i in range(30):
        z.set(ph=6.0 + 0.01 * (i % 2)).tick()
        doses = [(c.channel, c.params["ml"], c.at) for c in z.commands if c.cmd == "dose"]
        if doses:
            break
    assert doses and doses[0][:2] == ("dose_nutrient", 6.0)
    t0 = doses[0][2]
    z.set(ph=6.0).tick(1)
    assert len([c for c in z.commands if c.cmd == "dose"]) == 1
    z.set(ph=6.01).tick(1)
    doses = [(c.channel, c.params["ml"], c.at) for c in z.commands if c.cmd == "dose"]
    assert doses[1] == ("dose_ph_down", 1.0, t0 + 120.0), "after dosing.ab_wait 2m"
