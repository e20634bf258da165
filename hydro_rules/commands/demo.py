"""`hydro-rules demo SITE`: the service, the site daemon and simulated nodes together, for a first look.

Servers: HYDRO_DATABASE_URL / HYDRO_MQTT_URL when set; else the local PostgreSQL (127.0.0.1:5432, in a
fresh database `hydro_demo_<random>` dropped at the end) and Mosquitto (127.0.0.1:1883) when they
answer; else throwaway ones in a temporary directory (service.devservers). The database is migrated
and the site synced; each node is registered, its command secret stays in the database (nothing
secret is written to disk). Everything runs in this one process; what happens is printed as it
happens (transitions, commands and their statuses, alerts), and `--json` ends with one summary.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from urllib.parse import urlsplit, urlunsplit

from ..cli import EXIT_OK, EXIT_PROBLEMS, UsageError
from ._common import duration, load_site

LOCAL_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
LOCAL_MQTT = "mqtt://127.0.0.1:1883"
#: a command has a terminal status within its response timeout; wait at most this much more for the last ones
SETTLE_MARGIN_S = 5.0
_TERMINAL = ("done", "failed", "timeout")


def register(sub) -> None:
    from ..twin import DEFAULT_FIRMWARE, FIRMWARES

    p = sub.add_parser(
        "demo",
        help="run the service, the site daemon and simulated nodes together and show what happens",
        description="A first look at a site running: the ingest service, the site daemon (`run`) and the "
        "site's nodes simulated by the digital twin (`nodes simulate`), in one process, on PostgreSQL and "
        "Mosquitto (HYDRO_DATABASE_URL / HYDRO_MQTT_URL, else the local servers, else throwaway ones). "
        "Prints transitions, commands with their statuses and alerts as they happen.",
    )
    p.add_argument("site", metavar="SITE", help="rule-set directory with a site")
    p.add_argument("--duration", type=duration, default=90.0, metavar="D", help="how long to run (default 90s)")
    p.add_argument("--json", action="store_true", help="end with one JSON summary on stdout (for CI)")
    p.add_argument("--firmware", choices=FIRMWARES, default=DEFAULT_FIRMWARE, help="node firmware to simulate")
    p.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="KIND@OFFSET[:ARGS]",
        help="a fault as in dry-run, offset from the start (e.g. dry_reservoir@30s:rate=30L/min) (repeatable)",
    )
    p.add_argument(
        "--twin",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a twin setting, e.g. fill_flow_l_min=20 (repeatable)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the twin's noise (default 0)")
    p.add_argument("-v", "--verbose", action="store_true", help="also log what the pieces log")
    p.set_defaults(run=execute)


def execute(args) -> int:
    from ..nodesim import twin_config
    from ..twin import FaultError, parse_fault

    loaded = load_site(args.site)
    try:
        config = twin_config(args.twin)
        for f in args.fault:
            if not f.startswith("reboot@"):
                parse_fault(f)
    except (ValueError, FaultError) as e:
        raise UsageError(str(e)) from None
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.CRITICAL,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    out = Output(json_mode=args.json)
    summary = asyncio.run(_demo(args, loaded, config, out))
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
    return EXIT_OK if summary["commands_open"] == 0 else EXIT_PROBLEMS


class Output:
    """The running commentary: on stdout, or on stderr when stdout carries the JSON summary."""

    def __init__(self, json_mode: bool) -> None:
        self.stream = sys.stderr if json_mode else sys.stdout

    def line(self, text: str) -> None:
        print(text, file=self.stream, flush=True)


# ---- servers ------------------------------------------------------------------------------------
class Servers:
    """Where the demo's database and broker are, and what to undo at the end."""

    def __init__(self) -> None:
        self.database_url = ""
        self.mqtt_url = ""
        self.database_from = ""
        self.broker_from = ""
        self._admin_url: str | None = None
        self._made_db: str | None = None
        self._pg = None
        self._mqtt = None

    async def open(self) -> Servers:
        from ..service.devservers import ThrowawayMosquitto, ThrowawayPostgres, broker_sizing, reachable

        env_db = os.environ.get("HYDRO_DATABASE_URL")
        if env_db:
            self.database_url, self.database_from = env_db, "HYDRO_DATABASE_URL"
        elif reachable("127.0.0.1", 5432) and await _can_connect(LOCAL_PG):
            name = f"hydro_demo_{uuid.uuid4().hex[:8]}"
            await _admin(LOCAL_PG, f'CREATE DATABASE "{name}"')
            self._admin_url, self._made_db = LOCAL_PG, name
            self.database_url = urlunsplit(urlsplit(LOCAL_PG)._replace(path=f"/{name}"))
            self.database_from = f"local PostgreSQL, database {name} (dropped at the end)"
        else:
            try:
                self._pg = await asyncio.to_thread(lambda: ThrowawayPostgres().start())
            except RuntimeError as e:
                raise UsageError(f"no PostgreSQL: set HYDRO_DATABASE_URL or install the server ({e})") from None
            self.database_url, self.database_from = self._pg.dsn, "throwaway PostgreSQL"
        env_mqtt = os.environ.get("HYDRO_MQTT_URL")
        if env_mqtt:
            self.mqtt_url, self.broker_from = env_mqtt, "HYDRO_MQTT_URL"
        elif reachable("127.0.0.1", 1883):
            self.mqtt_url, self.broker_from = LOCAL_MQTT, "local Mosquitto"
        else:
            from pathlib import Path

            kit = Path(__file__).resolve().parents[2] / "runtime" / "mosquitto" / "hydro.conf"
            try:
                self._mqtt = await asyncio.to_thread(lambda: ThrowawayMosquitto(extra=broker_sizing(kit)).start())
            except RuntimeError as e:
                raise UsageError(f"no MQTT broker: set HYDRO_MQTT_URL or install mosquitto ({e})") from None
            self.mqtt_url, self.broker_from = self._mqtt.url, "throwaway Mosquitto"
        return self

    async def close(self) -> None:
        if self._made_db:
            with contextlib.suppress(Exception):
                await _admin(self._admin_url, f'DROP DATABASE IF EXISTS "{self._made_db}" WITH (FORCE)')
        if self._pg is not None:
            await asyncio.to_thread(self._pg.remove)
        if self._mqtt is not None:
            await asyncio.to_thread(self._mqtt.remove)


