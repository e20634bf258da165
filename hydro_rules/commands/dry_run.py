"""`hydro-rules dry-run SITE`: the rules against the digital twin, days in seconds."""

from __future__ import annotations

import json
import sys

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from ..cli import EXIT_OK, EXIT_PROBLEMS, UsageError
from ..sim.times import parse_time
from ._common import duration, err_console, load_site, positive_float, zone_uids


def add_run_options(p) -> None:
    """Options shared by dry-run and explain."""
    p.add_argument("site", metavar="SITE", help="rule-set directory with a site")
    p.add_argument("--zone", metavar="Z", help="only this zone (uid)")
    p.add_argument("--tick", type=duration, default=60.0, metavar="D", help="time step, default 1m")
    p.add_argument("--seed", type=int, default=0, help="seed of the twin's noise (default 0)")
    p.add_argument("--start", metavar="ISO", help="start time, default 2026-01-01T00:00:00Z")
    p.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="KIND@OFFSET[:ARGS]",
        help="inject a fault, e.g. overcurrent@6d:pump_recirc (repeatable)",
    )
    p.add_argument(
        "--reset",
        action="append",
        default=[],
        metavar="OFFSET[:WHY]",
        type=reset_spec,
        help="an operator safety reset at OFFSET into the run, e.g. 4d:pump replaced (repeatable)",
    )


def add_firmware_option(p) -> None:
    """--firmware: the node firmware the digital twin models (dry-run, test)."""
    from ..twin import DEFAULT_FIRMWARE, FIRMWARES

    p.add_argument(
        "--firmware",
        choices=FIRMWARES,
        default=DEFAULT_FIRMWARE,
        help="node firmware of the twin: hydro2 (default; an OFF holds until switched on, a reboot opens every "
        "relay) or bounded-off (an OFF with a duration ends by itself, a reboot leaves fail-safe defaults)",
    )


def register(sub) -> None:
    p = sub.add_parser(
        "dry-run",
        help="run a site's rules against the digital twin in accelerated time",
        description="Run the engine and the digital twin together for N days and show what "
        "the rules did: transitions, commands, alerts and a summary per zone.",
    )
    add_run_options(p)
    add_firmware_option(p)
    p.add_argument(
        "--pump-flow",
        choices=("rate", "flag"),
        default="rate",
        help="what the twin's pump nodes report of their flow: rate (L/min, default) or flag (flow_present 0/1, "
        "as hydro 2.0 pump nodes do; pumps that declare a flow_flag)",
    )
    p.add_argument("--days", type=positive_float, required=True, metavar="N", help="how many days to simulate")
    p.add_argument("--json", action="store_true", help="print one JSON document instead of the timeline")
    p.add_argument(
        "--timeline",
        choices=("brief", "full", "none"),
        default="brief",
        help="brief counts routine commands (recirculation duty, renewals of a held OFF) per day (default)",
    )
    p.add_argument("--fail-on-alert", action="store_true", help="exit 1 when any alert was raised")
    p.add_argument(
        "--step",
        choices=("event", "fixed"),
        default="event",
        help="event (default): evaluate only the ticks where something can happen (the engine's horizon, the "
        "twin's next change); fixed: every tick, the reference (both decide the same)",
    )
    p.set_defaults(run=execute)


def warn_coarse_tick(rs, zones: list[str], tick: float) -> None:
    """A tick as long as an OFF stretch blurs what the rules see; say so, the run goes on."""
    bounds = []
    for uid in zones:
        zone = rs.zone(uid)
        bounds.append(rs.zone_settings(zone)["water_cycle.recirc.max_recirc_off"])
        bounds += [w.max_off_s for w in rs.zone_windows(zone) if w.max_off_s and not w.off]
    shortest = min(bounds)
    if tick > shortest / 4:
        err_console().print(
            f"[yellow]warning:[/] --tick {tick:g} s is long against max_recirc_off ({shortest:g} s): pumps "
            "switch within one tick and readings lag, so alerts may be false or late; a tick of 1m or less "
            "shows what a site does"
        )


def reset_spec(text: str) -> tuple[float, str]:
    offset, _, why = text.partition(":")
    return duration(offset), why.strip() or "operator reset"


def start_of(args) -> float | None:
    if args.start is None:
        return None
    try:
        return parse_time(args.start)
    except ValueError:
        raise UsageError(f"--start {args.start!r} is not an ISO date or date-time") from None


def execute(args) -> int:
    from ..sim import report
    from ..sim.dryrun import run
    from ..twin import FaultError

    loaded = load_site(args.site)
    zones = zone_uids(loaded, args.zone)
    warn_coarse_tick(loaded.ruleset, zones, args.tick)
    ticks = args.days * 86400 / args.tick * len(zones)
    progress = None
    bar = None
    if ticks > 100_000 and sys.stderr.isatty():
        bar = Progress(
            TextColumn("dry run"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TimeRemainingColumn(),
            console=err_console(),
            transient=True,
        )
        task = bar.add_task("run", total=ticks)
        bar.start()

        def progress(done, total):
            bar.update(task, completed=done)

    try:
        result = run(
            loaded.ruleset,
            zones,
            days=args.days,
            tick_s=args.tick,
            seed=args.seed,
            start=start_of(args),
            faults=args.fault,
            progress=progress,
            resets=args.reset,
            firmware=args.firmware,
            pump_flow=args.pump_flow,
            step=args.step,
        )
    except FaultError as e:
        raise UsageError(str(e)) from None
    finally:
        if bar is not None:
            bar.stop()
    if args.json:
        print(json.dumps(result.to_json(), indent=2, ensure_ascii=False))
    else:
        console = Console(highlight=False, soft_wrap=True)
        report.print_run(result, console, args.timeline)
    if args.fail_on_alert and any(z.alerts for z in result.zones):
        return EXIT_PROBLEMS
    return EXIT_OK
