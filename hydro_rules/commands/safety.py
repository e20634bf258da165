"""`hydro-rules safety SITE`: every fault of the twin at several moments of the water cycle, invariants checked."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from ..cli import EXIT_OK, EXIT_PROBLEMS, UsageError
from ..sim.times import dur
from ._common import duration, err_console, load_site, positive_float, zone_uids
from .dry_run import add_firmware_option


def register(sub) -> None:
    p = sub.add_parser(
        "safety",
        help="run every twin fault at several moments of the water cycle and check the safety invariants",
        description="For each zone and seed, find the moments of the water cycle in a fault-free run "
        "(between changes, mid-drain, mid-fill, mid-stabilize), inject every fault kind of the twin at "
        "each and check on the twin's truth: pH/EC within bands, no pump runs dry, the NC pump never off "
        "past max_recirc_off without a reason, no water into a leaking tank, every fault raises its "
        "alert, no exception. Exit 0 when every invariant holds, 1 when any breaks. See docs/safety.md.",
    )
    p.add_argument("site", metavar="SITE", help="rule-set directory with a site")
    p.add_argument("--zone", metavar="Z", help="only this zone (uid)")
    p.add_argument("--seeds", type=_count, default=3, metavar="N", help="seeds per cell (default 3)")
    p.add_argument("--days", type=positive_float, default=12.0, metavar="D", help="days per run (default 12)")
    p.add_argument("--tick", type=duration, default=60.0, metavar="D", help="time step, default 1m")
    add_firmware_option(p)
    p.add_argument("--faults", type=_names, metavar="K1,K2", help="only these faults (ids or kinds)")
    p.add_argument("--moments", type=_names, metavar="M1,M2", help="only these moments")
    p.add_argument(
        "--jobs", type=_count, default=None, metavar="N", help="processes (default: every core, os.cpu_count())"
    )
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print one JSON document")
    out.add_argument("--format", choices=("text", "markdown"), default="text", help="text (default) or markdown")
    p.set_defaults(run=execute)


def _count(text: str) -> int:
    import argparse

    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if v < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return v


def _names(text: str) -> list[str]:
    return [n.strip() for n in text.split(",") if n.strip()]


def _load(site: str):
    """The site's rule set; one whose only errors are about safety runs anyway, its errors shown first."""
    from ..lang import render
    from ..lang.loader import MANIFEST, load
    from ..sim.safety import runnable

    loaded = load(Path(site)) if (Path(site) / MANIFEST).is_file() else None
    if loaded is None or not loaded.diags.errors or not runnable(loaded):
        return load_site(site)
    console = err_console()
    render.to_human(loaded.diags.sorted(), loaded.sources, console)
    console.print(f"hydro-rules safety: {site} has errors about safety; running the matrix anyway to show what they do")
    if not loaded.ruleset.zones:
        raise UsageError(f"{site} declares no site with zones")
    return loaded


def execute(args) -> int:
    from ..sim import safety

    loaded = _load(args.site)
    zones = zone_uids(loaded, args.zone)
    try:
        safety.select_faults(args.faults)
        safety.select_moments(args.moments)
    except safety.SafetyError as e:
        raise UsageError(str(e)) from None
    bar = None
    progress = None
    if sys.stderr.isatty():
        bar = Progress(
            TextColumn("safety {task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total} runs"),
            TimeRemainingColumn(),
            console=err_console(),
            transient=True,
        )
        bar.start()
        tasks: dict = {}

        def progress(phase, done, total):
            if phase not in tasks:
                tasks[phase] = bar.add_task(phase, total=total)
            bar.update(tasks[phase], completed=done)

    try:
        report = safety.run_matrix(
            args.site,
            zones=zones,
            seeds=args.seeds,
            days=args.days,
            tick_s=args.tick,
            firmware=args.firmware,
            faults=args.faults,
            moments=args.moments,
            jobs=args.jobs or os.cpu_count() or 1,
            progress=progress,
        )
    except safety.SafetyError as e:
        raise UsageError(str(e)) from None
    finally:
        if bar is not None:
            bar.stop()
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
    elif args.format == "markdown":
        print(to_markdown(report))
    else:
        wide = None if sys.stdout.isatty() else 160  # a pipe or a file gets the whole table
        print_text(report, Console(highlight=False, soft_wrap=True, width=wide))
    return EXIT_OK if report["ok"] else EXIT_PROBLEMS


# ---- rendering ------------------------------------------------------------------------------------
def offset(s: float) -> str:
    """Time into the run: +2d 00:12."""
    d, rest = divmod(int(s), 86400)
    return f"+{d}d {rest // 3600:02d}:{rest % 3600 // 60:02d}"


def span(v) -> str:
    return "—" if not v else (f"{v[0]:.2f}" if v[0] == v[1] else f"{v[0]:.2f}–{v[1]:.2f}")


