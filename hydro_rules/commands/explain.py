"""`hydro-rules explain SITE --zone Z --at T`: what the rules saw at one moment of a dry run."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape

from ..cli import EXIT_OK, UsageError
from ..lang.activity import Activity, zone_activity
from ..lang.units import format_duration
from ..sim.times import DEFAULT_START, iso, parse_time
from ..twin import parse_duration
from .dry_run import add_firmware_option, add_run_options, start_of

MARK = {
    "holds": "[green]✓ holds        [/]",
    "does not hold": "[dim]✗ does not hold[/]",
    "unknown": "[yellow]? unknown      [/]",
    "inactive": "[dim]– inactive     [/]",
}


def register(sub) -> None:
    p = sub.add_parser(
        "explain",
        help="explain which rules held at a moment of a dry run, with the values they saw",
        description="Run the dry run up to --at and explain, for one zone, every transition, "
        "alert, rule and guard at that moment.",
    )
    add_run_options(p)
    add_firmware_option(p)
    p.add_argument(
        "--at",
        required=True,
        metavar="T",
        help="a time into the run (6d9h, 36h) or an ISO date-time (2026-01-08T09:00Z)",
    )
    p.set_defaults(run=execute)


def _moment(text: str, start: float) -> float:
    try:
        return start + parse_duration(text)
    except ValueError:
        pass
    try:
        return parse_time(text)
    except ValueError:
        raise UsageError(f"--at {text!r} is neither a duration like 6d9h nor an ISO date-time") from None


def execute(args) -> int:
    from ..sim.dryrun import run
    from ..sim.explain import explain_tick
    from ..twin import FaultError
    from ._common import load_site, zone_uids

    loaded = load_site(args.site)
    zones = zone_uids(loaded, args.zone)
    if args.zone is None and len(zones) > 1:
        raise UsageError("say which zone with --zone: " + ", ".join(zones))
    start = start_of(args) or parse_time(DEFAULT_START)
    at = _moment(args.at, start)
    if at < start:
        raise UsageError(f"--at {iso(at)} is before the start of the run {iso(start)}")
    found = []

    def capture(zr, now):
        if not found and now >= at - 1e-6:
            found.append(explain_tick(zr, now, start))

    days = (at - start) / 86400.0 + args.tick / 86400.0
    try:
        run(
            loaded.ruleset,
            zones,
            days=days,
            tick_s=args.tick,
            seed=args.seed,
            start=start,
            faults=args.fault,
            stop_at=at,
            before_tick=capture,
            resets=args.reset,
            firmware=args.firmware,
        )
    except FaultError as e:
        raise UsageError(str(e)) from None
    e = found[0]
    zone = next((z for s in loaded.ruleset.sites for z in s.zones if z.uid == e.zone), None)
    if zone is not None:
        mark_inactive(e, zone_activity(loaded.ruleset, zone))
    console = Console(highlight=False, soft_wrap=True)
    console.print(f"[bold]Zone {escape(e.zone)}[/] at {e.when} ({format_duration(e.at - e.start)} into the dry run)")
    for line in e.head:
        console.print(f"  {escape(line)}")
    for sec in e.sections:
        console.print()
        console.print(f"[bold]{escape(sec.title)}[/]")
        for ln in sec.lines:
            if ln.verdict == "info":
                console.print(f"  [bold]{escape(ln.title):<14}[/] {escape(ln.detail)}")
            else:
                console.print(f"  {MARK[ln.verdict]} [bold]{escape(ln.title)}[/]  {escape(ln.detail)}")
    return EXIT_OK


def mark_inactive(e, act: Activity) -> None:
    """Lines of what is inactive in the zone (it binds no channel they need) say so and why,
    instead of what they would evaluate to: the engine leaves them out of that zone."""
    why = {(i.kind, i.name): i.why for i in act.inactive}
    transitions = {}  # (state, target) -> why, for the first inactive transition of that pair
    for i in act.inactive:
        if i.kind == "transition":
            src, _, rest = i.name.partition(" -> ")
            transitions.setdefault((src.split(".", 1)[1], rest.rsplit(" #", 1)[0]), i.why)
    for sec in e.sections:
        for ln in sec.lines:
            if sec.title == "Rules":
                reason = why.get(("rule", ln.title))
            elif sec.title == "Alerts":
                reason = why.get(("alert", ln.title.split(" on ", 1)[0]))
            elif sec.title.startswith("Transitions"):
                src, _, target = ln.title.partition(" → ")
                reason = transitions.get((src, target))
            elif sec.title.startswith("Guards"):
                reason = why.get(("guard", ln.title.split(": ", 1)[-1]))
            else:
                reason = None
            if reason is not None:
                ln.verdict, ln.detail = "inactive", f"inactive in this zone: {reason}"
