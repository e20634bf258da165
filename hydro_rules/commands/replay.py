"""`hydro-rules replay SITE --zone Z --from T1 --to T2 (--database URL | --csv FILE)`: the rules over a
recorded run, and where they disagree with what was recorded.

Exit codes: 0 the replay agrees with the recording, 1 it disagrees (or stopped at a command the
recording does not show), 2 usage (bad arguments, a recording that cannot be read).
"""

from __future__ import annotations

import json

from rich.console import Console
from rich.markup import escape

from ..cli import EXIT_OK, EXIT_PROBLEMS, UsageError
from ._common import duration, load_site
from .export import add_window_options, database_url, read_recording

OPEN_LOOP = (
    "Open loop: the engine reads the recorded readings as they were; what its own commands would have done "
    "to them is not simulated, so the replay stops at the first command the recording does not show."
)


def register(sub) -> None:
    p = sub.add_parser(
        "replay",
        help="run the rules over a zone's recorded telemetry and show where they disagree with the recording",
        description="Run the engine over one zone's recorded samples, command answers and decision log (from "
        "the database, or a CSV written by `hydro-rules export`), at the instants the site daemon evaluated. "
        "Shows a timeline and summary like dry-run, and where replayed and recorded decisions disagree. "
        "Open-loop: stops at the first command the recording does not show. Exit 0 agree, 1 disagree, 2 usage.",
    )
    add_window_options(p, required=False)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--database", metavar="URL", help="read the recording from this PostgreSQL database")
    src.add_argument("--csv", metavar="FILE", help="read the recording from a CSV file (hydro-rules export)")
    p.add_argument("--tick", type=duration, default=1.0, metavar="D", help="the daemon's tick, default 1s")
    p.add_argument(
        "--tolerance",
        type=duration,
        metavar="D",
        help="how far apart a replayed and a recorded decision may be and still agree (default two ticks)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON document instead of the timeline")
    p.add_argument(
        "--timeline",
        choices=("brief", "full", "none"),
        default="brief",
        help="brief counts routine commands (recirculation duty, renewals of a held OFF) per day (default)",
    )
    p.set_defaults(run=execute)


def execute(args) -> int:
    from ..sim.recording import RecordingError, read_csv
    from ..sim.replay import replay
    from .export import window

    loaded = load_site(args.site)
    rs = loaded.ruleset
    if args.csv:
        try:
            rec = read_csv(args.csv)
        except RecordingError as e:
            raise UsageError(str(e)) from None
        zone = args.zone or rec.zone
        if zone != rec.zone:
            raise UsageError(f"{args.csv} records zone {rec.zone!r}, not {zone!r}")
        start = end = None
        if args.start or args.end:
            start, end = _given_window(args, rec)
    else:
        if not (args.zone and args.start and args.end):
            raise UsageError("with --database, give --zone, --from and --to")
        zone = args.zone
        start, end = window(args)
        rec = read_recording(database_url(args), zone, start, end)
    if rs.zone(zone) is None:
        raise UsageError(f"no zone {zone!r} in {args.site}; zones: {', '.join(z.uid for z in rs.zones)}")
    try:
        result = replay(rs, rec, zone, start=start, end=end, tick_s=args.tick, tolerance_s=args.tolerance)
    except ValueError as e:
        raise UsageError(str(e)) from None
    if args.json:
        print(json.dumps(result.to_json(), indent=2, ensure_ascii=False, default=str))
    else:
        print_replay(result, Console(highlight=False, soft_wrap=True), args.timeline)
    return EXIT_OK if result.agrees else EXIT_PROBLEMS


def _given_window(args, rec) -> tuple[float, float]:
    """--from/--to over a CSV: each defaults to the recording's own first / last instant."""
    from ..sim.recording import parse_iso

    span = rec.span() or (0.0, 0.0)
    out = []
    for name, text, default in (("--from", args.start, span[0]), ("--to", args.end, span[1] + 1e-3)):
        if text is None:
            out.append(default)
            continue
        try:
            out.append(parse_iso(text))
        except ValueError:
            raise UsageError(f"{name} {text!r} is not an ISO 8601 time (e.g. 2026-11-27T03:00:00Z)") from None
    return out[0], out[1]


def print_replay(r, console: Console, timeline: str = "brief") -> None:
    from ..lang import units as U
    from ..sim.report import STYLE, summary_lines, timeline_lines, when

    z = r.zone_run
    tz = z.zone.timezone
    n = r.counts
    console.print(
        f"[bold]Replay[/] of {escape(r.ruleset_version)} on zone {escape(r.zone)}: {when(r.start, tz)} → "
        f"{when(r.end, tz)}, {n['samples']} samples, {n['commands']} commands, {n['decision_rows']} decision rows"
    )
    console.print(f"[yellow]{OPEN_LOOP}[/]")
    tol = U.format_duration(r.tolerance_s)
    console.print(f"Recorded side: the {r.recorded_side}; a replayed decision within {tol} of a recorded one agrees")
    for w in r.warnings:
        console.print(f"[yellow]warning:[/] {escape(w)}")
    console.print()
    console.print(f"[bold]Zone {escape(z.zone.uid)}[/] {escape(z.zone.title)}")
    if timeline != "none":
        for t, kind, text in timeline_lines(z, timeline):
            console.print(f"  {t}  [{STYLE.get(kind, 'white')}]{kind:<10}[/] {escape(text)}")
    console.print("  [bold]Summary[/] (the replayed engine's)")
    for label, value in summary_lines(z):
        if label != "water":  # no twin: nothing was drained or filled here
            console.print(f"    {label:<14} {escape(value)}")
    console.print()
    if r.disagreements:
        console.print(f"[bold red]Disagreements[/] ({len(r.disagreements)}):")
        for d in r.disagreements:
            side = "replay only  " if d["side"] == "replay" else "recorded only"
            console.print(f"  {when_iso(d['at'], tz)}  {side}  {d['kind']:<14} {escape(d['text'])}")
    if r.stopped_at is not None:
        s = r.stopped_at
        c = s["decision"]
        console.print(
            f"[bold red]Stopped[/] at {when_iso(s['at'], tz)}: {escape(c['channel'] or '?')} {escape(c['cmd'])} "
            f"{escape(json.dumps(c['params']))}  ← {escape(c['rule'] or '')}"
        )
        console.print(f"  {escape(s['reason'])}")
    if r.agrees:
        console.print(f"[bold green]The replay agrees with the recording[/] ({z.ticks:,} evaluations)")
    console.print(f"[dim]{z.ticks:,} evaluations in {r.wall_s:.1f} s[/]")


def when_iso(text: str, tz) -> str:
    """`2026-11-27 03:12:04` in the zone's time zone."""
    from ..sim.times import local, parse_time

    return local(parse_time(text), tz).strftime("%Y-%m-%d %H:%M:%S")
