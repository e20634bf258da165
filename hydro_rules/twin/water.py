"""Reservoir, loop and solution of one zone: volumes, concentration, pH and temperature.

Flows are constant between two calls of `step`, so volumes move linearly and are
clamped where a tank empties or overflows; relaxations (loop hold-up, mixing of a
dose, water temperature) use their exact exponential over the step. The equations
are in docs/twin.md; the zone's constants come from its plant.* settings (`plant`).

EC is taken as proportional to the salts dissolved per litre: the salts S = EC * V
(mS/cm * L) leave with the water only by the drain, a leak and the crop (at
plant.uptake_ec_ratio of the solution's concentration); evaporation takes water
alone, fresh water brings its own salts (plant.source_ec), a nutrient dose adds
plant.nutrient_ec_per_ml_per_100l per ml per 100 L.
"""

from __future__ import annotations

import math

from .config import TwinConfig
from .plant import REFERENCE_C, Plant
from .recipe import DAY_S

TWO_PI = 2.0 * math.pi


class Water:
    __slots__ = (
        "cfg",
        "capacity",
        "plant",
        "volume",
        "loop",
        "ph",
        "ec",
        "temp",
        "air",
        "acid_ml",
        "base_ml",
        "nutrient_ml",
        "heater_stuck",
        "heater_failed",
        "chiller_stuck",
        "chiller_failed",
        "heating",
        "cooling",
        "primed",
        "recirc_lps",
        "drain_lps",
        "fill_lps",
        "loss_lps",
        "drained",
        "filled",
        "leaked",
        "consumed",
        "overflow",
        "dosed",
        "drain_dry",
        "_holdup",
        "evaporated",
        "taken_up",
        "_intake",
        "_reprime",
        "_dt",
        "_tau",
        "_f_loop",
        "_f_mix",
        "_f_still",
        "_f_temp",
    )

    def __init__(self, cfg: TwinConfig, capacity: float, plant: Plant, start: float, level_pct: float) -> None:
        self.cfg, self.capacity, self.plant = cfg, capacity, plant
        self._holdup = cfg.loop_holdup_frac * capacity
        self.volume = capacity * level_pct / 100.0
        self.loop = 0.0
        self.ph, self.ec = plant.fresh.at(start)  # a freshly made solution at the recipe's midpoints
        self.air = self.air_at(start)
        self.temp = self.air  # a solution that has stood in the room, or held at its heater's (chiller's) setpoint
        if plant.heater and self.temp < plant.heater_sp:
            self.temp = plant.heater_sp
        elif plant.chiller and self.temp > plant.chiller_sp:
            self.temp = plant.chiller_sp
        self.acid_ml = self.base_ml = self.nutrient_ml = 0.0
        self.heater_stuck = self.heater_failed = self.chiller_stuck = self.chiller_failed = 0
        self.heating = self.cooling = False  # did the heater (chiller) work in the last step
        self.primed = True
        self.recirc_lps = self.drain_lps = self.fill_lps = self.loss_lps = 0.0
        self.drained = self.filled = self.leaked = self.consumed = self.overflow = self.dosed = 0.0
        self.evaporated = self.taken_up = 0.0  # the two parts of `consumed`
        self.drain_dry = 0.0  # seconds of the last step the drain pulled on an empty reservoir
        self._intake = cfg.recirc_intake_pct * capacity / 100.0
        self._reprime = cfg.recirc_reprime_pct * capacity / 100.0
        self._dt = self._tau = -1.0

    def wave(self, t: float) -> float:
        """The daily cycle, -1..1, peaking at plant.air_temp_peak local time."""
        p = self.plant
        return math.sin(TWO_PI * ((t + p.offset_s - p.air_peak_s) % DAY_S) / DAY_S + TWO_PI / 4.0)

    def air_at(self, t: float) -> float:
        p = self.plant
        return p.air_mean + p.air_swing * self.wave(t)

    def fill_loop(self) -> None:
        """Start in steady state with the recirculation running: the loop is full, the reservoir at its level."""
        self.loop = self._holdup

    @property
    def flowing(self) -> bool:
        """Does the recirculation actually move water (powered, unblocked, primed)?"""
        return self.recirc_lps > 0.0 and self.primed

    @property
    def total(self) -> float:
        """Water in the zone plus everything that left it minus everything that came in."""
        return (
            self.volume
            + self.loop
            + self.drained
            + self.leaked
            + self.consumed
            + self.overflow
            - self.filled
            - self.dosed
        )

    def dose(self, role: str, ml: float) -> None:
        self.dosed += ml / 1000.0
        self.volume += ml / 1000.0
        if role == "acid":
            self.acid_ml += ml
        elif role == "base":
            self.base_ml += ml
        elif role == "nutrient":
            self.nutrient_ml += ml

    def step(self, t: float, dt: float) -> None:
        """Move the state from t to t + dt."""
        p = self.plant
        if dt != self._dt or p.temp_tau_s != self._tau:
            cfg = self.cfg
            self._dt, self._tau = dt, p.temp_tau_s
            self._f_loop = 1.0 - math.exp(-dt / cfg.loop_tau_s)
            self._f_mix = 1.0 - math.exp(-dt / cfg.mix_tau_s)
            self._f_still = 1.0 - math.exp(-dt / cfg.mix_tau_still_s)
            self._f_temp = 1.0 - math.exp(-dt / p.temp_tau_s)
        v = self.volume
        flowing = self.recirc_lps > 0.0 and self.primed
        self.drain_dry = 0.0

        # the loop fills while the pump moves water and drains back when it stops
        move = ((self._holdup if flowing else 0.0) - self.loop) * self._f_loop
        if move > v:
            move = v
        v -= move
        self.loop += move
        if self.primed:
            if v < self._intake and self.recirc_lps > 0.0:
                self.primed = False
        elif v >= self._reprime:
            self.primed = True

        if self.fill_lps > 0.0:  # fresh water mixes in at its own EC, pH and temperature
            add = self.fill_lps * dt
            ph_in, ec_in = p.fill_water(t)
            total = v + add
            self.ph = (self.ph * v + ph_in * add) / total
            self.ec = (self.ec * v + ec_in * add) / total
            self.temp = (self.temp * v + p.source_temp * add) / total
            self.filled += add
            v = total
            if v > self.capacity:
                self.overflow += v - self.capacity
                v = self.capacity
        if self.drain_lps > 0.0 or self.loss_lps > 0.0:
            v = self._outflow(v, dt)

        wave = self.wave(t)
        air = self.air = p.air_mean + p.air_swing * wave
        if v > 0.0:
            # the crop takes water (more by day, more when the air is warm) with some of its salts;
            # the surface evaporates water alone, more when the solution is warm
            up = p.uptake_lps * (1.0 + self.cfg.water_use_swing * wave) * (1.0 + p.uptake_k * (air - REFERENCE_C))
            ev = p.evap_lps * (1.0 + p.evap_k * (self.temp - REFERENCE_C))
            up = up * dt if up > 0.0 else 0.0
            ev = ev * dt if ev > 0.0 else 0.0
            use = up + ev
            if use > v:
                up, ev, use = up * v / use, ev * v / use, v
            left = v - use
            if left >= 1.0:  # below a litre the salts crystallise on the walls rather than concentrate
                salts = self.ec * (v - p.uptake_ratio * up)
                self.ec = salts / left if salts > 0.0 else 0.0
            self.consumed += use
            self.taken_up += up
            self.evaporated += ev
            v = left
            self.ph += p.ph_ps * dt
        if (self.acid_ml > 0.0 or self.base_ml > 0.0 or self.nutrient_ml > 0.0) and v >= 1.0:
            f = self._f_mix if flowing else self._f_still
            if self.acid_ml > 0.0:
                moved = self.acid_ml * f
                self.acid_ml -= moved
                self.ph -= p.acid_ph_per_ml_l * moved / v
            if self.base_ml > 0.0:
                moved = self.base_ml * f
                self.base_ml -= moved
                self.ph += p.base_ph_per_ml_l * moved / v
            if self.nutrient_ml > 0.0:
                moved = self.nutrient_ml * f
                self.nutrient_ml -= moved
                self.ec += p.nutrient_ec_per_ml_l * moved / v
        # the solution follows the air; a heater (chiller) holds its setpoint as far as its rate allows
        temp = self.temp + (air - self.temp) * self._f_temp
        self.heating = self.cooling = False
        if self.heater_stuck:
            temp += p.heater_cps * dt
            self.heating = True
        elif p.heater and not self.heater_failed and temp < p.heater_sp:
            temp = min(p.heater_sp, temp + p.heater_cps * dt)
            self.heating = True
        if self.chiller_stuck:
            temp -= p.chiller_cps * dt
            self.cooling = True
        elif p.chiller and not self.chiller_failed and temp > p.chiller_sp:
            temp = max(p.chiller_sp, temp - p.chiller_cps * dt)
            self.cooling = True
        self.temp = temp
        self.volume = v

    def _outflow(self, v: float, dt: float) -> float:
        before = v
        out = self.drain_lps * dt
        if out > v:
            self.drain_dry = dt - v / self.drain_lps  # it emptied the reservoir this long before the step ended
            out = v
        self.drained += out
        v -= out
        lost = self.loss_lps * dt
        if lost > v:
            lost = v
        self.leaked += lost
        v -= lost
        if before > 0.0:  # an unmixed dose leaves with the water around it
            keep = v / before
            self.acid_ml *= keep
            self.base_ml *= keep
            self.nutrient_ml *= keep
        return v
