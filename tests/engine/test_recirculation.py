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
    return out + [run] if run else out  # a stretch still running at the end counts too


def test_recirculation_pump_is_on_by_default_and_never_switched_on_explicitly():
    z = healthy(Zone())
    z.tick()
    assert z.is_on("pump_recirc")
    assert not [c for c in z.cmds("pump_recirc") if c.params.get("state") is True]


def test_duty_cycle_on_a_hydro2_node_ends_every_off_with_an_explicit_on():
    z = healthy(Zone())
    off = off_stretches(z, 6 * 60)
    assert off and max(off) <= 10
    sets = z.cmds("pump_recirc")
    offs = [c for c in sets if c.params["state"] is False]
    ons = [c for c in sets if c.params["state"] is True]
    assert all(c.params == {"state": False} for c in offs), "today's firmware ignores a duration"
    # 50% of a 20-minute period: about 18 OFF stretches in 6 hours, each ended by the engine
    assert 16 <= len(offs) <= 19
    assert len(ons) in (len(offs), len(offs) - 1)
    for o, n in zip(offs, ons):
        assert n.at - o.at == 600.0, "the ON comes exactly at the end of the OFF phase"


def test_duty_cycle_on_a_bounded_off_node_is_made_of_bounded_off_commands(tmp_path):
    z = healthy(Zone(bounded_off_fixture(tmp_path)))
    off = off_stretches(z, 6 * 60)
    assert off and max(off) <= 10
    sets = z.cmds("pump_recirc")
    assert sets, "duty control must switch the pump off now and then"
    for c in sets:
        assert c.cmd == "set_relay" and c.params["state"] is False
        assert 0 < c.params["duration_ms"] <= 10 * 60 * 1000, "an OFF must end by itself within max_recirc_off"
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
    assert any(c.params["state"] is True for c in night), "each night OFF is ended by the engine"


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


def test_a_bounded_off_node_falls_back_to_on_when_the_off_duration_ends(tmp_path):
    z = healthy(Zone(bounded_off_fixture(tmp_path)))
    z.tick(11)  # first OFF commanded at minute 10
    first = z.cmds("pump_recirc")[0]
    assert not z.is_on("pump_recirc")
    ends = first.at + first.params["duration_ms"] / 1000.0
    while z.now < ends - 60.0:
        z.tick()
        assert not z.is_on("pump_recirc"), "one tick before the OFF ends"
    z.tick()  # the node's timer ends: the engine believes it runs again without telling it
    assert z.now == ends and z.is_on("pump_recirc")
    assert len(z.cmds("pump_recirc")) == 1


def test_a_hydro2_off_is_never_believed_to_end_by_itself():
    z = healthy(Zone())
    z.tick(10)
    assert not z.is_on("pump_recirc")
    z.state.channels["pump_recirc"].desired = "off"  # a state holds it off: nothing ends the OFF
    z.tick(60)
    assert not z.is_on("pump_recirc")
    assert [c.params for c in z.cmds("pump_recirc")] == [{"state": False}], "no renewals, no ON"


def bounded_off_fixture(tmp_path):
    """The test site with zn-t's recirculation node declared able to end an OFF by itself."""
    text = (ROOT / "rules" / "tests" / "fixture.hydro").read_text()
    text = text.replace("hydro 1\n", "hydro 1.1\n", 1).replace(
        "  greenhouse gh-t {\n", "  greenhouse gh-t {\n    node nd-pump { bounded_off yes }\n", 1
    )
    p = tmp_path / "fixture.hydro"
    p.write_text(text)
    loaded = load(ROOT / "rules", extra=[p])
    assert loaded.ruleset is not None, loaded.diags.items
    return loaded


def test_a_node_that_announces_bounded_off_gets_bounded_offs_and_loses_them_when_it_stops_announcing():
    """The rule set does not declare the pump node `bounded_off`; its hello does (the daemon passes it on)."""
    z = healthy(Zone())
    node = z.prog.zone.channels["pump_recirc"].node_uid
    try:
        z.prog.announce_bounded_off({node, "nd-not-of-this-zone"})
        off_stretches(z, 60)
        offs = [c for c in z.cmds("pump_recirc") if c.params["state"] is False]
        assert offs and all(0 < c.params["duration_ms"] <= 10 * 60 * 1000 for c in offs)
        assert z.prog.bounded_off == {node}  # only the zone's own nodes
    finally:
        z.prog.announce_bounded_off(set())  # the compiled program is shared by every test of this rule set
    assert not z.prog.bounded_off
