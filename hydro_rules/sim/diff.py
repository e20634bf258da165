"""Behaviour diff: two versions of a rule set on the same scenarios, compared by what they do.

Each scenario (`sim.scenarios`) runs once per version: a twin scenario as a dry
run watched by the safety matrix's Checker (`sim.safety`), a recorded window
through replay. Every run yields the same figures: water changes (count, start
times, failures), the longest OFF stretches of the recirculation pump,
alerts by code (count, first time), commands and refusals by channel, litres
drained and filled, the states reached, and the safety figures (time from the
fault to its alert, seconds a pump ran dry, the longest OFF no reason excuses,
when the zone was safe again, the locking alerts raised, broken invariants).
Both versions' figures of one scenario are compared; the changes are grouped
over scenarios, and a safety figure that got worse is a finding (see WORSE).

Runs go to a process pool; each depends only on its version and scenario, so
the report is the same whatever the number of processes.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from ..lang import model as M
from ..lang.loader import MANIFEST, Loaded, load
from ..messages import FAILED
from ..twin import DEFAULT_FIRMWARE
from . import dryrun
from .safety import FAULTS_BY_ID, INVARIANTS, Checker, CheckerBug, fault_spec, resolve_target, ruleset_at, runnable
from .scenarios import RecordingScenario, Scenario
from .times import DEFAULT_START, dur, iso, parse_time

# ---- when a safety figure is worse (new beyond old by more than this) -------------------------
OFF_TOLERANCE_S = 1.0  #: a longer OFF stretch of the NC pump (rounding of max_recirc_off, as sim.safety)
DRY_TOLERANCE_S = 1.0  #: more seconds a pump ran dry
ALERT_TOLERANCE_S = 60.0  #: an alert that comes this much sooner or later (within its limit) is reported
SAFE_TOLERANCE_S = 60.0  #: safe again later after a fault (one tick)
#: pH and EC (mS/cm) beyond the old version's extremes: a `bands` break within this of them has moved, not
#: worsened (a solution that came within a hair of its band before and crosses it now is noise, not a change)
BAND_TOLERANCE = {"ph": 0.1, "ec": 0.1}

FAIL_ON = ("safety", "alerts", "water-changes", "any")

#: what a fault does, as the report says it: "a dry reservoir no longer stops pump_recirc"
FAULT_WORDS = {
    "dry_reservoir": "a dry reservoir",
    "leak": "a leaking reservoir",
    "no_flow": "a blocked line",
    "overcurrent": "an overcurrent",
    "stuck_relay": "a stuck relay",
    "sensor_dead": "a dead level sensor",
    "sensor_frozen": "a frozen sensor",
    "node_offline": "an offline node",
    "controller_crash": "a controller crash",
}


class DiffError(ValueError):
    """A diff that cannot run as asked (a side that does not load, no zone in common): a usage error."""


# ---- the two versions ------------------------------------------------------------------------------
@dataclass
class Version:
    """One side of the diff: what the user named it and the directory it loads from."""

    label: str  # as the user wrote it: `examples`, `git:HEAD~1 (examples)`
    path: str
    loaded: Loaded

    @property
    def ruleset(self) -> M.RuleSet:
        return self.loaded.ruleset

    def describe(self) -> dict:
        langs = sorted({f.header.version.text for f in self.loaded.files if f.header is not None})
        return {
            "label": self.label,
            "path": self.path,
            "ruleset_version": self.ruleset.ruleset_version,
            "language": langs,
            "errors": [f"{d.code} {d.message}" for d in self.loaded.diags.errors],
        }


def load_version(label: str, path: str | Path) -> Version:
    """A side that runs: no errors, or only errors about safety (as `hydro-rules safety` runs them)."""
    p = Path(path)
    if not (p / MANIFEST).is_file():
        raise DiffError(f"{label} is not a rule-set directory (no {MANIFEST})")
    loaded = load(p)
    if not runnable(loaded):
        raise DiffError(f"{label} has errors; run `hydro-rules check {path}`")
    if not loaded.ruleset.zones:
        raise DiffError(f"{label} declares no site with zones")
    return Version(label, str(p), loaded)


# ---- one run ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Task:
    side: str  # old | new
    site: str
    scenario: Scenario | RecordingScenario
    tick_s: float = 60.0
    firmware: str = DEFAULT_FIRMWARE
    start: float | None = None


def run_task(task: Task) -> dict:
    """One version on one scenario: its figures (see figures())."""
    wall, cpu = time.perf_counter(), time.process_time()
    rs = ruleset_at(task.site)
    if isinstance(task.scenario, RecordingScenario):
        out = _replay(rs, task.scenario)
    else:
        out = _twin(rs, task)
    out["wall_s"] = round(time.perf_counter() - wall, 2)
    out["cpu_s"] = round(time.process_time() - cpu, 2)
    return out


def _twin(rs: M.RuleSet, task: Task) -> dict:
    sc = task.scenario
    zone = rs.zone(sc.zone)
    t0 = task.start if task.start is not None else parse_time(DEFAULT_START)
    end = t0 + int(round(sc.days * 86400.0 / task.tick_s)) * task.tick_s
    fault = FAULTS_BY_ID[sc.fault] if sc.fault else None
    target = (resolve_target(fault, rs, zone) or "") if fault else ""
    onset = t0 + sc.at_s if fault else t0
    spec = fault_spec(fault, target, sc.at_s) if fault else None
    checker = Checker(rs, zone, t0=t0, end=end, fault=fault, target=target, onset=onset)
    zr, error = None, None
    try:
        result = dryrun.run(
            rs, [zone.uid], days=sc.days, tick_s=task.tick_s, seed=sc.seed, start=t0,
            faults=[spec] if spec else [], before_tick=checker, firmware=task.firmware,
        )  # fmt: skip
        zr = result.zones[0]
    except CheckerBug:
        raise
    except Exception as e:  # the engine or the twin failed: the checker reports it as a broken invariant
        error = f"{type(e).__name__}: {e}"
    found = checker.finish(zr.twin if zr is not None else None, end, error)
    tw = zr.twin if zr is not None else checker.twin
    out = figures(zr, rs, t0) if zr is not None else empty_figures()
    locking = {c for c, a in rs.alerts.items() if a.locks}
    out["spec"] = spec
    out["error"] = error
    out["safety"] = {
        "alert": found["alert"],
        "time_to_alert_s": found["time_to_alert_s"],
        "time_to_safe_s": found["time_to_safe_s"],
        "off_unexcused_s": found["recirc_off_longest_s"],
        "dry_s": {p: round(s, 1) for p, s in sorted(tw.dry_seconds.items()) if s > 0} if tw is not None else {},
        "lost_l": round(found["leaked_l"] + found["overflow_l"], 1),
        "ph": found["ph"],
        "ec": found["ec"],
        "locks": sorted({a["code"] for a in zr.alerts if a["code"] in locking}) if zr is not None else [],
        "broken": [{k: v[k] for k in ("invariant", "offset_s", "reason")} for v in found["broken"]],
    }
    return out


def _replay(rs: M.RuleSet, sc: RecordingScenario) -> dict:
    from .recording import read_csv
    from .replay import replay

    rec = read_csv(sc.path)
    res = replay(rs, rec, sc.zone or rec.zone)
    span = rec.span()
    t0 = rec.start if rec.start is not None else span[0] if span else 0.0
    out = figures(res.zone_run, rs, t0)
    out["error"] = None
    out["replay"] = {"disagreements": len(res.disagreements), "stopped_at": res.stopped_at}
    return out


def check_recording(sc: RecordingScenario, versions: list[Version]) -> RecordingScenario:
    """The recording readable, its zone in every version: the scenario with its zone named, or DiffError."""
    from .recording import RecordingError, read_csv

    try:
        rec = read_csv(sc.path)
    except (OSError, RecordingError) as e:
        raise DiffError(f"recording {sc.path}: {e}") from None
    zone = sc.zone or rec.zone
    for v in versions:
        if v.ruleset.zone(zone) is None:
            raise DiffError(f"recording {sc.path}: {v.label} has no zone {zone!r}")
    return RecordingScenario(sc.path, zone, sc.name)


def empty_figures() -> dict:
    return {
        "water_changes": {"started": 0, "completed": 0, "failed": 0, "starts_s": []},
        "recirc_off": {"duty_s": 0.0, "any_s": 0.0},
        "alerts": {},
        "commands": {},
        "command_failures": {},
        "refusals": {},
        "drained_l": 0.0,
        "filled_l": 0.0,
        "states": [],
        "evaluations": 0,
    }


def figures(zr, rs: M.RuleSet, t0: float) -> dict:
    """What one run did, comparable between versions: times are seconds into the run."""

    def at(text: str) -> float:
        return round(parse_time(text) - t0, 1)

    kinds = Counter(e["type"] for e in zr.events)
    alerts: dict = {}
    for a in zr.alerts:
        rec = alerts.setdefault(a["code"], {"count": 0, "first_s": None})
        rec["count"] += 1
        t = at(a["raised_at"])
        rec["first_s"] = t if rec["first_s"] is None else min(rec["first_s"], t)
    outcomes = getattr(zr, "outcomes", {}) or {}
    failures = Counter(c["channel"] for c in zr.commands if outcomes.get(c["cmd_id"]) in FAILED)
    refusals = Counter(e.text.split(" kept off by ")[0] for e in getattr(zr, "timeline", []) if e.kind == "refused")
    machines = dict(getattr(zr, "final_states", {}) or {})
    states = {f"{m}:{rs.machines[m].initial}" for m in machines if m in rs.machines}
    states |= {f"{t['machine']}:{t['to']}" for t in zr.transitions}
    return {
        "water_changes": {
            "started": kinds["WATER_CHANGE_STARTED"],
            "completed": kinds["WATER_CHANGE_COMPLETED"],
            "failed": kinds["WATER_CHANGE_FAILED"],
            "starts_s": [at(e["at"]) for e in zr.events if e["type"] == "WATER_CHANGE_STARTED"],
        },
        "recirc_off": {
            "duty_s": round(getattr(zr, "recirc_off_max_s", 0.0), 1),
            "any_s": round(getattr(zr, "recirc_off_any_s", 0.0), 1),
        },
        "alerts": dict(sorted(alerts.items())),
        "commands": dict(sorted(Counter(c["channel"] for c in zr.commands).items())),
        "command_failures": dict(sorted(failures.items())),
        "refusals": dict(sorted(refusals.items())),
        "drained_l": round(getattr(zr, "drained_l", 0.0), 1),
        "filled_l": round(getattr(zr, "filled_l", 0.0), 1),
        "states": sorted(states),
        "evaluations": getattr(zr, "ticks", 0) + getattr(zr, "fine_steps", 0),
    }


def flat(f: dict) -> dict:
    """A run's figures as one level of keys, the unit of comparison ("commands.pump_recirc": 4270)."""
    out = {
        "water_changes.started": f["water_changes"]["started"],
        "water_changes.completed": f["water_changes"]["completed"],
        "water_changes.failed": f["water_changes"]["failed"],
        "water_changes.starts": tuple(f["water_changes"]["starts_s"]),
        "recirc_off.duty_s": f["recirc_off"]["duty_s"],
        "recirc_off.any_s": f["recirc_off"]["any_s"],
        "drained_l": f["drained_l"],
        "filled_l": f["filled_l"],
        "states": tuple(f["states"]),
    }
    for code, a in f["alerts"].items():
        out[f"alerts.{code}.count"] = a["count"]
        out[f"alerts.{code}.first_s"] = a["first_s"]
    for group in ("commands", "command_failures", "refusals"):
        for ch, n in f[group].items():
            out[f"{group}.{ch}"] = n
    s = f.get("safety")
    if s is not None:
        out["safety.alert"] = s["alert"]
        out["safety.time_to_alert_s"] = s["time_to_alert_s"]
        out["safety.time_to_safe_s"] = s["time_to_safe_s"]
        out["safety.off_unexcused_s"] = s["off_unexcused_s"]
        for p, d in s["dry_s"].items():
            out[f"safety.dry_s.{p}"] = d
        out["safety.lost_l"] = s["lost_l"]
        out["safety.ph"] = tuple(s["ph"] or ())
        out["safety.ec"] = tuple(s["ec"] or ())
        out["safety.locks"] = tuple(s["locks"])
        out["safety.broken"] = tuple(sorted({_inv_key(v) for v in s["broken"]}))
    if "replay" in f:
        out["replay.disagreements"] = f["replay"]["disagreements"]
        out["replay.stopped"] = bool(f["replay"]["stopped_at"])
    if f.get("error"):
        out["error"] = f["error"]
    return out


