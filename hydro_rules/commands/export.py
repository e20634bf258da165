"""`hydro-rules export SITE --zone Z --from T1 --to T2`: a zone's recorded run as CSV, for `replay`.

The zone's stored samples (and the newest of each series just before T1), its commands with how they
ended, and the daemon's decision log, in one plain CSV file (docs/replay.md describes it).
"""

from __future__ import annotations

import os
import sys

from ..cli import EXIT_OK, EXIT_USAGE, UsageError
from ._common import load_site, zone_uids


def add_window_options(p, *, required: bool) -> None:
    """--zone, --from, --to: shared by export and replay."""
    p.add_argument("site", metavar="SITE", help="rule-set directory with a site")
    p.add_argument("--zone", metavar="Z", required=required, help="the zone (uid)")
    p.add_argument("--from", dest="start", metavar="T1", required=required, help="ISO 8601 time (UTC unless an offset)")
    p.add_argument("--to", dest="end", metavar="T2", required=required, help="ISO 8601 time, exclusive")


def register(sub) -> None:
    p = sub.add_parser(
        "export",
        help="write a zone's recorded telemetry, commands and decision log as CSV (for replay)",
        description="Read one zone's stored samples, commands (with their final status) and the daemon's "
        "decision log for [T1, T2) from the database and write them as one CSV file, the input of "
        "`hydro-rules replay --csv`. Times are ISO 8601, UTC unless they carry an offset.",
    )
    add_window_options(p, required=True)
    p.add_argument("--database", metavar="URL", help="PostgreSQL URL (default $HYDRO_DATABASE_URL)")
    p.add_argument("-o", "--output", metavar="FILE", default="-", help="the CSV file (default: standard output)")
    p.set_defaults(run=execute)


def window(args) -> tuple[float, float]:
    """(start, end) epoch seconds of --from/--to; a usage error when malformed or empty."""
    from ..sim.recording import parse_iso

    out = []
    for name, text in (("--from", args.start), ("--to", args.end)):
        try:
            out.append(parse_iso(text))
        except ValueError:
            raise UsageError(f"{name} {text!r} is not an ISO 8601 time (e.g. 2026-11-27T03:00:00Z)") from None
    if out[1] <= out[0]:
        raise UsageError("--to must come after --from")
    return out[0], out[1]


def database_url(args) -> str:
    url = args.database or os.environ.get("HYDRO_DATABASE_URL")
    if not url:
        raise UsageError("no database: give --database URL or set HYDRO_DATABASE_URL")
    return url


def read_recording(url: str, zone: str, start: float, end: float):
    """The zone's Recording of [start, end) from the database; UsageError when it cannot be read."""
    import asyncio
    from datetime import UTC, datetime

    import asyncpg

    from ..sim.recording import from_store
    from ..store import DatabaseUnavailable, connect_once
    from ..store.recording import zone_window

    async def read():
        conn = await connect_once(url)
        try:
            return await zone_window(conn, zone, datetime.fromtimestamp(start, UTC), datetime.fromtimestamp(end, UTC))
        finally:
            await conn.close()

    try:
        found = asyncio.run(read())
    except (DatabaseUnavailable, asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as e:
        raise UsageError(f"cannot read the recording: {' '.join(str(e).split()) or type(e).__name__}") from None
    if found is None:
        raise UsageError(f"no zone {zone!r} in the database (see `hydro-rules db sync`)")
    return from_store(zone, found, start, end)


def execute(args) -> int:
    from ..sim.recording import write_csv

    loaded = load_site(args.site)
    zone = zone_uids(loaded, args.zone)[0]
    start, end = window(args)
    rec = read_recording(database_url(args), zone, start, end)
    if args.output == "-":
        write_csv(rec, sys.stdout)
    else:
        try:
            write_csv(rec, args.output)
        except OSError as e:
            print(f"hydro-rules export: cannot write {args.output}: {e.strerror or e}", file=sys.stderr)
            return EXIT_USAGE
    counts = f"{len(rec.samples)} samples, {len(rec.commands)} commands, {len(rec.decisions or ())} decision rows"
    print(f"exported zone {zone}: {counts}", file=sys.stderr)
    return EXIT_OK
