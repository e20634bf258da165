"""Physical dimensions and units of the language.

Every quantity is converted to its dimension's base unit when a file is read,
so the engine compares plain floats: pH, mS/cm, °C, %, ppm, lx, L/min, mA, m/s,
L and seconds.
"""

from __future__ import annotations

import re

# Dimensions. NUMBER is a bare number: it takes the dimension of what it is
# compared with, except durations, times of day and yes/no, which need their
# own literals.
NUMBER = "number"
PH = "pH"
CONDUCTIVITY = "conductivity"
TEMPERATURE = "temperature"
PERCENT = "percentage"
CONCENTRATION = "concentration"
ILLUMINANCE = "illuminance"
FLOW = "flow"
CURRENT = "current"
SPEED = "speed"
VOLUME = "volume"
DURATION = "duration"
TIME_OF_DAY = "time of day"
BOOL = "yes/no"
TEXT = "text"

#: unit spelling -> (dimension, factor to the base unit)
UNITS: dict[str, tuple[str, float]] = {
    "pH": (PH, 1.0),
    "mS/cm": (CONDUCTIVITY, 1.0),
    "uS/cm": (CONDUCTIVITY, 0.001),
    "µS/cm": (CONDUCTIVITY, 0.001),
    "°C": (TEMPERATURE, 1.0),
    "degC": (TEMPERATURE, 1.0),
    "%": (PERCENT, 1.0),
    "ppm": (CONCENTRATION, 1.0),
    "lx": (ILLUMINANCE, 1.0),
    "L/min": (FLOW, 1.0),
    "mA": (CURRENT, 1.0),
    "m/s": (SPEED, 1.0),
    "L": (VOLUME, 1.0),
    "ml": (VOLUME, 0.001),
    "mL": (VOLUME, 0.001),
}

#: the unit each dimension is shown in
BASE_UNIT = {dim: unit for unit, (dim, f) in reversed(UNITS.items()) if f == 1.0}
BASE_UNIT[NUMBER] = ""

NUMERIC = {NUMBER, PH, CONDUCTIVITY, TEMPERATURE, PERCENT, CONCENTRATION, ILLUMINANCE, FLOW, CURRENT, SPEED, VOLUME}

DURATION_FACTORS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_QUANTITY = re.compile(r"(\d+(?:\.\d+)?)[ \t]*(.+)")


#: other spellings nodes use for a unit, keyed as unit_key writes them
_UNIT_SYNONYMS = {"percent": "%", "pct": "%", "lux": "lx", "c": "c", "celsius": "c", "l/m": "l/min", "lpm": "l/min"}


def unit_key(unit: str) -> str:
    """A unit spelling reduced to compare spellings: `°C`, `degC` and `C` are `c`; `µS/cm` is `us/cm`."""
    key = unit.strip().lower().replace(" ", "").replace("µ", "u").replace("°", "")
    key = key.removeprefix("deg") if key in ("degc", "degf") else key
    return _UNIT_SYNONYMS.get(key, key)


_UNITS_BY_KEY = {unit_key(u): v for u, v in UNITS.items()}


def same_unit(a: str, b: str) -> bool:
    """Are `a` and `b` spellings of one unit?"""
    return unit_key(a) == unit_key(b)


def factor_between(unit: str, to: str) -> float | None:
    """The factor from `unit` to `to` when both are units of the language of one dimension
    (`uS/cm` to `mS/cm` is 0.001), else None."""
    a, b = _UNITS_BY_KEY.get(unit_key(unit)), _UNITS_BY_KEY.get(unit_key(to))
    if a is None or b is None or a[0] != b[0]:
        return None
    return a[1] / b[1]


def parse_duration(text: str) -> float:
    """Seconds in a duration literal such as `90s`, `10m` or `1h30m`."""
    return sum(float(n) * DURATION_FACTORS[u] for n, u in _DURATION_PART.findall(text))


def parse_quantity(text: str) -> tuple[float, str, str]:
    """(value in base unit, dimension, unit as written) of e.g. `1.5 mS/cm`."""
    m = _QUANTITY.fullmatch(text)
    assert m, text
    dim, factor = UNITS[m.group(2)]
    return float(m.group(1)) * factor, dim, m.group(2)


def compatible(a: str, b: str) -> bool:
    """Can values of dimensions `a` and `b` be compared or added?"""
    if a == b:
        return True
    return (a == NUMBER and b in NUMERIC) or (b == NUMBER and a in NUMERIC)


def join(a: str, b: str) -> str:
    """The dimension of a comparison or sum of compatible `a` and `b`."""
    return b if a == NUMBER else a


def format_duration(seconds: float) -> str:
    """The shortest literal for a duration: 600 -> `10m`, 5400 -> `1h30m`."""
    if seconds == 0:
        return "0s"
    out, rest = [], seconds
    for unit in ("d", "h", "m", "s"):
        f = DURATION_FACTORS[unit]
        if rest >= f:
            n = int(rest // f)
            out.append(f"{n}{unit}")
            rest -= n * f
    if rest > 1e-9:
        ms = round(rest * 1000)
        out.append(f"{ms}ms" if ms else f"{rest:g}s")
    return "".join(out)


def describe(value: float, dim: str) -> str:
    """A value in its base unit for messages: `6.2 pH`, `10m`, `50%`."""
    if dim == DURATION:
        return format_duration(value)
    if dim == BOOL:
        return "yes" if value else "no"
    if dim == TIME_OF_DAY:
        return f"{int(value // 3600):02d}:{int(value % 3600 // 60):02d}"
    unit = BASE_UNIT.get(dim, "")
    num = f"{value:.4g}" if abs(value) < 1e5 else f"{value:.0f}"
    if unit == "%":
        return f"{num}%"
    return f"{num} {unit}".strip()
