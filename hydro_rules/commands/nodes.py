"""`hydro-rules nodes simulate SITE`: the site's nodes, simulated by the digital twin, on a real broker."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import sys

from ..cli import EXIT_OK, UsageError
from ._common import duration, load_site


def register(sub) -> None:
    p = sub.add_parser("nodes", help="node tools: simulate a site's nodes over MQTT")
    nodes = p.add_subparsers(dest="nodes_command", metavar="SUBCOMMAND", required=True)
    s = nodes.add_parser(
        "simulate",
        help="run the digital twin of the site's zones in real time, speaking the node protocol over MQTT",
        description="Simulated nodes for a site: each zone's digital twin in real time, each node on its own "
        "MQTT connection with its last will, time sync, status, heartbeats, telemetry per channel, and commands "
        "checked as firmware checks them (timestamp, HMAC with the node's secret from the nodes table) and "
        "answered ACK then DONE, NO_EFFECT, INVALID or ERROR. See docs/nodesim.md.",
    )
    s.add_argument("site", metavar="SITE", help="rule-set directory with the site")
    s.add_argument("--zone", action="append", default=[], metavar="Z", help="only this zone (repeatable)")
    s.add_argument("--mqtt-url", metavar="URL", help="broker URL mqtt://host:port (default $HYDRO_MQTT_URL)")
    s.add_argument("--config", metavar="FILE", help="TOML file with a [service] table (database and broker URLs)")
    s.add_argument("--database-url", metavar="URL", help="PostgreSQL URL to read node secrets from")
    s.add_argument(
        "--secret",
        action="append",
        default=[],
        metavar="NODE=SECRET",
        help="a node's command secret instead of the database's (repeatable)",
    )
    from ..twin import DEFAULT_FIRMWARE, FIRMWARES

    s.add_argument(
        "--firmware",
        choices=FIRMWARES,
        default=DEFAULT_FIRMWARE,
        help="hydro2 (default): an OFF holds until switched on, a reboot opens every relay; bounded-off: an OFF "
        "with duration_ms ends by itself, a reboot leaves fail-safe defaults",
    )
    s.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="KIND@OFFSET[:ARGS]",
        help="a fault as in dry-run, offset from the start (e.g. stuck_relay@2m:pump_drain), or "
        "reboot@OFFSET[:NODE|CHANNEL] (repeatable)",
    )
    s.add_argument(
        "--twin",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a twin setting, e.g. fill_flow_l_min=60 drain_flow_l_min=60 (repeatable; see docs/nodesim.md)",
    )
    s.add_argument(
        "--node-password",
        action="append",
        default=[],
        metavar="NODE=PASSWORD",
        help="a node's broker password; the node then logs in as its node uid, as on a site's broker "
        "(`*=PASSWORD` for every node; repeatable)",
    )
    s.add_argument("--seed", type=int, default=0, help="seed of the twin's noise (default 0)")
    s.add_argument("--duration", type=duration, metavar="D", help="stop after D (e.g. 90s, 10m); default: Ctrl-C")
    s.add_argument("--tick", type=duration, default=1.0, metavar="D", help="time step and telemetry period (1s)")
    s.add_argument("--heartbeat", type=duration, default=10.0, metavar="D", help="heartbeat period (10s)")
    s.add_argument("--json", action="store_true", help="end with the counters as one JSON document")
    s.add_argument("-v", "--verbose", action="store_true")
    s.set_defaults(run=execute)


def _pairs(items: list[str], what: str, shape: str = "NODE=SECRET") -> dict[str, str]:
    out = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key.strip() or not value.strip():
            raise UsageError(f"{what} {item!r}: expected {shape}")
        out[key.strip()] = value.strip()
    return out


def execute(args) -> int:
    from ..nodesim import NodeSim, twin_config
    from ..service.clitools import setup_logging
    from ..service.config import ConfigError, load_settings
    from ..twin import FaultError

    loaded = load_site(args.site)
    rs = loaded.ruleset
    known = [z.uid for z in rs.zones]
    for z in args.zone:
        if z not in known:
            raise UsageError(f"no zone {z!r}; zones: {', '.join(known)}")
    zones = [rs.zone(z) for z in (args.zone or known)]
    try:
        settings = load_settings(args.config, database_url=args.database_url, mqtt_url=args.mqtt_url)
    except ConfigError as e:
        raise UsageError(str(e)) from e
    if not settings.mqtt_url:
        raise UsageError("no broker: give --mqtt-url or set HYDRO_MQTT_URL")
    try:
        config = twin_config(args.twin)
    except ValueError as e:
        raise UsageError(str(e)) from None
    given = _pairs(args.secret, "--secret")
    node_uids = [uid for z in zones for uid in z.nodes]
    setup_logging(args.verbose)
    if not args.verbose:
        logging.getLogger("hydro_rules.transport.mqtt").setLevel(logging.WARNING)
    try:
        sim = NodeSim(
            rs,
            [z.uid for z in zones],
            settings.mqtt_url,
            given,
            firmware=args.firmware,
            faults=args.fault,
            seed=args.seed,
            config=config,
            tick_s=args.tick,
            heartbeat_s=args.heartbeat,
            node_passwords=_pairs(args.node_password, "--node-password", "NODE=PASSWORD"),
        )
    except (FaultError, ValueError) as e:
        raise UsageError(str(e)) from None
    missing = [uid for uid in node_uids if uid not in given]
    if missing:
        sim.secrets.update(_db_secrets(settings, missing, bool(given)))
    try:
        asyncio.run(_simulate(sim, args.duration))
    except ConnectionError as e:
        raise UsageError(str(e)) from None
    if args.json:
        print(json.dumps(sim.counters.as_dict(), indent=2))
    else:
        c = sim.counters.as_dict()
        print(" ".join(f"{k}={v}" for k, v in c.items()), file=sys.stderr)
    return EXIT_OK


def _db_secrets(settings, node_uids: list[str], optional: bool) -> dict[str, str]:
    """Node secrets from the nodes table; a database that cannot be read is a usage error unless
    some were given on the command line."""
    import asyncpg

    from ..nodesim import read_secrets
    from ..service.clitools import on_database
    from ..store import DatabaseUnavailable

    try:
        return asyncio.run(on_database(settings, lambda conn: read_secrets(conn, node_uids), current=False))
    except (OSError, asyncpg.PostgresError, ConnectionError, DatabaseUnavailable) as e:
        if optional:
            logging.getLogger(__name__).warning("cannot read node secrets from the database (%s)", e)
            return {}
        raise UsageError(
            f"cannot read node secrets from {settings.database_url} ({e}); give --database-url, or --secret NODE=SECRET"
        ) from None


async def _simulate(sim, seconds: float | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not the main thread
            loop.add_signal_handler(sig, stop.set)
    await sim.start()
    log = logging.getLogger("hydro_rules.nodesim")
    log.info("%d nodes of %s online (%s firmware)", len(sim.nodes), ", ".join(sim.twins), sim.firmware)
    try:
        if seconds is None:
            await stop.wait()
        else:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), seconds)
    finally:
        await sim.stop()
