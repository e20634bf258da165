"""Rule tests as written in `*.test.hydro` files, checked against the rule set they test.

A test file lives inside a rule set (or a folder below it). It may declare
its own site, profiles and recipes next to its `test` blocks; those join the
rule set for its tests only, together with the other non-test `*.hydro` files
of its folder (shared fixtures).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from ..lang import ast as A
from ..lang import model as M
from ..lang import units as U
from ..lang.diagnostics import Diagnostics, did_you_mean
from ..lang.loader import TEST_SUFFIX, Loaded, find_root, load, rule_files, test_files
from ..lang.source import Span

SERIES_TOKEN = re.compile(r"^(-?\d+(?:\.\d+)?)(?:([+-])(\d+(?:\.\d+)?)x(\d+))?$")
ALERT_FIELDS = {"channel", "status", "severity", "source"}
#: the fields each kind of expectation can compare, and what the diagnostics call its kind
FIELDS = {
    "alert": ("alerts", ALERT_FIELDS),
    "command": ("commands", {"cmd", "state", "duration_ms", "ml", "rule"}),
    "refused": ("refusals", {"guard", "reason"}),
}
ALERT_STATUSES = {"active", "pending", "resolved"}


@dataclass
class Sample:
    at: float  # offset from the start, seconds
    key: str  # metric, or channel.attr (current/flow/flow_flag)
    value: float | None  # None: the sensor stops reporting
    span: Span


@dataclass
class Expect:
    at: float
    kind: str
    negated: bool
    name: str
    fields: dict
    text: str
    span: Span


@dataclass
class Case:
    name: str
    path: str
    span: Span
    zone: str
    start: str | None = None
    tick_s: float = 60.0
    run_s: float | None = None
    twin: bool = False
    seed: int = 0
    faults: list = field(default_factory=list)  # "KIND@OFFSET[:ARGS]"
    given_state: str | None = None
    given_solution_age: float | None = None
    given_solution: dict = field(default_factory=dict)  # metric -> value recorded at the last change
    given_alerts: list = field(default_factory=list)  # (code, channel)
    samples: list = field(default_factory=list)
    responds: list = field(default_factory=list)  # (channel, status, error_code, from_s, to_s)
    resets: list = field(default_factory=list)  # (at, reason)
    expects: list = field(default_factory=list)


@dataclass
class TestFile:
    path: Path
    loaded: Loaded
    cases: list[Case]


def discover(paths: list[str]) -> list[Path]:
    out: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            out.extend(test_files(p))
        elif p.name.endswith(TEST_SUFFIX):
            out.append(p)
    return list(dict.fromkeys(out))


def load_file(path: Path) -> TestFile:
    """Load the rule set a test file belongs to, with the file and its folder's fixtures."""
    root = find_root(path.parent)
    if root is None:
        loaded = Loaded(None)
        loaded.diags.add(
            "HR005", f"{path} is not inside a rule set (no ruleset.hydro above it)", Span(str(path), 1, 1, 1, 1)
        )
        return TestFile(path, loaded, [])
    fixtures = rule_files(path.parent) if path.parent.resolve() != root else []
    loaded = load(root, extra=[*fixtures, path])
    cases = []
    if loaded.ruleset is not None and loaded.files:
        for decl in loaded.files[-1].decls:  # the test file: read last
            if isinstance(decl, A.TestDecl):
                case = _case(decl, loaded.ruleset, loaded.diags)
                if case:
                    cases.append(case)
    return TestFile(path, loaded, cases)


def _case(t: A.TestDecl, rs: M.RuleSet, d: Diagnostics) -> Case | None:
    zones = [z.uid for z in rs.zones]
    case = Case(t.name.value, t.span.path, t.span, zone="")
    ok = True
    zone_item = next((i for i in t.items if isinstance(i, A.Item) and i.keyword == "zone"), None)
    if zone_item is not None:
        case.zone = zone_item.values[0].name
        if case.zone not in zones:
            d.add("HR106", f"unknown zone `{case.zone}`", zone_item.values[0].span, did_you_mean(case.zone, zones))
            return None
    elif len(zones) == 1:
        case.zone = zones[0]
    else:
        d.add(
            "HR206",
            f"test `{case.name}` must say which zone it runs: " + ", ".join(zones or ["(none)"]),
            t.span,
            "add `zone UID`, or declare a site with one zone in the test file",
        )
        return None
    zone = rs.zone(case.zone)
    for it in t.items:
        if isinstance(it, A.Expectation):
            e = _expect(it, rs, zone, d)
            if e is None:
                ok = False
            else:
                case.expects.append(e)
            continue
        if isinstance(it, A.TestBlock):
            ok = _block(it, case, rs, zone, d) and ok
            continue
        kw = it.keyword
        v = it.values
        if kw == "start":
            case.start = v[0].value
        elif kw == "tick":
            case.tick_s = float(v[0].value)
        elif kw == "run":
            case.run_s = float(v[0].value)
        elif kw == "series":
            ok = _series(it, case, rs, zone, d) and ok
        elif kw == "respond":
            ok = _respond(it, case, zone, d) and ok
        elif kw == "reset at":
            case.resets.append((float(v[0].value), v[1].value if len(v) > 1 else "test reset"))
    if case.twin and case.responds:
        d.add("HR206", "`respond` scripts node answers in tests without a twin; with a twin use a fault", t.span)
        ok = False
    if not case.expects:
        d.add("HR206", f"test `{case.name}` expects nothing", t.span, "add `expect at 10m state ...`")
        ok = False
    case.samples.sort(key=lambda s: s.at)
    return case if ok else None