#: a figure a run does not have reads as this (a channel never commanded: 0 commands)
def _absent(key: str):
    if key.startswith(("commands.", "command_failures.", "refusals.", "safety.dry_s.")) or key.endswith(".count"):
        return 0
    return None


def changes(old: dict, new: dict) -> list[dict]:
    """Every figure that differs between the versions' runs of one scenario."""
    fo, fn = flat(old), flat(new)
    out = []
    for key in sorted(set(fo) | set(fn)):
        a, b = fo.get(key, _absent(key)), fn.get(key, _absent(key))
        if a != b:
            out.append({"key": key, "old": _json(a), "new": _json(b)})
    return out


def _json(v):
    return list(v) if isinstance(v, tuple) else v


# ---- safety: worse or better -----------------------------------------------------------------------
def safety_findings(sc: Scenario, old: dict, new: dict, rs_new: M.RuleSet) -> tuple[list, list, list]:
    """The safety figures of one scenario that got worse, better, or moved within their limits, in words."""
    so, sn = old.get("safety"), new.get("safety")
    if so is None or sn is None:
        return [], [], []
    fault = FAULTS_BY_ID[sc.fault] if sc.fault else None
    what = FAULT_WORDS.get(fault.kind, fault.text) if fault else "no fault"
    under = f"under {fault.id}" if fault else "without a fault"
    worse: list[dict] = []
    better: list[dict] = []
    changed: list[dict] = []  # safety figures that moved within their limits

    def add(into, figure, a, b, text):
        into.append({"figure": figure, "old": _json(a), "new": _json(b), "text": text})

    # invariants (a band break per metric)
    inv_o = {_inv_key(v): v for v in so["broken"]}
    inv_n = {_inv_key(v): v for v in sn["broken"]}
    for key in sorted(set(inv_n) - set(inv_o)):
        v = inv_n[key]
        text = f"{v['invariant']} now breaks ({INVARIANTS[v['invariant']]}) {under}: {v['reason']}"
        m = key.removeprefix("bands.")
        if v["invariant"] == "bands" and _within(m, so.get(m), sn.get(m)):
            add(changed, f"invariant.{key}", None, v["reason"],
                f"{text}: within {BAND_TOLERANCE[m]:g} of where the old version's went ({_span(so[m])}, now "
                f"{_span(sn[m])})")  # fmt: skip
        else:
            add(worse, f"invariant.{key}", None, v["reason"], text)
    for key in sorted(set(inv_o) - set(inv_n)):
        add(
            better,
            f"invariant.{key}",
            inv_o[key]["reason"],
            None,
            f"{inv_o[key]['invariant']} no longer breaks {under}",
        )
    # the fault's alert
    if so["alert"] == "raised" and sn["alert"] == "missing":
        add(worse, "alert", so["time_to_alert_s"], None,
            f"{what} no longer raises its alert ({', '.join(fault.alerts)}) in time")  # fmt: skip
    elif so["alert"] == "missing" and sn["alert"] == "raised":
        add(better, "alert", None, sn["time_to_alert_s"], f"{what} now raises its alert")
    elif so["alert"] == sn["alert"] == "raised":  # within its limit both times: a change, not worse (jitter)
        a, b = so["time_to_alert_s"], sn["time_to_alert_s"]
        if a is not None and b is not None and abs(b - a) > ALERT_TOLERANCE_S:
            add(better if b < a else changed, "time_to_alert_s", a, b,
                f"{what} raises its alert {'sooner' if b < a else 'later'}: {dur(b)} after it (was {dur(a)}), "
                f"within its limit of {dur(fault.limit_s)}")  # fmt: skip
    # pumps running dry
    for pump in sorted(set(so["dry_s"]) | set(sn["dry_s"])):
        a, b = so["dry_s"].get(pump, 0.0), sn["dry_s"].get(pump, 0.0)
        if b > a + DRY_TOLERANCE_S:
            lead = f"{what} no longer stops {pump}" if fault and a <= DRY_TOLERANCE_S else f"{pump} runs dry longer"
            add(worse, f"dry_s.{pump}", a, b, f"{lead}: it ran dry {b:.0f} s {under} (was {a:.0f} s)")
        elif b < a - DRY_TOLERANCE_S:
            add(better, f"dry_s.{pump}", a, b, f"{pump} runs dry {b:.0f} s {under} (was {a:.0f} s)")
    # OFF stretches of the NC pump: under duty control, and those no reason excuses
    ro, rn = old["recirc_off"], new["recirc_off"]
    for figure, a, b, words in (
        ("recirc_off.duty_s", ro["duty_s"], rn["duty_s"], "longest OFF under duty control"),
        ("off_unexcused_s", so["off_unexcused_s"], sn["off_unexcused_s"], "longest unexcused OFF"),
    ):
        if a is None or b is None:
            continue
        if b > a + OFF_TOLERANCE_S:
            add(worse, figure, a, b, f"the recirculation pump stands longer {under}: {words} {dur(b)} (was {dur(a)})")
        elif b < a - OFF_TOLERANCE_S:
            add(better, figure, a, b, f"{words} {dur(b)} {under} (was {dur(a)})")
    # safe again after the fault
    if fault:
        a, b = so["time_to_safe_s"], sn["time_to_safe_s"]
        if a is not None and (b is None or b > a + SAFE_TOLERANCE_S):
            add(worse, "time_to_safe_s", a, b,
                f"a later stop after {what}: safe {'never again' if b is None else dur(b) + ' after it'} "
                f"(was {dur(a)})")  # fmt: skip
        elif b is not None and (a is None or b < a - SAFE_TOLERANCE_S):
            add(better, "time_to_safe_s", a, b, f"safe sooner after {what}: {dur(b)} (was {dur(a)})")
    # locks: an alert that locked the pump in the old version and does not in the new
    for code in sorted(set(so["locks"]) - set(sn["locks"])):
        a = rs_new.alerts.get(code)
        if a is not None and not a.locks:
            add(worse, "locks", code, None, f"{code} no longer locks {under}")
        elif not sn["locks"]:
            gone = "no longer exists" if a is None else "is not raised"
            add(worse, "locks", code, None, f"nothing locks {under} any more: {code} {gone}")
        else:
            add(changed, "locks", code, sn["locks"], f"{', '.join(sn['locks'])} locks {under} instead of {code}")
    return worse, better, changed


