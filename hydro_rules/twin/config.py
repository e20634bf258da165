"""Constants of the twin that are not the zone's: node firmware, currents, noise, the loop.

The zone's physical plant (flows, uptake, evaporation, source water, temperature,
heater/chiller, concentrate strengths) comes from its `plant.*` settings (see
`plant` and docs/twin.md). A TwinConfig field left at None here reads that setting;
set, it overrides it in every zone (nodesim's `--twin fill_flow_l_min=60`, tests).
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: what a channel does to the water, by standard channel name
DEFAULT_ROLES = {
    "pump_recirc": "recirc",
    "pump_drain": "drain",
    "pump_fill": "fill",
    "dose_ph_down": "acid",
    "dose_ph_up": "base",
    "dose_nutrient": "nutrient",
    "dose_nutrient_a": "nutrient",
    "dose_nutrient_b": "nutrient",
}
ROLES = frozenset({"recirc", "drain", "fill", "acid", "base", "nutrient", "none"})

#: a doser's role from its declared `affects` (metric, direction)
AFFECTS_ROLES = {("ec", 1): "nutrient", ("ph", -1): "acid", ("ph", 1): "base"}

#: words in a channel's name that tell a doser's role when DEFAULT_ROLES does not name it
DOSER_WORDS = (("ph_up", "base"), ("ph_down", "acid"), ("acid", "acid"), ("base", "base"), ("nutrient", "nutrient"))

#: node firmware models (see `nodes`): "hydro2" is today's relay firmware, "bounded-off" the kinder older model
FIRMWARES = ("hydro2", "bounded-off")
DEFAULT_FIRMWARE = "hydro2"
TIMED_RUN_CAP_MS = 300_000  # hydro2 caps the duration_ms of a set_relay state=true (a timed run) to this

#: what a pump's node reports of its flow: "rate" its channel's `flow` metric (L/min), "flag" its
#: `flow_flag` metric instead (1 while water flows, 0 while none), as hydro 2.0 pump nodes do
PUMP_FLOWS = ("rate", "flag")

#: Gaussian sensor noise (one standard deviation) per metric, in the metric's base unit
DEFAULT_NOISE = {
    "ph": 0.01,
    "ec": 0.01,
    "temp_water": 0.05,
    "water_level": 0.2,
    "pump_current": 10.0,
    "flow_rate": 0.2,
    "temp_air": 0.1,
    "humidity": 0.5,
    "co2": 5.0,
    "lux": 50.0,
    "soil_moisture": 0.2,
    "soil_temp": 0.05,
    "wind_speed": 0.05,
    "outside_temp": 0.1,
}

#: metrics the twin does not model: a constant (plus noise) for nodes that report them
DEFAULT_AMBIENT = {
    "temp_air": 23.0,
    "humidity": 65.0,
    "co2": 600.0,
    "lux": 20000.0,
    "soil_moisture": 40.0,
    "soil_temp": 20.0,
    "wind_speed": 0.0,
    "outside_temp": 10.0,
}


@dataclass
class TwinConfig:
    # pumps: nominal flow by role (L/min; None: the zone's plant.recirc_flow, plant.drain_flow, plant.fill_flow)
    recirc_flow_l_min: float | None = None
    drain_flow_l_min: float | None = None
    fill_flow_l_min: float | None = None
    # the current each pump draws as the node's INA209 sees it (mA)
    running_ma: float = 1050.0
    idle_ma: float = 15.0
    dry_ma: float = 600.0  # a pump sucking air draws less than its working current
    fault_ma: float = 2300.0  # a pump with the overcurrent fault (seized bearing, shorted winding)
    threshold_ma: float = 1500.0  # the node's overcurrent threshold
    max_run_ms: int = 900_000  # node safe_limits.max_duration_ms: run_pump is clamped to this
    max_clock_skew_s: float | None = 10.0  # nodes reject commands whose ts is this far off (None: never)
    firmware: str = DEFAULT_FIRMWARE  # one of FIRMWARES: how nodes treat set_relay durations and reboots
    pump_flow: str = "rate"  # one of PUMP_FLOWS; "flag" applies to pumps that declare a flow_flag

    # loop: water held in pipes and gullies while the recirculation pump moves it; it drains back when it stops
    loop_holdup_frac: float = 0.03  # of reservoir_l
    loop_tau_s: float = 45.0
    recirc_intake_pct: float = 2.0  # the recirculation pump sucks air below this level...
    recirc_reprime_pct: float = 4.0  # ...and picks up again above this one
    probe_level_pct: float = 1.0  # below this the EC probe is out of the water and reads 0

    # plants: the diurnal swing of the crop's uptake around its mean (0..1); pH drift per day (None: plant.ph_drift)
    water_use_swing: float = 0.5
    ph_drift_day: float | None = None

    # dosing: mixing time constant of a dose with and without circulation (strengths: plant.*_per_ml_per_100l)
    mix_tau_s: float = 180.0
    mix_tau_still_s: float = 7200.0

    # temperature (None: the zone's plant.air_temp, plant.air_temp_swing, plant.temp_time_constant,
    # plant.source_temp)
    temp_mean_c: float | None = None
    temp_swing_c: float | None = None
    temp_tau_s: float | None = None
    fill_temp_c: float | None = None

    # the initial solution is at the recipe phase's midpoints; these when a target is missing
    default_ph: float = 6.0
    default_ec: float = 1.5
    initial_level_pct: float | None = None  # None: the profile's levels.target (else 90 %)
    level_switch_pct: float = 10.0  # water_level_switch reads 1 at or above this level

    roles: dict = field(default_factory=dict)  # channel name -> role, over DEFAULT_ROLES
    noise: dict = field(default_factory=dict)  # metric -> sigma, over DEFAULT_NOISE
    ambient: dict = field(default_factory=dict)  # metric -> value, over DEFAULT_AMBIENT

    def check(self) -> None:
        """ValueError for a setting the twin cannot model."""
        if self.firmware not in FIRMWARES:
            raise ValueError(f"firmware {self.firmware!r}: the twin models {', '.join(FIRMWARES)}")
        if self.pump_flow not in PUMP_FLOWS:
            raise ValueError(f"pump_flow {self.pump_flow!r}: pump nodes report {' or '.join(PUMP_FLOWS)}")
        for name, role in self.roles.items():
            if role not in ROLES:
                raise ValueError(f"TwinConfig.roles[{name!r}] = {role!r}: roles are {', '.join(sorted(ROLES))}")

    def role(self, channel: str, declared=None) -> str:
        """What `channel` does to the water. `declared` is its declaration (model.Channel): a doser's
        `affects ec up` holds nutrient, `affects ph down` acid, `affects ph up` base. Then the standard
        names (DEFAULT_ROLES), then words in a doser's name; an explicit `roles` entry wins over all."""
        role = self.roles.get(channel)
        if role is None and declared is not None and getattr(declared, "kind", None) == "doser":
            role = AFFECTS_ROLES.get(tuple(declared.affects[:2])) if declared.affects else None
        role = role or DEFAULT_ROLES.get(channel)
        if role is None and channel.startswith("dose"):
            role = next((r for word, r in DOSER_WORDS if word in channel), None)
        return role or "none"

    def sigma(self, metric: str) -> float:
        return self.noise.get(metric, DEFAULT_NOISE.get(metric, 0.0))

    def ambient_value(self, metric: str) -> float | None:
        return self.ambient.get(metric, DEFAULT_AMBIENT.get(metric))
