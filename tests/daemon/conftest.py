"""End-to-end fixtures of the site daemon: real PostgreSQL and Mosquitto, the service, the daemon
(in-process, or as a `hydro-rules run` subprocess for SIGKILL) and the node simulator, on the small
fast test site in tests/daemon/site.

`plant` is a factory of `Plant`s: each starts what a test asks for and stops all of it at the end.
Tests wait on signals: rows in the database (polled with `eventually`), MQTT messages seen by a spy
subscribed to `hydro/#`, the daemon's tick counter and events; never on fixed sleeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

# pytest puts tests/ on sys.path (rootdir-relative packages): the suite's and the service's fixtures
from conftest import REPO, reset_database  # noqa: I001
from service.conftest import eventually, make_settings, start_service

from hydro_rules.store import Database
from hydro_rules.store import alerts as alert_store
from hydro_rules.store import commands as command_store
from hydro_rules.store import events as event_store
from hydro_rules.transport.mqtt import MqttClient
from hydro_rules.twin import TwinConfig

SITE = Path(__file__).resolve().parent / "site"
#: the test site's plant: 6 L reservoirs, a drain and a fill of 60 L/min (a change drains and fills in seconds)
TWIN = TwinConfig(drain_flow_l_min=60.0, fill_flow_l_min=60.0)
RULES = REPO / "rules"

__all__ = ["SITE", "TWIN", "Clock", "Plant", "Spy", "eventually", "is_on", "load_site", "site_copy", "ticks", "until"]


def load_site(path: Path = SITE):
    from hydro_rules.lang.loader import load

    loaded = load(path)
    assert loaded.ok, [d.message for d in loaded.diags.items]
    return loaded.ruleset


def site_copy(dest: Path) -> Path:
    """The test site in `dest`, using the standard rules by their absolute path (for edits during a run)."""
    dest.mkdir(parents=True, exist_ok=True)
    for f in SITE.glob("*.hydro"):
        text = f.read_text()
        if f.name == "ruleset.hydro":
            text = text.replace('use "../../../rules"', f'use "{RULES}"')
        (dest / f.name).write_text(text)
    return dest


@pytest.fixture(scope="session")
def test_site():
    """The test site's checked rule set."""
    return load_site()