def _inv_key(v: dict) -> str:
    """An invariant broken, by name; a band break with its metric (`bands.ph`), as each is checked on its own."""
    return f"bands.{v['reason'].split()[0]}" if v["invariant"] == "bands" else v["invariant"]


def _within(metric: str, old, new) -> bool:
    """Did `new`'s [lowest, highest] of a metric stay within BAND_TOLERANCE of `old`'s?"""
    tol = BAND_TOLERANCE.get(metric)
    return bool(old and new and tol is not None and new[0] >= old[0] - tol and new[1] <= old[1] + tol)


def _span(v) -> str:
    return f"{v[0]:.2f}–{v[1]:.2f}" if v else "—"


# ---- the diff ---------------------------------------------------------------------------------------
def _map(tasks: list[Task], jobs: int, progress=None) -> list[dict]:
    """run_task over tasks in `jobs` processes; results in task order whatever finished first."""
    out: dict[int, dict] = {}
    if progress:
        progress(0, len(tasks))
    if jobs <= 1 or len(tasks) <= 1:
        for i, t in enumerate(tasks):
            out[i] = run_task(t)
            if progress:
                progress(i + 1, len(tasks))
    else:
        with ProcessPoolExecutor(max_workers=min(jobs, len(tasks))) as pool:
            futures = {pool.submit(run_task, t): i for i, t in enumerate(tasks)}
            for fut in as_completed(futures):
                out[futures[fut]] = fut.result()
                if progress:
                    progress(len(out), len(tasks))
    return [out[i] for i in range(len(tasks))]


