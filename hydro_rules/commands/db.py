"""`hydro-rules db migrate | status | sync SITE`: the service's database."""

from __future__ import annotations

import sys

from ..cli import EXIT_OK, EXIT_PROBLEMS
from ..service.clitools import add_config_options, on_database, run, settings_from


def register(sub) -> None:
    p = sub.add_parser("db", help="create and update the service's database; store a site's zones and nodes")
    dbsub = p.add_subparsers(dest="db_command", metavar="ACTION", required=True)

    m = dbsub.add_parser("migrate", help="apply the schema migrations this version ships (idempotent)")
    add_config_options(m)
    m.set_defaults(run=_migrate)

    s = dbsub.add_parser("status", help="show the schema version of the database")
    add_config_options(s)
    s.set_defaults(run=_status)

    y = dbsub.add_parser("sync", help="store the greenhouses, zones and node bindings of a rule set's sites")
    y.add_argument("site", metavar="SITE", help="rule-set directory with one or more sites")
    y.add_argument("--site-uid", action="append", metavar="UID", help="only this site (repeatable)")
    y.add_argument("--validate", action="store_true", help="also mark the site's nodes validated (commissioning)")
    add_config_options(y)
    y.set_defaults(run=_sync)


def _fail(message: str) -> int:
    print(f"hydro-rules db: {message}", file=sys.stderr)
    return EXIT_PROBLEMS


def _migrate(args) -> int:
    from ..store import DatabaseUnavailable
    from ..store import migrate as migrations

    async def migrate(conn):
        return await migrations.migrate(conn), await migrations.current_version(conn)

    try:
        ran, version = run(on_database(settings_from(args), migrate, current=False))
    except (DatabaseUnavailable, migrations.MigrationError) as e:
        return _fail(str(e))
    for m in ran:
        print(f"applied {m.version:04d}_{m.name}")
    print(f"database at schema version {version}" + ("" if ran else " (already up to date)"))
    return EXIT_OK


def _status(args) -> int:
    from ..store import DatabaseUnavailable
    from ..store import migrate as migrations

    try:
        done = run(on_database(settings_from(args), migrations.applied, current=False))
    except DatabaseUnavailable as e:
        return _fail(str(e))
    known = migrations.available()
    for m in known:
        print(f"{m.version:04d}_{m.name}: {'applied' if m.version in done else 'pending'}")
    try:
        migrations.check(known, done)
    except migrations.MigrationError as e:
        return _fail(str(e))
    return EXIT_OK if all(m.version in done for m in known) else EXIT_PROBLEMS


def _sync(args) -> int:
    from ..store import DatabaseUnavailable, sites
    from ..store import migrate as migrations
    from ._common import load_site

    settings = settings_from(args)
    loaded = load_site(args.site)

    try:
        report = run(
            on_database(settings, lambda conn: sites.sync(conn, loaded.ruleset, args.site_uid, validate=args.validate))
        )
    except (DatabaseUnavailable, migrations.MigrationError, sites.SyncError) as e:
        return _fail(str(e))
    print(f"synced {report.greenhouses} greenhouse(s), {report.zones} zone(s) of {loaded.ruleset.ruleset_version}")
    if report.nodes_created:
        print(f"new nodes: {', '.join(report.nodes_created)}")
    if report.nodes_moved:
        print(f"nodes moved to another zone: {', '.join(report.nodes_moved)}")
    if args.validate:
        print(f"validated: {', '.join(report.nodes_validated)}")
    elif report.nodes_created:
        print("new nodes are not validated: register them (POST /nodes/register) or run sync with --validate")
    return EXIT_OK
