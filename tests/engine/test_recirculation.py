"""NC recirculation (§11–12): ON by default, duty made of bounded OFF stretches, never longer than allowed."""

from hydro_rules.lang.loader import load

from .harness import ROOT, T0, Zone, _fixture_with, healthy


def off_stretches(z: Zone, minutes: int) -> list[float]:
    """Lengths (min) of the stretches the recirculation pump is believed off, ticking `minutes`."""
    out, run = [], 0
    for _ in range(minutes):
        z.tick()
        if not z.is_on("pump_recirc"):
            run += 1
        elif run:
            out.append(run)
            run = 0
    return out


def test_recirculation_pump_is_on_by_default_and_never_switched_on_explicitly():
    z = healthy(Zone())
    z.tick()
    assert z.is_on("pump_recirc")
    assert not [c for c in z.cmds("pump_recirc") if c.params.get("state") is True]


def test_duty_cycle_is_made_of_bounded_off_commands():
    z = healthy(Zone())
    off = off_stretches(z, 6 * 60)
    assert off and max(off) <= 10
    sets = z.cmds("pump_recirc")
    assert sets, "duty control must switch the pump off now and then"
    for c in sets:
        assert c.cmd == "set_relay" and c.params["state"] is False
        assert 0 < c.params["duration_ms"] <= 10 * 60 * 1000, "an OFF must end by itself within max_recirc_off"
    # 50% of a 20-minute period: about 18 OFF stretches in 6 hours, each ~10 min
    assert 16 <= len(sets) <= 19


def test_off_stretch_never_exceeds_max_even_outside_schedule_windows(tmp_path):
    profile = """profile test_standard {
  water_cycle {
    recirc {
      window 06:00 to 18:00 duty 50% period 20m
      max_recirc_off 10m
      min_on 5m
    }
    water_change { enabled no }
  }
}"""
    loaded = load(ROOT / "rules", extra=[_fixture_with(tmp_path, profile)])
    assert any(d.code == "HR401" for d in loaded.diags.items), "the checker flags the 12 h gap"
    z = healthy(Zone(loaded))
    off = off_stretches(z, 24 * 60)
    assert max(off) <= 10
    night = [c for c in z.cmds("pump_recirc") if not 6 * 3600 <= (c.at - T0) % 86400 < 18 * 3600]
    assert night, "outside the windows the pump is still cycled, never left off"
    for c in z.cmds("pump_recirc"):
        assert c.params["duration_ms"] <= 600_000


def test_recirculation_disabled_leaves_the_relay_alone(tmp_path):
    profile = """profile test_standard {
  water_cycle {
    recirc {
      enabled no
    }
    water_change { enabled no }
  }
}"""
    loaded = load(ROOT / "rules", extra=[_fixture_with(tmp_path, profile)])
    z = healthy(Zone(loaded))
    z.tick(120)
    assert z.cmds("pump_recirc") == []
    assert z.is_on("pump_recirc"), "the NC contact keeps the pump running"


def test_node_falls_back_to_on_when_the_off_duration_ends():
    z = healthy(Zone())
    z.tick(11)  # first OFF commanded at minute 10
    first = z.cmds("pump_recirc")[0]
    assert not z.is_on("pump_recirc")
    z.now = first.at + first.params["duration_ms"] / 1000.0 - 60.0
    z.tick()  # the node's timer ends: the engine believes it runs again without telling it
    assert z.is_on("pump_recirc")
    assert len(z.cmds("pump_recirc")) == 1
