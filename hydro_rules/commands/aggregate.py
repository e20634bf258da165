"""`hydro-rules aggregate`: one aggregation pass (1m/1h/daily telemetry, water usage), or a loop."""

from __future__ import annotations

import asyncio
import sys

from ..cli import EXIT_OK, EXIT_PROBLEMS
from ..service.clitools import add_config_options, run, settings_from, setup_logging


def register(sub) -> None:
    p = sub.add_parser("aggregate", help="aggregate telemetry into 1m/1h/daily tables and log pump water usage")
    p.add_argument("--site", metavar="PATH", help="rule set whose pump channels name their flow metric")
    p.add_argument("--every", type=float, metavar="SECONDS", help="repeat every SECONDS instead of once")
    add_config_options(p)
    p.set_defaults(run=_run)


def _run(args) -> int:
    from ..service import aggregator
    from ..store import Database, DatabaseUnavailable
    from ..store.partitions import Partitions
    from ._common import load_site

    settings = settings_from(args)
    rs = load_site(args.site).ruleset if args.site else None

    # the same settings for one pass and for the loop
    passes = {
        "partitions": Partitions(),
        "ahead_days": settings.partition_ahead_days,
        "max_sample_age_s": settings.max_sample_age_s,
        "water_grace_s": settings.water_grace_s,
    }

    async def go():
        db = await Database.connect(settings.database_url, max_size=2)
        try:
            if args.every:
                setup_logging()
                await aggregator.loop(db, rs, args.every, **passes)
            return await aggregator.run_once(db, rs, **passes)
        finally:
            await db.close()

    try:
        report = run(go())
    except DatabaseUnavailable as e:
        print(f"hydro-rules aggregate: {e}", file=sys.stderr)
        return EXIT_PROBLEMS
    except (KeyboardInterrupt, asyncio.CancelledError):
        return EXIT_OK
    if not report.ran:
        print("another aggregator is running; nothing done", file=sys.stderr)
        return EXIT_OK
    print(
        f"aggregated {report.rows_1m} 1m, {report.rows_1h} 1h, {report.rows_daily} daily bucket(s); "
        f"logged {report.pump_runs} pump run(s); {report.partitions_created} partition(s) created"
    )
    return EXIT_OK
