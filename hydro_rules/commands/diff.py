"""`hydro-rules diff OLD NEW`: what a rule change does to the plants, by behaviour, not text."""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from ..cli import EXIT_OK, EXIT_PROBLEMS, UsageError
from ..sim.times import dur
from ._common import duration, err_console, positive_float
from .dry_run import add_firmware_option


def register(sub) -> None:
    p = sub.add_parser(
        "diff",
        help="run two versions of a rule set on the same scenarios and report what changed in behaviour",
        description="Run OLD and NEW (rule-set directories; `git:REV` for one of them is the other's path at that "
        "revision) on the same scenarios: every zone × seeds × (no fault and every fault of the safety matrix "
        "at one moment) × days through the digital twin, and recorded windows through replay. Report what "
        "changed: water changes, OFF stretches, alerts, commands, refusals, litres, states, safety figures. "
        "Exit 0, or 1 when a --fail-on condition holds. See docs/ci.md.",
    )
    p.add_argument("old", metavar="OLD", help="the rule set before: a directory or git:REV")
    p.add_argument("new", metavar="NEW", help="the rule set after: a directory or git:REV")
    p.add_argument("--zones", type=_names, metavar="Z1,Z2", help="only these zones (default: every zone of both)")
    p.add_argument("--seeds", type=_count, default=10, metavar="N", help="seeds 0..N-1 per scenario (default 10)")
    p.add_argument("--days", type=positive_float, default=30.0, metavar="D", help="days per run (default 30)")
    p.add_argument(
        "--faults",
        type=_names,
        metavar="K1,K2",
        help="only these faults of the safety matrix (ids or kinds; `none` for no fault only); the run without "
        "a fault is always included (default: every fault)",
    )
    p.add_argument(
        "--fault-at", type=duration, default=2 * 86400.0, metavar="D",
        help="when each fault starts, into the run (default 2d; half the run when it is shorter)",
    )  # fmt: skip
    p.add_argument("--scenarios", metavar="FILE", help="a TOML or JSON file naming the scenarios instead")
    p.add_argument(
        "--recording", action="append", default=[], metavar="FILE.csv",
        help="a recorded window (`hydro-rules export`) played through replay (repeatable)",
    )  # fmt: skip
    p.add_argument("--tick", type=duration, default=60.0, metavar="D", help="time step, default 1m")
    add_firmware_option(p)
    p.add_argument("--jobs", type=_count, default=None, metavar="N", help="processes (default: every core)")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print one JSON document")
    out.add_argument("--format", choices=("text", "markdown"), default="text", help="text (default) or markdown")
    p.add_argument(
        "--fail-on", type=_fail_on, default=[], metavar="C1,C2",
        help="exit 1 when any holds: safety (a worse safety figure), alerts (new alert codes or more alerts), "
        "water-changes (any change of them), any (any change of behaviour)",
    )  # fmt: skip
    p.set_defaults(run=execute)


def _count(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if v < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return v


def _names(text: str) -> list[str]:
    return [n.strip() for n in text.split(",") if n.strip()]


def _fail_on(text: str) -> list[str]:
    from ..sim.diff import FAIL_ON

    names = _names(text)
    bad = [n for n in names if n not in FAIL_ON]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"{text!r}: conditions are {', '.join(FAIL_ON)}")
    return names


# ---- git:REV ------------------------------------------------------------------------------------------
def _git(args: list[str], cwd: Path, binary: bool = False):
    try:
        r = subprocess.run(["git", *args], cwd=cwd, capture_output=True, check=False)
    except FileNotFoundError:
        raise UsageError("git:REV needs git, which is not installed") from None
    if r.returncode != 0:
        raise UsageError(f"git {' '.join(args)}: {r.stderr.decode(errors='replace').strip()}")
    return r.stdout if binary else r.stdout.decode().strip()


USE = re.compile(r'^\s*use\s+"([^"]+)"', re.M)


