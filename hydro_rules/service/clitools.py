"""What the service's subcommands share: options, settings, logging, running a coroutine."""

from __future__ import annotations

import asyncio
import logging
import sys

from .config import ConfigError, Settings, load_settings


def add_config_options(p, *, mqtt: bool = False, http: bool = False) -> None:
    p.add_argument("--config", metavar="FILE", help="TOML file with a [service] table (see runtime/hydro-rules.toml)")
    p.add_argument("--database-url", metavar="URL", help="PostgreSQL URL (default $HYDRO_DATABASE_URL)")
    if mqtt:
        p.add_argument("--mqtt-url", metavar="URL", help="broker URL mqtt://host:port (default $HYDRO_MQTT_URL)")
        p.add_argument("--no-mqtt", action="store_true", help="serve HTTP only")
    if http:
        p.add_argument("--host", dest="http_host", metavar="HOST", help="HTTP address (default 127.0.0.1)")
        p.add_argument("--port", dest="http_port", type=int, metavar="PORT", help="HTTP port (default 8080)")


def settings_from(args) -> Settings:
    """Settings from --config, the environment and the options given; a ConfigError is a usage error."""
    from ..cli import UsageError

    overrides = {k: getattr(args, k, None) for k in ("database_url", "mqtt_url", "http_host", "http_port")}
    try:
        return load_settings(args.config, **overrides)
    except ConfigError as e:
        raise UsageError(str(e)) from e


async def on_database(settings: Settings, fn, *, current: bool = True):
    """`await fn(conn)` on one connection to the configured database, closed afterwards.

    With `current`, only when the database has exactly this code's schema (else MigrationError).
    """
    from ..store import connect_once
    from ..store import migrate as migrations

    conn = await connect_once(settings.database_url)
    try:
        if current:
            await migrations.require_current(conn)
        return await fn(conn)
    finally:
        await conn.close()


def setup_logging(verbose: bool = False, fmt: str = "text") -> None:
    """Log to stderr: one line of text per record, or (`fmt="json"`) one JSON object per line."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        from ..daemon.log import JsonFormatter

        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=[handler], force=fmt == "json")
    logging.getLogger("gmqtt").setLevel(logging.WARNING)


def run(coro):
    return asyncio.run(coro)
