"""Warnings: HR501-HR503. They do not fail a run unless --strict."""

from __future__ import annotations


# ---- HR501 alert without a clear condition --------------------------------------------------
def test_hr501_alert_without_clear(sets):
    text = sets.replace(sets.ALERT, "  clear when temp_water < 24 °C for 15m\n", "")
    d = sets.one({"a.hydro": text})
    assert sets.at(d) == ("HR501", *sets.pos(text, "biz_warm_solution"))
    assert d.severity.value == "warning"
    assert "clear on reset" in d.hint


def test_hr501_clear_on_reset_is_a_clear_condition(sets):
    text = sets.replace(sets.ALERT, "clear when temp_water < 24 °C for 15m", "clear on reset")
    assert sets.found({"a.hydro": text}) == []


# ---- HR502 unused definitions ------------------------------------------------------------------
def test_hr502_guard_nobody_uses(sets):
    guard = 'hydro 1\n\nguard cold_water for pump_recirc {\n  deny "too cold" when temp_water < 5 °C\n}\n'
    found = [f for f in sets.found({"g.hydro": guard}) if f[1] == "g.hydro"]
    assert found == [("HR502", "g.hydro", *sets.pos(guard, "cold_water"))]


def test_hr502_recipe_no_zone_uses(sets):
    extra = 'hydro 1\n\nrecipe mint "Mint" {\n  phase all days 0 .. {\n    ph 5.5 .. 6.5\n  }\n}\n'
    d = sets.one(sets.site(extra={"mint.hydro": extra}))
    assert sets.at(d) == ("HR502", *sets.pos(extra, "mint")) and d.severity.value == "warning"
    assert d.message == "recipe `mint` is not used by any zone"


def test_hr502_profile_no_zone_uses(sets):
    extra = "hydro 1\n\nprofile spare {\n  levels {\n    min 20%\n  }\n}\n"
    d = sets.one(sets.site(extra={"spare.hydro": extra}))
    assert sets.at(d) == ("HR502", *sets.pos(extra, "spare"))


def test_hr502_channel_neither_bound_nor_used(sets):
    extra = "hydro 1\n\nchannel fan_exhaust {\n  kind sensor\n  measures temp_air\n}\n"
    d = sets.one(sets.site(extra={"fan.hydro": extra}))
    assert sets.at(d) == ("HR502", *sets.pos(extra, "fan_exhaust"))
    bound = sets.site_files(
        {
            "site.hydro": (
                "      level_sensor on nd-level-2\n",
                "      level_sensor on nd-level-2\n      fan_exhaust on nd-fan-2\n",
            )
        }
    )
    assert sets.found(bound | {"fan.hydro": extra}) == []


def test_hr502_zone_with_an_error_does_not_make_its_recipe_unused(sets):
    files = sets.site_files({"site.hydro": ("      reservoir 150 L\n", "")})
    assert [c for c, *_ in sets.found(files)] == ["HR206"]


# ---- HR503 alert that nothing raises ---------------------------------------------------------------
def test_hr503_alert_without_when_nor_raiser(sets):
    text = sets.replace(sets.ALERT, "  when temp_water > 26 °C for 15m\n", "")
    d = sets.one({"a.hydro": text})
    assert sets.at(d) == ("HR503", *sets.pos(text, "biz_warm_solution"))


def test_hr503_alert_raised_by_a_rule_is_used(sets):
    text = sets.replace(sets.ALERT, "  when temp_water > 26 °C for 15m\n", "")
    rule = "hydro 1\n\nrule warm {\n  when temp_water > 26 °C for 15m\n  do { raise biz_warm_solution }\n}\n"
    assert sets.found({"a.hydro": text, "r.hydro": rule}) == []


def test_hr503_not_reported_when_the_condition_has_an_error(sets):
    text = sets.replace(sets.ALERT, "when temp_water > 26", "when temp_watr > 26")
    assert [c for c, *_ in sets.found({"a.hydro": text})] == ["HR101"]