def checkout(rev: str, path: str, into: Path) -> tuple[Path, list[str]]:
    """The rule-set directory `path` as it was at `rev`, extracted under `into` with the rule sets it
    uses (`use "../rules"`), followed at that revision; a used set outside the repository is the working
    copy's (a note says so). Returns the extracted directory and the notes."""
    here = Path(path).resolve()
    if not here.is_dir():
        raise UsageError(f"{path} is not a directory (git:REV means that path at REV)")
    top = Path(_git(["rev-parse", "--show-toplevel"], here))
    sha = _git(["rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"], top)
    root = into / "up" / "up" / "up" / "repo"  # room for a `use` that climbs out of the repository
    root.mkdir(parents=True)
    notes: list[str] = []
    todo, done = [Path(os.path.relpath(here, top))], set()
    while todo:
        rel = Path(os.path.normpath(todo.pop()))
        if rel in done:
            continue
        done.add(rel)
        if rel.parts and rel.parts[0] == "..":  # not in the repository: the working copy's, linked in
            real = (top / rel).resolve()
            link = Path(os.path.normpath(root / rel))
            if not str(link).startswith(str(into)) or not real.is_dir():
                raise UsageError(f"git:{rev}: {path} uses {real}, outside the repository and not found")
            link.parent.mkdir(parents=True, exist_ok=True)
            if not link.exists():
                link.symlink_to(real, target_is_directory=True)
            notes.append(f"{real} is outside the repository: the working copy's is used for git:{rev}")
            continue
        spec = [] if str(rel) == "." else ["--", rel.as_posix()]
        data = _git(["archive", "--format=tar", sha, *spec], top, binary=True)
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            tar.extractall(root, filter="data")
        manifest = root / rel / "ruleset.hydro"
        if manifest.is_file():
            todo += [rel / u for u in USE.findall(manifest.read_text(errors="replace"))]
    out = root / os.path.relpath(here, top)
    if not (out / "ruleset.hydro").is_file():
        raise UsageError(f"git:{rev}: {os.path.relpath(here, top)} is no rule-set directory at that revision")
    return out, notes


def resolve_sides(old: str, new: str, tmp: Path):
    """OLD and NEW as loaded versions; git:REV on one side is the other side's path at REV."""
    from ..sim.diff import DiffError, load_version

    gold, gnew = old.startswith("git:"), new.startswith("git:")
    if gold and gnew:
        raise UsageError("only one side may be git:REV: the other names the directory both mean")
    notes: list[str] = []
    sides = []
    for arg, other, name in ((old, new, "old"), (new, old, "new")):
        if arg.startswith("git:"):
            rev = arg[4:]
            if not rev:
                raise UsageError(f"{arg!r}: say which revision, e.g. git:HEAD~1 or git:origin/main")
            where, n = checkout(rev, other, tmp / name)
            notes += n
            label = f"{other} at {rev}"
        else:
            where, label = Path(arg), arg
        try:
            sides.append(load_version(label, where))
        except DiffError as e:
            raise UsageError(str(e)) from None
    return sides[0], sides[1], notes


# ---- running -------------------------------------------------------------------------------------------
def execute(args) -> int:
    from ..sim import diff, scenarios

    with tempfile.TemporaryDirectory(prefix="hydro-diff-") as tmp:
        old, new, notes = resolve_sides(args.old, args.new, Path(tmp))
        try:
            zones, zone_notes = diff.common_zones(old, new, args.zones)
            notes += zone_notes
            recs = [scenarios.RecordingScenario(str(p)) for p in args.recording]
            for r in recs:
                if not Path(r.path).is_file():
                    raise UsageError(f"--recording {r.path}: no such file")
            if args.scenarios:
                scs, more = scenarios.load_file(args.scenarios, zones, days=args.days, fault_at_s=args.fault_at)
                recs += more
            else:
                scs = scenarios.matrix(
                    zones, seeds=args.seeds, days=args.days, faults=args.faults, fault_at_s=args.fault_at
                )
        except (scenarios.ScenarioError, diff.DiffError) as e:
            raise UsageError(str(e)) from None
        params = {
            "zones": zones,
            "seeds": None if args.scenarios else args.seeds,
            "days": None if args.scenarios else args.days,
            "faults": None if args.scenarios else sorted({s.fault or "none" for s in scs}, key=_fault_order),
            "fault_at_s": None if args.scenarios else scenarios.fault_moment(args.fault_at, args.days),
            "scenarios_file": args.scenarios,
            "notes": notes,
        }
        bar, progress = _progress_bar()
        try:
            report = diff.run_diff(
                old, new, scs, recs, tick_s=args.tick, firmware=args.firmware,
                jobs=args.jobs or os.cpu_count() or 1, progress=progress, fail_on=args.fail_on, params=params,
            )  # fmt: skip
        except diff.DiffError as e:
            raise UsageError(str(e)) from None
        finally:
            if bar is not None:
                bar.stop()
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
    elif args.format == "markdown":
        print(to_markdown(report))
    else:
        wide = None if sys.stdout.isatty() else 160
        print_text(report, Console(highlight=False, soft_wrap=True, width=wide))
    for f in report["fail_on"]["failed"]:
        err_console().print(escape(f"hydro-rules diff: --fail-on {f['condition']}: {f['why']}"))
    return EXIT_OK if report["ok"] else EXIT_PROBLEMS