def common_zones(old: Version, new: Version, asked: list[str] | None) -> tuple[list[str], list[str]]:
    """The zones both versions have (in the new version's order), and notes on those only one has."""
    zo = [z.uid for z in old.ruleset.zones]
    zn = [z.uid for z in new.ruleset.zones]
    both = [z for z in zn if z in zo]
    notes = [f"zone {z} only in {new.label}" for z in zn if z not in zo]
    notes += [f"zone {z} only in {old.label}" for z in zo if z not in zn]
    if asked:
        missing = [z for z in asked if z not in both]
        if missing:
            raise DiffError(
                f"no zone {', '.join(missing)} in both versions; zones in both: {', '.join(both) or 'none'}"
            )
        return [z for z in both if z in asked], notes
    if not both:
        raise DiffError(f"{old.label} and {new.label} have no zone in common")
    return both, notes


def run_diff(
    old: Version,
    new: Version,
    scenarios: list[Scenario],
    recordings: list[RecordingScenario] = (),
    *,
    tick_s: float = 60.0,
    firmware: str = DEFAULT_FIRMWARE,
    jobs: int | None = None,
    progress=None,
    start: float | None = None,
    fail_on: list[str] = (),
    params: dict | None = None,
) -> dict:
    """Both versions on every scenario; the report as one JSON-able dict."""
    jobs = jobs or os.cpu_count() or 1
    t0 = start if start is not None else parse_time(DEFAULT_START)
    wall = time.perf_counter()
    skipped: list[dict] = []
    runnable_sc: list[Scenario] = []
    for sc in scenarios:
        if sc.fault:
            f = FAULTS_BY_ID[sc.fault]
            missing = [v.label for v in (old, new) if resolve_target(f, v.ruleset, v.ruleset.zone(sc.zone)) is None]
            if missing:
                item = {"zone": sc.zone, "fault": sc.fault, "why": f"no {f.target} in {' and '.join(missing)}"}
                if item not in skipped:
                    skipped.append(item)
                continue
        runnable_sc.append(sc)
    every = list(runnable_sc) + [check_recording(r, [old, new]) for r in recordings]
    tasks = [Task(side, v.path, sc, tick_s, firmware, t0) for sc in every for side, v in (("old", old), ("new", new))]
    results = _map(tasks, jobs, progress)
    wall = time.perf_counter() - wall
    rows = []
    for i, sc in enumerate(every):
        ro, rn = results[2 * i], results[2 * i + 1]
        worse, better, moved = safety_findings(sc, ro, rn, new.ruleset) if isinstance(sc, Scenario) else ([], [], [])
        rows.append(
            {
                "key": sc.key,
                "scenario": _scenario_json(sc),
                "old": ro,
                "new": rn,
                "changes": changes(ro, rn),
                "worse": worse,
                "better": better,
                "moved": moved,
            }
        )
    report = {
        "old": old.describe(),
        "new": new.describe(),
        "matrix": {
            **(params or {}),
            "tick_seconds": tick_s,
            "firmware": firmware,
            "start": iso(t0),
            "scenarios": len(runnable_sc),
            "recordings": len(recordings),
            "runs": len(tasks),
        },
        "skipped": skipped,
        "summary": summary_rows(rows),
        "alerts": alert_rows(rows),
        "commands": channel_rows(rows, "commands"),
        "refusals": channel_rows(rows, "refusals"),
        "states": state_changes(rows),
        "changes": grouped_changes(rows),
        "safety": {w: _grouped(rows, w) for w in ("worse", "better", "moved")},
        "scenarios": rows,
        "jobs": jobs,
        "wall_s": round(wall, 1),
        "cpu_s": round(sum(r["cpu_s"] for r in results), 1),
    }
    failed = check_fail_on(report, fail_on)
    report["fail_on"] = {"asked": list(fail_on), "failed": failed}
    report["ok"] = not failed
    return report


