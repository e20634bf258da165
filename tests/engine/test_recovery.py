"""A daemon restart or a zone takeover (§13, issue 9 item 4), a node that comes back (item 4),
a rule set replaced under a running zone (item 6) and what the dead-man reads (item 8)."""

import pytest

from hydro_rules.engine.api import carry_state, nc_off_deadlines
from hydro_rules.engine.state import ACTIVE, AlertState, ZoneState

from .harness import T0, Zone, fixture_ruleset, healthy

STEPS = ["WATER_CHANGE_DRAIN", "WATER_CHANGE_FILL", "WATER_CHANGE_STABILIZE"]


def _in_step(step: str) -> Zone:
    """A zone in the middle of `step` of a water change, as its daemon last saved it."""
    z = healthy(Zone())
    z.state.solution_started_at = T0 - 8 * 86400
    z.run_until("WATER_CHANGE_DRAIN", 600)
    if step != "WATER_CHANGE_DRAIN":
        z.set(water_level=4.0).run_until("WATER_CHANGE_FILL", 5)
    if step == "WATER_CHANGE_STABILIZE":
        z.set(water_level=91.0).run_until("WATER_CHANGE_STABILIZE", 5)
    z.tick(2)
    assert z.machine_state == step
    return z


def _restart(z: Zone, after_s: float = 90.0, why: str = "daemon restart"):
    """The daemon died and a new one loaded the saved state `after_s` later."""
    saved = z.state.to_json()
    z.state = ZoneState.from_json(saved)
    z.prog = z.program(z.state.zone_uid)  # a new process: a new program
    z.now += after_s
    # the answers to the old process's last commands are still folded in (from the store, on site)
    d = z.prog.recover(z.state, z.now, why)
    z._collect(d)
    return d


@pytest.mark.parametrize("step", STEPS)
def test_a_restart_mid_water_change_fails_it_with_an_alert(step):
    z = _in_step(step)
    d = _restart(z)
    assert z.machine_state == "FAILED"
    [t] = d.transitions
    assert (t.source, t.target) == (step, "FAILED")
    assert t.reason == f"restart during {step}: daemon restart"
    assert [(a.code, a.change) for a in d.alerts] == [("biz_water_change_failed", "raised")]
    assert "on daemon restart" in d.alerts[0].details["by"]
    assert [e.type for e in d.events] == ["WATER_CHANGE_FAILED"]
    assert not d.commands, "recover decides; the next evaluation sends"
    assert all(c.reassert for c in z.state.channels.values())


@pytest.mark.parametrize("step", STEPS)
def test_after_the_restart_no_drain_or_fill_resumes_and_recirculation_comes_back(step):
    z = _in_step(step)
    z.set(water_level=50.0)
    _restart(z)
    first = len(z.commands)
    z.tick()
    sent = z.commands[first:]
    assert {c.channel: c.params for c in sent if c.channel in ("pump_drain", "pump_fill")} == {
        "pump_drain": {"state": False},
        "pump_fill": {"state": False},
    }, "both NO pumps are told OFF: what the node did meanwhile is not known"
    z.tick(30)
    later = z.commands[first:]
    assert not [c for c in later if c.channel in ("pump_drain", "pump_fill") and c.intent == "on"]
    assert z.machine_state == "FAILED_WAIT" and z.is_on("pump_recirc")
    assert ("biz_water_change_failed", None) in z.active()
    assert sum(e.type == "WATER_CHANGE_FAILED" for e in z.events) == 1


def test_a_restart_that_left_the_reservoir_below_the_minimum_refills_it_then_circulates():
    z = _in_step("WATER_CHANGE_FILL")
    z.set(water_level=8.0)  # it died early in the fill
    _restart(z)
    z.tick(2)
    assert z.machine_state == "FAILED_REFILL" and z.is_on("pump_fill")
    z.set(water_level=21.0).tick()
    assert z.machine_state == "FAILED_WAIT"
    assert z.is_on("pump_recirc") and not z.is_on("pump_fill") and not z.is_on("pump_drain")


def test_a_takeover_names_its_reason():
    z = _in_step("WATER_CHANGE_DRAIN")
    d = _restart(z, why="zone takeover from daemon b-7")
    assert d.transitions[0].reason == "restart during WATER_CHANGE_DRAIN: zone takeover from daemon b-7"


