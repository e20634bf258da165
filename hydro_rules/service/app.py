"""The ingest service: one process with the HTTP door, the MQTT door, the aggregator, the command sweep and
the NC pumps' dead-man.

`Service` owns the database pool, the ingest core, the MQTT connection and
background tasks; `create_app` puts the HTTP routes on top. Start-up does not
wait for the database or the broker: it prepares in the background (schema
check, site sync, partitions) and answers 503 until ready; the MQTT door
connects only once the database is ready, so nodes' messages wait on the broker.
"""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
from collections.abc import Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from starlette.applications import Starlette
from starlette.middleware import Middleware

from ..lang.model import RuleSet
from ..store import Database, DatabaseUnavailable
from ..store import migrate as migrate_store
from ..store import sites as site_store
from ..transport import topics
from ..transport.mqtt import MqttClient
from . import aggregator
from .auth import Authenticator
from .batcher import Batcher
from .commands import CommandService
from .config import Settings
from .deadman import DeadMan
from .ingest import IngestCore
from .logs import Throttled
from .mqtt_door import MqttDoor
from .web import BodyLimit

log = logging.getLogger(__name__)


class Service:
    def __init__(
        self,
        settings: Settings,
        ruleset: RuleSet,
        *,
        sync_sites: bool = True,
        with_mqtt: bool = True,
        with_aggregator: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.rs = ruleset
        self.sync_sites = sync_sites
        self.with_mqtt = with_mqtt and settings.mqtt_url is not None
        self.with_aggregator = with_aggregator and settings.aggregate_every_s > 0
        self.clock = clock
        self.db: Database | None = None
        self.core: IngestCore | None = None
        self.batcher: Batcher | None = None
        self.door: MqttDoor | None = None
        self.mqtt: MqttClient | None = None
        self.commands: CommandService | None = None
        self.deadman: DeadMan | None = None  # the NC pumps' fallback while no site daemon beats
        self.auth: Authenticator | None = None
        self.ready = asyncio.Event()
        self.problem: str | None = "starting"
        self.started_at = datetime.now(UTC)
        self._tasks: list[asyncio.Task] = []

    async def start(self) -> None:
        s = self.settings
        self.db = await Database.connect(s.database_url, max_size=s.db_pool_size)
        self.core = IngestCore(self.db, self.rs, s, clock=self.clock)
        self.batcher = Batcher(self.core, max_batch=s.batch_max, linger_s=s.batch_linger_s, workers=s.batch_workers)
        self.auth = Authenticator(self.db)
        if self.with_mqtt:
            self.door = MqttDoor(self.db, self.rs, self.core, self.batcher, clock=self.clock)
            self.mqtt = MqttClient(
                s.mqtt_url,
                client_id=s.mqtt_client_id,
                handler=self.door.handle,
                subscriptions=topics.SUBSCRIPTIONS,
                clean_session=False,
                receive_maximum=s.mqtt_receive_maximum,
            )
            self.door.client = self.mqtt
        self.commands = CommandService(
            self.db, self.rs, self.mqtt, clock=self.clock, publish_timeout_s=s.command_publish_timeout_s
        )
        self.deadman = DeadMan(self.db, self.rs, self.commands, s, clock=self.clock)
        if self.door is not None:
            self.door.on_node_back = self.deadman.node_back
        self.batcher.start()
        self._tasks.append(asyncio.create_task(self._prepare(), name="prepare"))
        revocations = self.auth.follow_revocations(s.database_url)
        self._tasks.append(asyncio.create_task(revocations, name="token-revocations"))

    async def _prepare(self) -> None:
        delay = 0.5
        while True:
            try:
                async with self.db.acquire() as conn:
                    await migrate_store.require_current(conn)
                    if self.sync_sites:
                        report = await site_store.sync(conn, self.rs)
                        if report.nodes_created:
                            log.info("site sync: new nodes %s (not validated yet)", ", ".join(report.nodes_created))
                    await self.core.partitions.ensure_ahead(
                        conn, datetime.now(UTC).date(), self.settings.partition_ahead_days
                    )
                break
            except DatabaseUnavailable as e:
                self.problem = f"database unavailable: {e}"
                log.warning("waiting for the database: %s", e)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10)
            except (migrate_store.MigrationError, site_store.SyncError) as e:
                self.problem = str(e)
                log.error("the service cannot start: %s", e)
                return
        self.core.forget_node()
        self.problem = None
        self.ready.set()
        self._tasks.append(asyncio.create_task(self._sweep_commands(), name="command-sweep"))
        self._tasks.append(asyncio.create_task(self.deadman.run(), name="deadman"))
        if self.mqtt is not None:
            self._tasks.append(asyncio.create_task(self.mqtt.connect(), name="mqtt-connect"))
        if self.with_aggregator:
            self._tasks.append(
                asyncio.create_task(
                    aggregator.loop(
                        self.db,
                        self.rs,
                        self.settings.aggregate_every_s,
                        self.core.partitions,
                        ahead_days=self.settings.partition_ahead_days,
                        max_sample_age_s=self.settings.max_sample_age_s,
                        water_grace_s=self.settings.water_grace_s,
                    ),
                    name="aggregator",
                )
            )

    async def _sweep_commands(self) -> None:
        """Every `command_sweep_every_s`: end overdue commands (`timeout`) and re-assert NC pumps after a
        restart. The service is the one writer of `timeout`, whether or not a daemon runs."""
        every, said = self.settings.command_sweep_every_s, Throttled(log)
        while True:
            try:
                await self.commands.sweep()
            except asyncio.CancelledError:
                raise
            except DatabaseUnavailable as e:
                said.warning("db", "command sweep waits for the database: %s", e)
            except Exception:
                said.log(logging.ERROR, "failed", "command sweep failed; trying again\n%s", traceback.format_exc())
            await asyncio.sleep(every)

    async def wait_ready(self, timeout: float = 30.0) -> None:
        await asyncio.wait_for(self.ready.wait(), timeout)
        if self.mqtt is not None:  # connected and subscribed (SUBACK): nodes' messages reach the door
            await asyncio.wait_for(self.mqtt.subscribed.wait(), timeout)

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self.mqtt is not None:
            await self.mqtt.disconnect()
        if self.batcher is not None:
            await self.batcher.stop()
        if self.db is not None:
            await self.db.close()

    async def health(self) -> dict:
        db_ok = await self.db.ping() if self.db else False
        mqtt = None if self.mqtt is None else self.mqtt.is_connected
        ok = db_ok and self.ready.is_set() and mqtt is not False
        return {
            "status": "ok" if ok else "degraded",
            "ready": self.ready.is_set(),
            "problem": self.problem,
            "database": db_ok,
            "mqtt": mqtt,
            "ingest_waiting_for_database": bool(self.batcher and self.batcher.waiting_for_db),
            "mqtt_refused": dict(self.door.refused) if self.door else {},
            "ruleset_version": self.rs.ruleset_version,
            "started_at": self.started_at,
        }


def create_app(service: Service, *, manage: bool = True) -> Starlette:
    """The HTTP app. With `manage`, the app's lifespan starts and stops the service."""
    from .routes import routes

    @asynccontextmanager
    async def lifespan(app):
        if manage:
            await service.start()
        try:
            yield
        finally:
            if manage:
                await service.stop()

    app = Starlette(
        routes=routes(service),
        middleware=[Middleware(BodyLimit, max_bytes=service.settings.max_body_bytes)],
        lifespan=lifespan,
    )
    app.state.service = service
    return app


async def serve(service: Service) -> None:
    """Run the service under uvicorn until interrupted."""
    import uvicorn

    config = uvicorn.Config(
        create_app(service),
        host=service.settings.http_host,
        port=service.settings.http_port,
        log_level="info",
        access_log=False,
        lifespan="on",
    )
    await uvicorn.Server(config).serve()