def _scenario_json(sc) -> dict:
    if isinstance(sc, RecordingScenario):
        return {"recording": sc.path, "zone": sc.zone, "name": sc.name}
    return {"zone": sc.zone, "seed": sc.seed, "days": sc.days, "fault": sc.fault, "at_s": sc.at_s, "name": sc.name}


# ---- aggregation ------------------------------------------------------------------------------------
#: the summary table: (label, figure of a run, how runs add up: sum | max, unit)
SUMMARY = (
    ("water changes started", lambda f: f["water_changes"]["started"], "sum", ""),
    ("water changes completed", lambda f: f["water_changes"]["completed"], "sum", ""),
    ("water changes failed", lambda f: f["water_changes"]["failed"], "sum", ""),
    ("longest OFF under duty control", lambda f: f["recirc_off"]["duty_s"], "max", "s"),
    ("longest OFF of any cause", lambda f: f["recirc_off"]["any_s"], "max", "s"),
    ("alerts raised", lambda f: sum(a["count"] for a in f["alerts"].values()), "sum", ""),
    ("commands", lambda f: sum(f["commands"].values()), "sum", ""),
    ("failed commands", lambda f: sum(f["command_failures"].values()), "sum", ""),
    ("refusals", lambda f: sum(f["refusals"].values()), "sum", ""),
    ("litres drained", lambda f: f["drained_l"], "sum", "L"),
    ("litres filled", lambda f: f["filled_l"], "sum", "L"),
    ("broken invariants", lambda f: len(f["safety"]["broken"]) if "safety" in f else 0, "sum", ""),
    ("faults without their alert", lambda f: int(f.get("safety", {}).get("alert") == "missing"), "sum", ""),
    ("longest time fault → alert", lambda f: (f.get("safety") or {}).get("time_to_alert_s"), "max", "s"),
    ("seconds pumps ran dry", lambda f: sum((f.get("safety") or {}).get("dry_s", {}).values()), "sum", "s"),
    ("longest unexcused OFF", lambda f: (f.get("safety") or {}).get("off_unexcused_s"), "max", "s"),
    ("locking alerts raised", lambda f: len((f.get("safety") or {}).get("locks", [])), "sum", ""),
)


