"""The scenarios a behaviour diff runs both rule-set versions on.

A twin scenario is one zone, one seed of the twin's noise, a length in days and
at most one fault of the safety matrix (`sim.safety.FAULTS`) injected at a fixed
moment. The default matrix is every zone × seeds 0..N-1 × (no fault and every
fault of the matrix) × one length. A recording scenario is a recorded window of
telemetry and commands (a CSV that `hydro-rules export` writes) played through
replay.

A scenarios file (TOML or JSON) names them instead:

    [[scenario]]                # each entry expands over its zones × seeds × faults
    zones = ["zn-1"]            # default: every zone both versions have
    seeds = 3                   # a count (seeds 0..2) or a list [0, 7]; default 1
    days = 10                   # default: --days
    faults = ["none", "leak"]   # fault ids or kinds of the safety matrix, "none" for no fault
    at = "3d"                   # when the fault starts, default: --fault-at
    name = "leaks after three days"

    [[recording]]
    path = "window.csv"         # relative to the scenarios file
    zone = "zn-1"               # default: the recording's zone
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from pathlib import Path

from ..twin import parse_duration
from .safety import SafetyError, select_faults

DEFAULT_SEEDS = 10
DEFAULT_DAYS = 30.0
DEFAULT_FAULT_AT_S = 2 * 86400.0  #: the fixed moment of every fault: 2 days in (half the run when shorter)


class ScenarioError(ValueError):
    """A scenario that cannot be run as asked (an unknown fault, a malformed file): a usage error."""


@dataclass(frozen=True)
class Scenario:
    """One twin run: a zone, a seed, a length and at most one matrix fault at `at_s` into the run."""

    zone: str
    seed: int
    days: float
    fault: str | None = None  # a sim.safety.FAULTS id; None: no fault
    at_s: float = 0.0
    name: str = ""

    @property
    def key(self) -> str:
        at = f"@{_short(self.at_s)}" if self.fault else ""
        return f"{self.zone}/seed {self.seed}/{self.fault or 'none'}{at}/{self.days:g}d"


@dataclass(frozen=True)
class RecordingScenario:
    """A recorded window played through replay (open loop: no twin, no faults)."""

    path: str
    zone: str | None = None
    name: str = ""

    @property
    def key(self) -> str:
        return f"recording {Path(self.path).name}" + (f"/{self.zone}" if self.zone else "")


def fault_moment(at_s: float, days: float) -> float:
    """When a fault starts: `at_s` into the run, or half-way when the run is not twice as long."""
    return float(round(min(at_s, days * 86400.0 / 2.0)))


def fault_ids(names: list[str] | None) -> list[str | None]:
    """None (no fault) first, then the matrix faults named by id or kind; every fault when `names` is None.
    `none` in `names` stands for the run without a fault, which is always included."""
    picked = [n for n in (names or []) if n != "none"]
    try:
        chosen = select_faults(picked) if names is None or picked else []
    except SafetyError as e:
        raise ScenarioError(str(e)) from None
    return [None] + [f.id for f in chosen]


def matrix(
    zones: list[str], *, seeds: int = DEFAULT_SEEDS, days: float = DEFAULT_DAYS, faults: list[str] | None = None,
    fault_at_s: float = DEFAULT_FAULT_AT_S,
) -> list[Scenario]:  # fmt: skip
    """zones × seeds 0..seeds-1 × (no fault + the faults) of `days` each."""
    at = fault_moment(fault_at_s, days)
    ids = fault_ids(faults)
    return [Scenario(z, s, days, f, at if f else 0.0) for z in zones for f in ids for s in range(seeds)]


def load_file(
    path: str | Path, zones: list[str], *, days: float = DEFAULT_DAYS, fault_at_s: float = DEFAULT_FAULT_AT_S
) -> tuple[list[Scenario], list[RecordingScenario]]:
    """The scenarios a TOML or JSON file names (see the module's docstring); `zones` are those both versions
    have, `days` and `fault_at_s` the defaults of an entry that does not say."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise ScenarioError(f"cannot read {path}: {e.strerror}") from None
    try:
        doc = json.loads(text) if p.suffix.lower() == ".json" else tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as e:
        raise ScenarioError(f"{path}: {e}") from None
    if not isinstance(doc, dict) or not (doc.get("scenario") or doc.get("recording")):
        raise ScenarioError(f"{path} names no [[scenario]] and no [[recording]]")
    out: list[Scenario] = []
    for i, entry in enumerate(_entries(doc, "scenario", path), 1):
        where = f"{path}: scenario {i}"
        known = {"zones", "zone", "seeds", "days", "faults", "fault", "at", "name"}
        if extra := set(entry) - known:
            raise ScenarioError(f"{where}: unknown {', '.join(sorted(extra))}; known: {', '.join(sorted(known))}")
        names = _list(entry.get("zones", entry.get("zone")), where, "zones") or list(zones)
        if missing := [z for z in names if z not in zones]:
            raise ScenarioError(f"{where}: no zone {', '.join(missing)} in both versions; zones: {', '.join(zones)}")
        seeds = entry.get("seeds", 1)
        if isinstance(seeds, int) and not isinstance(seeds, bool) and seeds >= 1:
            seed_list = list(range(seeds))
        elif isinstance(seeds, list) and seeds and all(isinstance(s, int) and s >= 0 for s in seeds):
            seed_list = list(seeds)
        else:
            raise ScenarioError(f"{where}: seeds is a count (1 or more) or a list of seeds, not {seeds!r}")
        d = entry.get("days", days)
        if not isinstance(d, int | float) or isinstance(d, bool) or d <= 0:
            raise ScenarioError(f"{where}: days must be a number above 0, not {d!r}")
        fnames = _list(entry.get("faults", entry.get("fault")), where, "faults")
        ids = ([None] if "none" in fnames else []) + fault_ids(fnames)[1:] if fnames else [None]
        at = entry.get("at")
        try:
            at_s = fault_at_s if at is None else (parse_duration(at) if isinstance(at, str) else float(at))
        except (ValueError, TypeError):
            raise ScenarioError(f"{where}: at {at!r} is not a duration like 36h or 3d") from None
        at_s = fault_moment(at_s, float(d))
        name = str(entry.get("name", ""))
        out += [Scenario(z, s, float(d), f, at_s if f else 0.0, name) for z in names for f in ids for s in seed_list]
    recs: list[RecordingScenario] = []
    for i, entry in enumerate(_entries(doc, "recording", path), 1):
        where = f"{path}: recording {i}"
        if not isinstance(entry.get("path"), str):
            raise ScenarioError(f"{where}: path (the CSV file) is missing")
        rp = Path(entry["path"])
        rp = rp if rp.is_absolute() else p.parent / rp
        recs.append(RecordingScenario(str(rp), entry.get("zone"), str(entry.get("name", ""))))
    return _unique(out), recs


def _entries(doc: dict, key: str, path) -> list[dict]:
    items = doc.get(key) or []
    if not isinstance(items, list) or not all(isinstance(e, dict) for e in items):
        raise ScenarioError(f"{path}: {key} must be a list of tables ([[{key}]])")
    return items


def _list(v, where: str, what: str) -> list[str] | None:
    if v is None:
        return None
    if isinstance(v, str):
        return [v]
    if isinstance(v, list) and all(isinstance(x, str) for x in v):
        return v
    raise ScenarioError(f"{where}: {what} must be a name or a list of names")


def _unique(items: list[Scenario]) -> list[Scenario]:
    seen: set = set()
    out = []
    for s in items:
        k = (s.zone, s.seed, s.days, s.fault, s.at_s)
        if k not in seen:
            seen.add(k)
            out.append(s)
    return out


def _short(s: float) -> str:
    d, rest = divmod(int(s), 86400)
    h, rest = divmod(rest, 3600)
    m = rest // 60
    return "".join(f"{v}{u}" for v, u in ((d, "d"), (h, "h"), (m, "m")) if v) or "0m"
