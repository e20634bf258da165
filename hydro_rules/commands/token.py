"""`hydro-rules token create --scope S | list | revoke PREFIX`: bearer tokens of the HTTP API."""

from __future__ import annotations

import sys

from ..cli import EXIT_OK, EXIT_PROBLEMS, UsageError
from ..service.clitools import add_config_options, on_database, run, settings_from

SCOPES = ("ingest", "read", "operator", "override")


def register(sub) -> None:
    p = sub.add_parser("token", help="create, list and revoke API tokens")
    tsub = p.add_subparsers(dest="token_command", metavar="ACTION", required=True)
    c = tsub.add_parser("create", help="print a new token (shown once; only its hash is stored)")
    c.add_argument("--scope", action="append", required=True, choices=SCOPES, help="repeatable")
    c.add_argument("--name", default=None, help="who or what uses it (default: the scopes)")
    add_config_options(c)
    c.set_defaults(run=_create)
    ls = tsub.add_parser("list", help="tokens by name and prefix")
    add_config_options(ls)
    ls.set_defaults(run=_list)
    r = tsub.add_parser(
        "revoke",
        help="revoke a token by its prefix (the 12 hex digits after hr_); running services refuse it within"
        " milliseconds (PostgreSQL NOTIFY), within 10 s if they cannot listen",
    )
    r.add_argument("prefix")
    add_config_options(r)
    r.set_defaults(run=_revoke)


def _errors():
    from ..store import DatabaseUnavailable
    from ..store.migrate import MigrationError

    return DatabaseUnavailable, MigrationError


def _create(args) -> int:
    from ..store import tokens

    settings = settings_from(args)
    name = args.name or "+".join(sorted(set(args.scope)))
    try:
        token, info = run(on_database(settings, lambda conn: tokens.create(conn, name, args.scope)))
    except _errors() as e:
        print(f"hydro-rules token: {e}", file=sys.stderr)
        return EXIT_PROBLEMS
    print(token)
    print(f"token {info.name!r} (prefix {info.prefix}) with scope(s) {', '.join(sorted(info.scopes))}", file=sys.stderr)
    return EXIT_OK


def _list(args) -> int:
    from ..store import tokens

    try:
        rows = run(on_database(settings_from(args), tokens.list_tokens))
    except _errors() as e:
        print(f"hydro-rules token: {e}", file=sys.stderr)
        return EXIT_PROBLEMS
    for r in rows:
        state = f"revoked {r['revoked_at']:%Y-%m-%d}" if r["revoked_at"] else "active"
        used = f"{r['last_used_at']:%Y-%m-%d %H:%M}" if r["last_used_at"] else "never"
        print(f"{r['prefix']}  {r['name']:<24} {','.join(r['scopes']):<24} {state}, last used {used}")
    return EXIT_OK


def _revoke(args) -> int:
    from ..store import tokens

    if not args.prefix or len(args.prefix) != 12:
        raise UsageError("the prefix is the 12 hex digits after hr_ in the token")
    try:
        ok = run(on_database(settings_from(args), lambda conn: tokens.revoke(conn, args.prefix)))
    except _errors() as e:
        print(f"hydro-rules token: {e}", file=sys.stderr)
        return EXIT_PROBLEMS
    print("revoked" if ok else "no active token with that prefix", file=sys.stderr)
    return EXIT_OK if ok else EXIT_PROBLEMS
