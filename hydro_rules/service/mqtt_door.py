"""The MQTT door: every node-to-backend message type of the protocol, stored before it is acknowledged.

The handler's return value is the PUBACK reason code. A malformed payload is
logged and acknowledged (`payload format invalid`) with nothing written; a
database outage keeps the handler waiting (so nothing is acknowledged) until
the write succeeds.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime

from .. import messages as M
from ..lang.model import RuleSet
from ..pgtext import bad_text
from ..store import Database, DatabaseUnavailable, until_available
from ..store import alerts as alert_store
from ..store import commands as command_store
from ..store import events as event_store
from ..store import nodes as node_store
from ..transport import payloads, topics
from ..transport.mqtt import PAYLOAD_FORMAT_INVALID, SUCCESS, TOPIC_NAME_INVALID, UNSPECIFIED_ERROR, MqttClient
from ..transport.payloads import Malformed
from .batcher import Batcher
from .binding import config_channels
from .ingest import IngestCore, Sample
from .logs import Throttled

log = logging.getLogger(__name__)

#: a retained `offline` will is believed only if the node has been silent this long
STALE_WILL_S = 120.0
#: the infra alert of a failure a node reported after it had answered DONE
LATE_ERROR = "infra_late_error"
#: a validated node still talking under the temporary namespace is re-sent its config at most this often
REPUSH_AFTER_S = 30.0
LIVENESS = {"status": payloads.status, "lwt": payloads.lwt, "heartbeat": payloads.heartbeat}


class Refused(Exception):
    """A message that contradicts what the registry knows of its sender: logged, counted, not applied."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind


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
        self.client: MqttClient | None = None  # set when connected; time responses and configs go through it
        self.repush_after_s = REPUSH_AFTER_S
        self.publish_timeout_s = 2.0
        self.refused: Counter[str] = Counter()  # refusals by kind (topic_mismatch, hello_conflict, hardware_id)
        #: told (node uid, why) when a node comes back: its uptime went down, or ONLINE after OFFLINE (its
        #: will). Relays boot OPEN, so whoever keeps the pumps' state re-asserts it (the dead-man, while no
        #: daemon runs); it must return at once (the node's messages wait meanwhile)
        self.on_node_back: Callable[[str, str], None] | None = None
        self._log = Throttled(log)
        self._on_error = {code: name for name, a in ruleset.alerts.items() for code in a.on_error}
        self._node_locks: dict[str, list] = {}  # key -> [lock, users]; dropped when nobody holds or waits
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
        if bad_text(topic):  # the broker should have refused it; nothing of it can be stored
            self._log.warning(("topic", None), "ignored message on a topic that %s", bad_text(topic))
            return TOPIC_NAME_INVALID
        t = topics.parse(topic)
        if t is None:
            self._log.warning(("topic", topic), "ignored message on unexpected topic %s", topic)
            return TOPIC_NAME_INVALID
        try:
            if t.temporary:
                await self._temporary(t, payload, retained)
            elif t.type == "node_hello" and t.node is None:
                h = payloads.hello(payload)
                async with self._serial(h.hardware_id):  # in order with its hardware's temporary-namespace status
                    await self._record_hello(t, h)
                    await self._repush(h.hardware_id)
            elif t.type in ("telemetry", "time_request"):
                await self._handlers[t.type](t, payload, retained)
            else:
                # one node's messages in the order they came: ACK before DONE, uptimes in sequence
                async with self._serial(t.node):
                    await self._check_binding(t)
                    await self._handlers[t.type](t, payload, retained)
            return SUCCESS
        except Malformed as e:
            self._log.warning(("malformed", topic), "malformed %s on %s: %s", t.type, topic, e)
            return PAYLOAD_FORMAT_INVALID
        except Refused as e:
            self.refused[e.kind] += 1
            self._log.warning(("refused", e.kind, t.node), "refused %s on %s: %s", t.type, topic, e)
            return TOPIC_NAME_INVALID
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("failed to handle %s on %s", t.type, topic)
            return UNSPECIFIED_ERROR

    @contextlib.asynccontextmanager
    async def _serial(self, key: str) -> AsyncIterator[None]:
        """One key's (node uid or hardware id) messages one at a time, in the order they came."""
        entry = self._node_locks.get(key)
        if entry is None:
            entry = self._node_locks[key] = [asyncio.Lock(), 0]
        entry[1] += 1
        try:
            async with entry[0]:
                yield
        finally:
            entry[1] -= 1
            if entry[1] == 0:
                del self._node_locks[key]

    async def _check_binding(self, t: topics.Topic) -> None:
        """Refuse a message whose greenhouse or zone segment is not the one its node is bound to."""
        node = await self._retrying(lambda: self.core.node(t.node))
        if node is None or node.zone_uid is None:
            return
        if (t.greenhouse, t.zone) != (node.greenhouse_uid, node.zone_uid):
            raise Refused(
                "topic_mismatch",
                f"node {t.node} is bound to {node.greenhouse_uid}/{node.zone_uid}, not {t.greenhouse}/{t.zone}",
            )

    async def _retrying(self, what: Callable[[], Awaitable]) -> object:
        """Run a database step until it succeeds: the message stays unacknowledged meanwhile."""

        def held(e: DatabaseUnavailable) -> None:
            self._log.warning("db", "database unavailable (%s); holding node messages unacknowledged", e)

        return await until_available(what, max_delay_s=self.retry_max_s, on_wait=held)

    # ---- channel-level ---------------------------------------------------------------
    async def _telemetry(self, t: topics.Topic, payload: bytes, retained: bool) -> None:
        p = payloads.telemetry(payload)
        await self.batcher.submit(
            Sample(
                t.node,
                p.metric_type,
                p.value,
                p.ts,
                t.zone,
                t.channel,
                p.extra or None,
                greenhouse_uid=t.greenhouse,
                unit=p.unit,
                stub=p.stub,
            )
        )

    async def _command_response(self, t: topics.Topic, payload: bytes, retained: bool) -> None:
        """Apply a node's answer to its command. The sender is the topic's node, registered or not:
        an answer from another node than the command's is kept as foreign and changes nothing."""
        r = payloads.command_response(payload)
        raw = payloads.document(payload)

        async def step():
            async with self.db.acquire() as conn, conn.transaction():
                res = await command_store.apply_response(
                    conn,
                    node_uid=t.node,
                    cmd_id=r.cmd_id,
                    status=r.status,
                    ts=_at(r.ts),
                    error_code=r.error_code,
                    error_message=payloads.response_message(raw),
                    details=r.details or None,
                    payload=raw,
                    at=_at(self.clock()),
                )
                if res.duplicate or res.command is None or res.foreign:
                    return res
                if res.late_error:
                    await self._alert_late_error(conn, res.command, r)
                elif res.applied or res.ended_as == command_store.TIMEOUT:
                    await self._alert_on_error(conn, res.command, r)
                return res

        res = await self._retrying(step)
        if res.command is None or res.foreign:
            self._log.warning(("response", t.node), "command_response from %s for %s: %s", t.node, r.cmd_id, res.note)
        elif res.late_error:
            log.warning("node %s reported %s %s for %s after DONE", t.node, r.status, r.error_code, r.cmd_id)

    async def _alert_on_error(self, conn, cmd: dict, r: M.CommandResponse) -> None:
        """A node error named by an alert's `on error` raises it on the command's channel (§14.1).

        Only the answer that ends the command (or the first after its timeout) does: a
        failure reported after DONE is the late-error infra alert, which locks nothing.
        """
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

    async def _alert_late_error(self, conn, cmd: dict, r: M.CommandResponse) -> None:
        """A node reported a failure for a command it had already answered DONE: say so, lock nothing."""
        await alert_store.raise_alert(
            conn,
            zone_id=cmd["zone_id"],
            node_id=cmd["node_id"],
            source="infra",
            code=LATE_ERROR,
            type=f"{r.error_code or r.status} reported after DONE for {cmd['cmd']} on {cmd['channel']}",
            severity="warning",
            channel=cmd["channel"],  # one active alert per channel, counting occurrences
            details={
                **r.details,
                "cmd_id": r.cmd_id,
                "cmd": cmd["cmd"],
                "status": r.status,
                "error_code": r.error_code,
                "command_status": cmd["status"],
            },
            locks=False,
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
                before = await node_store.get(conn, t.node) if online else None
                changed = await node_store.set_status(
                    conn,
                    t.node,
                    node_store.ONLINE if online else node_store.OFFLINE,
                    at,
                    only_if_silent_since=silent_since,
                )
                return changed, before and before["status"]

        changed, before = await self._retrying(step)
        if changed is None:
            self._log.warning(("unknown", t.node), "status of unknown node %s ignored", t.node)
        elif changed and online and before == node_store.OFFLINE:
            self._came_back(t.node, "came back online after its will")

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
            self._came_back(t.node, f"rebooted (uptime {hb.uptime} s after {res.previous_uptime} s)")

    def _came_back(self, node_uid: str, why: str) -> None:
        """A node is back with its relays OPEN: tell whoever re-asserts them (NODE_REBOOTED is recorded
        by the store for an uptime that went down)."""
        if self.on_node_back is not None:
            try:
                self.on_node_back(node_uid, why)
            except Exception:
                log.exception("the comeback of node %s was not taken", node_uid)

    async def _hello(self, t: topics.Topic, payload: bytes, retained: bool) -> None:
        await self._record_hello(t, payloads.hello(payload))

    async def _record_hello(self, t: topics.Topic, h: payloads.Hello) -> None:
        """Record a hello: facts for its own hardware's record, never another node's (store.nodes.hello)."""
        if t.temporary and h.hardware_id != t.node:
            raise Refused("hello_conflict", f"hello of hardware {h.hardware_id} under hardware {t.node}'s namespace")
        node_uid = None if t.node is None or t.temporary else t.node

        async def step():
            async with self.db.acquire() as conn:
                return await node_store.hello(
                    conn,
                    hardware_id=h.hardware_id,
                    node_uid=node_uid,
                    node_type=h.node_type,
                    firmware_version=h.fw_version,
                    hardware_revision=h.hardware_revision,
                    capabilities=h.capabilities,
                    at=_at(self.clock()),
                )

        try:
            node, created = await self._retrying(step)
        except node_store.HelloRefused as e:
            raise Refused("hello_conflict", str(e)) from None
        self.core.forget_node(node["uid"])
        if created:
            log.info("new node %s (hardware %s, %s) waits for validation", node["uid"], h.hardware_id, h.node_type)

    # ---- the temporary namespace and binding ------------------------------------------
    async def _temporary(self, t: topics.Topic, payload: bytes, retained: bool) -> None:
        """hydro/gh-temp/zn-temp/{hardware_id}/...: a node that knows no ids (yet).

        Its hello and liveness are recorded by hardware id (a status that overtakes the hello
        is kept on a pending record); nothing else it sends is stored. A node validated
        meanwhile has not got or applied its config: it is sent again.
        """
        problem = topics.hardware_id_problem(t.node)
        if problem:
            raise Refused("hardware_id", problem)
        async with self._serial(t.node):
            if t.type == "node_hello":
                await self._hello(t, payload, retained)
            elif t.type in LIVENESS:
                LIVENESS[t.type](payload)  # a malformed one records nothing, not even a pending node
                uid = await self._retrying(lambda: self._node_of_hardware(t.node))
                if uid is None:
                    raise Refused("hello_conflict", f"hardware id {t.node} is the uid of a node of other hardware")
                await self._handlers[t.type](dataclasses.replace(t, node=uid), payload, retained)
            else:
                self._log.info(
                    ("temporary", t.node), "%s of unbound hardware %s not stored (it has no zone yet)", t.type, t.node
                )
            await self._repush(t.node)

    async def _node_of_hardware(self, hardware_id: str) -> str | None:
        async with self.db.acquire() as conn:
            return await node_store.for_hardware(conn, hardware_id, _at(self.clock()))

    async def push_config(
        self, *, node_uid: str | None = None, hardware_id: str | None = None, min_interval_s: float = 0.0
    ) -> dict | None:
        """Send a validated node its NodeConfig on hydro/gh-temp/zn-temp/{hardware_id}/config and mark it binding.

        QoS 1, never retained (it carries the node's secret). None when nothing was sent: no
        broker, the node has no hardware id or zone, or its last push is younger than
        `min_interval_s`. Raises TimeoutError when the broker does not take it in time
        (the push is counted all the same: the node's next message under the temporary
        namespace brings another).
        """
        if self.client is None:
            return None
        async with self.db.acquire() as conn:
            node = await node_store.claim_config_push(
                conn, at=_at(self.clock()), min_interval_s=min_interval_s, node_uid=node_uid, hardware_id=hardware_id
            )
        if node is None:
            return None
        body = payloads.node_config(
            node_uid=node["uid"],
            node_type=node["node_type"],
            greenhouse=node["greenhouse_uid"],
            zone=node["zone_uid"],
            channels=config_channels(self.rs, node["zone_uid"], node["uid"]),
            secret=node["secret"],
        )
        topic = topics.temp_config(node["hardware_id"])
        await asyncio.wait_for(self.client.publish(topic, body, qos=1, retain=False), self.publish_timeout_s)
        self.core.forget_node(node["uid"])
        log.info(
            "config pushed to %s (%s, push %d) on %s", node["uid"], node["hardware_id"], node["config_pushes"], topic
        )
        return node

    async def _repush(self, hardware_id: str) -> None:
        try:
            await self._retrying(lambda: self.push_config(hardware_id=hardware_id, min_interval_s=self.repush_after_s))
        except TimeoutError:
            self._log.warning(("push", hardware_id), "config for hardware %s not taken by the broker", hardware_id)

    async def _config_report(self, t: topics.Topic, payload: bytes, retained: bool) -> None:
        """A node's ACK of its config, under its new topics: it is bound."""
        doc = payloads.document(payload)

        async def step():
            async with self.db.acquire() as conn:
                return await node_store.config_reported(
                    conn, t.node, doc, _at(self.clock()), ruleset_version=self.rs.ruleset_version
                )

        before = await self._retrying(step)
        if before is None:
            self._log.warning(("unknown", t.node), "config_report of unknown node %s ignored", t.node)
        elif before == node_store.BINDING:
            log.info("node %s confirmed its config: bound to %s/%s", t.node, t.greenhouse, t.zone)

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
