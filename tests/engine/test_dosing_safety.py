"""Dosing that cannot run away (issue 7 item 1): budgets, ineffective doses, circulation for the mixing time."""

from hydro_rules.engine.state import OFF

from .harness import Zone, healthy


def _ph(z: Zone, minutes: int, start: float = 6.5, step: float = 0.001) -> None:
    """pH above target that moves a little every minute (a live probe) but never comes down."""
    for i in range(minutes):
        z.set(ph=start + (step if i % 2 else 0.0)).tick()


def test_doses_the_sensor_does_not_show_stop_the_doser_with_an_alert():
    z = healthy(Zone())
    _ph(z, 3 * 60)
    doses = z.cmds("dose_ph_down")
    assert len(doses) == 3, "three doses without effect in a row, then no more"
    c = z.state.channels["dose_ph_down"]
    assert c.ineffective == 3
    assert ("biz_dose_ineffective", "dose_ph_down") in z.active()
    assert "3 doses in a row did not move ph" in z.refusals[-1].reason
    del z.state.alerts[("biz_dose_ineffective", "dose_ph_down")]  # rules that do not lock: the engine still stops it
    _ph(z, 60)
    assert len(z.cmds("dose_ph_down")) == 3
    z.reset("anna", "acid tank refilled")
    assert c.ineffective == 0
    _ph(z, 30)
    assert len(z.cmds("dose_ph_down")) > 3, "an operator reset resumes dosing"


def test_a_dose_the_sensor_shows_keeps_dosing_allowed():
    from .v12_helpers import ruleset, zone

    z = healthy(zone(ruleset({"settings": {"dosing.max_per_hour": 0.1, "dosing.max_per_day": 1.0}})))
    ph = 6.6
    for _ in range(4 * 60):
        z.set(ph=ph).tick()
        if z.commands and z.commands[-1].channel == "dose_ph_down" and z.commands[-1].at == z.now:
            ph -= 0.05  # the dose shows: pH drops, but stays above target
        ph += 0.0005
    assert z.state.channels["dose_ph_down"].ineffective == 0
    assert ("biz_dose_ineffective", "dose_ph_down") not in z.active()
    assert len(z.cmds("dose_ph_down")) >= 6


def test_the_hourly_budget_caps_doses_whatever_the_rules_say(tmp_path):
    from .harness import fixture_ruleset

    loaded = fixture_ruleset(tmp_path, "profile test_standard {\n  dosing { max_per_hour 15 ml  max_per_day 30 ml }\n}")
    z = healthy(Zone(loaded))
    prog = z.prog
    per_hour, per_day = prog.budget_ml("dose_ph_down")
    assert (per_hour, per_day) == (15.0, 30.0)
    ph = 6.6
    for i in range(24 * 60):
        z.set(ph=ph + (0.001 if i % 2 else 0.0)).tick()
        if z.commands and z.commands[-1].channel == "dose_ph_down" and z.commands[-1].at == z.now:
            ph -= 0.02  # effective, but never enough: a runaway the sensor confirms
    doses = z.cmds("dose_ph_down")
    total = sum(c.params["ml"] for c in doses)
    assert total <= per_day
    for c in doses:
        hour = sum(d.params["ml"] for d in doses if 0 <= c.at - d.at < 3600)
        assert hour <= per_hour
    assert any("ml per hour is used up" in r.reason for r in z.refusals)
    assert any("ml per day is used up" in r.reason for r in z.refusals)


def test_a_profile_sets_the_budget(tmp_path):
    from .harness import fixture_ruleset

    loaded = fixture_ruleset(
        tmp_path,
        """profile test_standard {
  dosing {
    max_per_hour 2 ml
    max_per_day 3 ml
  }
}""",
    )
    z = Zone(loaded)
    assert z.prog.budget_ml("dose_ph_down") == (2.0, 3.0)
    assert z.prog.budget_ml("dose_nutrient") == (2.0, 3.0), "a setting applies to every doser"


def test_default_budgets_depend_on_what_the_doser_affects():
    z = Zone()  # 100 L, no budget set
    assert z.prog.budget_ml("dose_nutrient") == (120.0, 300.0)  # affects ec up: 1.2 / 3 ml per litre
    assert z.prog.budget_ml("dose_ph_down") == (15.0, 30.0)  # any other doser: 0.15 / 0.3 ml per litre


def test_a_dose_that_reaches_the_budget_exactly_is_given_one_past_it_is_not():
    z = healthy(Zone())
    z.tick(2)
    prog, c = z.prog, z.state.channels["dose_ph_down"]
    prog.now, prog.st = z.now, z.state
    c.doses = [[z.now - 3599.0, 13.0]]
    assert prog._dose_limited("dose_ph_down", c, 2.0) is None  # 15 ml in the hour: at the budget
    assert "per hour is used up" in prog._dose_limited("dose_ph_down", c, 2.001)
    prog.now = z.now + 1.0  # the 13 ml dose is an hour old: out of the hour
    assert prog._dose_limited("dose_ph_down", c, 2.001) is None


def test_no_dose_when_circulation_is_about_to_stop():
    z = healthy(Zone()).set(ph=6.5)
    z.tick(3)
    z.state.channels["pump_recirc"].desired = OFF  # a state stops circulation now
    _ph(z, 30)
    assert z.cmds("dose_ph_down") == []
    assert any("circulating for the mixing time" in r.reason or "not circulating" in r.reason for r in z.refusals)


def test_a_dose_keeps_the_circulation_running_for_the_mixing_time():
    z = healthy(Zone())
    _ph(z, 3 * 60)
    doses = z.cmds("dose_ph_down")
    offs = [c for c in z.cmds("pump_recirc") if c.params["state"] is False]
    assert doses and offs, "duty control goes on between doses"
    for off in offs:
        for dose in doses:
            assert not dose.at <= off.at < dose.at + 15 * 60, "no OFF while a dose mixes (mixing_time 15m)"