class Clock:
    """Time as the service, the daemon and the simulated nodes read it: the wall clock, plus whatever a
    test skipped with `jump` (a rule's 15-minute step passes in an instant, for all of them at once)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def jump(self, seconds: float) -> None:
        self.offset += seconds


@dataclass
class Seen:
    at: float  # wall clock when the spy got it
    topic: str
    payload: bytes

    @property
    def parts(self) -> list[str]:
        return self.topic.split("/")

    @property
    def type(self) -> str:
        return self.parts[-1]

    @property
    def doc(self) -> dict:
        try:
            out = json.loads(self.payload)
        except ValueError:
            return {}
        return out if isinstance(out, dict) else {}


class Spy:
    """Every message published under hydro/#, in arrival order (a persistent session: what the broker
    queued for it while it was away arrives when it is back)."""

    def __init__(self, url: str) -> None:
        self.seen: list[Seen] = []
        self._news = asyncio.Event()
        self.client = MqttClient(
            url,
            client_id=f"spy-{uuid.uuid4().hex[:8]}",
            handler=self._on,
            subscriptions=("hydro/#",),
            clean_session=False,
            receive_maximum=1000,
        )

    async def _on(self, topic, payload, retained) -> int:
        if not retained:
            self.seen.append(Seen(time.time(), topic, bytes(payload)))
            self._news.set()
        return 0

    async def start(self) -> Spy:
        await self.client.connect(10)  # returns once subscribed (SUBACK)
        return self

    async def stop(self) -> None:
        await self.client.disconnect()

    def commands(self, zone: str | None = None, channel: str | None = None, since: float = 0.0) -> list[Seen]:
        """Commands sent to nodes: hydro/{gh}/{zone}/{node}/{channel}/command."""
        return [
            m
            for m in self.seen
            if m.type == "command"
            and len(m.parts) == 6
            and m.at >= since
            and (zone is None or m.parts[2] == zone)
            and (channel is None or m.parts[4] == channel)
        ]

    async def wait(self, match, timeout: float = 10.0, since: float = 0.0) -> Seen:
        """The first message (seen at or after `since`) for which match(message) holds."""
        deadline = time.monotonic() + timeout
        i = 0
        while True:
            while i < len(self.seen):
                m = self.seen[i]
                i += 1
                if m.at >= since and match(m):
                    return m
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no such MQTT message within {timeout} s ({len(self.seen)} seen)")
            self._news.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._news.wait(), left)

    async def wait_command(
        self, zone: str, channel: str, *, state: bool | None = None, cmd: str | None = None, since: float = 0.0,
        timeout: float = 10.0,
    ) -> Seen:  # fmt: skip
        """A command to this zone channel: `state` True an ON (set_relay true or run_pump), False an OFF."""

        def ok(m: Seen) -> bool:
            if m.type != "command" or len(m.parts) != 6 or m.parts[2] != zone or m.parts[4] != channel:
                return False
            d = m.doc
            if cmd is not None and d.get("cmd") != cmd:
                return False
            return state is None or is_on(d) == state

        return await self.wait(ok, timeout, since)


def is_on(command: dict) -> bool | None:
    """What a command asks of its channel: True on, False off, None neither (a restart, a config)."""
    cmd, params = command.get("cmd"), command.get("params") or {}
    if cmd == "run_pump" or cmd == "dose":
        return True
    if cmd == "set_relay":
        return bool(params.get("state"))
    return None


@dataclass
class DaemonProcess:
    """`hydro-rules run` as a child process (what SIGKILL needs)."""

    proc: subprocess.Popen
    daemon_id: str
    log: Path

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@dataclass
class Plant:
    """A site's software on real servers: service, daemon(s), simulated nodes, and a spy on the broker."""

    database_url: str
    mqtt_url: str
    ruleset: object
    site_dir: Path
    tmp_path: Path
    clock: Clock = field(default_factory=Clock)
    db: Database | None = None
    service: object = None
    spy: Spy | None = None
    daemons: list = field(default_factory=list)
    processes: list = field(default_factory=list)
    sims: list = field(default_factory=list)
    _zone_ids: dict = field(default_factory=dict)

    # ---- starting pieces ------------------------------------------------------------------------
    async def open(self) -> Plant:
        self.db = await Database.connect(self.database_url, max_size=4)
        async with self.db.acquire() as conn:
            rows = await conn.fetch("SELECT uid, id FROM zones")
        self._zone_ids = {r["uid"]: r["id"] for r in rows}
        self.spy = await Spy(self.mqtt_url).start()
        return self

    async def start_service(self, **kw):
        """The service (ingest, command sweep, dead-man) on the shared clock. A test that has no daemon
        for a while says how soon the dead-man may act (daemon_dead_after_s, deadman_margin_s)."""
        kw.setdefault("daemon_dead_after_s", 3600)
        settings = make_settings(self.database_url, self.mqtt_url, command_sweep_every_s=0.2, **kw)
        self.service = await start_service(settings, self.ruleset, clock=self.clock)
        return self.service

    def daemon_settings(self, **kw):
        from hydro_rules.daemon.config import DaemonSettings

        name = kw.pop("daemon_id", None) or f"test-daemon-{uuid.uuid4().hex[:6]}"
        values = dict(
            database_url=self.database_url,
            mqtt_url=self.mqtt_url,
            mqtt_client_id=f"daemon-{uuid.uuid4().hex[:8]}",
            daemon_id=name,
            queue_dir=str(self.tmp_path / f"queue-{name}"),
            metrics_port=0,
            heartbeat_every_s=0.5,
            takeover_every_s=0.5,
            reload_poll_s=0.2,
        )
        values.update(kw)
        return DaemonSettings(**values)

    async def start_daemon(self, **kw):
        """The daemon in this process, on the shared clock; started (its first tick may still be coming)."""
        from hydro_rules.daemon import Daemon

        d = Daemon(self.daemon_settings(**kw), self.site_dir, clock=self.clock)
        self.daemons.append(d)
        await d.start()
        return d

    async def stop_daemon(self, d) -> None:
        if d in self.daemons:
            self.daemons.remove(d)
            await d.stop()

    def spawn_daemon(self, daemon_id: str | None = None, **env) -> DaemonProcess:
        """`hydro-rules run SITE` in a child process, settings from HYDRO_* variables (wall clock); `env`
        sets more of them by field name (MAX_ZONES=2 is HYDRO_MAX_ZONES)."""
        name = daemon_id or f"proc-daemon-{uuid.uuid4().hex[:6]}"
        log = self.tmp_path / f"{name}.log"
        environ = {
            **os.environ,
            "HYDRO_DATABASE_URL": self.database_url,
            "HYDRO_MQTT_URL": self.mqtt_url,
            "HYDRO_MQTT_CLIENT_ID": f"daemon-{uuid.uuid4().hex[:8]}",
            "HYDRO_DAEMON_ID": name,
            "HYDRO_QUEUE_DIR": str(self.tmp_path / f"queue-{name}"),
            "HYDRO_METRICS_PORT": "0",
            "HYDRO_HEARTBEAT_EVERY_S": "0.5",
            "HYDRO_TAKEOVER_EVERY_S": "0.5",
            **{(k if k.startswith("HYDRO_") else f"HYDRO_{k.upper()}"): str(v) for k, v in env.items()},
        }
        exe = Path(sys.executable).with_name("hydro-rules")
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [str(exe), "run", str(self.site_dir)], env=environ, stdout=out, stderr=subprocess.STDOUT
            )
        p = DaemonProcess(proc, name, log)
        self.processes.append(p)
        return p

    async def start_sim(self, zones: list[str] | None = None, *, firmware: str = "hydro2", faults=(), **kw):
        """Simulated nodes of these zones (all by default) speaking the node protocol, on the shared clock."""
        import inspect

        from hydro_rules.nodesim import NodeSim

        uids = zones or [z.uid for z in self.ruleset.zones]
        async with self.db.acquire() as conn:
            rows = await conn.fetch("SELECT uid, secret FROM nodes WHERE secret IS NOT NULL")
        secrets = {r["uid"]: r["secret"] for r in rows}
        extra = dict(kw)
        extra.setdefault("config", TWIN)
        if "clock" in inspect.signature(NodeSim).parameters:
            extra.setdefault("clock", self.clock)
        sim = NodeSim(self.ruleset, uids, self.mqtt_url, secrets, firmware=firmware, faults=list(faults), seed=0,
                      **extra)  # fmt: skip
        self.sims.append(sim)
        await sim.start()
        return sim

    async def close(self) -> None:
        """Stop everything (each piece at most 20 s: a piece that does not stop is named, not waited on)."""
        loop = asyncio.get_running_loop()
        before = loop.get_exception_handler()

        def handler(loop, context):
            # a query cut short by the pool closing under a flood of node messages leaves asyncpg's own
            # future unread: a shutdown artefact (the handler that ran the query logged it); anything
            # else goes where it went before
            e = context.get("exception")
            if isinstance(e, ConnectionError) and "unexpected connection_lost" in str(e):
                return
            if before is not None:
                before(loop, context)
            else:
                loop.default_exception_handler(context)

        loop.set_exception_handler(handler)
        try:
            await self._close()
        finally:
            loop.set_exception_handler(before)

    async def _close(self) -> None:
        stuck = []

        async def stop(what: str, coro) -> None:
            # not wait_for: it waits for a cancelled stop to end, and a stop that swallows its
            # cancellation would hang the run instead of being named
            task = asyncio.ensure_future(coro)
            done, _ = await asyncio.wait({task}, timeout=20)
            if not done:
                where = io.StringIO()
                task.print_stack(file=where)
                stuck.append(f"{what}\n{where.getvalue()}")
                task.cancel()
            elif not task.cancelled() and task.exception() is not None:
                pass  # a piece that fails to stop cleanly is not what these tests are about

        for p in self.processes:
            p.stop()
        self.processes = []
        for s in self.sims:
            await stop("node simulator", s.stop())
        self.sims = []
        for d in reversed(self.daemons):
            await stop(f"daemon {d.daemon_id}", d.stop())
        self.daemons = []
        if self.service is not None:
            await stop("service", self.service.stop())
            self.service = None
        if self.spy is not None:
            await stop("spy", self.spy.stop())
            self.spy = None
        if self.db is not None:
            await stop("test pool", self.db.close())
            self.db = None
        assert not stuck, f"did not stop within 20 s: {', '.join(stuck)}"

    # ---- reading what happened ---------------------------------------------------------------------
    def zone_id(self, uid: str) -> int:
        return self._zone_ids[uid]

    async def commands(self, zone: str | None = None, channel: str | None = None) -> list[dict]:
        """The zone's command rows, oldest first."""
        async with self.db.acquire() as conn:
            rows = await command_store.list_commands(
                conn, zone_id=None if zone is None else self.zone_id(zone), limit=10_000
            )
        return [r for r in reversed(rows) if channel is None or r["channel"] == channel]

    async def open_commands(self) -> list[dict]:
        """Commands without a terminal status (done, failed, timeout)."""
        return [c for c in await self.commands() if c["status"] not in command_store.TERMINAL]

    async def events(self, zone: str, type: str | None = None) -> list[dict]:
        async with self.db.acquire() as conn:
            rows = await event_store.list_events(conn, self.zone_id(zone), type=type, limit=10_000)
        return list(reversed(rows))

    async def alerts(self, zone: str | None = None, code: str | None = None, status: str | None = None) -> list[dict]:
        async with self.db.acquire() as conn:
            rows = await alert_store.list_alerts(
                conn, zone_id=None if zone is None else self.zone_id(zone), status=status, limit=10_000
            )
        return [a for a in rows if code is None or a["code"] == code]

    async def decisions(self, zone: str, kind: str | None = None) -> list[dict]:
        from hydro_rules.store import decisions as decision_store

        async with self.db.acquire() as conn:
            return await decision_store.list_decisions(conn, self.zone_id(zone), kind=kind, limit=100_000)

    async def water_state(self, zone: str) -> str | None:
        """The water cycle's state as the daemon last stored it."""
        async with self.db.acquire() as conn:
            state = await conn.fetchval("SELECT engine_state FROM zones WHERE uid = $1", zone)
        if isinstance(state, str):
            state = json.loads(state)
        return ((state or {}).get("machines") or {}).get("water_cycle")

    async def wait_state(self, zone: str, state: str, timeout: float = 20.0) -> str:
        async def check():
            return await self.water_state(zone) == state

        await eventually(check, timeout)
        return state

    async def wait_event(self, zone: str, type: str, timeout: float = 20.0, after_id: int = 0) -> dict:
        async def check():
            return next((e for e in await self.events(zone, type) if e["id"] > after_id), None)

        return await eventually(check, timeout)

    async def wait_alert(self, zone: str, code: str, channel: str | None = None, timeout: float = 20.0,
                         status: str = "ACTIVE") -> dict:  # fmt: skip
        async def check():
            rows = await self.alerts(zone, code, status)
            return next((a for a in rows if channel is None or a["channel"] == channel), None)

        return await eventually(check, timeout)

    async def wait_terminal(self, timeout: float = 20.0) -> list[dict]:
        """Every command has a terminal status; the commands."""

        async def check():
            return not await self.open_commands()

        await eventually(check, timeout, every=0.1)
        return await self.commands()

    async def samples(self, zone: str) -> int:
        async with self.db.acquire() as conn:
            return await conn.fetchval("SELECT count(*) FROM telemetry_samples WHERE zone_id = $1", self.zone_id(zone))