def test_a_restart_while_idle_changes_nothing_but_reasserts_every_channel():
    z = healthy(Zone())
    z.tick(5)
    before = z.state.to_json()
    d = _restart(z, after_s=60.0)
    assert not d
    after = z.state.to_json()
    for name, c in after["channels"].items():
        assert c.pop("reassert") is True
        before["channels"][name].pop("reassert")
    assert after == before
    first = len(z.commands)
    z.tick()
    assert {c.channel: c.params for c in z.commands[first:]} == {
        "pump_recirc": {"state": True},
        "pump_drain": {"state": False},
        "pump_fill": {"state": False},
    }
    z.tick()
    assert len(z.commands) == first + 3, "re-asserted once"


def test_a_restart_in_a_failed_state_stays_there():
    z = _in_step("WATER_CHANGE_DRAIN")
    _restart(z)
    z.tick(3)
    assert z.machine_state == "FAILED_WAIT"
    d = _restart(z)
    assert not d.transitions and not d.alerts and z.machine_state == "FAILED_WAIT"


# ---- nodes that come back ---------------------------------------------------------------------------
def test_a_rebooted_pump_node_gets_its_nc_pump_switched_on_again():
    z = healthy(Zone())
    z.tick(3)
    assert z.is_on("pump_recirc")
    first = len(z.commands)
    z.tick()
    assert len(z.commands) == first, "nothing to say while all is as wanted"
    z.prog.node_back(z.state, "nd-pump", z.now, "uptime went down")
    assert not z.is_on("pump_recirc"), "its relays came up OPEN: the NC pump stands still"
    z.tick()
    [on] = z.commands[first:]
    assert (on.channel, on.cmd, on.params) == ("pump_recirc", "set_relay", {"state": True})
    assert z.is_on("pump_recirc")
    z.tick()
    assert len(z.commands) == first + 1


def test_a_rebooted_node_gets_the_desired_state_of_each_relay():
    z = _in_step("WATER_CHANGE_DRAIN")
    z.set(water_level=50.0)
    first = len(z.commands)
    z.prog.node_back(z.state, "nd-drain", z.now, "ONLINE after its lwt")
    assert not z.is_on("pump_drain")
    z.tick()
    [run] = z.commands[first:]
    assert (run.channel, run.cmd) == ("pump_drain", "run_pump"), "the drain is still wanted: it runs again"
    z.prog.node_back(z.state, "nd-pump", z.now, "new MQTT session")
    z.tick()
    [off] = [c for c in z.commands[first + 1 :] if c.channel == "pump_recirc"]
    assert off.params == {"state": False}, "wanted off: told off again"


# ---- hot reload ---------------------------------------------------------------------------------------
def _reload(z: Zone, tmp_path, edit):
    """The rules of zn-t with `edit(text of water_cycle.hydro)` applied, and the program for them."""
    import shutil

    from hydro_rules.engine.api import compiled
    from hydro_rules.lang.loader import load

    from .harness import ROOT

    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules, ignore=shutil.ignore_patterns("tests"))
    p = rules / "water_cycle.hydro"
    p.write_text(edit(p.read_text()))
    loaded = load(rules, extra=[ROOT / "rules" / "tests" / "fixture.hydro"])
    assert loaded.ruleset is not None, loaded.diags.items
    return compiled(loaded.ruleset).program("zn-t")


def test_a_reload_keeps_the_states_that_still_exist(tmp_path):
    z = _in_step("WATER_CHANGE_FILL")
    z.state.alerts[("biz_high_ph", None)] = AlertState("biz_high_ph", None, ACTIVE, z.now)
    entered = z.state.entered_at["water_cycle"]
    prog = _reload(z, tmp_path, lambda t: t.replace("fail after 30m", "fail after 45m"))
    st = carry_state(z.state.to_json(), prog, z.now)
    assert st.machines["water_cycle"] == "WATER_CHANGE_FILL" and st.entered_at["water_cycle"] == entered
    assert ("biz_high_ph", None) in st.alerts
    assert st.solution_started_at == z.state.solution_started_at
    assert st.channels["pump_fill"].is_on and st.channels["pump_fill"].pending == z.state.channels["pump_fill"].pending
    d = prog.evaluate(st, z.snap, z.now + 60)
    assert not d.transitions, "the fill goes on under the new rules"