def summary_rows(rows: list[dict]) -> list[dict]:
    out = []
    for label, get, how, unit in SUMMARY:
        vo = [get(r["old"]) for r in rows]
        vn = [get(r["new"]) for r in rows]
        changed = sum(1 for a, b in zip(vo, vn) if a != b)
        agg = (lambda v: round(sum(x for x in v if x is not None), 1)) if how == "sum" else _max
        out.append({"figure": label, "how": how, "unit": unit, "old": agg(vo), "new": agg(vn), "changed_in": changed})
    moved = sum(1 for r in rows if r["old"]["water_changes"]["starts_s"] != r["new"]["water_changes"]["starts_s"])
    out.insert(3, {"figure": "water change start times", "how": "moved", "unit": "", "old": None, "new": None,
                   "changed_in": moved})  # fmt: skip
    states = sum(1 for r in rows if r["old"]["states"] != r["new"]["states"])
    out.append({"figure": "states reached", "how": "set", "unit": "", "old": len(_union(rows, "old")),
                "new": len(_union(rows, "new")), "changed_in": states})  # fmt: skip
    return out


def _max(values):
    vs = [v for v in values if v is not None]
    return max(vs) if vs else None


def _union(rows, side) -> set:
    return {s for r in rows for s in r[side]["states"]}


