"""The standard rule set (rules/*.hydro) written by hand in plain Python.

The baseline of bench/engine_eval.py: the same decisions as the compiled
rules, every condition and guard typed out inline as a person would write it
(a reading is None when unknown). It runs on the same zone runtime (telemetry,
alert lifecycle, channel wiring), so the benchmark measures what compiling
the rules costs against writing them out by hand.
"""

from __future__ import annotations

from hydro_rules.engine.compiler import AlertSpec, RuleSpec, TransitionSpec
from hydro_rules.engine.state import PENDING

PUMPS = ("pump_recirc", "pump_drain", "pump_fill")


def make(rs):
    """(tick, guards) for zones of the standard shape, bound to the rule set's models."""

    def spec(code, ch):
        a = rs.alerts[code]
        w, c = (a.when[0] if a.when else None), a.clear
        return AlertSpec(
            code,
            ch,
            (code, ch),
            w.hold_s if w else 0.0,
            c.hold_s if c else 0.0,
            w.text if w else "",
            c.text if c else "",
        )

    HIGH_PH, LOW_PH = spec("biz_high_ph", None), spec("biz_low_ph", None)
    HIGH_EC, LOW_EC = spec("biz_high_ec", None), spec("biz_low_ec", None)
    FALLING, STALE, FROZEN = (
        spec("biz_water_level_falling", None),
        spec("infra_sensor_stale", None),
        spec("infra_sensor_frozen", None),
    )
    OVERFLOW = spec("biz_overflow", "pump_fill")
    PER_PUMP = {
        ch: (
            spec("biz_overcurrent", ch),
            spec("biz_no_flow", ch),
            spec("biz_pump_stuck_on", ch),
            spec("infra_node_offline", ch),
        )
        for ch in PUMPS
    }
    states = rs.machines["water_cycle"].states
    TR = {(s, i): TransitionSpec("water_cycle", i, t) for s, st in states.items() for i, t in enumerate(st.transitions)}
    R_PH = RuleSpec("correct_high_ph", rs.rules["correct_high_ph"], 600.0, "rule/correct_high_ph")
    R_EC = RuleSpec("correct_low_ec", rs.rules["correct_low_ec"], 900.0, "rule/correct_low_ec")

    def tick(x):
        now, mv, S, T, st = x.now, x.mv, x.S, x.T, x.st
        alerts = st.alerts
        ph, ec, level = mv["ph"], mv["ec"], mv["water_level"]
        ph_max, ph_min, ec_max, ec_min = T.get("ph.max"), T.get("ph.min"), T.get("ec.max"), T.get("ec.min")

        a = alerts.get(HIGH_PH.key)
        if a is None or a.status is PENDING:
            if ph is not None and ph_max is not None and ph > ph_max + 0.3:
                x.alert_true(HIGH_PH, a)
            elif a is not None:
                del alerts[HIGH_PH.key]
        elif ph is not None and ph_max is not None and ph < ph_max:
            x.alert_clear(HIGH_PH, a)
        elif a.clear_since is not None:
            a.clear_since = None

        a = alerts.get(LOW_PH.key)
        if a is None or a.status is PENDING:
            if ph is not None and ph_min is not None and ph < ph_min - 0.3:
                x.alert_true(LOW_PH, a)
            elif a is not None:
                del alerts[LOW_PH.key]
        elif ph is not None and ph_min is not None and ph > ph_min:
            x.alert_clear(LOW_PH, a)
        elif a.clear_since is not None:
            a.clear_since = None

        a = alerts.get(HIGH_EC.key)
        if a is None or a.status is PENDING:
            if ec is not None and ec_max is not None and ec > ec_max * 1.15:
                x.alert_true(HIGH_EC, a)
            elif a is not None:
                del alerts[HIGH_EC.key]
        elif ec is not None and ec_max is not None and ec < ec_max:
            x.alert_clear(HIGH_EC, a)
        elif a.clear_since is not None:
            a.clear_since = None

        a = alerts.get(LOW_EC.key)
        if a is None or a.status is PENDING:
            if ec is not None and ec_min is not None and ec < ec_min * 0.85:
                x.alert_true(LOW_EC, a)
            elif a is not None:
                del alerts[LOW_EC.key]
        elif ec is not None and ec_min is not None and ec > ec_min:
            x.alert_clear(LOW_EC, a)
        elif a.clear_since is not None:
            a.clear_since = None

        for ch in PUMPS:
            over, noflow, stuck, offline = PER_PUMP[ch]
            current = x.current(ch)
            a = alerts.get(over.key)
            if a is None or a.status is PENDING:
                if current is not None and current > 1500.0:
                    x.alert_true(over, a)
                elif a is not None:
                    del alerts[over.key]
            a = alerts.get(noflow.key)
            if a is None or a.status is PENDING:
                flow = x.flow(ch)
                blocked = flow is not None and flow < 0.5
                if not blocked and ch != "pump_recirc":  # drain and fill move the level: it must change
                    change = x.change("water_level", 120.0)
                    blocked = change is not None and abs(change) < 1.0
                if x.on_for(ch) > 120.0 and blocked:
                    x.alert_true(noflow, a)
                elif a is not None:
                    del alerts[noflow.key]
            a = alerts.get(stuck.key)
            if a is None or a.status is PENDING:
                if x.off_for(ch) > 60.0 and current is not None and current > 300.0:
                    x.alert_true(stuck, a)
                elif a is not None:
                    del alerts[stuck.key]
            a = alerts.get(offline.key)
            if a is None or a.status is PENDING:
                if x.timeouts(ch) >= 2.0:
                    x.alert_true(offline, a)
                elif a is not None:
                    del alerts[offline.key]
            elif x.timeouts(ch) == 0.0:
                x.alert_clear(offline, a)
            elif a.clear_since is not None:
                a.clear_since = None

        a = alerts.get(OVERFLOW.key)
        if a is not None and a.status is not PENDING:
            if level is not None and level < S["levels.max"]:
                x.alert_clear(OVERFLOW, a)
            elif a.clear_since is not None:
                a.clear_since = None

        a = alerts.get(FALLING.key)
        if a is None or a.status is PENDING:
            change = x.change("water_level", 3600.0)
            if x.off_for("pump_drain") > 3600.0 and change is not None and change < -6.0:
                x.alert_true(FALLING, a)
            elif a is not None:
                del alerts[FALLING.key]

        a = alerts.get(STALE.key)
        if a is None or a.status is PENDING:
            if level is None or ph is None or ec is None:
                x.alert_true(STALE, a)
            elif a is not None:
                del alerts[STALE.key]
        elif level is not None and ph is not None and ec is not None:
            x.alert_clear(STALE, a)
        elif a.clear_since is not None:
            a.clear_since = None

        a = alerts.get(FROZEN.key)
        ph_same, ec_same = x.unchanged_for("ph"), x.unchanged_for("ec")
        if a is None or a.status is PENDING:
            if (ph_same is not None and ph_same > 7200.0) or (ec_same is not None and ec_same > 7200.0):
                x.alert_true(FROZEN, a)
            elif a is not None:
                del alerts[FROZEN.key]
        elif ph_same is not None and ec_same is not None and ph_same < 600.0 and ec_same < 600.0:
            x.alert_clear(FROZEN, a)
        elif a.clear_since is not None:
            a.clear_since = None

        # the water cycle
        s = st.machines["water_cycle"]
        if s == "NORMAL_RECIRC":
            enabled = S["water_cycle.water_change.enabled"]
            age = x.solution_age()
            if x.due(S["water_cycle.water_change.interval"], S["water_cycle.water_change.time_of_day"]) and enabled:
                x.go(TR[(s, 0)])
            elif enabled and age is not None and age > S["water_cycle.water_change.max_solution_age"]:
                x.go(TR[(s, 1)])
            else:
                drift = x.drift("ec")
                drifting = (
                    enabled
                    and S["water_cycle.water_change.trigger_by_ec_drift"]
                    and drift is not None
                    and drift > S["water_cycle.water_change.ec_drift_threshold"]
                )
                if x.hold("water_cycle/NORMAL_RECIRC/2", drifting, 7200.0):
                    x.go(TR[(s, 2)])
        elif s == "WATER_CHANGE_DRAIN":
            if level is not None and level <= S["levels.empty"]:
                x.go(TR[(s, 0)])
            elif now - st.entered_at["water_cycle"] >= 1800.0:
                x.go(TR[(s, 1)])
        elif s == "WATER_CHANGE_FILL":
            if level is not None and level >= S["levels.target"]:
                x.go(TR[(s, 0)])
            elif now - st.entered_at["water_cycle"] >= 1800.0:
                x.go(TR[(s, 1)])
        elif s == "WATER_CHANGE_STABILIZE":
            if now - st.entered_at["water_cycle"] >= 900.0:
                x.go(TR[(s, 0)])
        elif s == "FAILED" and not x.alert_active("biz_water_change_failed"):
            x.go(TR[(s, 0)])

        # corrections of the solution
        if st.machines["water_cycle"] == "NORMAL_RECIRC":
            if x.hold("rule/correct_high_ph", ph is not None and ph_max is not None and ph > ph_max, 300.0):
                x.fire(R_PH)
            elif "correct_high_ph" in st.fired:
                del st.fired["correct_high_ph"]
            if x.hold("rule/correct_low_ec", ec is not None and ec_min is not None and ec < ec_min, 600.0):
                x.fire(R_EC)
            elif "correct_low_ec" in st.fired:
                del st.fired["correct_low_ec"]
        else:
            x.rule_idle(R_PH)
            x.rule_idle(R_EC)

    def can_run_pump(x, ch):
        if x.locked(ch):
            return 0, False
        if x.failures(ch, 3600.0) >= 3.0:
            return 1, False
        return None

    def reservoir_has_water(x, ch):
        level = x.mv["water_level"]
        if level is None or level < x.S["levels.min"]:
            return 0, level is None
        return None

    def drain_has_water(x, ch):
        level = x.mv["water_level"]
        if level is None or level <= x.S["levels.empty"]:
            return 0, level is None
        return None

    def no_overflow(x, ch):
        level = x.mv["water_level"]
        if level is None or level >= x.S["levels.max"]:
            return 0, level is None
        return None

    def can_dose(x, ch):
        if x.locked(ch):
            return 0, False
        if not (x.is_on("pump_recirc") and x.on_for("pump_recirc") >= 120.0):
            return 1, False
        if x.last_dose_age() < x.S["dosing.mixing_time"]:
            return 2, False
        return None

    guards = {
        "can_run_pump": can_run_pump,
        "reservoir_has_water": reservoir_has_water,
        "drain_has_water": drain_has_water,
        "no_overflow": no_overflow,
        "can_dose": can_dose,
    }
    return tick, guards