def test_a_reload_restarts_a_machine_whose_state_vanished(tmp_path):
    z = _in_step("WATER_CHANGE_STABILIZE")
    z.state.holds["water_cycle/WATER_CHANGE_STABILIZE/0"] = z.now
    z.state.holds["rule/gone"] = z.now
    prog = _reload(
        z,
        tmp_path,
        lambda t: t.replace("WATER_CHANGE_STABILIZE", "SETTLE"),
    )
    old = z.state.to_json()
    st = carry_state(old, prog, z.now)
    assert old["machines"]["water_cycle"] == "WATER_CHANGE_STABILIZE", "the old state is not changed"
    assert st.machines["water_cycle"] == "NORMAL_RECIRC" and "water_cycle" not in st.entered_at
    assert not st.holds
    d = prog.evaluate(st, z.snap, z.now + 60)
    assert st.entered_at["water_cycle"] == z.now + 60, "entered at the next evaluation"
    assert {c.channel for c in d.commands} >= {"pump_recirc"}


def test_a_reload_drops_alerts_and_guards_that_no_longer_exist(tmp_path):
    z = _in_step("WATER_CHANGE_DRAIN")
    z.state.alerts[("biz_gone", None)] = AlertState("biz_gone", None, ACTIVE, z.now)
    z.state.channels["pump_drain"].guards = ("can_run_pump", "gone_guard")
    st = carry_state(z.state, z.prog, z.now)
    assert ("biz_gone", None) not in st.alerts
    assert st.channels["pump_drain"].guards == ("can_run_pump",)


# ---- the dead-man's figures --------------------------------------------------------------------------
def test_nc_off_deadlines_count_from_the_recorded_off_since():
    z = _in_step("WATER_CHANGE_DRAIN")
    rs = z.loaded.ruleset
    c = z.state.channels["pump_recirc"]
    assert not c.is_on
    limit = z.prog.S["water_cycle.recirc.max_recirc_off"]
    [d] = nc_off_deadlines(rs, "zn-t", z.state.to_json(), z.now)
    assert d == {
        "channel": "pump_recirc",
        "node_uid": "nd-pump",
        "channel_key": z.prog.bindings["pump_recirc"].channel_key,
        "off_since": c.since,
        "deadline": c.since + limit,
        "locked": False,
        "bounded_until": None,
    }
    assert nc_off_deadlines(rs, "zn-t", z.state.to_json(), c.since + limit)[0]["deadline"] == c.since + limit


def test_nc_off_deadlines_say_when_a_lock_holds_the_pump():
    z = healthy(Zone(), level=10.0)  # biz_dry_run locks the recirculation pump
    z.tick(3)
    [d] = nc_off_deadlines(z.loaded.ruleset, "zn-t", z.state.to_json(), z.now)
    assert d["locked"] is True


def test_nc_off_deadlines_list_nothing_while_the_pump_runs_or_without_a_state():
    z = healthy(Zone())
    z.tick(3)
    assert nc_off_deadlines(z.loaded.ruleset, "zn-t", z.state.to_json(), z.now) == []
    assert nc_off_deadlines(z.loaded.ruleset, "zn-t", None, z.now) == []


def test_nc_off_deadlines_leave_out_a_bounded_off_its_node_has_ended(tmp_path):
    from .test_recirculation import bounded_off_fixture

    z = healthy(Zone(bounded_off_fixture(tmp_path)), level=10.0)
    z.tick(3)
    rs = z.loaded.ruleset
    [d] = nc_off_deadlines(rs, "zn-t", z.state.to_json(), z.now)
    end = d["bounded_until"]
    assert end is not None and end > z.now
    assert nc_off_deadlines(rs, "zn-t", z.state.to_json(), end - 1.0)
    assert nc_off_deadlines(rs, "zn-t", z.state.to_json(), end) == []


def test_fixture_loads():
    assert fixture_ruleset().ruleset is not None


def test_a_rebooted_bounded_off_node_comes_up_at_its_fail_safe_defaults(tmp_path):
    from .test_recirculation import bounded_off_fixture

    z = healthy(Zone(bounded_off_fixture(tmp_path)))
    z.tick(3)
    z.prog.node_back(z.state, "nd-pump", z.now, "uptime went down")
    c = z.state.channels["pump_recirc"]
    assert c.is_on and c.since == z.now and c.reassert, "its NC pump runs, and is told what the rules want"
