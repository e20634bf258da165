"""The site daemon: the rule engine driving real nodes, tick by tick and at once on a safety sample.

Each tick, for the zones it owns: the latest telemetry of all of them (one query)
merged with what the live MQTT feed heard (newest wins), the store's answers to
its outstanding commands folded in, operators' safety resets applied, then the
engine evaluates. What it decided is written in ONE transaction (command rows
through CommandService's record step, alerts, events, decision-log rows, the
zone's engine state), then the commands are signed and published
(CommandService's publish step) and marked sent.

The database may go away: control goes on from memory, commands are published
with the node secrets kept from the last read, and every write waits in the
journal on local disk, to be written in order once the database is back. Zones
are shared between daemons by advisory locks (ownership.py); a zone taken from a
dead daemon, or one the daemon had before it restarted, is recovered from its
saved state (a timed step of a water change fails, every channel is asserted again).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import signal
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from .. import messages as W
from ..engine.api import carry_state
from ..engine.state import ZoneState
from ..lang import model as M
from ..lang.loader import load
from ..service.commands import CommandRefused, CommandService
from ..sim.dryrun import reset_words
from ..store import Database, DatabaseUnavailable
from ..store import alerts as alert_store
from ..store import commands as command_store
from ..store import daemons as daemon_store
from ..store import decisions as decision_store
from ..store import events as event_store
from ..store import nodes as node_store
from ..store import telemetry as telemetry_store
from ..store import zones as zone_store
from ..store.db import CONNECTION_ERRORS
from . import log as dlog
from .config import DaemonSettings
from .live import cancel_and_wait
from .zone import ZoneRunner

log = logging.getLogger(__name__)

SAFETY_RESET = "SAFETY_RESET"
RULESET_REJECTED = "RULESET_REJECTED"
RULESET_ALERT = "infra_ruleset_rejected"
#: node secrets and ids are read again this often while the database is up
NODES_REFRESH_S = 30.0
#: the capability a node's hello announces when it ends a timed OFF of its relays by itself
BOUNDED_OFF = "bounded_off"
#: zones evaluated, written (one transaction) and published together within a tick
CHUNK = 64
#: a zone's state is written with every decision, and at least this often when nothing is decided
STATE_EVERY_S = 5.0


class RulesetError(Exception):
    """The rule set has errors: the daemon does not start on it."""

    def __init__(self, loaded) -> None:
        self.loaded = loaded
        errors = loaded.diags.errors
        super().__init__(f"{len(errors)} error(s) in the rule set" + (f": {errors[0].message}" if errors else ""))


def _at(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def _diag_lines(loaded, n: int = 5) -> list[str]:
    return [f"{d.span}: {d.severity.value}[{d.code}]: {d.full_message}" for d in loaded.diags.sorted()[:n]]


def rule_files_signature(loaded, root: Path) -> tuple:
    """(path, mtime_ns, size) of every rule file the rule set was read from, and of any new one
    in the same directories: what a reload looks for."""
    paths = {Path(p) for p in loaded.sources} if loaded is not None else set()
    dirs = {p.parent for p in paths} | {root}
    for d in dirs:
        with contextlib.suppress(OSError):
            paths.update(d.glob("*.hydro"))
    out = []
    for p in sorted(paths):
        try:
            s = p.stat()
            out.append((str(p), s.st_mtime_ns, s.st_size))
        except OSError:
            out.append((str(p), None, None))
    return tuple(out)


class Daemon:
    def __init__(
        self,
        settings: DaemonSettings,
        site_path: str | Path,
        *,
        clock: Callable[[], float] = time.time,
        ruleset: M.RuleSet | None = None,
    ) -> None:
        self.settings = settings
        self.site_path = Path(site_path)
        self.clock = clock
        self.daemon_id = settings.daemon_id
        self.loaded = None
        self.ruleset = ruleset
        self.zones: dict[str, ZoneRunner] = {}
        self.ticks = 0
        self.evaluated = 0  # fast-path evaluations
        self.tick_done = asyncio.Event()
        self.db: Database | None = None
        self.db_ok = False
        self.commands: CommandService | None = None
        self.journal = None
        self.ownership = None
        self.live = None
        self.metrics = None
        self.infra = None
        self._nodes: dict[str, dict] = {}  # node uid -> {"id", "secret"}: kept for when the database is down
        self._nodes_at = 0.0
        self._reset_cursor = 0
        self._tick_lock = asyncio.Lock()  # ticks, ownership changes and reloads, one at a time
        self._db_lock = asyncio.Lock()  # writes and the journal's replay, in order
        self._recheck = False  # re-take the zone locks before the next command (after the database was away)
        self._wconn = None  # the writer connection (see _transaction)
        self._last_saved: dict[str, tuple] = {}  # zone -> (when, its state as JSON text) last written
        self._tasks: list[asyncio.Task] = []
        self._background: set[asyncio.Task] = set()  # SIGHUP reloads, infra alert writes
        self._reloading = asyncio.Lock()  # one reload at a time: SIGHUP and the file poll may coincide
        self._signature: tuple = ()
        self._adopted = False  # the store's active infra alerts are known to the watch
        self._pending_gains: set[str] = set()  # zones locked while their rows could not be read
        self._started = False
        self._stopping = False

    # ---- life ---------------------------------------------------------------------------------
    async def start(self) -> None:
        from .infra import InfraWatch
        from .journal import Journal
        from .live import LiveFeed
        from .metrics import DaemonMetrics
        from .ownership import Ownership

        s = self.settings
        if self.ruleset is None:
            loaded = await asyncio.to_thread(load, self.site_path)
            if loaded.diags.errors or loaded.ruleset is None:
                raise RulesetError(loaded)
            self.loaded, self.ruleset = loaded, loaded.ruleset
        else:
            self.loaded = await asyncio.to_thread(load, self.site_path)
        self._signature = rule_files_signature(self.loaded, self.site_path)
        self.metrics = DaemonMetrics()
        if s.metrics_port:
            self.metrics.serve(s.metrics_host, s.metrics_port)
        self.infra = InfraWatch(s, self.clock)
        self.journal = Journal(Path(s.queue_dir))
        self.db = await Database.connect(s.database_url, max_size=4)
        self.commands = CommandService(
            self.db, self.ruleset, None, clock=self.clock, publish_timeout_s=s.command_publish_timeout_s
        )
        self.live = LiveFeed(
            s, self.ruleset, on_readings=self._on_readings, on_node_back=self._on_node_back, clock=self.clock
        )
        self.commands.mqtt = self.live.mqtt
        await self.live.start()
        self.ownership = Ownership(
            s.database_url, self.daemon_id, [z.uid for z in self.ruleset.zones], clock=self.clock, max_zones=s.max_zones
        )
        try:
            async with self.db.acquire() as conn:
                await conn.fetchval("SELECT 1")
            await self._back_online()
        except DatabaseUnavailable as e:
            log.warning("the database is not reachable at start: %s", e)
        async with self._tick_lock:
            await self._refresh_ownership(why="daemon restart")
        await self._beat()
        self._started = True
        self._tasks = [
            asyncio.create_task(self._tick_loop(), name="daemon-ticks"),
            asyncio.create_task(self._every(s.heartbeat_every_s, self._beat), name="daemon-heartbeat"),
            asyncio.create_task(self._every(s.takeover_every_s, self._ownership_step), name="daemon-ownership"),
            asyncio.create_task(self._every(s.reload_poll_s, self._poll_rules), name="daemon-reload-poll"),
            asyncio.create_task(self._every(1.0, self._watch_db), name="daemon-db-watch"),
        ]
        log.info(
            "daemon %s started on %s (%s): zones %s",
            self.daemon_id,
            self.site_path,
            self.ruleset.ruleset_version,
            ", ".join(sorted(self.zones)) or "none yet",
        )

    async def stop(self) -> None:
        self._stopping = True
        await cancel_and_wait({*self._tasks, *self._background})
        self._tasks = []
        if self.live is not None:
            with contextlib.suppress(Exception):
                await self.live.stop()
        if self.db is not None and self.db_ok:
            with contextlib.suppress(DatabaseUnavailable, OSError):
                async with self.db.acquire() as conn:
                    await daemon_store.stopped(conn, self.daemon_id, _at(self.clock()))
        if self.ownership is not None:
            with contextlib.suppress(Exception):
                await self.ownership.close()
        if self.metrics is not None:
            with contextlib.suppress(Exception):
                self.metrics.close()
        if self.journal is not None:
            with contextlib.suppress(Exception):
                self.journal.close()
        if self.db is not None:
            await self._release_writer()
            await self.db.close()
        log.info("daemon %s stopped", self.daemon_id)

    async def run_forever(self) -> None:
        """Start, run until SIGINT or SIGTERM, stop. SIGHUP reloads the rule set."""
        loop = asyncio.get_running_loop()
        done = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, done.set)
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGHUP, lambda: self._spawn(self.reload()))
        await self.start()
        try:
            await done.wait()
        finally:
            await self.stop()

    def _spawn(self, coro) -> asyncio.Task:
        """A task the daemon keeps hold of until it ends (the loop keeps only weak references)."""
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    async def _every(self, period: float, step) -> None:
        while not self._stopping:
            await asyncio.sleep(period)
            try:
                await step()
            except asyncio.CancelledError:
                raise
            except DatabaseUnavailable as e:
                self._db_lost(e)
            except Exception:
                log.exception("daemon task %s failed; going on", getattr(step, "__name__", step))

    async def _tick_loop(self) -> None:
        loop = asyncio.get_running_loop()
        period = self.settings.tick_s
        next_at = loop.time()
        while not self._stopping:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("tick failed; going on")
            next_at += period
            delay = next_at - loop.time()
            if delay < 0:  # behind: start the next tick now, and count from it
                next_at, delay = loop.time(), 0
            await asyncio.sleep(delay)

    # ---- the tick -------------------------------------------------------------------------------
    async def tick(self) -> None:
        """One evaluation of every zone the daemon owns."""
        async with self._tick_lock:
            self.tick_done.clear()
            t0 = time.perf_counter()
            runners = [self.zones[u] for u in sorted(self.zones)]
            inputs = await self._read_inputs(runners)
            for i in range(0, len(runners), CHUNK):  # a fast-path evaluation waits for one chunk at most
                await self._run(runners[i : i + CHUNK], inputs)
            self.ticks += 1
            self._observe(time.perf_counter() - t0)
            self.tick_done.set()

    async def evaluate_now(self, zone_uid: str) -> None:
        """The fast path: evaluate one zone at once (a safety sample came), as a tick does."""
        z = self.zones.get(zone_uid)
        if z is None or self._stopping:
            return
        await self._run([z], None)
        self.evaluated += 1

    async def _read_inputs(self, runners: list[ZoneRunner]) -> dict | None:
        """Latest telemetry, command statuses and safety resets of these zones, or None (database down)."""
        if not self.db_ok or not runners:
            return None
        ids = [z.zone_id for z in runners]
        outstanding = [c for z in runners for c in z.outstanding()]
        t0 = time.perf_counter()
        try:
            async with self.db.acquire() as conn:
                latest = await telemetry_store.latest_many(conn, ids)
                statuses = await command_store.statuses(conn, outstanding)
                resets = await event_store.after(conn, ids, self._reset_cursor, [SAFETY_RESET])
        except DatabaseUnavailable as e:
            self._db_lost(e)
            return None
        self._metric("db_latency_seconds", "observe", time.perf_counter() - t0)
        cursor = self._reset_cursor
        if resets:
            self._reset_cursor = max(r["id"] for r in resets)
        by_id = {}
        for r in statuses:
            by_id[r["cmd_id"]] = r
        return {"latest": latest, "statuses": by_id, "resets": resets, "cursor": cursor}

    async def _run(self, runners: list[ZoneRunner], inputs: dict | None) -> None:
        """Evaluate these zones (each under its lock), write what they decided in one transaction, publish."""
        async with contextlib.AsyncExitStack() as stack:
            for z in runners:
                await stack.enter_async_context(z.lock)
            now = self.clock()  # read under the locks: a zone's evaluations never go back in time
            work = []
            for z in runners:
                if z.dropped or z.st is None:
                    continue
                ds, entries = self._evaluate(z, now, inputs)
                work.append((z, ds, entries))
            if not work:
                return
            batches = [self._batch(z, ds, entries, now) for z, ds, entries in work]
            batches = [b for b in batches if b is not None]
            if batches and not await self._write({"op": "tick", "zones": batches}):
                for z, ds, _ in work:  # nothing of it is stored: nothing of it happened, nothing is sent
                    self._undo(z, [c for d in ds for c in d.commands], now)
                if inputs is not None and inputs["resets"]:  # read again next time
                    self._reset_cursor = min(self._reset_cursor, inputs["cursor"])
                return
            await self._publish(work, now)

    def _evaluate(self, z: ZoneRunner, now: float, inputs: dict | None) -> tuple[list, list]:
        prog, st = z.prog, z.st
        ds, entries = [], []
        if inputs is not None:
            z.take_stored(inputs["latest"].get(z.zone_id, []))
            mine = [inputs["statuses"][c] for c in z.outstanding() if c in inputs["statuses"]]
            for resp in z.responses(mine, now):
                self._metric("commands", "inc", labels={"status": resp.status})
                d = prog.apply_response(st, resp, now)
                if d:
                    ds.append(d)
                    entries += dlog.entries(prog, d)
            z.forget_answered()
            for ev in inputs["resets"]:
                if ev["zone_id"] == z.zone_id:
                    d, e = self._reset(z, ev, now)
                    ds.append(d)
                    entries += e
        elif not self.db_ok:  # the database is away: no answer and no timeout can reach us through it
            for resp in z.overdue(now):
                self._metric("commands", "inc", labels={"status": resp.status})
                d = prog.apply_response(st, resp, now)
                if d:
                    ds.append(d)
                    entries += dlog.entries(prog, d)
        t0 = time.perf_counter()
        d = prog.evaluate(st, z.snapshot(), now)
        self._metric("eval_seconds", "observe", time.perf_counter() - t0)
        ds.append(d)
        entries += dlog.entries(prog, d)
        return ds, entries

    def _reset(self, z: ZoneRunner, ev: dict, now: float) -> tuple:
        details = ev.get("details") or {}
        who, why = details.get("by") or "operator", details.get("reason") or "safety reset"
        d = z.prog.reset(z.st, who, why, now)
        e = dlog.entry(
            now,
            "reset",
            reset_words(why, who),
            details={"event_id": ev["id"], "by": who, "reason": why, "resolved": details.get("resolved", [])},
        )
        return d, [e, *dlog.entries(z.prog, d)]

    # ---- what is written ------------------------------------------------------------------------
    def _batch(self, z: ZoneRunner, ds: list, entries: list[dict], now: float) -> dict | None:
        """The zone's writes of one evaluation, as JSON (it may wait in the journal)."""
        version = z.prog.version
        commands, alerts, events = [], [], []
        for d in ds:
            for c in d.commands:
                node = self._nodes.get(c.node_uid)
                if node is None:
                    continue  # not recorded, not sent: see _publish
                commands.append(
                    {
                        "cmd_id": c.cmd_id,
                        "zone_uid": c.zone_uid,
                        "channel": c.channel,
                        "node_uid": c.node_uid,
                        "node_id": node["id"],
                        "channel_key": c.channel_key,
                        "cmd": c.cmd,
                        "params": c.params,
                        "rule": c.rule,
                        "ruleset_version": c.ruleset_version or version,
                        "at": c.at,
                    }
                )
            for a in d.alerts:
                spec = z.rs.alerts.get(a.code)
                alerts.append(
                    {
                        "change": a.change,
                        "code": a.code,
                        "channel": a.channel,
                        "source": a.source,
                        "severity": a.severity,
                        "text": a.text,
                        "details": dlog.plain(a.details or {}),
                        "locks": bool(spec.locks) if spec else False,
                        "by": a.by,
                        "why": a.why,
                        "rule": _alert_rule(entries, a),
                        "ruleset_version": a.ruleset_version or version,
                        "at": a.at,
                    }
                )
            for e in d.events:
                events.append(
                    {"type": e.type, "details": dlog.plain(e.details), "rule": e.details.get("cause"), "at": e.at}
                )
        last = self._last_saved.get(z.uid)
        if not (commands or alerts or events or entries) and last is not None and now - last[0] < STATE_EVERY_S:
            return None  # nothing decided: the state is written every STATE_EVERY_S, with the next decision at once
        state = z.st.to_json()
        self.count_decisions(entries)
        return {
            "zone_uid": z.uid,
            "zone_id": z.zone_id,
            "ruleset_version": version,
            "at": now,
            "commands": commands,
            "alerts": alerts,
            "events": events,
            "decisions": entries,
            "state": state,
            "water_state": z.water_state(),
            "solution_started_at": z.st.solution_started_at,
        }

    async def _write(self, entry: dict) -> bool:
        """Write an entry in one transaction, or to the journal while the database is away.
        False: it could be neither (a fault in the data): nothing of it is stored."""
        async with self._db_lock:
            if self.db_ok:
                t0 = time.perf_counter()
                try:
                    async with self._transaction() as conn:
                        await self._apply(conn, entry)
                    self._metric("db_latency_seconds", "observe", time.perf_counter() - t0)
                    self._written(entry)
                    return True
                except DatabaseUnavailable as e:
                    self._db_lost(e)
                except Exception:
                    log.exception("cannot write the %s entry; nothing of it is stored", entry.get("op"))
                    return False
            try:
                self.journal.append(entry)
            except OSError:
                log.exception("cannot keep the %s entry in the journal; nothing of it is stored", entry.get("op"))
                return False
            self._metric("journal_pending", "set", self.journal.pending())
            self._written(entry)
            return True

    @contextlib.asynccontextmanager
    async def _transaction(self):
        """A transaction on the daemon's own writer connection, kept between writes: a fast-path
        evaluation publishes right after its COMMIT, with no pool round trip in between."""
        try:
            if self._wconn is None or self._wconn.is_closed():
                self._wconn = None
                self._wconn = await self.db.pool.acquire(timeout=10)
            async with self._wconn.transaction():
                yield self._wconn
        except CONNECTION_ERRORS as e:
            await self._release_writer()
            raise DatabaseUnavailable(f"{type(e).__name__}: {e}") from e

    async def _release_writer(self) -> None:
        conn, self._wconn = self._wconn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.db.pool.release(conn), 2)

    def _written(self, entry: dict) -> None:
        """The states an entry stored are what a failed write later returns to."""
        for b in entry.get("zones", ()) if entry["op"] == "tick" else ():
            if b.get("state") is not None:
                self._last_saved[b["zone_uid"]] = (b["at"], json.dumps(b["state"]))

    def _undo(self, z: ZoneRunner, commands: list, now: float) -> None:
        """An evaluation whose writes failed did not happen: the zone returns to its last stored state
        (its next evaluation decides again). Without one, its commands are answered failed at once."""
        prev = self._last_saved.get(z.uid)
        z.answered.clear()  # the store's answers are folded in again
        if prev is not None:
            z.st = ZoneState.from_json(json.loads(prev[1]))
        else:
            self._unsent(z, commands, "not_recorded", now)

    async def _apply(self, conn, entry: dict, *, replay: bool = False) -> None:
        op = entry["op"]
        if op == "tick":
            for b in entry["zones"]:
                await self._apply_zone(conn, b, replay=replay)
        elif op == "sent":
            for cmd_id, at in entry.get("sent", []):
                await command_store.mark_sent(conn, cmd_id, _at(at))
            for cmd_id, code, message, at in entry.get("failed", []):
                await command_store.mark_failed(conn, cmd_id, code, message, _at(at))
        elif op == "infra":
            for a in entry["alerts"]:
                await self._apply_alert(conn, None, a)
            for e in entry.get("events", []):
                await event_store.add(
                    conn,
                    zone_id=e.get("zone_id"),
                    type=e["type"],
                    details=e["details"],
                    ruleset_version=e.get("ruleset_version"),
                    ts=_at(e["at"]),
                    rule=e.get("rule"),
                )
            if entry.get("decisions"):
                await decision_store.add_many(
                    conn,
                    [
                        dlog.to_row(
                            x, zone_id=x["zone_id"], ruleset_version=x["ruleset_version"], daemon_id=self.daemon_id
                        )
                        for x in entry["decisions"]
                    ],
                )
        else:
            log.error("journal entry of unknown op %r skipped", op)

    async def _apply_zone(self, conn, b: dict, *, replay: bool) -> None:
        zone_id, version = b["zone_id"], b["ruleset_version"]
        for c in b["commands"]:
            command = _Cmd(c)
            if replay:
                try:
                    async with conn.transaction():  # a savepoint: a command written before the crash stays once
                        await self.commands.record(conn, command, zone_id=zone_id, node_id=c["node_id"], now=c["at"])
                except command_store.CommandExists:
                    pass
            else:
                await self.commands.record(conn, command, zone_id=zone_id, node_id=c["node_id"], now=c["at"])
        for a in b["alerts"]:
            await self._apply_alert(conn, zone_id, a)
        for e in b["events"]:
            await event_store.add(
                conn,
                zone_id=zone_id,
                type=e["type"],
                details=e["details"],
                ruleset_version=version,
                ts=_at(e["at"]),
                rule=e.get("rule"),
            )
        if b["decisions"]:
            await decision_store.add_many(
                conn,
                [
                    dlog.to_row(x, zone_id=zone_id, ruleset_version=version, daemon_id=self.daemon_id)
                    for x in b["decisions"]
                ],
            )
        if b.get("state") is not None:
            started = b.get("solution_started_at")
            await zone_store.save_engine_state(
                conn,
                zone_id,
                b["state"],
                water_state=b.get("water_state"),
                solution_started_at=_at(started) if started is not None else None,
            )

    async def _apply_alert(self, conn, zone_id: int | None, a: dict) -> None:
        if a["change"] == "raised":
            await alert_store.raise_alert(
                conn,
                zone_id=zone_id,
                source=a["source"],
                code=a["code"],
                type=a["text"],
                severity=a["severity"],
                channel=a.get("channel"),
                node_id=a.get("node_id"),
                dedup_key=a.get("dedup_key"),
                details=a.get("details") or {},
                locks=a.get("locks", False),
                ruleset_version=a.get("ruleset_version"),
                rule=a.get("rule"),
                at=_at(a["at"]),
            )
        else:
            await alert_store.resolve(
                conn,
                zone_id=zone_id,
                code=a["code"],
                dedup_key=a.get("dedup_key") or a.get("channel") or "",
                by=a.get("by") or "engine",
                reason=a.get("why") or "resolved",
                at=_at(a["at"]),
            )

    # ---- publishing ---------------------------------------------------------------------------
    async def _publish(self, work: list, now: float) -> None:
        if self._recheck and self.db_ok:
            await self._recheck_ownership()
        sent, failed = [], []
        for z, ds, _ in work:
            commands = [c for d in ds for c in d.commands]
            if not commands:
                continue
            if z.dropped:  # another daemon has the zone now: not one more command for it
                log.warning("zone %s was taken by another daemon; %d command(s) not sent", z.uid, len(commands))
                continue
            unknown = []
            for c in commands:
                node = self._nodes.get(c.node_uid)
                if node is None or not node.get("secret"):
                    unknown.append(c)
                    continue
                try:
                    await self.commands.publish(
                        greenhouse_uid=z.greenhouse_uid,
                        zone_uid=z.uid,
                        node_uid=c.node_uid,
                        secret=node["secret"],
                        cmd_id=c.cmd_id,
                        channel_key=c.channel_key,
                        cmd=c.cmd,
                        params=c.params,
                        now=now,
                    )
                    sent.append((c.cmd_id, now))
                    self._metric("commands", "inc", labels={"status": "sent"})
                except CommandRefused as e:
                    failed.append((c.cmd_id, e.code, e.message, now))
                    self._metric("commands", "inc", labels={"status": "failed"})
                    self._answer(z, c.cmd_id, e.code, now)
            if unknown:
                self._unsent(z, unknown, "node_unknown", now)
        if sent or failed:
            entry = {"op": "sent", "sent": sent, "failed": failed}
            if self.db_ok:
                try:
                    async with self.db.acquire() as conn:
                        await self._apply(conn, entry)
                    return
                except DatabaseUnavailable as e:
                    self._db_lost(e)
            await self._write(entry)

    def _answer(self, z: ZoneRunner, cmd_id: str, code: str, now: float) -> None:
        """Tell the engine at once that a command did not go out (as the store will say: failed)."""
        z.answered[cmd_id] = "failed"
        z.prog.apply_response(z.st, W.CommandResponse(cmd_id, W.ERROR, now, code), now)

    def _unsent(self, z: ZoneRunner, commands: list, code: str, now: float) -> None:
        for c in commands:
            log.error("command %s (%s on %s/%s) not sent: %s", c.cmd_id, c.cmd, z.uid, c.channel, code)
            self._answer(z, c.cmd_id, code, now)

    # ---- callbacks of the live feed -------------------------------------------------------------
    async def _on_readings(self, zone_uid: str, readings, safety: bool) -> None:
        z = self.zones.get(zone_uid)
        if z is None:
            return
        z.take_live(readings)
        if safety:
            await self.evaluate_now(zone_uid)

    async def _on_node_back(self, node_uid: str, why: str) -> None:
        """A node came back (reboot, new session): its relays are open; re-send what each zone wants."""
        now = self.clock()
        for z in [z for z in self.zones.values() if node_uid in z.nodes]:
            async with z.lock:
                if z.dropped or z.st is None:
                    continue
                z.prog.node_back(z.st, node_uid, now, why)
                e = dlog.entry(
                    now,
                    "reassert",
                    f"{node_uid} came back ({why}): the desired state of its channels is sent again",
                    details={"node_uid": node_uid, "why": why},
                )
                b = self._batch(z, [], [e], now)
                if b is not None:
                    await self._write({"op": "tick", "zones": [b]})
            await self.evaluate_now(z.uid)

    # ---- zones: ownership, loading, recovery ----------------------------------------------------------
    async def _ownership_step(self) -> None:
        async with self._tick_lock:
            await self._refresh_ownership(why="takeover")

    async def _recheck_ownership(self) -> None:
        """After the database was away: the zone locks are ours again (a new session re-takes them),
        and a zone another daemon took meanwhile is dropped at once, before any command for it."""
        try:
            lost = await self.ownership.confirm()
        except Exception as e:
            log.warning("ownership check failed: %s", e)
            return
        for uid in lost:
            self._drop(uid)
        if self.ownership.connected:
            self._recheck = False

    async def _refresh_ownership(self, why: str) -> None:
        if self.ownership is None:
            return
        try:
            gained, lost = await self.ownership.refresh()
        except Exception as e:
            log.warning("ownership refresh failed: %s", e)
            return
        gained = (set(gained) | self._pending_gains) - set(lost)
        self._pending_gains = set()
        for uid in lost:
            self._drop(uid)
        if not self.db_ok:
            self._pending_gains = gained
            return
        if gained - set(self.zones):
            try:
                async with self.db.acquire() as conn:
                    await self._load_nodes(conn, force=True)  # the secrets of their nodes, before any command
            except DatabaseUnavailable as e:
                self._db_lost(e)
                self._pending_gains = gained
                return
        for uid in sorted(gained):
            if uid in self.zones:
                continue
            try:
                await self._take(uid, why)
            except DatabaseUnavailable as e:
                self._db_lost(e)
                self._pending_gains.add(uid)
            except Exception:
                log.exception("cannot take zone %s", uid)
        self._metric("zones_owned", "set", len(self.zones))

    def _drop(self, uid: str) -> None:
        z = self.zones.pop(uid, None)
        if z is not None:
            z.dropped = True
            self._last_saved.pop(uid, None)
            log.warning("zone %s is no longer ours: dropped", uid)

    async def _take(self, uid: str, why: str) -> None:
        """Load a zone we now own: its saved state, recovered (a restart or a takeover), or a fresh one."""
        if self.ruleset.zone(uid) is None:
            return
        now = self.clock()
        async with self.db.acquire() as conn:
            row = await zone_store.get(conn, uid)
            if row is None:
                log.error("zone %s is not in the database (run the service, or db sync); not controlled", uid)
                return
            saved = await zone_store.engine_state(conn, row["id"])
            prev = await daemon_store.last_owner(conn, uid, other_than=self.daemon_id) if saved else None
            resets = await event_store.after(conn, [row["id"]], 0, [SAFETY_RESET])
        z = ZoneRunner(self.ruleset, uid, zone_id=row["id"], greenhouse_uid=row["greenhouse_uid"])
        z.announce_bounded_off(self._bounded_off())
        ds, entries = [], []
        if saved:
            if prev is not None and (why != "daemon restart" or prev.get("host") != socket.gethostname()):
                why = f"takeover from {prev['daemon_id']}"  # another daemon (or another host's) had it
            z.st = carry_state(saved, z.prog, now)
            d = z.prog.recover(z.st, now, why)
            entries.append(
                dlog.entry(
                    now,
                    "recovery",
                    f"recovered from the saved state after {why}: timed steps fail, every channel is asserted again",
                    details={"why": why, "machines": dict(z.st.machines)},
                )
            )
            ds.append(d)
            entries += dlog.entries(z.prog, d)
            saved_at = row.get("updated_at")
            for ev in resets:  # a reset made while nobody ran the zone
                if saved_at is not None and ev["ts"] > saved_at:
                    d, e = self._reset(z, ev, now)
                    ds.append(d)
                    entries += e
        else:
            z.st = z.prog.new_state(now)
        for ev in resets:
            self._reset_cursor = max(self._reset_cursor, ev["id"])
        entries.append(
            dlog.entry(now, "ownership", f"zone taken by daemon {self.daemon_id} ({why})", details={"why": why})
        )
        self.zones[uid] = z
        self._last_saved[uid] = (-math.inf, json.dumps(z.st.to_json()))  # what a failed first write returns to
        async with z.lock:
            b = self._batch(z, ds, entries, now)
            if b is not None:
                await self._write({"op": "tick", "zones": [b]})
        log.info("zone %s taken (%s)%s", uid, why, ": recovered from its saved state" if saved else "")

    async def _load_nodes(self, conn, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._nodes_at < NODES_REFRESH_S:
            return
        uids = sorted({n for z in self.ruleset.zones for n in z.nodes})
        self._nodes = await node_store.secrets_of(conn, uids)
        self._nodes_at = now
        self._announce()

    def _announce(self) -> None:
        """What nodes announced of themselves, told to each zone's program (bounded OFFs)."""
        for z in self.zones.values():
            z.announce_bounded_off(self._bounded_off())

    def _bounded_off(self) -> set[str]:
        return {uid for uid, n in self._nodes.items() if BOUNDED_OFF in (n.get("capabilities") or ())}

    # ---- the database: lost, back -------------------------------------------------------------
    def _db_lost(self, e) -> None:
        if self.db_ok:
            log.warning("the database is away (%s): controlling from memory, writes wait in the journal", e)
        self.db_ok = False
        self._recheck = True

    async def _watch_db(self) -> None:
        if self.db_ok:
            async with self.db.acquire() as conn:
                await self._load_nodes(conn)
            return
        if await self.db.ping():
            await self._back_online()

    async def _back_online(self) -> None:
        """The database answers: write what waited in the journal, in order, then write directly again."""
        async with self._db_lock:
            pending = self.journal.pending()

            async def apply(entry):
                try:
                    async with self._transaction() as conn:
                        await self._apply(conn, entry, replay=True)
                except DatabaseUnavailable:
                    raise  # it stays in the journal: the next try writes it
                except Exception:  # an entry the database refuses would hold every later one back for ever
                    log.exception("journal entry %s refused by the database; dropped", entry.get("op"))

            if pending:
                log.info("the database is back: writing %d journal entr(ies)", pending)
            await self.journal.replay(apply)
            async with self.db.acquire() as conn:
                await self._load_nodes(conn, force=True)
                if not self._adopted and self.infra is not None:
                    rows = await alert_store.list_alerts(conn, status=alert_store.ACTIVE, source="infra", limit=1000)
                    self.infra.adopt((r["code"], r["node_uid"] or "") for r in rows if r["zone_uid"] is None)
                    self._adopted = True
                if not self._reset_cursor:
                    ids = [z.zone_id for z in self.zones.values()]
                    if ids:
                        old = await event_store.after(conn, ids, 0, [SAFETY_RESET])
                        self._reset_cursor = max([r["id"] for r in old], default=0)
            self.db_ok = True
            self._metric("journal_pending", "set", self.journal.pending())

    async def _beat(self) -> None:
        if not self.db_ok:
            return
        try:
            async with self.db.acquire() as conn:
                await daemon_store.beat(
                    conn,
                    self.daemon_id,
                    host=socket.gethostname(),
                    pid=os.getpid(),
                    ruleset_version=self.ruleset.ruleset_version,
                    zones=sorted(self.zones),
                    at=_at(self.clock()),
                )
        except DatabaseUnavailable as e:
            self._db_lost(e)

    # ---- hot reload -------------------------------------------------------------------------------
    async def _poll_rules(self) -> None:
        sig = await asyncio.to_thread(rule_files_signature, self.loaded, self.site_path)
        if sig != self._signature:
            await self.reload()

    async def reload(self) -> tuple[bool, list]:
        """Load and check the rule files again; swap the rule set between ticks when clean.

        With errors the running rule set stays; an infra alert, an event and a decision
        row per zone say why. Returns (swapped?, the error diagnostics).
        """
        async with self._reloading:
            return await self._reload()

    async def _reload(self) -> tuple[bool, list]:
        loaded = await asyncio.to_thread(load, self.site_path)
        self._signature = await asyncio.to_thread(rule_files_signature, loaded, self.site_path)
        now = self.clock()
        old = self.ruleset.ruleset_version
        errors = loaded.diags.errors if loaded.ruleset is not None else loaded.diags.errors or ["no rule set"]
        if loaded.diags.errors or loaded.ruleset is None:
            lines = _diag_lines(loaded) if loaded.diags.errors else ["the rule set could not be loaded"]
            log.error("rule set change refused, %s keeps running:\n  %s", old, "\n  ".join(lines))
            await self._rejected(lines, now)
            return False, errors
        new = loaded.ruleset
        async with self._tick_lock:
            entries_of = {}
            for uid, z in sorted(self.zones.items()):
                async with z.lock:
                    if new.zone(uid) is None:
                        self._drop(uid)
                        continue
                    state = z.st.to_json()
                    z.set_ruleset(new)
                    z.st = carry_state(state, z.prog, now)
                    entries_of[uid] = [
                        dlog.entry(
                            now,
                            "ruleset",
                            f"rule set {old} → {new.ruleset_version}",
                            details={"from": old, "to": new.ruleset_version},
                        )
                    ]
            self.ruleset, self.loaded = new, loaded
            self.commands.rs = new
            self.live.set_ruleset(new)
            self.ownership.set_zones([z.uid for z in new.zones])
            batches = []
            for uid, entries in entries_of.items():
                z = self.zones.get(uid)
                if z is not None:
                    b = self._batch(z, [], entries, now)
                    if b is not None:
                        batches.append(b)
            if batches:
                await self._write({"op": "tick", "zones": batches})
            await self._write(
                {
                    "op": "infra",
                    "alerts": [
                        {
                            "change": "resolved",
                            "code": RULESET_ALERT,
                            "dedup_key": "",
                            "by": self.daemon_id,
                            "why": f"rule set {new.ruleset_version} loaded",
                            "at": now,
                        }
                    ],
                }
            )
        log.info("rule set %s → %s", old, new.ruleset_version)
        return True, []

    async def _rejected(self, lines: list[str], now: float) -> None:
        version = self.ruleset.ruleset_version
        details = {"diagnostics": lines, "running": version, "site": str(self.site_path)}
        summary = f"rule set change refused, {version} keeps running: {lines[0] if lines else 'errors'}"
        await self._write(
            {
                "op": "infra",
                "alerts": [
                    {
                        "change": "raised",
                        "code": RULESET_ALERT,
                        "source": "infra",
                        "severity": "critical",
                        "text": "The changed rule set has errors; the running one stays",
                        "details": details,
                        "locks": False,
                        "ruleset_version": version,
                        "rule": None,
                        "dedup_key": "",
                        "at": now,
                    }
                ],
                "events": [
                    {"zone_id": z.zone_id, "type": RULESET_REJECTED, "details": details, "ruleset_version": version,
                     "at": now}
                    for z in self.zones.values()
                ] or [{"zone_id": None, "type": RULESET_REJECTED, "details": details, "ruleset_version": version,
                       "at": now}],
                "decisions": [
                    {**dlog.entry(now, "ruleset", summary, details=details), "zone_id": z.zone_id,
                     "ruleset_version": version}
                    for z in self.zones.values()
                ],
            }
        )  # fmt: skip

    # ---- infra alerts and metrics ------------------------------------------------------------------
    def _observe(self, tick_s: float) -> None:
        self._metric("ticks", "inc")
        self._metric("zones_owned", "set", len(self.zones))
        if self.live is not None:
            self._metric("mqtt_connected", "set", 1 if self.live.connected else 0)
        active = sum(
            1 for z in self.zones.values() if z.st is not None for a in z.st.alerts.values() if a.status == "active"
        )
        self._metric("active_alerts", "set", active)
        if self.journal is not None:
            self._metric("journal_pending", "set", self.journal.pending())
        if self.infra is None or self.live is None:
            return
        try:
            changes = self.infra.observe(
                mqtt_connected=bool(self.live.connected),
                db_ok=self.db_ok,
                node_last_seen=self.live.last_seen_of(list(self.zones)),  # only the zones this daemon owns
            )
        except Exception:
            log.exception("infra watch failed")
            return
        if changes:
            version = self.ruleset.ruleset_version
            alerts = [
                _infra_alert(a, (self._nodes.get(a.node_uid) or {}).get("id"), self.daemon_id, version) for a in changes
            ]
            self._spawn(self._write({"op": "infra", "alerts": alerts}))

    def _metric(self, name: str, how: str, value=None, labels: dict | None = None) -> None:
        m = getattr(self.metrics, name, None) if self.metrics is not None else None
        if m is None:
            return
        try:
            if labels:
                m = m.labels(**labels)
            if how == "inc":
                m.inc() if value is None else m.inc(value)
            elif how == "set":
                m.set(value)
            else:
                m.observe(value)
        except Exception:  # metrics never stop control
            pass

    def count_decisions(self, entries: list[dict]) -> None:
        for e in entries:
            self._metric("decisions", "inc", labels={"kind": e["kind"]})


class _Cmd:
    """A journaled command as CommandService.record reads it (the engine Command's fields)."""

    __slots__ = ("cmd_id", "zone_uid", "channel", "node_uid", "channel_key", "cmd", "params", "rule", "ruleset_version")

    def __init__(self, c: dict) -> None:
        for k in self.__slots__:
            setattr(self, k, c.get(k))


def _alert_rule(entries: list[dict], a) -> str | None:
    """The rule the decision log names for this alert change."""
    kind = "alert_raised" if a.change == "raised" else "alert_resolved"
    for e in entries:
        if e["kind"] == kind and e["details"].get("code") == a.code and e.get("channel") == a.channel:
            return e.get("rule")
    return None


def _infra_alert(a, node_id: int | None, daemon_id: str, version: str) -> dict:
    """An InfraWatch change (infra.InfraAlert) as the journal's alert."""
    raised = a.action == "raise"
    return {
        "change": "raised" if raised else "resolved",
        "code": a.code,
        "source": "infra",
        "severity": a.severity,
        "text": a.text,
        "details": dlog.plain(a.details or {}),
        "locks": False,
        "dedup_key": a.dedup_key or "",
        "node_id": node_id,
        "channel": None,
        "by": daemon_id,
        "why": None if raised else a.text,
        "ruleset_version": version,
        "rule": None,
        "at": a.at,
    }
