"""`hydro-rules log ZONE`: the daemon's decision log of a zone, read from the database.

One line per decision, in the zone's local time: what was decided, the rule that
decided it (with its file:line) and the values it saw. `--around 03:12` answers
"why did the drain pump stop at 03:12?": the decisions ten minutes either side.
Times are ISO 8601 (an offset-less one is in the zone's timezone) or `HH:MM`
(today, in the zone's timezone).
"""

from __future__ import annotations

import json
import re
import sys
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..cli import EXIT_OK, EXIT_PROBLEMS, UsageError
from ..service.clitools import add_config_options, on_database, run, settings_from
from ..store.decisions import KINDS
from ._common import duration

_CLOCK = re.compile(r"(\d{1,2}):(\d{2})(?::(\d{2}))?")


def register(sub) -> None:
    p = sub.add_parser(
        "log",
        help="the daemon's decision log of a zone: what it decided, by which rule, on which values",
        description="Print the decisions the site daemon made for ZONE, oldest first, in the zone's local time. "
        "T is ISO 8601 (without an offset: the zone's timezone) or HH:MM (today, in the zone's timezone). "
        "Without --since or --around: the newest decisions.",
    )
    p.add_argument("zone", metavar="ZONE", help="zone uid, e.g. zn-1")
    p.add_argument("--since", metavar="T", help="from this time on")
    p.add_argument("--until", metavar="T", help="up to this time (exclusive)")
    p.add_argument("--around", metavar="T", help="the decisions around this time (see --window)")
    p.add_argument(
        "--window", type=duration, default=600.0, metavar="D", help="with --around: this long either side (10m)"
    )
    p.add_argument("--channel", metavar="CH", help="one channel's decisions (e.g. pump_drain)")
    p.add_argument("--kind", choices=sorted(KINDS), metavar="K", help=f"one kind: {', '.join(sorted(KINDS))}")
    p.add_argument("--limit", type=int, default=500, metavar="N", help="at most N decisions (500)")
    p.add_argument("--json", action="store_true", help="JSON (the API's shape) instead of lines")
    add_config_options(p)
    p.set_defaults(run=_log)


def _now() -> datetime:
    """The wall clock (what `HH:MM` means today); tests replace it."""
    return datetime.now(UTC)


def zone_tz(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def parse_when(text: str, tz: ZoneInfo, now: datetime) -> datetime:
    """An aware datetime from `HH:MM[:SS]` (today in `tz`), epoch seconds, or ISO 8601 (naive: in `tz`)."""
    raw = text.strip()
    m = _CLOCK.fullmatch(raw)
    if m:
        h, mi, s = int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)
        return datetime.combine(now.astimezone(tz).date(), time(h, mi, s), tzinfo=tz)
    if re.fullmatch(r"\d{9,}(\.\d*)?", raw):
        return datetime.fromtimestamp(float(raw), UTC)
    dt = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=tz)


def _window(args, tz: ZoneInfo, now: datetime) -> tuple[datetime | None, datetime | None]:
    def when(name: str) -> datetime | None:
        value = getattr(args, name)
        if value is None:
            return None
        try:
            return parse_when(value, tz, now)
        except (ValueError, OverflowError, OSError):
            raise UsageError(
                f"--{name} {value!r} is not a time: give ISO 8601 (2026-11-27T03:12) or HH:MM (today, zone time)"
            ) from None

    if args.around is not None:
        if args.since is not None or args.until is not None:
            raise UsageError("--around goes without --since and --until")
        centre = when("around")
        half = timedelta(seconds=args.window)
        return centre - half, centre + half
    since, until = when("since"), when("until")
    if since is not None and until is not None and until <= since:
        raise UsageError("--until must come after --since")
    return since, until


def _errors():
    import asyncpg

    from ..store import DatabaseUnavailable
    from ..store.migrate import MigrationError

    return DatabaseUnavailable, MigrationError, asyncpg.PostgresError, asyncpg.InterfaceError


def _log(args) -> int:
    from ..store import decisions, zones

    if not 1 <= args.limit <= 100_000:
        raise UsageError("--limit must be 1 .. 100000")
    settings = settings_from(args)
    now = _now()

    async def read(conn):
        zone = await zones.get(conn, args.zone)
        if zone is None:
            return None
        tz = zone_tz(zone["timezone"])
        since, until = _window(args, tz, now)
        rows = await decisions.list_decisions(
            conn, zone["id"], since=since, until=until, kind=args.kind, channel=args.channel, limit=args.limit
        )
        return zone, tz, (since, until), rows

    try:
        found = run(on_database(settings, read))
    except _errors() as e:
        print(f"hydro-rules log: {_one_line(e)}", file=sys.stderr)
        return EXIT_PROBLEMS
    if found is None:
        print(f"hydro-rules log: no zone {args.zone!r} in the database (see `hydro-rules db sync`)", file=sys.stderr)
        return EXIT_PROBLEMS
    zone, tz, (since, until), rows = found
    if args.json:
        out = {
            "zone_uid": zone["uid"],
            "timezone": tz.key,
            "since": since,
            "until": until,
            "decisions": [{f: r[f] for f in decisions.FIELDS} for r in rows],
        }
        print(json.dumps(out, default=_json_default, ensure_ascii=False, indent=2))
        return EXIT_OK
    if not rows:
        print(f"hydro-rules log: no decisions for {zone['uid']}{_span_text(since, until, tz)}", file=sys.stderr)
        return EXIT_OK
    width = max(len(r["kind"]) for r in rows)
    for r in rows:
        print(line(r, tz, width))
    return EXIT_OK


def line(r: dict, tz: ZoneInfo, width: int = 0) -> str:
    """`2026-11-27 03:12:04  command  pump_drain set_relay state=false  ← <rule>  (seen: ...)`."""
    text = f"{r['at'].astimezone(tz):%Y-%m-%d %H:%M:%S}  {r['kind']:<{width}}  {r['summary']}"
    if r.get("rule"):
        text += f"  ← {r['rule']}"
    seen = _seen(r.get("details") or {})
    if seen:
        text += f"  (seen: {seen})"
    return text


def _seen(details: dict) -> str:
    if isinstance(details.get("seen"), str) and details["seen"]:
        return details["seen"]
    values = details.get("values")
    if isinstance(values, dict) and values:
        return ", ".join(f"{k} = {_num(v)}" for k, v in values.items())
    return ""


def _num(v) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _span_text(since, until, tz) -> str:
    fmt = "%Y-%m-%d %H:%M:%S"
    if since and until:
        return f" from {since.astimezone(tz):{fmt}} to {until.astimezone(tz):{fmt}} ({tz.key})"
    if since:
        return f" since {since.astimezone(tz):{fmt}} ({tz.key})"
    if until:
        return f" before {until.astimezone(tz):{fmt}} ({tz.key})"
    return ""


def _one_line(e: Exception) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    if "database" not in text.lower():
        text = f"database: {text}"
    return text


def _json_default(value):
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot encode {type(value).__name__}")