def _fault_order(f: str):
    from ..sim.safety import FAULTS

    ids = ["none"] + [x.id for x in FAULTS]
    return ids.index(f) if f in ids else len(ids)


def _progress_bar():
    if not sys.stderr.isatty():
        return None, None
    bar = Progress(
        TextColumn("diff"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} runs"),
        TimeRemainingColumn(),
        console=err_console(),
        transient=True,
    )
    bar.start()
    task = bar.add_task("runs", total=1)

    def progress(done, total):
        bar.update(task, completed=done, total=total)

    return bar, progress


# ---- rendering ------------------------------------------------------------------------------------------
def offset(s) -> str:
    """Seconds into the run: +7d 09:00."""
    if s is None:
        return "—"
    d, rest = divmod(int(round(s)), 86400)
    return f"+{d}d {rest // 3600:02d}:{rest % 3600 // 60:02d}"


def value(v, unit: str = "") -> str:
    if v is None:
        return "—"
    if unit == "s":
        return dur(v)
    if unit == "L":
        return f"{v:,.1f} L"
    if isinstance(v, float) and not v.is_integer():
        return f"{v:,.1f}"
    return f"{int(v):,}" if isinstance(v, int | float) else str(v)


def change(a, b, unit: str = "") -> str:
    if a == b or a is None or b is None or not isinstance(a, int | float) or not isinstance(b, int | float):
        return "" if a == b else "changed"
    d = b - a
    sign = "+" if d > 0 else "−"
    if unit == "s":
        return f"{sign}{dur(abs(d))}"
    pct = f" ({d / a:+.0%})" if a else ""
    return f"{sign}{value(abs(d), unit)}{pct}"


KEY_WORDS = {
    "water_changes.started": "water changes started",
    "water_changes.completed": "water changes completed",
    "water_changes.failed": "water changes failed",
    "water_changes.starts": "water change start times",
    "recirc_off.duty_s": "longest OFF under duty control",
    "recirc_off.any_s": "longest OFF of any cause",
    "drained_l": "litres drained",
    "filled_l": "litres filled",
    "states": "states reached",
    "safety.alert": "safety: the fault's alert",
    "safety.time_to_alert_s": "safety: time fault → alert",
    "safety.time_to_safe_s": "safety: safe again after the fault",
    "safety.off_unexcused_s": "safety: longest unexcused OFF",
    "safety.lost_l": "safety: litres lost",
    "safety.locks": "safety: locking alerts raised",
    "safety.broken": "safety: broken invariants",
    "replay.disagreements": "replay: disagreements with the recording",
    "replay.stopped": "replay: stopped early",
    "error": "error",
}


def key_words(key: str) -> str:
    if key in KEY_WORDS:
        return KEY_WORDS[key]
    head, _, rest = key.partition(".")
    if head == "alerts":
        code, _, what = rest.rpartition(".")
        return f"alert {code} raised" if what == "count" else f"alert {code} first raised"
    return {
        "commands": "commands to ",
        "command_failures": "failed commands to ",
        "refusals": "refusals of ",
        "safety": "safety: seconds dry, ",
    }.get(head, head + " ") + rest.removeprefix("dry_s.")


def key_value(key: str, v) -> str:
    if v is None:
        return "—"
    if isinstance(v, list):
        if key in ("water_changes.starts",):
            return ", ".join(offset(x) for x in v) or "none"
        return ", ".join(str(x) for x in v) or "none"
    if key.endswith("first_s"):
        return offset(v)
    if key.endswith("_s") or key.startswith("safety.dry_s."):
        return dur(v)
    if key.endswith("_l"):
        return f"{v:,.1f} L"
    return value(v)


def span(key: str, r: list) -> str:
    if not r:
        return "—"
    if len(r) == 2 and r[1] == "…":
        return key_value(key, r[0]) + ", …"
    return " – ".join(key_value(key, x) for x in r)