async def _can_connect(dsn: str) -> bool:
    import asyncpg

    try:
        conn = await asyncpg.connect(dsn, timeout=3)
    except (OSError, TimeoutError, asyncpg.PostgresError):
        return False
    await conn.close()
    return True


async def _admin(dsn: str, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _prepare(database_url: str, ruleset) -> dict[str, str]:
    """Migrate, sync the site, register every node: node uid -> its command secret (kept in memory)."""
    from ..store import connect_once
    from ..store import nodes as node_store
    from ..store.migrate import migrate
    from ..store.sites import sync

    conn = await connect_once(database_url)
    try:
        await migrate(conn)
        await sync(conn, ruleset, validate=True)
        for zone in ruleset.zones:
            for uid in zone.nodes:
                await node_store.register(conn, uid, zone_uid=zone.uid)
        uids = [uid for z in ruleset.zones for uid in z.nodes]
        rows = await conn.fetch("SELECT uid, secret FROM nodes WHERE uid = ANY($1::text[])", uids)
        return {r["uid"]: r["secret"] for r in rows if r["secret"]}
    finally:
        await conn.close()


# ---- the run ------------------------------------------------------------------------------------
async def _demo(args, loaded, config, out: Output) -> dict:
    from ..daemon import Daemon, DaemonSettings
    from ..nodesim import NodeSim
    from ..service.app import Service
    from ..service.config import Settings

    rs = loaded.ruleset
    servers = await Servers().open()
    queue_dir = tempfile.mkdtemp(prefix="hydro-demo-queue-")
    service = daemon = sim = watcher = None
    tag = uuid.uuid4().hex[:6]
    t_start = time.time()
    try:
        out.line(
            f"demo of {rs.ruleset_version}: {len(rs.zones)} zone(s), {args.duration:g} s, firmware {args.firmware}"
        )
        out.line(f"  database: {servers.database_from}")
        out.line(f"  broker:   {servers.broker_from} ({servers.mqtt_url.split('@')[-1]})")
        secrets = await _prepare(servers.database_url, rs)
        service = Service(
            Settings(
                database_url=servers.database_url,
                mqtt_url=servers.mqtt_url,
                mqtt_client_id=_client_id(servers.mqtt_url, f"hydro-demo-ingest-{tag}"),
                aggregate_every_s=0,
                db_pool_size=4,
            ),
            rs,
            with_aggregator=False,
        )
        await service.start()
        await service.wait_ready(30)
        daemon = Daemon(
            DaemonSettings(
                database_url=servers.database_url,
                mqtt_url=servers.mqtt_url,
                mqtt_client_id=_client_id(servers.mqtt_url, f"hydro-demo-daemon-{tag}"),
                daemon_id=f"demo-{tag}",
                queue_dir=queue_dir,
                metrics_port=0,
            ),
            args.site,
            ruleset=rs,
        )
        await daemon.start()
        # the nodes power up while the daemon runs: it re-asserts each relay as nodes come online
        sim = NodeSim(
            rs,
            None,
            servers.mqtt_url,
            secrets,
            firmware=args.firmware,
            faults=args.fault,
            seed=args.seed,
            config=config,
            client_tag=f"demo-{tag}",
        )
        await sim.start()
        watcher = Watcher(service.db, rs, out, t_start)
        await watcher.run_for(args.duration)
        # no new commands from here; the last ones get their answers (or the service times them out)
        await _stop("the daemon", daemon.stop(), out)
        daemon = None
        daemon_stopped = datetime.now(UTC)  # from here the service's dead-man rightly says no daemon runs
        await watcher.settle(_settle_s(rs) + SETTLE_MARGIN_S)
        summary = await watcher.summary(alerts_until=daemon_stopped)
        summary.update(
            {
                "site": str(args.site),
                "ruleset_version": rs.ruleset_version,
                "duration_s": round(time.time() - t_start, 1),
                "firmware": args.firmware,
                "database": servers.database_from,
                "broker": servers.broker_from,
                "nodes": sim.counters.as_dict(),
            }
        )
        out.line(
            f"summary: {summary['commands_total']} command(s) {summary['commands']}, "
            f"{len(summary['transitions'])} transition(s), {len(summary['alerts'])} alert(s), "
            f"{summary['samples_stored']} sample(s) stored, {summary['commands_open']} without a terminal status"
        )
        return summary
    finally:
        if daemon is not None:
            await _stop("the daemon", daemon.stop(), out)
        if sim is not None:
            await _stop("the simulated nodes", sim.stop(), out)
        if service is not None:
            await _stop("the service", service.stop(), out)
        shutil.rmtree(queue_dir, ignore_errors=True)
        await _stop("the servers", servers.close(), out)


async def _stop(what: str, coro, out, within_s: float = 20.0) -> None:
    """Stop one piece, waiting at most `within_s`: a demo that has printed its summary ends."""
    task = asyncio.ensure_future(coro)
    done, _ = await asyncio.wait({task}, timeout=within_s)
    if not done:
        out.line(f"{what} did not stop within {within_s:g} s; left behind")
        task.cancel()
    elif not task.cancelled() and task.exception() is not None:
        out.line(f"{what} stopped with an error: {task.exception()}")


def _profiles(rs):
    return [rs.profiles[z.profile] for z in rs.zones if z.profile in rs.profiles]


def _client_id(mqtt_url: str, default: str) -> str:
    """The broker login when the URL has one (a site's broker makes the login the client id)."""
    return urlsplit(mqtt_url).username or default


class Watcher:
    """Reads what the daemon and the service stored and prints what is new, in order."""

    def __init__(self, db, rs, out: Output, t_start: float) -> None:
        self.db, self.rs, self.out = db, rs, out
        self.since = datetime.fromtimestamp(t_start, UTC)
        self.zone_ids: dict[int, str] = {}
        self.decision_cursor = 0
        self.statuses: dict[str, str] = {}
        self.alerts_seen: dict[int, str] = {}
        self.transitions: list[dict] = []

    async def run_for(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            await self.poll()
            await asyncio.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
        await self.poll()

    async def settle(self, timeout: float) -> None:
        """Until every command has a terminal status, at most `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            await self.poll()
            if not await self._open() or time.monotonic() >= deadline:
                return
            await asyncio.sleep(0.25)

    async def _open(self) -> int:
        async with self.db.acquire() as conn:
            return await conn.fetchval(
                "SELECT count(*) FROM commands WHERE status NOT IN ('done', 'failed', 'timeout') AND created_at >= $1",
                self.since,
            )

    async def poll(self) -> None:
        async with self.db.acquire() as conn:
            if not self.zone_ids:
                self.zone_ids = {r["id"]: r["uid"] for r in await conn.fetch("SELECT id, uid FROM zones")}
            decisions = await conn.fetch(
                """SELECT id, zone_id, at, kind, channel, summary, rule FROM decisions
                   WHERE id > $1 AND at >= $2 ORDER BY id LIMIT 1000""",
                self.decision_cursor,
                self.since,
            )
            commands = await conn.fetch(
                """SELECT c.cmd_id, c.zone_id, c.channel, c.cmd, c.params, c.status, c.error_code, c.source,
                          coalesce(c.done_at, c.failed_at, c.timeout_at, c.ack_at, c.sent_at, c.created_at) AS at
                   FROM commands c WHERE c.created_at >= $1 ORDER BY c.id""",
                self.since,
            )
            alerts = await conn.fetch(
                """SELECT id, zone_id, code, channel, severity, status, last_seen_at, resolved_at FROM alerts
                   WHERE last_seen_at >= $1 OR resolved_at >= $1 ORDER BY id""",
                self.since,
            )
        for d in decisions:
            self.decision_cursor = d["id"]
            if d["kind"] == "transition":
                self.transitions.append(
                    {"at": d["at"].isoformat(), "zone": self.zone_ids.get(d["zone_id"]), "summary": d["summary"]}
                )
            if d["kind"] in ("command", "alert_raised", "alert_resolved"):
                continue  # shown from their own tables, with what became of them
            self._say(d["at"], d["zone_id"], d["kind"], d["summary"])
        for c in commands:
            status, before = c["status"], self.statuses.get(c["cmd_id"])
            # each command once when it appears and once when it ends (ack on the way is not news)
            if before == status or (before is not None and status not in _TERMINAL):
                continue
            self.statuses[c["cmd_id"]] = status
            params = c["params"] if isinstance(c["params"], dict) else json.loads(c["params"] or "{}")
            words = " ".join(f"{k}={_word(v)}" for k, v in params.items())
            err = f" ({c['error_code']})" if c["error_code"] else ""
            by = "" if c["source"] in (None, "engine") else f" [by {c['source']}]"
            self._say(c["at"], c["zone_id"], "command", f"{c['channel']} {c['cmd']} {words} → {status}{err}{by}")
        for a in alerts:
            if self.alerts_seen.get(a["id"]) == a["status"]:
                continue
            self.alerts_seen[a["id"]] = a["status"]
            on = f" on {a['channel']}" if a["channel"] else ""
            at = a["resolved_at"] if a["status"] != "ACTIVE" and a["resolved_at"] else a["last_seen_at"]
            self._say(at, a["zone_id"], "alert", f"{a['code']}{on} {a['status'].lower()} ({a['severity']})")

    def _say(self, at, zone_id, kind: str, text: str) -> None:
        zone = self.zone_ids.get(zone_id, "site") if zone_id is not None else "site"
        self.out.line(f"{at.astimezone(UTC):%H:%M:%S}  {zone:<8} {kind:<10} {text}")

    async def summary(self, alerts_until: datetime | None = None) -> dict:
        """What the run did; alerts raised after `alerts_until` (the demo's own shutdown) are left out."""
        async with self.db.acquire() as conn:
            by_status = await conn.fetch(
                "SELECT status, count(*) AS n FROM commands WHERE created_at >= $1 GROUP BY status ORDER BY status",
                self.since,
            )
            # answered by its node: ACK, DONE or an error (a quick node's DONE may come before its ACK is stored)
            acked = await conn.fetchval(
                """SELECT count(*) FROM commands WHERE created_at >= $1
                   AND (ack_at IS NOT NULL OR done_at IS NOT NULL OR node_status IS NOT NULL)""",
                self.since,
            )
            samples = await conn.fetchval("SELECT count(*) FROM telemetry_samples WHERE ts >= $1", self.since)
            alerts = await conn.fetch(
                """SELECT a.code, a.channel, a.severity, a.status, z.uid AS zone FROM alerts a
                   LEFT JOIN zones z ON z.id = a.zone_id
                   WHERE a.last_seen_at >= $1 AND ($2::timestamptz IS NULL OR a.first_seen_at <= $2)
                   ORDER BY a.id""",
                self.since,
                alerts_until,
            )
        commands = {r["status"]: r["n"] for r in by_status}
        return {
            "commands": commands,
            "commands_total": sum(commands.values()),
            "commands_acknowledged": acked,
            "commands_open": sum(n for s, n in commands.items() if s not in ("done", "failed", "timeout")),
            "transitions": self.transitions,
            "alerts": [dict(a) for a in alerts],
            "samples_stored": samples,
        }


def _settle_s(rs) -> float:
    """How long the last commands may take to end: the longest response timeout of the site."""
    return max((z.settings.get("commands.response_timeout", 60.0) for z in _profiles(rs)), default=60.0)


def _word(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)
