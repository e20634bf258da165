"""A dry run for people: the timeline of each zone and its summary."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape

from ..lang import units as U
from .dryrun import DryRun, ZoneRun
from .times import minute

STYLE = {
    "transition": "bold cyan",
    "command": "white",
    "alert": "bold red",
    "resolved": "green",
    "event": "magenta",
    "refused": "yellow",
    "held": "yellow",
    "response": "red",
}


def when(t: float, tz: str | None = None) -> str:
    """`2026-01-08 10:00` in the time zone `tz` (a site's `timezone`; UTC when None)."""
    return minute(t, tz)


def timeline_lines(z: ZoneRun, mode: str = "brief") -> list[tuple[str, str, str]]:
    """(time, kind, text) of each timeline entry to show; `brief` sums up routine duty commands per day."""
    out, routine_day, routine_count = [], None, 0
    tz = z.zone.timezone

    def flush():
        nonlocal routine_count
        if routine_count:
            what = "routine command(s) that day: recirculation duty, pumps held off, runs renewed"
            out.append((routine_day + "      ", "command", f"… {routine_count} {what}"))
            routine_count = 0

    for e in z.timeline:
        if mode == "brief" and e.routine:
            day = when(e.at, tz)[:10]
            if day != routine_day:
                flush()
                routine_day = day
            routine_count += 1
            continue
        out.append((when(e.at, tz), e.kind, e.text))
    flush()
    out.sort(key=lambda x: x[0])
    return out


def summary_lines(z: ZoneRun) -> list[tuple[str, str]]:
    s = z.summary()
    limit = z.program.S["water_cycle.recirc.max_recirc_off"] / 60.0 if z.program else None
    alerts = ", ".join(f"{code} ×{n}" for code, n in s["alerts_by_code"].items()) or "none"
    commands = (
        "; ".join(
            f"{ch}: " + ", ".join(f"{n} {outcome}" for outcome, n in c.items())
            for ch, c in s["commands_by_channel"].items()
        )
        or "none"
    )
    off = f"longest OFF under duty control {s['max_recirc_off_minutes']:g} min"
    if limit is not None:
        off += f" (max_recirc_off {limit:g} min)"
    off += f"; any cause {s['max_recirc_off_any_cause_minutes']:g} min"
    return [
        (
            "water changes",
            f"{s['water_changes_started']} started, {s['water_changes_completed']} completed, "
            f"{s['water_changes_failed']} failed",
        ),
        ("water", f"drained {s['drained_l']:g} L, filled {s['filled_l']:g} L"),
        ("recirculation", off),
        ("alerts", alerts),
        ("commands", commands),
        ("final state", ", ".join(f"{m}: {st}" for m, st in s["final_state"].items())),
    ]


def print_run(r: DryRun, console: Console, timeline: str = "brief") -> None:
    days = (r.end - r.start) / 86400.0
    console.print(
        f"[bold]Dry run[/] of {escape(r.ruleset_version)}: {len(r.zones)} zone(s), {days:g} days from "
        f"{when(r.start, r.timezone)} {r.timezone}, tick {U.format_duration(r.tick_s)}, seed {r.seed}, "
        f"firmware {r.firmware}"
    )
    console.print("Faults: " + (", ".join(escape(f) for f in r.faults) or "none"))
    for z in r.zones:
        console.print()
        console.print(f"[bold]Zone {escape(z.zone.uid)}[/] {escape(z.zone.title)}")
        if timeline != "none":
            for t, kind, text in timeline_lines(z, timeline):
                console.print(f"  {t}  [{STYLE.get(kind, 'white')}]{kind:<10}[/] {escape(text)}")
        console.print("  [bold]Summary[/]")
        for label, value in summary_lines(z):
            console.print(f"    {label:<14} {escape(value)}")
    ticks = sum(z.ticks for z in r.zones)
    fine = sum(z.fine_steps for z in r.zones)
    eng = sum(z.engine_s for z in r.zones)
    twin = sum(z.twin_s for z in r.zones)
    total = max(r.wall_s, 1e-9)
    console.print()
    steps = f" and {fine:,} fine steps" if fine else ""
    console.print(
        f"[dim]{ticks:,} ticks{steps} in {r.wall_s:.1f} s (engine {eng / total:.0%}, twin {twin / total:.0%})[/]"
    )