def _block(b: A.TestBlock, case: Case, rs: M.RuleSet, zone: M.Zone, d: Diagnostics) -> bool:
    ok = True
    if b.keyword == "twin":
        case.twin = True
        for it in b.items:
            if isinstance(it, A.Setting):
                if it.key.name != "seed":
                    d.add("HR111", f"unknown twin setting `{it.key.name}`", it.key.span, "twin settings: seed")
                    ok = False
                else:
                    case.seed = int(it.value.value)
            else:
                kind, at = it.values[0].name, it.values[1]
                args = it.values[2].value if len(it.values) > 2 else ""
                case.faults.append(f"{kind}@{at.text}" + (f":{args}" if args else ""))
    elif b.keyword == "given":
        for it in b.items:
            if it.keyword == "state":
                name = it.values[0]
                if rs.state(name.name) is None:
                    d.add(
                        "HR103",
                        f"unknown state `{name.name}`",
                        name.span,
                        did_you_mean(name.name, [s for m in rs.machines.values() for s in m.states]),
                    )
                    ok = False
                case.given_state = name.name
            elif it.keyword == "solution age":
                case.given_solution_age = float(it.values[0].value)
            elif it.keyword == "solution":
                metric, value = it.values
                if metric.name not in rs.metrics:
                    d.add(
                        "HR101", f"unknown metric `{metric.name}`", metric.span, did_you_mean(metric.name, rs.metrics)
                    )
                    ok = False
                elif not U.compatible(value.dim, rs.metrics[metric.name].dim):
                    d.add(
                        "HR201",
                        f"{metric.name} is a {rs.metrics[metric.name].dim}, `{value.text}` is a {value.dim}",
                        value.span,
                    )
                    ok = False
                else:
                    case.given_solution[metric.name] = float(value.value)
            elif it.keyword == "alert":
                code = it.values[0]
                ch = it.values[1].name if len(it.values) > 1 else None
                if code.name not in rs.alerts:
                    d.add("HR104", f"unknown alert `{code.name}`", code.span, did_you_mean(code.name, rs.alerts))
                    ok = False
                elif ch is not None and ch not in zone.channels:
                    d.add(
                        "HR102",
                        f"zone {zone.uid} has no channel `{ch}`",
                        it.values[1].span,
                        did_you_mean(ch, zone.channels),
                    )
                    ok = False
                case.given_alerts.append((code.name, ch))
    else:  # telemetry
        for row in b.items:
            at = float(row.values[0].value)
            vals = row.values[1:]
            for key, val in zip(vals[0::2], vals[1::2]):
                sample = _sample(key, val, at, rs, zone, d)
                if sample is None:
                    ok = False
                else:
                    case.samples.append(sample)
    return ok


def _key(key: A.Path, rs: M.RuleSet, zone: M.Zone, d: Diagnostics) -> tuple[str, str] | None:
    """(key, dimension) of a telemetry key: `ph`, `pump_drain.flow` or `pump_drain.flow_flag`."""
    parts = [p.name for p in key.parts]
    if len(parts) == 1:
        if parts[0] not in rs.metrics:
            d.add("HR101", f"unknown metric `{parts[0]}`", key.span, did_you_mean(parts[0], rs.metrics))
            return None
        return parts[0], rs.metrics[parts[0]].dim
    ch, attr = parts
    if ch not in zone.channels:
        d.add("HR102", f"zone {zone.uid} has no channel `{ch}`", key.parts[0].span, did_you_mean(ch, zone.channels))
        return None
    metric = getattr(rs.channels[ch], attr, None) if attr in ("current", "flow", "flow_flag") else None
    if metric is None:
        d.add(
            "HR106",
            f"channel `{ch}` reports no `{attr}`",
            key.parts[1].span,
            "channels report the current, flow and flow_flag they declare",
        )
        return None
    return f"{ch}.{attr}", rs.metrics[metric].dim


