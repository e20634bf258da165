"""Dosing waits for confirmed circulation and for the previous dose to mix."""

from .harness import Zone, healthy


def test_dose_waits_for_circulation_and_mixing_time():
    z = healthy(Zone()).set(ph=6.5)
    z.tick(60)
    doses = z.cmds("dose_ph_down")
    assert doses, "high pH is corrected"
    # sized by the error: 1 ml per 100 L per 0.1 pH above the target's middle (6.0), at most 8 ml per 100 L
    assert all(c.cmd == "dose" and c.params["ml"] == 5.0 for c in doses)
    gaps = [(b.at - a.at) / 60 for a, b in zip(doses, doses[1:])]
    assert all(g >= 15 for g in gaps), gaps
    refused = [r for r in z.refusals if r.channel == "dose_ph_down"]
    reasons = {r.reason for r in refused if not r.reason.startswith("the dosing budget")}  # 15 ml/h for acid
    assert reasons <= {"the solution is not circulating", "the previous dose is still mixing"}
    assert len(doses) >= 2, "the rule repeats every dosing.repeat (15m): a dose again once the last one has mixed"


def test_no_dose_without_circulation():
    z = healthy(Zone(), level=10.0).set(ph=6.5)  # too low to circulate: recirculation is refused
    z.tick(30)
    assert not z.is_on("pump_recirc")
    assert z.cmds("dose_ph_down") == []
    assert any(r.reason == "the solution is not circulating" for r in z.refusals)
