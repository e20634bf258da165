"""Dosing waits for confirmed circulation and for the previous dose to mix."""

from .harness import Zone, healthy


def test_dose_waits_for_circulation_and_mixing_time():
    z = healthy(Zone()).set(ph=6.5)
    z.tick(60)
    doses = z.cmds("dose_ph_down")
    assert doses, "high pH is corrected"
    assert all(c.cmd == "dose" and c.params["ml"] == 2.0 for c in doses)
    gaps = [(b.at - a.at) / 60 for a, b in zip(doses, doses[1:])]
    assert all(g >= 15 for g in gaps), gaps
    refused = [r for r in z.refusals if r.channel == "dose_ph_down"]
    assert {r.reason for r in refused} <= {"the solution is not circulating", "the previous dose is still mixing"}
    # the rule repeats every 10m: the repeats between two doses are refused, each one reported
    assert len(refused) >= len(doses) - 1, [(r.at, r.reason) for r in refused]


def test_no_dose_without_circulation():
    z = healthy(Zone(), level=10.0).set(ph=6.5)  # too low to circulate: recirculation is refused
    z.tick(30)
    assert not z.is_on("pump_recirc")
    assert z.cmds("dose_ph_down") == []
    assert any(r.reason == "the solution is not circulating" for r in z.refusals)