def _sample(key: A.Path, val, at: float, rs, zone, d) -> Sample | None:
    k = _key(key, rs, zone, d)
    if k is None:
        return None
    name, dim = k
    if isinstance(val, A.Ident):
        if val.name != "none":
            d.add("HR201", f"`{val.name}` is not a reading", val.span, "write a value, or `none` for silence")
            return None
        return Sample(at, name, None, key.span)
    if not U.compatible(val.dim, dim):
        d.add("HR201", f"{name} is a {dim}, `{val.text}` is a {val.dim}", val.span)
        return None
    return Sample(at, name, float(val.value), key.span)


def _series(it: A.Item, case: Case, rs, zone, d) -> bool:
    key, text, every = it.values[0], it.values[1], float(it.values[2].value)
    start = float(it.values[3].value) if len(it.values) > 3 else 0.0
    k = _key(key, rs, zone, d)
    if k is None:
        return False
    values: list[float | None] = []
    for tok in text.value.split():
        if tok in ("_", "none"):
            values.append(None)
            continue
        m = SERIES_TOKEN.match(tok)
        if not m:
            d.add(
                "HR201",
                f"`{tok}` is not a series value",
                text.span,
                "values are numbers, `_` for no reading, or `a+bxn` / `a-bxn` for n steps of b from a",
            )
            return False
        a = float(m.group(1))
        values.append(a)
        if m.group(2):
            step = float(m.group(3)) * (1 if m.group(2) == "+" else -1)
            values.extend(a + step * (i + 1) for i in range(int(m.group(4))))
    for i, v in enumerate(values):
        case.samples.append(Sample(start + i * every, k[0], v, key.span))
    return True


def _respond(it: A.Item, case: Case, zone: M.Zone, d: Diagnostics) -> bool:
    ch = it.values[0]
    if ch.name not in zone.channels:
        d.add("HR102", f"zone {zone.uid} has no channel `{ch.name}`", ch.span, did_you_mean(ch.name, zone.channels))
        return False
    words = [v.name for v in it.values[1].values]
    status, code = {"ok": ("DONE", None), "never": (None, None)}.get(words[0], ("ERROR", None))
    if words[0] == "error":
        code = words[1]
    times = [float(v.value) for v in it.values[2:]]
    lo = times[0] if times else 0.0
    hi = times[1] if len(times) > 1 else float("inf")
    case.responds.append((ch.name, status, code, lo, hi))
    return True


def _expect(e: A.Expectation, rs: M.RuleSet, zone: M.Zone, d: Diagnostics) -> Expect | None:
    name = e.name.name
    fields = {}
    for f in e.fields:
        v = f.values[0]
        fields[f.keyword] = v.name if isinstance(v, A.Ident) else v.value
    if e.kind == "state":
        if rs.state(name) is None:
            d.add(
                "HR103",
                f"unknown state `{name}`",
                e.name.span,
                did_you_mean(name, [s for m in rs.machines.values() for s in m.states]),
            )
            return None
    elif e.kind == "alert":
        if name not in rs.alerts:
            d.add("HR104", f"unknown alert `{name}`", e.name.span, did_you_mean(name, rs.alerts))
            return None
        if "status" in fields and fields["status"] not in ALERT_STATUSES:
            d.add("HR204", f"alert status is one of {', '.join(sorted(ALERT_STATUSES))}", e.span)
            return None
    elif e.kind in ("command", "refused", "running") and name not in zone.channels:
        d.add("HR102", f"zone {zone.uid} has no channel `{name}`", e.name.span, did_you_mean(name, zone.channels))
        return None
    noun, known = FIELDS.get(e.kind, ("", set()))
    for f in e.fields:  # a field nothing has could never match, whatever the rules do
        if f.keyword not in known:
            hint = did_you_mean(f.keyword, known) or "fields: " + ", ".join(sorted(known))
            d.add("HR106", f"{noun} have no field `{f.keyword}`", f.span, hint)
            return None
    text = f"{'no ' if e.negated else ''}{e.kind} {name}" + "".join(f" {k} {_show(v)}" for k, v in fields.items())
    return Expect(float(e.at.value), e.kind, e.negated, name, fields, text, e.span)


def _show(v) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float) and v == int(v):
        return str(int(v))
    return str(v)
