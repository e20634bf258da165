"""What a twin promises about its readings from now on: how fast they can move, and until when.

`forecast(twin)` gives (bounds, next_change). bounds: metric -> (noise_amp, rate, swing):
until next_change, two readings of the metric at t0 <= t differ by at most
2 * noise_amp + swing + rate * (t - t0). noise_amp is the largest |noise| a reading can
carry (sigma times the largest |entry| of the Gaussian table), rate an upper bound of
the true value's steady drift (per second), swing a bounded excursion on top: the loop
filling or draining back (litres of the level), a dose still mixing in, fill water
pulling the solution toward its own pH, EC and temperature. next_change is the earliest
instant at which something the bounds do not cover can happen: a queued command, timer
or fault, a new recipe day, the level reaching a threshold of the twin (empty, brim,
recirculation intake or reprime, EC probe, level switch), or the reservoir halving
while its rates divide by its volume (a dose mixing in). Crossing instants come from
the flows and the loop's exponential, using the crop's largest (smallest) water use:
they are never late and, under a pump, early by a fraction of a second. Metrics the
twin switches (current, flow, flow flag, level switch, constants) have rate 0: their
switching instants are in next_change.
"""

from __future__ import annotations

import heapq
import math

from .nodes import EV_TIMER
from .publish import S_AIR, S_EC, S_LEVEL, S_PH, S_SWITCH, S_TEMP
from .sensors import noise_max
from .water import EMPTY, FULL, OMEGA

_INF = float("inf")
#: the rates of a still solution use half its water as their floor when losing that takes at least this long
HALVING_S = 3600.0


def earliest(gap: float, a: float, beta: float, tau: float) -> float:
    """The first s >= 0 at which a * min(1, s / tau) + beta * s reaches `gap` (inf if never): how soon a
    level `gap` away can be reached moving by the loop's exchange (at most a, at most a / tau per s)
    and at most beta per second besides."""
    if gap <= 0.0:
        return 0.0
    if a + beta * tau >= gap:
        return gap / (a / tau + beta)
    return tau + (gap - a - beta * tau) / beta if beta > 0.0 else _INF


def _next_event(twin) -> float:
    events = twin._events
    while events:
        t, _, kind, a, b, _c = events[0]
        if kind == EV_TIMER and b != a.gen:  # a cancelled timer: it would do nothing
            heapq.heappop(events)
            continue
        return t
    return _INF