def alert_rows(rows: list[dict]) -> list[dict]:
    codes = sorted({c for r in rows for side in ("old", "new") for c in r[side]["alerts"]})
    out = []
    for code in codes:
        item = {"code": code}
        for side in ("old", "new"):
            hits = [r[side]["alerts"][code] for r in rows if code in r[side]["alerts"]]
            item[side] = {
                "count": sum(h["count"] for h in hits),
                "scenarios": len(hits),
                "first_s": min((h["first_s"] for h in hits if h["first_s"] is not None), default=None),
            }
        item["changed_in"] = sum(1 for r in rows if r["old"]["alerts"].get(code) != r["new"]["alerts"].get(code))
        out.append(item)
    return out


def channel_rows(rows: list[dict], group: str) -> list[dict]:
    chans = sorted({c for r in rows for side in ("old", "new") for c in r[side][group]})
    return [
        {
            "channel": ch,
            "old": sum(r["old"][group].get(ch, 0) for r in rows),
            "new": sum(r["new"][group].get(ch, 0) for r in rows),
            "changed_in": sum(1 for r in rows if r["old"][group].get(ch, 0) != r["new"][group].get(ch, 0)),
        }
        for ch in chans
    ]


def state_changes(rows: list[dict]) -> dict:
    o, n = _union(rows, "old"), _union(rows, "new")
    return {"only_old": sorted(o - n), "only_new": sorted(n - o)}