def alert_cell(c: dict) -> str:
    status = c["alert"]
    if status == "raised":
        return dur(c["time_to_alert_s"])
    if status == "missing":
        return "MISSING"
    if status == "not exercised":
        return "not exercised"
    return dur(c["time_to_alert_s"]) if c["time_to_alert_s"] is not None else "—"


def verdict_cell(c: dict) -> str:
    return "ok" if not c["broken"] else "BROKEN: " + ", ".join(c["broken"])


def header_lines(r: dict) -> list[str]:
    zones = ", ".join(z["zone"] for z in r["zones"])
    b = r["bands"]
    lim = r["limits"]
    return [
        f"safety matrix of {r['site']} ({r['ruleset_version']}): zones {zones}; {len(r['faults'])} faults × "
        f"{len(r['moments'])} moments × {r['seeds']} seed(s), {r['days']:g} days at {r['tick_seconds']:g} s ticks, "
        f"firmware {r['firmware']}: {r['runs']} runs in {r['wall_s']:g} s on {r['jobs']} process(es)",
        f"bands: pH {b['ph']}, EC {b['ec']} of the recipe phase's targets (not judged below "
        f"{b['not_judged_below_level_pct']:g} % level); a pump may run dry {lim['dry_allowance_s']:g} s per "
        f"episode; leak alerts: {', '.join(lim['leak_alerts']) or 'none'}",
    ]


def broken_line(v: dict) -> str:
    from ..sim.safety import INVARIANTS

    seed = f" seed {v['seed']}"
    where = f"{v['fault']} at {v['moment']}" if v["fault"] != "none" else "no fault (baseline)"
    return (
        f"{v['zone']}: {where},{seed}, {v['at']} ({offset(v['offset_s'])}): "
        f"{v['invariant']} ({INVARIANTS[v['invariant']]}) — {v['reason']}"
    )


def print_text(r: dict, console: Console) -> None:
    for line in header_lines(r):
        console.print(escape(line))
    for z in r["zones"]:
        t = Table(title=f"zone {z['zone']}", title_justify="left", show_lines=False)
        for col, just in (
            ("fault", "left"),
            ("moment", "left"),
            ("alert after", "right"),
            ("safe after", "right"),
            ("pH", "right"),
            ("EC", "right"),
            ("lost L", "right"),
            ("invariants", "left"),
        ):
            t.add_column(col, justify=just, no_wrap=col != "invariants")
        for c in z["cells"]:
            style = "red" if c["broken"] else None
            t.add_row(
                c["fault"],
                c["moment"],
                alert_cell(c),
                dur(c["time_to_safe_s"]),
                span(c["ph"]),
                span(c["ec"]),
                f"{c['lost_l']:.1f}",
                verdict_cell(c),
                style=style,
            )
        console.print(t)
    for s in r["skipped"]:
        what = s.get("fault") or f"moment {s.get('moment')}"
        console.print(escape(f"skipped in {s['zone']}: {what}: {s['why']}"), style="yellow")
    if r["broken"]:
        console.print(f"[bold red]{len(r['broken'])} broken invariant(s):[/]")
        for v in r["broken"]:
            console.print("  " + escape(broken_line(v)))
        console.print("[bold red]✗ unsafe:[/] " + escape(summary(r)))
    else:
        console.print("[green]✓[/] every invariant holds in every run")


def summary(r: dict) -> str:
    """Which invariants broke, for which faults: one line."""
    by: dict = {}
    for v in r["broken"]:
        by.setdefault(v["invariant"], set()).add(v["fault"])
    return "; ".join(f"{inv}: {', '.join(sorted(f))}" for inv, f in sorted(by.items()))


def to_markdown(r: dict) -> str:
    out = ["### Safety matrix", ""] + [line.replace("|", "\\|") for line in header_lines(r)] + [""]
    for z in r["zones"]:
        out += [
            f"#### zone `{z['zone']}`",
            "",
            "| fault | moment | alert after | safe after | pH | EC | lost L | invariants |",
            "|---|---|---:|---:|---:|---:|---:|---|",
        ]
        for c in z["cells"]:
            v = verdict_cell(c)
            out.append(
                f"| {c['fault']} | {c['moment']} | {alert_cell(c)} | {dur(c['time_to_safe_s'])} | {span(c['ph'])} | "
                f"{span(c['ec'])} | {c['lost_l']:.1f} | {'✅ ok' if v == 'ok' else '❌ ' + v[8:]} |"
            )
        out.append("")
    if r["broken"]:
        out += [f"**{len(r['broken'])} broken invariant(s)**", ""]
        out += [f"- {broken_line(v)}".replace("|", "\\|") for v in r["broken"]]
    else:
        out.append("**Every invariant holds in every run.**")
    return "\n".join(out)