def forecast(twin) -> tuple[dict[str, tuple[float, float]], float]:
    w, o, p, cfg = twin._water, twin._obs, twin._plant, twin._cfg
    now = twin._t
    tau = cfg.loop_tau_s
    cap = w.capacity
    v = o.volume
    A = (w._holdup if w.flowing else 0.0) - o.loop
    if w.regime == EMPTY:
        A = min(A, 0.0)
    f, d, lk = w.fill_lps, w.drain_lps, w.loss_lps
    c = f - d - lk
    # the solution's temperature stays within a hull: the air's range, where a heater or chiller can take it,
    # the fill water's temperature
    air_lo, air_hi = p.air_mean - abs(p.air_swing), p.air_mean + abs(p.air_swing)
    ttau = p.temp_tau_s
    heat = p.heater_cps if (w.heater_stuck or (p.heater and not w.heater_failed)) else 0.0
    cool = p.chiller_cps if (w.chiller_stuck or (p.chiller and not w.chiller_failed)) else 0.0
    t_lo = min(o.temp, air_lo - cool * ttau)
    t_hi = max(o.temp, air_hi + heat * ttau)
    if f > 0.0:
        t_lo, t_hi = min(t_lo, p.source_temp), max(t_hi, p.source_temp)
    evs = (p.evap_lps * (1.0 + p.evap_k * (t_lo - 20.0)), p.evap_lps * (1.0 + p.evap_k * (t_hi - 20.0)))
    u_lo = w.up_lo + max(0.0, min(evs))
    u_hi = w.up_hi + max(0.0, max(evs))

    until = min(_next_event(twin), p.next_t)
    level_rate = level_swing = 0.0
    if w.regime == EMPTY:
        low = 0.0
    elif w.regime == FULL:
        low = cap
        back = max(-A, 0.0) / tau
        short = d + lk + u_hi - f
        if short > 0.0:  # the loop's return no longer covers the outflows
            until = min(until, now + (tau * math.log(back / short) if back > short else 0.0))
    else:
        level_rate, level_swing = abs(c) + u_hi, abs(A)  # the loop's exchange: |A| litres at most
        down_a, down_b = max(A, 0.0), max(0.0, u_hi - c)
        up_a, up_b = max(-A, 0.0), max(0.0, c - u_lo)
        levels = [(0.0, True), (cap, False)]
        if w.primed and w.recirc_lps > 0.0:
            levels.append((w._intake, True))
        elif not w.primed:
            levels.append((w._reprime, False))
        sources = {pub.source for pub in twin._pubs}
        if S_EC in sources:
            x = twin._probe_pct / twin._pct
            levels.append((x, v >= x))
        if S_SWITCH in sources:
            x = twin._switch_pct / twin._pct
            levels.append((x, v >= x))
        # the solution's rates divide by the volume: the least it can hold until next_change. A threshold below
        # it is in next_change already; half the water is the better floor while a fill or dose mixes in, or when
        # halving takes long (no pump drains): the rates then hold until half the water could be gone
        low = max((x for x, down in levels if down and x < v), default=0.0)
        if 0.5 * v > low and (
            o.acid_ml > 0.0
            or o.base_ml > 0.0
            or o.nutrient_ml > 0.0
            or low <= 0.0
            or earliest(0.5 * v, down_a, down_b, tau) >= HALVING_S
        ):
            low = 0.5 * v
            levels.append((low, True))
        low = max(low, 1e-3)
        for x, down in levels:
            s = earliest(v - x, down_a, down_b, tau) if down else earliest(x - v, up_a, up_b, tau)
            until = min(until, now + s)
    # the solution: mixing of fill water and doses (bounded excursions: a fill moves it toward the fill water,
    # a dose by what is left of it), concentration by the crop and the air and the roots' drift (rates)
    pct = twin._pct
    rates = {S_LEVEL: (level_rate * pct, level_swing * pct), S_AIR: (abs(p.air_swing) * OMEGA, 0.0)}
    t_span = max(abs(air_hi - t_lo), abs(t_hi - air_lo))
    rates[S_TEMP] = (t_span / ttau + heat + cool, t_hi - t_lo if f > 0.0 else 0.0)
    if w.regime == EMPTY:
        rates[S_PH] = rates[S_EC] = (0.0, 0.0)  # nothing to mix into; the EC probe is out of the water
    else:
        ph_in, ec_in = w._fill_in
        dose_ph = 2.0 * (p.acid_ph_per_ml_l * w.acid_ml + p.base_ph_per_ml_l * w.base_ml) / low
        dose_ec = 2.0 * p.nutrient_ec_per_ml_l * w.nutrient_ml / low
        drift = abs(p.ph_ps)
        ec_hi = 2.0 * (o.ec + abs(ec_in)) + dose_ec
        ec_rate = ec_hi * u_hi / low
        fill_ph = fill_ec = 0.0
        if f > 0.0:  # fill water pulls the solution toward itself, and pulls back what drift and doses moved
            fill_ph = max(abs(ph_in - o.ph), abs(ph_in - w.ph)) + dose_ph
            fill_ec = max(abs(ec_in - o.ec), abs(ec_in - w.ec)) + dose_ec
            drift, ec_rate = 2.0 * drift, 2.0 * ec_rate
        rates[S_PH] = (drift, dose_ph + fill_ph)
        rates[S_EC] = (ec_rate, dose_ec + fill_ec)
    top = noise_max()
    # an EC probe out of the water reads exactly 0 (no noise) until the level reaches it: a crossing that
    # next_change() counts (or an inflow, an event); a frozen sensor repeats one value
    dry = o.volume * pct < twin._probe_pct
    bounds: dict[str, tuple[float, float, float]] = {}
    for pub in twin._pubs:
        amp = 0.0 if pub.frozen or (dry and pub.source == S_EC) else pub.sigma * top
        rate, swing = (0.0, 0.0) if pub.frozen else rates.get(pub.source, (0.0, 0.0))
        old = bounds.get(pub.metric)
        if old is not None:
            amp, rate, swing = max(old[0], amp), max(old[1], rate), max(old[2], swing)
        bounds[pub.metric] = (amp, rate, swing)
    return bounds, max(until, now)
