"""The settings a profile may hold (§10.2), their dimensions and defaults.

Rules read them as `water_change.interval`, `recirc.max_recirc_off`,
`levels.min`, ...; a profile overrides the defaults.
"""

from __future__ import annotations

from . import units as U

#: dotted path -> (dimension, default, allowed names or None). A default of None means the engine
#: computes the value when a profile does not set it (a doser's budget from the reservoir volume);
#: rules cannot read such a setting.
SCHEMA: dict[str, tuple[str, object, frozenset | None]] = {
    "water_cycle.mode": (U.TEXT, "recirculating", frozenset({"recirculating"})),
    "water_cycle.recirc.enabled": (U.BOOL, True, None),
    "water_cycle.recirc.max_recirc_off": (U.DURATION, 600.0, None),
    "water_cycle.recirc.min_on": (U.DURATION, 300.0, None),
    "water_cycle.water_change.enabled": (U.BOOL, True, None),
    "water_cycle.water_change.interval": (U.DURATION, 7 * 86400.0, None),
    "water_cycle.water_change.time_of_day": (U.TIME_OF_DAY, 9 * 3600.0, None),
    "water_cycle.water_change.max_solution_age": (U.DURATION, 10 * 86400.0, None),
    "water_cycle.water_change.trigger_by_ec_drift": (U.BOOL, True, None),
    "water_cycle.water_change.ec_drift_threshold": (U.PERCENT, 30.0, None),
    "water_cycle.water_change.max_wait": (U.DURATION, 6 * 3600.0, None),
    "levels.max": (U.PERCENT, 98.0, None),
    "levels.target": (U.PERCENT, 90.0, None),
    "levels.min": (U.PERCENT, 15.0, None),
    "levels.empty": (U.PERCENT, 5.0, None),
    "dosing.mixing_time": (U.DURATION, 900.0, None),
    "dosing.ph_down_dose": (U.VOLUME, 0.002, None),
    "dosing.nutrient_dose": (U.VOLUME, 0.005, None),
    "dosing.max_per_hour": (U.VOLUME, None, None),  # per doser; None: 0.05 ml per litre of reservoir
    "dosing.max_per_day": (U.VOLUME, None, None),  # per doser; None: 0.15 ml per litre of reservoir
    "dosing.ineffective_after": (U.NUMBER, 3.0, None),  # ineffective doses in a row that stop a doser
    "commands.response_timeout": (U.DURATION, 60.0, None),
    "commands.run_chunk": (U.DURATION, 60.0, None),  # longest run one command asks of a normally-open pump
}

# ---- plant: the physical zone the digital twin plays (docs/twin.md; owner: the twin) ----------------
#: Rates per day are written as a percentage of the reservoir per day, rates per hour of a temperature
#: as a temperature per hour, the strength of a concentrate as what 1 ml does in 100 L: the language
#: has no unit for a rate. Settable in a profile, a zone and a recipe phase (`plant { uptake 3% }`).
SCHEMA.update(
    {
        "plant.fill_flow": (U.FLOW, 8.0, None),
        "plant.drain_flow": (U.FLOW, 30.0, None),
        "plant.recirc_flow": (U.FLOW, 20.0, None),
        "plant.uptake": (U.PERCENT, 1.5, None),  # water the crop takes, % of the reservoir per day at 20 °C air
        "plant.uptake_per_degree": (U.PERCENT, 4.0, None),  # % more uptake per °C of air above 20 °C
        "plant.uptake_ec_ratio": (U.PERCENT, 70.0, None),  # salts taken per litre, % of the solution's
        "plant.evaporation": (U.PERCENT, 0.5, None),  # % of the reservoir per day at 20 °C solution
        "plant.evaporation_per_degree": (U.PERCENT, 6.0, None),  # % more per °C of solution above 20 °C
        "plant.ph_drift": (U.PH, 0.07, None),  # pH the roots push up per day
        "plant.source_ec": (U.CONDUCTIVITY, 0.3, None),  # the fill water
        "plant.source_ph": (U.PH, 7.0, None),
        "plant.source_temp": (U.TEMPERATURE, 17.0, None),
        "plant.fill_premixed": (U.BOOL, False, None),  # an inline injector: fill water at the targets
        "plant.air_temp": (U.TEMPERATURE, 21.0, None),  # daily mean
        "plant.air_temp_swing": (U.TEMPERATURE, 2.0, None),  # half the daily range
        "plant.air_temp_peak": (U.TIME_OF_DAY, 15 * 3600.0, None),  # local time of the warmest air
        "plant.temp_time_constant": (U.DURATION, 3 * 3600.0, None),  # the solution follows the air
        "plant.heater": (U.BOOL, False, None),
        "plant.heater_setpoint": (U.TEMPERATURE, 18.0, None),
        "plant.heater_rate": (U.TEMPERATURE, 2.0, None),  # °C per hour it can add
        "plant.chiller": (U.BOOL, False, None),
        "plant.chiller_setpoint": (U.TEMPERATURE, 24.0, None),
        "plant.chiller_rate": (U.TEMPERATURE, 2.0, None),  # °C per hour it can remove
        "plant.nutrient_ec_per_ml_per_100l": (U.CONDUCTIVITY, 0.01, None),  # EC rise of 1 ml in 100 L
        "plant.acid_ph_per_ml_per_100l": (U.PH, 0.1, None),  # pH fall of 1 ml of pH down in 100 L
        "plant.base_ph_per_ml_per_100l": (U.PH, 0.1, None),  # pH rise of 1 ml of pH up in 100 L
    }
)
# ---- end of plant ----------------------------------------------------------------------------------

SECTIONS = {p.rsplit(".", 1)[0] for p in SCHEMA} | {"water_cycle"}

#: short prefixes rules may use: `water_change.interval` is `water_cycle.water_change.interval`
SHORT = {"water_change": "water_cycle.water_change", "recirc": "water_cycle.recirc"}

#: names from the backend plan that are written differently here
PLAN_NAMES = {
    "interval_days": "interval 7d",
    "max_recirc_off_minutes": "max_recirc_off 10m",
    "max_solution_age_days": "max_solution_age 10d",
    "schedule": "window 00:00 to 24:00 duty 50% period 20m",
    "duty_cycle": "window 00:00 to 24:00 duty 50% period 20m",
}

#: the largest duty period a window may have, so that a cycle fits in a day
MAX_PERIOD_S = 86400.0


def resolve(path: str) -> str:
    """The full dotted path of a setting as rules or profiles write it."""
    head, _, rest = path.partition(".")
    if head in SHORT:
        return SHORT[head] + ("." + rest if rest else "")
    return path


#: settings that count something: a whole number of at least 1
COUNTS = frozenset({"dosing.ineffective_after"})


def defaults() -> dict:
    """Every setting's default; None where the engine computes it (see SCHEMA)."""
    return {path: default for path, (_, default, _) in SCHEMA.items()}
