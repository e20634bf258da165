"""`--twin KEY=VALUE`: TwinConfig fields from the command line (a fast pump, a slow leak...)."""

from __future__ import annotations

import dataclasses

from ..twin import TwinConfig

_SKIP = frozenset({"roles", "noise", "ambient", "firmware"})  # tables, and what --firmware says


def settable() -> dict[str, type]:
    """TwinConfig fields a KEY=VALUE can set, with the type of their value."""
    out = {}
    for f in dataclasses.fields(TwinConfig):
        if f.name in _SKIP:
            continue
        default = f.default
        out[f.name] = str if isinstance(default, str) else int if isinstance(default, int) else float
    return out


def twin_config(pairs: list[str], base: TwinConfig | None = None) -> TwinConfig:
    """`base` (default TwinConfig()) with each `KEY=VALUE` applied; ValueError naming what is wrong."""
    fields = settable()
    values: dict = {}
    for pair in pairs:
        key, eq, raw = pair.partition("=")
        key, raw = key.strip(), raw.strip()
        if not eq or not key:
            raise ValueError(f"--twin {pair!r}: expected KEY=VALUE, e.g. fill_flow_l_min=60")
        if key not in fields:
            raise ValueError(f"--twin {key!r}: not a twin setting; settable: {', '.join(sorted(fields))}")
        kind = fields[key]
        if raw.lower() in ("none", "off") and key in ("max_clock_skew_s", "initial_level_pct"):
            values[key] = None
            continue
        try:
            values[key] = kind(raw) if kind is not int else int(float(raw))
        except ValueError:
            raise ValueError(f"--twin {key}={raw!r}: expected a {kind.__name__}") from None
    cfg = dataclasses.replace(base or TwinConfig(), **values)
    cfg.check()
    return cfg
