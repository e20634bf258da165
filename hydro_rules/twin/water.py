"""Reservoir, loop and solution of one zone: volumes, concentration, pH and temperature.

The state moves in segments: between two of the twin's own instants (its grid, its
events, a level crossing) the flows are constant and `at(s, out)` gives the state
`s` seconds after the segment start in closed form: volumes linear, the loop's
hold-up and an unmixed dose exponential, the crop's uptake the exact integral of
its daily wave, the solution's temperature the exact solution of its relaxation
toward the sinusoidal air (a heater or chiller clamped at its setpoint). `plan(t)`
sets a segment up and `crossing(limit)` finds, by solving the volume equation, the
first instant the reservoir empties, brims, or its level crosses the recirculation
intake (the pump loses its prime) or the reprime level. The equations are in
docs/twin.md; the zone's constants come from its plant.* settings (`plant`).

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
OMEGA = TWO_PI / DAY_S  # rad/s of the daily wave
NORMAL, EMPTY, FULL = 0, 1, 2  # regimes of a segment: the level moves, stays at 0, stays at the brim
#: what ends a segment early: the reservoir empties or brims, the recirculation pump loses or regains its
#: prime, the inflow no longer keeps a brimming tank full
C_NONE, C_EMPTY, C_FULL, C_INTAKE, C_REPRIME, C_UNFULL = range(6)

OBS = (
    "volume", "loop", "ph", "ec", "temp", "air", "acid_ml", "base_ml", "nutrient_ml", "heating", "cooling",
    "drained", "filled", "leaked", "consumed", "overflow", "evaporated", "taken_up", "dosed", "drain_dry",
)  # fmt: skip


class Obs:
    """The solution and the water counters at one instant."""

    __slots__ = OBS

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

    def copy_to(self, out: Obs) -> None:
        out.volume, out.loop, out.ph, out.ec, out.temp, out.air = (
            self.volume, self.loop, self.ph, self.ec, self.temp, self.air,
        )  # fmt: skip
        out.acid_ml, out.base_ml, out.nutrient_ml = self.acid_ml, self.base_ml, self.nutrient_ml
        out.heating, out.cooling, out.drain_dry = self.heating, self.cooling, self.drain_dry
        out.drained, out.filled, out.leaked, out.consumed = self.drained, self.filled, self.leaked, self.consumed
        out.overflow, out.evaporated, out.taken_up = self.overflow, self.evaporated, self.taken_up
        out.dosed = self.dosed


class Water(Obs):
    """The canonical state at `t0` (a segment start) and the segment's constants."""

    __slots__ = (
        "cfg", "capacity", "plant", "heater_stuck", "heater_failed", "chiller_stuck", "chiller_failed", "primed",
        "recirc_lps", "drain_lps", "fill_lps", "loss_lps", "_holdup", "_intake", "_reprime",
        # the segment
        "t0", "regime", "flowing", "A", "net", "ev_rate", "up_now", "up_lo", "up_hi", "_th0", "_s0", "_s20",
        "_B", "_C1", "_C2", "_clamp", "_P0", "_fill_in", "_day", "_wt", "_wt1",
    )  # fmt: skip

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
        self.heating = self.cooling = False  # does the heater (chiller) work in the segment
        self.primed = True
        self.recirc_lps = self.drain_lps = self.fill_lps = self.loss_lps = 0.0
        self.drained = self.filled = self.leaked = self.consumed = self.overflow = self.dosed = 0.0
        self.evaporated = self.taken_up = 0.0  # the two parts of `consumed`
        self.drain_dry = 0.0  # seconds of the segment so far the drain pulled on an empty reservoir
        self._intake = cfg.recirc_intake_pct * capacity / 100.0
        self._reprime = cfg.recirc_reprime_pct * capacity / 100.0
        self.t0 = start
        self._day = None

    def phase(self, t: float) -> float:
        """The angle of the daily wave at `t`: 0 at plant.air_temp_peak local time."""
        p = self.plant
        return TWO_PI * ((t + p.offset_s - p.air_peak_s) % DAY_S) / DAY_S

    def air_at(self, t: float) -> float:
        p = self.plant
        return p.air_mean + p.air_swing * math.cos(self.phase(t))

    def fill_loop(self) -> None:
        """Start in steady state with the recirculation running: the loop is full, the reservoir at its level."""
        self.loop = self._holdup

    def dose(self, role: str, ml: float) -> None:
        self.dosed += ml / 1000.0
        self.volume += ml / 1000.0
        if role == "acid":
            self.acid_ml += ml
        elif role == "base":
            self.base_ml += ml
        elif role == "nutrient":
            self.nutrient_ml += ml

    # ---- a segment ----------------------------------------------------------------------------------------
    def plan(self, t: float, unfull: bool = False) -> None:
        """Start a segment at `t`: settle the level's flags (prime, brim, empty) and fix the segment's constants.
        `unfull`: the inflow has just stopped keeping the brimming tank full (a C_UNFULL crossing)."""
        p, cfg, cap = self.plant, self.cfg, self.capacity
        self.t0 = t
        self.drain_dry = 0.0
        v = self.volume
        if v > cap:
            self.overflow += v - cap
            v = self.volume = cap
        elif v < 0.0:
            v = self.volume = 0.0
        if self.primed:
            if v < self._intake and self.recirc_lps > 0.0:
                self.primed = False
        elif v >= self._reprime:
            self.primed = True
        self.flowing = flowing = self.recirc_lps > 0.0 and self.primed
        A = (self._holdup if flowing else 0.0) - self.loop  # what the loop will take (>0) or give back (<0)
        if self._day is not p.settings:  # a new recipe day: the plant's values may have changed
            self._coefficients()
        B, C1, C2 = self._B, self._C1, self._C2
        th = TWO_PI * ((t + p.offset_s - p.air_peak_s) % DAY_S) / DAY_S
        s0 = math.sin(th)
        self._th0, self._s0, self._s20 = th, s0, math.sin(2.0 * th)
        w = math.cos(th)
        self.up_now = max(0.0, p.uptake_lps * (B + C1 * w + C2 * w * w))
        self.ev_rate = max(0.0, p.evap_lps * (1.0 + p.evap_k * (self.temp - REFERENCE_C)))
        # the air's particular solution of dT/dt = (air - T) / tau at t
        self._P0 = p.air_mean + p.air_swing * (w + self._wt * s0) * self._wt1
        self._fill_in = p.fill_water(t) if p.premixed else self._fill_in
        f, d, lk = self.fill_lps, self.drain_lps, self.loss_lps
        self.net = f - d - lk  # the linear part of the level's rate
        demand = d + lk + self.up_now + self.ev_rate
        back = max(-A, 0.0) / cfg.loop_tau_s  # the loop's return now
        if v <= 0.0 and f + back <= demand:
            self.regime = EMPTY
            A = min(A, 0.0)  # an empty reservoir cannot fill the loop
        elif v >= cap and not unfull and f + back - max(A, 0.0) / cfg.loop_tau_s >= demand:
            self.regime = FULL
        else:
            self.regime = NORMAL
        self.A = A

    def _coefficients(self) -> None:
        """What stays the same for a recipe day: the crop's uptake rate is up_lps * (B + C1 w + C2 w^2), w the
        day's wave (cos of its phase), through the day's cycle and the air's temperature."""
        p = self.plant
        self._day = p.settings
        a, k, sw = self.cfg.water_use_swing, p.uptake_k, p.air_swing
        B = 1.0 + k * (p.air_mean - REFERENCE_C)
        C1, C2 = a * B + k * sw, a * k * sw
        qs = [B - C1 + C2, B + C1 + C2]
        if C2 != 0.0 and abs(C1 / (2.0 * C2)) < 1.0:
            qs.append(B - C1 * C1 / (4.0 * C2))
        lo, hi = min(qs), max(qs)
        self._B, self._C1, self._C2, self._clamp = B, C1, C2, lo < 0.0
        ul = p.uptake_lps
        self.up_lo, self.up_hi = (max(0.0, ul * lo), max(0.0, ul * hi)) if ul > 0.0 else (0.0, 0.0)
        self._wt = OMEGA * p.temp_tau_s
        self._wt1 = 1.0 / (1.0 + self._wt * self._wt)
        self._fill_in = p.fill_water(self.t0)

    def uptake(self, s: float) -> float:
        """Litres the crop takes up in the first `s` seconds of the segment (the exact integral of its wave)."""
        ul = self.plant.uptake_lps
        if ul <= 0.0:
            return 0.0
        th = self._th0
        if self._clamp:  # the rate would go below 0 somewhere: the midpoint, clamped
            w = math.cos(th + OMEGA * s / 2.0)
            return max(0.0, ul * (self._B + self._C1 * w + self._C2 * w * w)) * s
        i1 = (math.sin(th + OMEGA * s) - self._s0) / OMEGA
        out = self._B * s + self._C1 * i1
        if self._C2 != 0.0:
            out += self._C2 * (s / 2.0 + (math.sin(2.0 * th + 2.0 * OMEGA * s) - self._s20) / (4.0 * OMEGA))
        return ul * out

    def vol(self, s: float) -> float:
        """The reservoir's volume `s` seconds into a NORMAL segment."""
        move = self.A * (1.0 - math.exp(-s / self.cfg.loop_tau_s))
        return self.volume + self.net * s - move - self.uptake(s) - self.ev_rate * s

    def crossing(self, limit: float) -> tuple[float, int]:
        """(s, kind) of the first level event within (0, limit] of the segment; (limit, C_NONE) if none."""
        cap, v0, A = self.capacity, self.volume, self.A
        regime = self.regime
        if regime == EMPTY:
            return limit, C_NONE
        if regime == FULL:
            # the loop's return decays: the tank stays brim-full while inflow covers the outflows
            back = max(-A, 0.0) / self.cfg.loop_tau_s
            short = self.drain_lps + self.loss_lps + self.up_now + self.ev_rate - self.fill_lps
            if short > 0.0 and back > short:
                s = self.cfg.loop_tau_s * math.log(back / short)
                if s <= limit:
                    return max(s, 1e-6), C_UNFULL
            return limit, C_NONE
        # how far the level can move in the segment at most: skip thresholds out of reach
        slope_lo = self.net - self.ev_rate - self.up_hi
        slope_hi = self.net - self.ev_rate - self.up_lo
        reach_lo = v0 - max(A, 0.0) + min(slope_lo, 0.0) * limit
        reach_hi = v0 - min(A, 0.0) + max(slope_hi, 0.0) * limit
        best, kind = limit, C_NONE
        tests = [(0.0, True, C_EMPTY), (cap, False, C_FULL)]
        if self.primed and self.recirc_lps > 0.0:
            tests.append((self._intake, True, C_INTAKE))
        elif not self.primed:
            tests.append((self._reprime, False, C_REPRIME))
        pieces = None
        for level, down, what in tests:
            if (down and reach_lo > level) or (not down and reach_hi < level):
                continue
            if pieces is None:
                pieces = self._pieces(limit)
            s = self._first(pieces, level, down, what == C_EMPTY)
            if s is not None and s < best:
                best, kind = s, what
        return best, kind

    def reached(self, s: float, kind: int) -> bool:
        """Is the level past the crossing `kind` at `s` (so that the next plan() sees it)?"""
        if kind == C_EMPTY:
            return self.vol(s) <= 0.0
        if kind == C_FULL:
            return self.vol(s) >= self.capacity
        if kind == C_INTAKE:
            return self.vol(s) < self._intake
        if kind == C_REPRIME:
            return self.vol(s) >= self._reprime
        return True

    def _pieces(self, limit: float) -> list[tuple[float, float]]:
        """[(s, volume)] at the segment start, the volume's extremum (if inside) and `limit`."""
        tau, A = self.cfg.loop_tau_s, self.A
        k = self.net - self.ev_rate - self.up_now
        pts = [(0.0, self.volume)]
        if A != 0.0:
            r = k * tau / A
            if 0.0 < r < 1.0:
                se = -tau * math.log(r)
                if 0.0 < se < limit:
                    pts.append((se, self.vol(se)))
        pts.append((limit, self.vol(limit)))
        return pts

    def _first(self, pieces, level: float, down: bool, inclusive: bool) -> float | None:
        """The first s at which the volume is past `level` (below it, or at/above it going up)."""

        def past(v: float) -> bool:
            if down:
                return v <= level if inclusive else v < level
            return v >= level

        for (a, va), (b, vb) in zip(pieces, pieces[1:], strict=False):
            if past(va) or not past(vb):
                continue
            lo, hi = a, b
            for _ in range(64):
                mid = (lo + hi) / 2.0
                if mid <= lo or mid >= hi:
                    break
                if past(self.vol(mid)):
                    hi = mid
                else:
                    lo = mid
            return max(hi, 1e-9)
        return None

    def at(self, s: float, out: Obs) -> None:
        """The state `s` seconds into the segment, written to `out` (which may be this Water itself)."""
        p, cfg = self.plant, self.cfg
        regime = self.regime
        v0, L0, A = self.volume, self.loop, self.A
        ph, ec, temp = self.ph, self.ec, self.temp
        acid, base, nutrient = self.acid_ml, self.base_ml, self.nutrient_ml
        f, d, lk = self.fill_lps, self.drain_lps, self.loss_lps
        flowing = self.flowing
        move = A * (1.0 - math.exp(-s / cfg.loop_tau_s)) if A != 0.0 else 0.0
        F, D, Lk = f * s, d * s, lk * s
        up = self.uptake(s)
        ev = self.ev_rate * s
        over = dry = 0.0
        if regime == NORMAL:
            base_v = v0 - move
            if base_v < 0.0:
                base_v = 0.0
            total = base_v + F
            if F > 0.0 and total > 0.0:
                ph_in, ec_in = self._fill_in
                ph = (ph * base_v + ph_in * F) / total
                ec = (ec * base_v + ec_in * F) / total
                temp = (temp * base_v + p.source_temp * F) / total
            kept = total - D - Lk
            if D + Lk > 0.0 and total > 0.0:  # an unmixed dose leaves with the water around it
                keep = max(kept, 0.0) / total
                acid, base, nutrient = acid * keep, base * keep, nutrient * keep
            use = up + ev
            left = v0 - move + F - D - Lk - use
            if left < 0.0:  # a rounding past empty: the outflows took what was there, no more
                short = -left
                if short <= D:
                    D -= short
                elif short <= Lk:
                    Lk -= short
                elif short <= up:
                    up -= short
                left = 0.0
            if left >= 1.0:  # below a litre the salts crystallise on the walls rather than concentrate
                salts = ec * (kept - p.uptake_ratio * up)
                ec = salts / left if salts > 0.0 else 0.0
            if left > 0.0:
                ph += p.ph_ps * s
            v = left
        elif regime == FULL:
            cap = self.capacity
            use = up + ev
            over = F - move - D - Lk - use
            v = cap
            if over < 0.0:
                v, over = cap + over, 0.0
            if F > 0.0:
                ph_in, ec_in = self._fill_in
                x = math.exp(-F / cap)  # the brimming tank's solution is washed out toward the fill water
                ph = ph_in + (ph - ph_in) * x
                ec = ec_in + (ec - ec_in) * x
                temp = p.source_temp + (temp - p.source_temp) * x
            keep = math.exp(-(D + Lk + over) / cap)
            acid, base, nutrient = acid * keep, base * keep, nutrient * keep
            ec *= (cap + ev + (1.0 - p.uptake_ratio) * up) / cap
            ph += p.ph_ps * s
        else:  # EMPTY: what comes in (fill, the loop's return) leaves at once by the drain, a leak, the crop
            inflow = F - move
            took = min(D, inflow)
            rest = inflow - took
            lost = min(Lk, rest)
            rest -= lost
            use = up + ev
            if use > rest:
                if use > 0.0:
                    up, ev = up * rest / use, ev * rest / use
                use = rest
            v = rest - use
            if d > 0.0:
                dry = s - took / d
            D, Lk = took, lost
            if F > 0.0:
                ph, ec = self._fill_in
                temp = p.source_temp
            acid = base = nutrient = 0.0
        mixed = (acid > 0.0 or base > 0.0 or nutrient > 0.0) and v >= 1.0
        if mixed:
            x = 1.0 - math.exp(-s / (cfg.mix_tau_s if flowing else cfg.mix_tau_still_s))
            if acid > 0.0:
                moved = acid * x
                acid -= moved
                ph -= p.acid_ph_per_ml_l * moved / v
            if base > 0.0:
                moved = base * x
                base -= moved
                ph += p.base_ph_per_ml_l * moved / v
            if nutrient > 0.0:
                moved = nutrient * x
                nutrient -= moved
                ec += p.nutrient_ec_per_ml_l * moved / v
        # the solution follows the air (the exact solution for a sinusoidal air); a heater (chiller) adds
        # (removes) heat up to its rate while the solution is below (above) its setpoint
        tau = p.temp_tau_s
        wt = OMEGA * tau
        th1 = self._th0 + OMEGA * s
        c1, s1 = math.cos(th1), math.sin(th1)
        air = p.air_mean + p.air_swing * c1
        P1 = p.air_mean + p.air_swing * (c1 + wt * s1) / (1.0 + wt * wt)
        e = math.exp(-s / tau)
        gain = tau * (1.0 - e)  # what a constant heating rate of 1 °C/s adds over s
        temp = P1 + (temp - self._P0) * e
        heating = cooling = False
        if self.heater_stuck:
            temp += p.heater_cps * gain
            heating = True
        if self.chiller_stuck:
            temp -= p.chiller_cps * gain
            cooling = True
        if p.heater and not self.heater_failed and not self.heater_stuck and temp < p.heater_sp:
            temp = min(p.heater_sp, temp + p.heater_cps * gain)
            heating = True
        if p.chiller and not self.chiller_failed and not self.chiller_stuck and temp > p.chiller_sp:
            temp = max(p.chiller_sp, temp - p.chiller_cps * gain)
            cooling = True
        out.volume, out.loop, out.ph, out.ec, out.temp, out.air = v, L0 + move, ph, ec, temp, air
        out.acid_ml, out.base_ml, out.nutrient_ml = acid, base, nutrient
        out.heating, out.cooling = heating, cooling
        out.drained = self.drained + D
        out.leaked = self.leaked + Lk
        out.filled = self.filled + F
        out.consumed = self.consumed + up + ev
        out.taken_up = self.taken_up + up
        out.evaporated = self.evaporated + ev
        out.overflow = self.overflow + over
        out.dosed = self.dosed
        out.drain_dry = dry
