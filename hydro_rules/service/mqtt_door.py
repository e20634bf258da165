"""The MQTT door: every node-to-backend message type of the protocol, stored before it is acknowledged.

The handler's return value is the PUBACK reason code. A malformed payload is
logged and acknowledged (`payload format invalid`) with nothing written; a
database outage keeps the handler waiting (so nothing is acknowledged) until
the write succeeds.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from .. import messages as M
from ..lang.model import RuleSet
from ..store import Database, DatabaseUnavailable, until_available
from ..store import alerts as alert_store
from ..store import commands as command_store
from ..store import events as event_store
from ..store import nodes as node_store
from ..transport import payloads, topics
from ..transport.mqtt import PAYLOAD_FORMAT_INVALID, SUCCESS, TOPIC_NAME_INVALID, UNSPECIFIED_ERROR, MqttClient
from ..transport.payloads import Malformed
from .batcher import Batcher
from .ingest import IngestCore, Sample
from .logs import Throttled

log = logging.getLogger(__name__)

#: a retained `offline` will is believed only if the node has been silent this long
STALE_WILL_S = 120.0


def _at(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


class MqttDoor:
    def __init__(
        self,
        db: Database,
        ruleset: RuleSet,
        core: IngestCore,
        batcher: Batcher,
        *,
        clock: Callable[[], float] = time.time,
        retry_max_s: float = 5.0,
    ) -> None:
        self.db = db
        self.rs = ruleset
        self.core = core
        self.batcher = batcher
        self.clock = clock
        self.retry_max_s = retry_max_s
        self.client: MqttClient | None = None  # set when connected; time responses go through it
        self._log = Throttled(log)
        self._on_error = {code: name for name, a in ruleset.alerts.items() for code in a.on_error}
        self._node_locks: dict[str, asyncio.Lock] = {}
        self._handlers = {
            "telemetry": self._telemetry,
            "command_response": self._command_response,
            "event": self._event,
            "status": self._status,
            "lwt": self._lwt,
            "heartbeat": self._heartbeat,
            "node_hello": self._hello,
            "config_report": self._config_report,
            "diagnostics": self._diagnostics,
            "error": self._error,
            "time_request": self._time_request,
        }

    async def handle(self, topic: str, payload: bytes, retained: bool) -> int:
        """gmqtt's on_message: the reason code for the PUBACK."""
        t = topics.parse(topic)
        if t is None:
            self._log.warning(("topic", topic), "ignored message on unexpected topic %s", topic)
            return TOPIC_NAME_INVALID
        try:
            if t.type in ("telemetry", "time_request") or t.node is None:
                await self._handlers[t.type](t, payload, retained)
            else:
                # one node's messages in the order they came: ACK before DONE, uptimes in sequence
                lock = self._node_locks.setdefault(t.node, asyncio.Lock())
                async with lock:
                    await self._handlers[t.type](t, payload, retained)
            return SUCCESS
        except Malformed as e:
            self._log.warning(("malformed", topic), "malformed %s on %s: %s", t.type, topic, e)
            return PAYLOAD_FORMAT_INVALID
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("failed to handle %s on %s", t.type, topic)
            return UNSPECIFIED_ERROR

    async def _retrying(self, what: Callable[[], Awaitable]) -> object:
        """Run a database step until it succeeds: the message stays unacknowledged meanwhile."""

        def held(e: DatabaseUnavailable) -> None:
            self._log.warning("db", "database unavailable (%s); holding node messages unacknowledged", e)

        return await until_available(what, max_delay_s=self.retry_max_s, on_wait=held)

    # ---- channel-level ---------------------------------------------------------------
    async def _telemetry(self, t: topics.Topic, payload: bytes, retained: bool) -> None:
        p = payloads.telemetry(payload)
        await self.batcher.submit(Sample(t.node, p.metric_type, p.value, p.ts, t.zone, t.channel, p.extra or None))

    async def _command_response(self, t: topics.Topic, payload: bytes, retained: bool) -> None:
        r = payloads.command_response(payload)
        raw = payloads.document(payload)

        async def step():
            node = await self.core.node(t.node)
            async with self.db.acquire() as conn, conn.transaction():
                res = await command_store.apply_response(
                    conn,
                    node_id=node.id if node else None,
                    cmd_id=r.cmd_id,
                    status=r.status,
                    ts=_at(r.ts),
                    error_code=r.error_code,
                    error_message=raw.get("error_message") or raw.get("message"),
                    details=r.details or None,
                    payload=raw,
                )
                if res.duplicate or res.command is None or res.foreign:
                    return res
                await self._alert_on_error(conn, res.command, r)
                return res

        res = await self._retrying(step)
        if res.command is None or res.foreign:
            self._log.warning(("response", t.node), "command_response from %s for %s: %s", t.node, r.cmd_id, res.note)

    async def _alert_on_error(self, conn, cmd: dict, r: M.CommandResponse) -> None:
        """A node error named by an alert's `on error` raises it on the command's channel (§14.1)."""
        code = self._on_error.get(r.error_code or "")
        if r.status not in M.FAILED or code is None:
            return
        spec = self.rs.alerts[code]
        await alert_store.raise_alert(
            conn,
            zone_id=cmd["zone_id"],
            node_id=cmd["node_id"],
            source=spec.source,
            code=code,
            type=spec.text,
            severity=spec.severity,
            channel=cmd["channel"],
            details={**r.details, "cmd_id": r.cmd_id, "error_code": r.error_code},
            locks=spec.locks,
            ruleset_version=self.rs.ruleset_version,
        )

    async def _event(self, t: topics.Topic, payload: bytes, retained: bool) -> None:
        doc = payloads.document(payload)
        await self._node_event(t, "NODE_EVENT", {"channel": t.channel, "event": doc})

    async def _node_event(self, t: topics.Topic, type: str, details: dict, alert: dict | None = None) -> None:
        """Record a zone event of the node's (and raise `alert`, an infra alert, with the same details).

        A message from a node the registry does not know is logged, not recorded.
        """
        details = {"node_uid": t.node, **details}

        async def step():
            node = await self.core.node(t.node)
            if node is None:
                return False
            async with self.db.acquire() as conn, conn.transaction():
                await event_store.add(
                    conn,
                    zone_id=node.zone_id,
                    node_id=node.id,
                    type=type,
                    details=details,
                    ruleset_version=self.rs.ruleset_version,
                )
                if alert is not None:
                    await alert_store.raise_alert(
                        conn,
                        zone_id=node.zone_id,
                        node_id=node.id,
                        source="infra",
                        details=details,
                        ruleset_version=self.rs.ruleset_version,
                        **alert,
                    )
            return True

        if not await self._retrying(step):
            self._log.warning(("unknown", t.node), "%s from unknown node %s not recorded: %s", type, t.node, details)

    # ---- node-level ------------------------------------------------------------------
    async def _status(self, t: topics.Topic, payload: bytes, retained: bool) -> None:
        s = payloads.status(payload)
        at = _at(s.ts) if s.ts is not None else _at(self.clock())
        await self._set_status(t, s.online, at, retained)

    async def _lwt(self, t: topics.Topic, payload: bytes, retained: bool) -> None:
        s = payloads.lwt(payload)
        await self._set_status(t, s.online, _at(s.ts or self.clock()), retained)

    async def _set_status(self, t: topics.Topic, online: bool, at: datetime, retained: bool) -> None:
        silent_since = None
        if retained and not online:
            # a retained will stays on the broker after the node came back: believe it only for a silent node
            silent_since = _at(self.clock() - STALE_WILL_S)

        async def step():
            async with self.db.acquire() as conn:
                return await node_store.set_status(
                    conn,
                    t.node,
                    node_store.ONLINE if online else node_store.OFFLINE,
                    at,
                    only_if_silent_since=silent_since,
                )

        if await self._retrying(step) is None:
            self._log.warning(("unknown", t.node), "status of unknown node %s ignored", t.node)

    async def _heartbeat(self, t: topics.Topic, payload: bytes, retained: bool) -> None:
        hb = payloads.heartbeat(payload)

        async def step():
            async with self.db.acquire() as conn:
                return await node_store.heartbeat(
                    conn,
                    t.node,
                    uptime=hb.uptime,
                    free_heap=hb.free_heap,
                    rssi=hb.rssi,
                    firmware_version=hb.fw_version,
                    at=_at(self.clock()),
                    ruleset_version=self.rs.ruleset_version,
                )

        res = await self._retrying(step)
        if not res.known:
            self._log.warning(("unknown", t.node), "heartbeat of unknown node %s ignored", t.node)
        elif res.rebooted:
            log.warning("node %s rebooted (uptime %s after %s)", t.node, hb.uptime, res.previous_uptime)

    async def _hello(self, t: topics.Topic, payload: bytes, retained: bool) -> None:
        h = payloads.hello(payload)

        async def step():
            async with self.db.acquire() as conn:
                return await node_store.hello(
                    conn,
                    hardware_id=h.hardware_id,
                    node_uid=t.node,
                    node_type=h.node_type,
                    firmware_version=h.fw_version,
                    hardware_revision=h.hardware_revision,
                    capabilities=h.capabilities,
                    at=_at(self.clock()),
                )

        node, created = await self._retrying(step)
        self.core.forget_node(node["uid"])
        if created:
            log.info("new node %s (hardware %s, %s) waits for validation", node["uid"], h.hardware_id, h.node_type)

    async def _config_report(self, t: topics.Topic, payload: bytes, retained: bool) -> None:
        await self._record(t, "config_report", payloads.document(payload))

    async def _diagnostics(self, t: topics.Topic, payload: bytes, retained: bool) -> None:
        await self._record(t, "diagnostics", payloads.document(payload))

    async def _record(self, t: topics.Topic, column: str, doc: dict) -> None:
        async def step():
            async with self.db.acquire() as conn:
                return await node_store.record_json(conn, t.node, column, doc, _at(self.clock()))

        if not await self._retrying(step):
            self._log.warning(("unknown", t.node), "%s of unknown node %s ignored", column, t.node)

    async def _error(self, t: topics.Topic, payload: bytes, retained: bool) -> None:
        e = payloads.node_error(payload)
        details = {
            "level": e.level,
            "component": e.component,
            "error_code": e.error_code,
            "message": e.message,
            "ts": e.ts,
            **e.extra,
        }
        alert = None
        if e.level in ("ERROR", "CRITICAL", "FATAL"):
            alert = {
                "code": "infra_node_error",
                "type": f"Node {t.node} reports {e.error_code or 'an error'}"
                + (f" in {e.component}" if e.component else ""),
                "severity": "critical" if e.level != "ERROR" else "warning",
                "dedup_key": f"{t.node}/{e.error_code or ''}",
            }
        await self._node_event(t, "NODE_ERROR", details, alert)

    async def _time_request(self, t: topics.Topic, payload: bytes, retained: bool) -> None:
        if retained:
            return  # a stale request left on the broker: nobody waits for it
        if self.client is not None:
            await self.client.publish(topics.TIME_RESPONSE, payloads.time_response(self.clock()), qos=1)
