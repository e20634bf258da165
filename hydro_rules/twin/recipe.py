"""The solution the fill line delivers: the recipe phase's target midpoints for the zone's day."""

from __future__ import annotations

from datetime import UTC, datetime, time

DAY_S = 86400.0


def day_zero(zone, start: float) -> float:
    """Epoch seconds of the zone's day 0: midnight UTC of `planted`, else the run start."""
    if zone.planted is None:
        return start
    return datetime.combine(zone.planted, time(), tzinfo=UTC).timestamp()


def midpoints(recipe, day: int, default_ph: float, default_ec: float) -> tuple[float, float]:
    """(pH, EC) midway between the phase's targets; before the first phase the first, after the last the last."""
    phase = recipe.phase_on(day) if recipe is not None else None
    if phase is None and recipe is not None and recipe.phases:
        phase = recipe.phases[0] if day < recipe.phases[0].day_from else recipe.phases[-1]
    targets = phase.targets if phase is not None else {}
    ph = sum(targets["ph"]) / 2 if "ph" in targets else default_ph
    ec = sum(targets["ec"]) / 2 if "ec" in targets else default_ec
    return ph, ec


class FreshSolution:
    """Fresh (pH, EC) at a time, cached per recipe day."""

    __slots__ = ("recipe", "zero", "default_ph", "default_ec", "_day", "_value")

    def __init__(self, recipe, zero: float, default_ph: float, default_ec: float) -> None:
        self.recipe, self.zero, self.default_ph, self.default_ec = recipe, zero, default_ph, default_ec
        self._day: int | None = None
        self._value = (default_ph, default_ec)

    def at(self, t: float) -> tuple[float, float]:
        day = int((t - self.zero) // DAY_S)
        if day != self._day:
            self._day = day
            self._value = midpoints(self.recipe, day, self.default_ph, self.default_ec)
        return self._value