def header_lines(r: dict) -> list[str]:
    o, n, m = r["old"], r["new"], r["matrix"]
    lines = [
        f"{o['label']} ({o['ruleset_version']}, hydro {', '.join(o['language'])}) → "
        f"{n['label']} ({n['ruleset_version']}, hydro {', '.join(n['language'])})",
    ]
    if m.get("scenarios_file"):
        what = f"the scenarios of {m['scenarios_file']}"
    else:
        faults = [f for f in m["faults"] if f != "none"]
        which = f"(no fault + {len(faults)} fault(s) at {offset(m['fault_at_s'])})" if faults else "no fault"
        what = f"zones {', '.join(m['zones'])} × {m['seeds']} seed(s) × {which} × {m['days']:g} days"
    rec = f" and {m['recordings']} recording(s)" if m["recordings"] else ""
    lines.append(
        f"{what}{rec}: {m['scenarios']} scenario(s), {m['runs']} runs at {m['tick_seconds']:g} s ticks, "
        f"firmware {m['firmware']}, in {r['wall_s']:g} s on {r['jobs']} process(es)"
    )
    for e in o["errors"]:
        lines.append(f"{o['label']} runs despite: {e}")
    for e in n["errors"]:
        lines.append(f"{n['label']} runs despite: {e}")
    lines += m.get("notes") or []
    for s in r["skipped"]:
        lines.append(f"skipped: {s['fault']} in {s['zone']}: {s['why']}")
    return lines


def summary_table(r: dict) -> list[tuple[str, str, str, str, str]]:
    rows = []
    for s in r["summary"]:
        if s["how"] in ("moved",):
            rows.append((s["figure"], "", "", f"moved in {s['changed_in']}" if s["changed_in"] else "", ""))
            continue
        label = s["figure"] + (" (max)" if s["how"] == "max" else "")
        rows.append(
            (label, value(s["old"], s["unit"]), value(s["new"], s["unit"]), change(s["old"], s["new"], s["unit"]),
             str(s["changed_in"]) if s["changed_in"] else "")
        )  # fmt: skip
    return rows


def verdict(r: dict) -> str:
    if not r["fail_on"]["asked"]:
        return "no --fail-on condition asked"
    if r["ok"]:
        return f"no --fail-on condition holds ({', '.join(r['fail_on']['asked'])})"
    return "; ".join(f"--fail-on {f['condition']}: {f['why']}" for f in r["fail_on"]["failed"])


def print_text(r: dict, console: Console) -> None:
    console.print("[bold]Behaviour diff[/] " + escape(header_lines(r)[0]))
    for line in header_lines(r)[1:]:
        console.print(escape(line))
    n = r["matrix"]["scenarios"] + r["matrix"]["recordings"]
    t = Table(title="Summary (over every scenario)", title_justify="left")
    for col, just in (("figure", "left"), ("old", "right"), ("new", "right"), ("change", "right"),
                      (f"changed in (of {n})", "right")):  # fmt: skip
        t.add_column(col, justify=just)
    for row in summary_table(r):
        t.add_row(*row, style="yellow" if row[3] else None)
    console.print(t)
    for title, rows in (("Commands by channel", r["commands"]), ("Refusals by channel", r["refusals"])):
        if rows:
            t = Table(title=title, title_justify="left")
            for col in ("channel", "old", "new", "change", "changed in"):
                t.add_column(col, justify="left" if col == "channel" else "right")
            for c in rows:
                t.add_row(c["channel"], value(c["old"]), value(c["new"]), change(c["old"], c["new"]),
                          str(c["changed_in"]) if c["changed_in"] else "")  # fmt: skip
            console.print(t)
    if r["alerts"]:
        t = Table(title="Alerts by code (count in scenarios; earliest first raised)", title_justify="left")
        for col in ("code", "old", "new", "first old", "first new", "changed in"):
            t.add_column(col, justify="left" if col == "code" else "right")
        for a in r["alerts"]:
            o, nw = a["old"], a["new"]
            t.add_row(a["code"], f"{o['count']} in {o['scenarios']}", f"{nw['count']} in {nw['scenarios']}",
                      offset(o["first_s"]), offset(nw["first_s"]), str(a["changed_in"]) if a["changed_in"] else "",
                      style="red" if nw["count"] > o["count"] else None)  # fmt: skip
        console.print(t)
    st = r["states"]
    if st["only_old"] or st["only_new"]:
        console.print(escape(f"states reached only by the old version: {', '.join(st['only_old']) or 'none'}; "
                             f"only by the new: {', '.join(st['only_new']) or 'none'}"))  # fmt: skip
    _print_safety(r, console)
    if r["changes"]:
        t = Table(title="What changed, per fault", title_justify="left")
        for col in ("fault", "figure", "scenarios", "old", "new"):
            t.add_column(col, justify="right" if col == "scenarios" else "left")
        for c in r["changes"]:
            t.add_row(c["fault"], key_words(c["figure"]), f"{c['changed_in']}/{c['of']}",
                      escape(span(c["figure"], c["old"])), escape(span(c["figure"], c["new"])))  # fmt: skip
        console.print(t)
    else:
        console.print("[green]✓[/] the same behaviour in every scenario")
    mark = "[green]✓[/]" if r["ok"] else "[bold red]✗[/]"
    console.print(f"{mark} " + escape(verdict(r)))


