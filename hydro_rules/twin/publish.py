"""Compile the readings a zone's nodes publish each tick into one straight-line Python function.

The set of publishers changes only when a fault starts or ends, so the function is
regenerated then; per tick it costs one splitmix64 hash of the instant and, per
(node, metric), one multiply-shift of it by the publisher's key (sensors.noise_index)
indexing the Gaussian table, and one Reading.
"""

from __future__ import annotations

from ..messages import Reading
from .sensors import MASK64

# what a reading shows: the solution, a constant, or a sum over loads
S_PH, S_EC, S_TEMP, S_LEVEL, S_SWITCH, S_CONST, S_CURRENT, S_FLOW, S_FLAG, S_AIR = range(10)
EXACT_ZERO = frozenset({S_EC, S_FLOW})  # no flow, or an EC probe in air, reads exactly 0
SOURCE = {"ph": S_PH, "ec": S_EC, "temp_water": S_TEMP, "water_level": S_LEVEL, "water_level_switch": S_SWITCH,
          "temp_air": S_AIR}  # fmt: skip

# Reading is a frozen slotted dataclass; filling its slots directly skips the frozen __setattr__ detour.
try:
    _SETTERS = tuple(Reading.__dict__[f].__set__ for f in ("node_uid", "metric", "value", "ts", "channel"))
except (KeyError, AttributeError):  # pragma: no cover - only if messages.Reading changes shape
    _SETTERS = None


class Pub:
    """One (node, metric) a node reports each tick, on its channel `channel` (None: not known)."""

    __slots__ = (
        "node", "uid", "metric", "source", "loads", "const", "sigma", "lo", "hi", "dead", "frozen", "value", "channel",
        "noise",
    )  # fmt: skip

    def __init__(
        self, node, metric: str, source: int, loads: tuple, const: float, sigma: float, lo, hi, channel=None
    ) -> None:
        self.node, self.uid, self.metric, self.source, self.channel = node, node.uid, metric, source, channel
        self.loads, self.const, self.sigma, self.lo, self.hi = loads, const, sigma, lo, hi
        self.dead = self.frozen = 0
        self.value = 0.0  # the frozen reading
        self.noise = 1  # its key in sensors.noise_index


def _true_expr(p, loads: dict) -> str:
    src = p.source
    if src == S_PH:
        return "w.ph"
    if src == S_EC:
        return "(w.ec if level >= PROBE else 0.0)"
    if src == S_TEMP:
        return "w.temp"
    if src == S_AIR:
        return "w.air"
    if src == S_LEVEL:
        return "level"
    if src == S_SWITCH:
        return "(1.0 if level >= SWITCH else 0.0)"
    if src == S_CONST:
        return repr(float(p.const))
    attr = "cur" if src == S_CURRENT else "flow"
    total = " + ".join(f"{loads[id(ld)]}.{attr}" for ld in p.loads) or "0.0"
    return f"(1.0 if {total} > 0.0 else 0.0)" if src == S_FLAG else total


def compile_publisher(pubs, obs, salt: int, table, pct: float, probe: float, switch: float, measure, snapshot=False):
    """A function publish(now, out) appending one Reading per publisher to the list `out`; `obs` holds the
    state at now, `salt` is the run's time salt (sensors.time_salt). With `snapshot`, publish(now, snap) sets
    snap[(node, metric)] = (value, now) instead (no Reading objects: what a dry run keeps of them)."""
    ns = {"w": obs, "T": table, "measure": measure, "R": Reading, "new": object.__new__}
    ns.update(PCT=pct, PROBE=probe, SWITCH=switch, inf=float("inf"), SALT=salt, M=MASK64)
    if _SETTERS is not None:
        ns.update(zip(("sn", "sm", "sv", "st", "sc"), _SETTERS, strict=True))
    loads: dict[int, str] = {}
    for p in pubs:
        for ld in p.loads:
            if id(ld) not in loads:
                loads[id(ld)] = f"L{len(loads)}"
                ns[loads[id(ld)]] = ld
    lines = ["def publish(now, out):", "    level = w.volume * PCT"]
    if not snapshot:
        lines.append("    add = out.append")
    if loads:
        lines.append("    measure()")
    if any(p.sigma and not p.frozen for p in pubs):  # sensors.instant_hash, inlined
        lines += [
            "    z = (int(now * 1000.0) + SALT) & M",
            "    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M",
            "    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M",
            "    h = z ^ (z >> 31)",
        ]
    for i, p in enumerate(pubs):
        ns[f"F{i}"] = p.value
        if p.frozen:
            lines.append(f"    v = F{i}")
        else:
            lines.append(f"    v = {_true_expr(p, loads)}")
            if p.sigma:
                guard = "    if v != 0.0:\n        " if p.source in EXACT_ZERO else "    "
                ind = guard.rsplit("\n", 1)[-1]
                lines.append(f"{guard}v += {p.sigma!r} * T[(h * {p.noise}) >> 48 & 0xFFFF]")
                lo, hi = float(p.lo), float(p.hi)
                lines.append(f"{ind}if v < {lo!r}: v = {lo!r}")
                lines.append(f"{ind}elif v > {hi!r}: v = {hi!r}")
        if snapshot:
            ns[f"K{i}"] = (p.uid, p.metric)
            lines.append(f"    out[K{i}] = (v, now)")
        elif _SETTERS is None:  # pragma: no cover
            lines.append(f"    add(R({p.uid!r}, {p.metric!r}, v, now, {p.channel!r}))")
        else:
            lines.append(
                f"    r = new(R); sn(r, {p.uid!r}); sm(r, {p.metric!r}); sv(r, v); st(r, now); "
                f"sc(r, {p.channel!r}); add(r)"
            )
    exec(compile("\n".join(lines), "<twin publish>", "exec"), ns)  # noqa: S102 - our own generated source
    return ns["publish"]
