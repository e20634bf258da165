"""The zone's physical plant as its `plant.*` settings describe it (docs/twin.md), per recipe day.

`ruleset.zone_settings(zone, phase)` gives every setting's value in the zone: the
built-in defaults, then its profile's, its own, its recipe phase's. The twin reads
them once per recipe day (a phase may change the crop's uptake, even the flows);
a TwinConfig field that is set (not None) wins over the setting, for nodesim's
`--twin KEY=VALUE` and for tests.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from .recipe import DAY_S, FreshSolution, day_zero

#: the temperature at which plant.uptake and plant.evaporation are given
REFERENCE_C = 20.0

#: TwinConfig field -> the plant setting it overrides when set
OVERRIDES = {
    "recirc_flow_l_min": "plant.recirc_flow",
    "drain_flow_l_min": "plant.drain_flow",
    "fill_flow_l_min": "plant.fill_flow",
    "fill_temp_c": "plant.source_temp",
    "temp_mean_c": "plant.air_temp",
    "temp_swing_c": "plant.air_temp_swing",
    "temp_tau_s": "plant.temp_time_constant",
    "ph_drift_day": "plant.ph_drift",
}


def timezone_of(zone):
    """The zone's ZoneInfo; None for UTC (or a name zoneinfo does not know: times stay UTC)."""
    name = getattr(zone, "timezone", None) or "UTC"
    if name in ("UTC", "Etc/UTC"):
        return None
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError, OSError):
        return None


def utc_offset(tz, t: float) -> float:
    """Seconds the zone's local time is ahead of UTC at `t`."""
    if tz is None:
        return 0.0
    off = datetime.fromtimestamp(t, UTC).astimezone(tz).utcoffset()
    return off.total_seconds() if off is not None else 0.0


class Plant:
    """The plant.* values of one zone in the units the water model uses, valid until `next_t`."""

    def __init__(self, zone, ruleset, cfg, start: float) -> None:
        self.zone, self.ruleset, self.cfg = zone, ruleset, cfg
        self.capacity = zone.reservoir_l
        self.recipe = ruleset.recipes.get(zone.recipe)
        self.zero = day_zero(zone, start)
        self.tz = timezone_of(zone)
        self.fresh = FreshSolution(self.recipe, self.zero, cfg.default_ph, cfg.default_ec)
        self.day: int | None = None
        self.next_t = -float("inf")
        self.settings: dict = {}
        self.refresh(start)

    def phase(self, day: int):
        """The recipe phase on `day`, as the engine finds it (none before day 0 or between phases)."""
        if self.recipe is None or day < 0:
            return None
        return self.recipe.phase_on(day)

    def refresh(self, t: float) -> None:
        """Read the settings of the recipe day `t` falls in."""
        day = int((t - self.zero) // DAY_S)
        self.day = day
        self.next_t = self.zero + (day + 1) * DAY_S
        s = self.ruleset.zone_settings(self.zone, self.phase(day))
        cfg = self.cfg
        for field, path in OVERRIDES.items():
            v = getattr(cfg, field, None)
            if v is not None:
                s[path] = v
        self.settings = s
        cap = self.capacity
        self.fill_lpm = float(s["plant.fill_flow"])
        self.drain_lpm = float(s["plant.drain_flow"])
        self.recirc_lpm = float(s["plant.recirc_flow"])
        # water: litres per second at the reference temperature, and the fraction more per degree
        self.uptake_lps = s["plant.uptake"] / 100.0 * cap / DAY_S
        self.uptake_k = s["plant.uptake_per_degree"] / 100.0
        self.uptake_ratio = s["plant.uptake_ec_ratio"] / 100.0
        self.evap_lps = s["plant.evaporation"] / 100.0 * cap / DAY_S
        self.evap_k = s["plant.evaporation_per_degree"] / 100.0
        self.ph_ps = s["plant.ph_drift"] / DAY_S
        # the fill line
        self.premixed = bool(s["plant.fill_premixed"])
        self.source_ec, self.source_ph = float(s["plant.source_ec"]), float(s["plant.source_ph"])
        self.source_temp = float(s["plant.source_temp"])
        # air and solution temperature
        self.air_mean, self.air_swing = float(s["plant.air_temp"]), float(s["plant.air_temp_swing"])
        self.air_peak_s = float(s["plant.air_temp_peak"])
        self.temp_tau_s = max(float(s["plant.temp_time_constant"]), 1.0)
        self.offset_s = utc_offset(self.tz, t)
        self.heater, self.chiller = bool(s["plant.heater"]), bool(s["plant.chiller"])
        self.heater_sp, self.chiller_sp = float(s["plant.heater_setpoint"]), float(s["plant.chiller_setpoint"])
        self.heater_cps = float(s["plant.heater_rate"]) / 3600.0
        self.chiller_cps = float(s["plant.chiller_rate"]) / 3600.0
        # concentrates: the effect of 1 ml in 1 L (the settings give 1 ml in 100 L)
        self.nutrient_ec_per_ml_l = float(s["plant.nutrient_ec_per_ml_per_100l"]) * 100.0
        self.acid_ph_per_ml_l = float(s["plant.acid_ph_per_ml_per_100l"]) * 100.0
        self.base_ph_per_ml_l = float(s["plant.base_ph_per_ml_per_100l"]) * 100.0

    def fill_water(self, t: float) -> tuple[float, float]:
        """(pH, EC) of the water the fill line delivers at `t`."""
        if self.premixed:
            return self.fresh.at(t)
        return self.source_ph, self.source_ec
