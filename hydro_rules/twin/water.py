"""Reservoir, loop and solution of one zone: volumes, concentration, pH and temperature.

Flows are constant between two calls of `step`, so volumes move linearly and are
clamped where a tank empties or overflows; relaxations (loop hold-up, mixing of a
dose, water temperature) use their exact exponential over the step.
"""

from __future__ import annotations

import math

from .config import TwinConfig
from .recipe import DAY_S, FreshSolution

TWO_PI = 2.0 * math.pi


class Water:
    __slots__ = (
        "cfg",
        "capacity",
        "fresh",
        "volume",
        "loop",
        "ph",
        "ec",
        "temp",
        "acid_ml",
        "nutrient_ml",
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
        "_use_lps",
        "_uptake_ps",
        "_ph_ps",
        "_intake",
        "_reprime",
        "_phase",
        "_dt",
        "_f_loop",
        "_f_mix",
        "_f_still",
        "_f_temp",
    )

    def __init__(self, cfg: TwinConfig, capacity: float, fresh: FreshSolution, start: float, level_pct: float) -> None:
        self.cfg, self.capacity, self.fresh = cfg, capacity, fresh
        self._holdup = cfg.loop_holdup_frac * capacity
        self.volume = capacity * level_pct / 100.0
        self.loop = 0.0
        self._phase = cfg.temp_peak_hour_utc * 3600.0 - DAY_S / 4.0  # the daily sine peaks a quarter day later
        self.ph, self.ec = fresh.at(start)
        self.temp = cfg.temp_mean_c + cfg.temp_swing_c * self._wave(start)
        self.acid_ml = self.nutrient_ml = 0.0
        self.primed = True
        self.recirc_lps = self.drain_lps = self.fill_lps = self.loss_lps = 0.0
        self.drained = self.filled = self.leaked = self.consumed = self.overflow = self.dosed = 0.0
        self.drain_dry = 0.0  # seconds of the last step the drain pulled on an empty reservoir
        self._use_lps = cfg.water_use_frac_day * capacity / DAY_S
        self._uptake_ps = cfg.nutrient_uptake_frac_day / DAY_S
        self._ph_ps = cfg.ph_drift_day / DAY_S
        self._intake = cfg.recirc_intake_pct * capacity / 100.0
        self._reprime = cfg.recirc_reprime_pct * capacity / 100.0
        self._dt = -1.0

    def _wave(self, t: float) -> float:
        """The daily cycle, -1..1, peaking at temp_peak_hour_utc."""
        return math.sin(TWO_PI * ((t - self._phase) % DAY_S) / DAY_S)

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
        elif role == "nutrient":
            self.nutrient_ml += ml

    def step(self, t: float, dt: float) -> None:
        """Move the state from t to t + dt."""
        if dt != self._dt:
            cfg = self.cfg
            self._dt = dt
            self._f_loop = 1.0 - math.exp(-dt / cfg.loop_tau_s)
            self._f_mix = 1.0 - math.exp(-dt / cfg.mix_tau_s)
            self._f_still = 1.0 - math.exp(-dt / cfg.mix_tau_still_s)
            self._f_temp = 1.0 - math.exp(-dt / cfg.temp_tau_s)
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

        if self.fill_lps > 0.0:
            add = self.fill_lps * dt
            ph_in, ec_in = self.fresh.at(t)
            total = v + add
            self.ph = (self.ph * v + ph_in * add) / total
            self.ec = (self.ec * v + ec_in * add) / total
            self.temp = (self.temp * v + self.cfg.fill_temp_c * add) / total
            self.filled += add
            v = total
            if v > self.capacity:
                self.overflow += v - self.capacity
                v = self.capacity
        if self.drain_lps > 0.0 or self.loss_lps > 0.0:
            v = self._outflow(v, dt)

        wave = math.sin(TWO_PI * ((t - self._phase) % DAY_S) / DAY_S)  # inlined _wave
        if v > 0.0:
            use = self._use_lps * (1.0 + self.cfg.water_use_swing * wave) * dt
            if use > v:
                use = v
            left = v - use
            if left >= 1.0:  # below a litre the salts crystallise on the walls rather than concentrate
                self.ec *= v * (1.0 - self._uptake_ps * dt) / left
            self.consumed += use
            v = left
            self.ph += self._ph_ps * dt
        if (self.acid_ml > 0.0 or self.nutrient_ml > 0.0) and v >= 1.0:
            f = self._f_mix if flowing else self._f_still
            cfg = self.cfg
            if self.acid_ml > 0.0:
                moved = self.acid_ml * f
                self.acid_ml -= moved
                self.ph -= cfg.acid_ph_per_ml_l * moved / v
            if self.nutrient_ml > 0.0:
                moved = self.nutrient_ml * f
                self.nutrient_ml -= moved
                self.ec += cfg.nutrient_ec_per_ml_l * moved / v
        cfg = self.cfg
        self.temp += (cfg.temp_mean_c + cfg.temp_swing_c * wave - self.temp) * self._f_temp
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
            self.nutrient_ml *= keep
        return v