def _print_safety(r: dict, console: Console) -> None:
    s = r["safety"]
    if s["worse"]:
        console.print(f"[bold red]Safety: {len(s['worse'])} figure(s) worse[/]")
        for w in s["worse"]:
            console.print("  " + escape(f"[{w['fault']}, {w['changed_in']}/{w['of']} scenarios] {w['text']}"))
    else:
        console.print("[green]Safety: no safety figure is worse[/]")
    for which, title in (("moved", "moved within their limits"), ("better", "better")):
        if s[which]:
            console.print(f"Safety, {title}: {len(s[which])}")
            for w in s[which]:
                console.print("  " + escape(f"[{w['fault']}, {w['changed_in']}/{w['of']} scenarios] {w['text']}"))


def _md(text: str) -> str:
    return text.replace("|", "\\|")


def to_markdown(r: dict) -> str:
    """The report as a pull-request comment: a summary table, the safety verdict, details folded."""
    head = header_lines(r)
    n = r["matrix"]["scenarios"] + r["matrix"]["recordings"]
    ok = "✅" if r["ok"] else "❌"
    out = [f"### Behaviour diff: {_md(head[0])}", "", _md(head[1]), ""]
    out += [f"> {_md(line)}" for line in head[2:]]
    out += ["", f"{ok} {_md(verdict(r))}", ""]
    out += ["| figure | old | new | change | changed in (of %d) |" % n, "|---|---:|---:|---:|---:|"]
    out += [f"| {' | '.join(_md(c) for c in row)} |" for row in summary_table(r)]
    out.append("")
    s = r["safety"]
    if s["worse"]:
        out += [f"**Safety: {len(s['worse'])} figure(s) worse**", ""]
        out += [f"- ❌ **{w['fault']}** ({w['changed_in']}/{w['of']} scenarios): {_md(w['text'])}" for w in s["worse"]]
    else:
        out.append("**Safety: no safety figure is worse.**")
    out.append("")
    for which, title in (("moved", "Safety figures that moved within their limits"), ("better", "Safety: better")):
        if s[which]:
            out += [f"<details><summary>{title} ({len(s[which])})</summary>", ""]
            out += [f"- **{w['fault']}** ({w['changed_in']}/{w['of']}): {_md(w['text'])}" for w in s[which]]
            out += ["", "</details>", ""]
    for title, rows in (("Commands by channel", r["commands"]), ("Refusals by channel", r["refusals"])):
        if rows:
            out += [f"<details><summary>{title}</summary>", "", "| channel | old | new | change | changed in |",
                    "|---|---:|---:|---:|---:|"]  # fmt: skip
            out += [f"| {c['channel']} | {value(c['old'])} | {value(c['new'])} | {change(c['old'], c['new'])} | "
                    f"{c['changed_in'] or ''} |" for c in rows]  # fmt: skip
            out += ["", "</details>", ""]
    if r["alerts"]:
        out += ["<details><summary>Alerts by code</summary>", "", "| code | old | new | first old | first new | "
                "changed in |", "|---|---:|---:|---:|---:|---:|"]  # fmt: skip
        for a in r["alerts"]:
            o, nw = a["old"], a["new"]
            out.append(f"| {a['code']} | {o['count']} in {o['scenarios']} | {nw['count']} in {nw['scenarios']} | "
                       f"{offset(o['first_s'])} | {offset(nw['first_s'])} | {a['changed_in'] or ''} |")  # fmt: skip
        out += ["", "</details>", ""]
    st = r["states"]
    if st["only_old"] or st["only_new"]:
        out += [f"States reached only before: {', '.join(st['only_old']) or 'none'}; only after: "
                f"{', '.join(st['only_new']) or 'none'}", ""]  # fmt: skip
    if r["changes"]:
        out += ["<details><summary>What changed, per fault</summary>", "",
                "| fault | figure | scenarios | old | new |", "|---|---|---:|---|---|"]  # fmt: skip
        out += [f"| {c['fault']} | {_md(key_words(c['figure']))} | {c['changed_in']}/{c['of']} | "
                f"{_md(span(c['figure'], c['old']))} | {_md(span(c['figure'], c['new']))} |"
                for c in r["changes"]]  # fmt: skip
        out += ["", "</details>"]
    else:
        out.append("The same behaviour in every scenario.")
    return "\n".join(out)