def _fault_of(r: dict) -> str:
    sc = r["scenario"]
    return "recording" if "recording" in sc else (sc["fault"] or "none")


def grouped_changes(rows: list[dict]) -> list[dict]:
    """Each figure that changed, per fault, over the scenarios (zones × seeds) where it did."""
    groups: dict = {}
    for r in rows:
        for c in r["changes"]:
            g = groups.setdefault((_fault_of(r), c["key"]), {"scenarios": [], "old": [], "new": []})
            g["scenarios"].append(r["key"])
            g["old"].append(c["old"])
            g["new"].append(c["new"])
    per_fault = Counter(_fault_of(r) for r in rows)
    out = []
    for (fault, key), g in sorted(groups.items()):
        out.append(
            {
                "fault": fault,
                "figure": key,
                "changed_in": len(g["scenarios"]),
                "of": per_fault[fault],
                "old": _range(g["old"]),
                "new": _range(g["new"]),
                "examples": g["scenarios"][:3],
            }
        )
    return out


def _range(values: list):
    nums = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    if nums and len(nums) == len(values):
        lo, hi = min(nums), max(nums)
        return [lo, hi] if lo != hi else [lo]
    first = values[0]
    return [first] if all(v == first for v in values) else [first, "…"]


def _grouped(rows: list[dict], which: str) -> list[dict]:
    """Safety findings per fault and figure, over scenarios; each with its scenarios and one text."""
    groups: dict = {}
    for r in rows:
        for w in r[which]:
            g = groups.setdefault((_fault_of(r), w["figure"]), {"scenarios": [], "texts": []})
            g["scenarios"].append(r["key"])
            g["texts"].append(w["text"])
    per_fault = Counter(_fault_of(r) for r in rows)
    return [
        {
            "fault": fault,
            "figure": fig,
            "changed_in": len(g["scenarios"]),
            "of": per_fault[fault],
            "text": g["texts"][0],
            "scenarios": g["scenarios"],
        }
        for (fault, fig), g in sorted(groups.items())
    ]


# ---- --fail-on ----------------------------------------------------------------------------------------
def check_fail_on(report: dict, conditions) -> list[dict]:
    """The --fail-on conditions that hold, each with why."""
    out = []
    rows = report["scenarios"]
    for cond in conditions:
        why = None
        if cond == "safety":
            worse = report["safety"]["worse"]
            if worse:
                why = f"{len(worse)} safety figure(s) worse: " + "; ".join(w["text"] for w in worse[:3])
        elif cond == "alerts":
            more = [a for a in report["alerts"] if a["new"]["count"] > a["old"]["count"]]
            if more:
                why = "more alerts: " + "; ".join(
                    f"{a['code']} {a['old']['count']} → {a['new']['count']}" + ("" if a["old"]["count"] else " (new)")
                    for a in more
                )
        elif cond == "water-changes":
            hit = [r["key"] for r in rows if any(c["key"].startswith("water_changes.") for c in r["changes"])]
            if hit:
                why = f"water changes differ in {len(hit)} scenario(s), e.g. {hit[0]}"
        elif cond == "any":
            hit = [r["key"] for r in rows if r["changes"]]
            if hit:
                why = f"behaviour differs in {len(hit)} of {len(rows)} scenario(s), e.g. {hit[0]}"
        if why:
            out.append({"condition": cond, "why": why})
    return out


def without_timings(report: dict) -> dict:
    """The report without what depends on the machine: wall and CPU seconds, the number of processes."""
    import json

    r = json.loads(json.dumps(report))
    for k in ("wall_s", "cpu_s", "jobs"):
        r.pop(k, None)
    for row in r["scenarios"]:
        for side in ("old", "new"):
            row[side].pop("wall_s", None)
            row[side].pop("cpu_s", None)
    return r