async def until(predicate, timeout: float = 10.0, every: float = 0.05):
    """`eventually` for a plain (synchronous) predicate."""

    async def check():
        return predicate()

    return await eventually(check, timeout, every)


async def ticks(daemon, n: int = 1, timeout: float = 10.0) -> None:
    """Wait until the daemon has run `n` more ticks."""
    target = daemon.ticks + n

    async def check():
        return daemon.ticks >= target

    await eventually(check, timeout, every=0.02)


async def register_nodes(conn, ruleset) -> dict[str, str]:
    """Every node of the site registered as a technician does it: node uid -> its command secret."""
    from hydro_rules.store import nodes as node_store

    for zone in ruleset.zones:
        for node_uid in zone.nodes:
            await node_store.register(conn, node_uid, zone_uid=zone.uid)
    rows = await conn.fetch("SELECT uid, secret FROM nodes WHERE secret IS NOT NULL")
    return {r["uid"]: r["secret"] for r in rows}


@pytest.fixture
async def site_db(database_url, test_site) -> str:
    """The run's database, emptied and holding the test site with registered nodes (secrets)."""
    from hydro_rules.store import connect_once

    await reset_database(database_url, test_site)
    conn = await connect_once(database_url)
    try:
        await register_nodes(conn, test_site)
    finally:
        await conn.close()
    return database_url


@pytest.fixture
async def plant(site_db, mqtt_url, test_site, tmp_path):
    """A factory: `p = await plant()` gives an opened Plant (nothing started); all of it stops at the end.
    `plant(mqtt_url=..., site_dir=...)` puts it on another broker or rule-set directory."""
    made: list[Plant] = []

    async def make(*, mqtt: str | None = None, site_dir: Path | None = None, ruleset=None) -> Plant:
        p = Plant(site_db, mqtt or mqtt_url, ruleset or test_site, site_dir or SITE, tmp_path)
        made.append(p)
        return await p.open()

    yield make
    for p in reversed(made):
        await p.close()


@pytest.fixture(autouse=True)
def _no_retained_left(no_retained_left):
    """Simulated nodes leave retained status and lwt behind: gone before the next test."""
