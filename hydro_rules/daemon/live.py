"""The daemon's fast path on MQTT: node telemetry and errors as they arrive, and nodes coming back.

The daemon reads its zones from `telemetry_last` every tick; a safety-relevant
sample cannot wait for that. LiveFeed subscribes (clean session, the daemon's
client id) to what nodes publish: channel telemetry, node errors, status, lwt
and heartbeats. A reading goes through the same vocabulary, unit conversion and
value checks as the ingest (service.ingest: `Vocabulary`, `IngestCore.check_value`)
and is handed over as a `messages.Reading` of its zone:

    on_readings(zone_uid, readings, safety)

where `safety` is True when a reading's metric is one the zone's protection
reads (from the compiled rule set: metrics read by guards and by locking
alerts, every channel's current / flow / flow flag metric, what level sensors
measure) or the message is a node error (then `readings` is empty).

    on_node_back(node_uid, why)

is called when a node may have lost its relays' state: a heartbeat's uptime
went down, a live status ONLINE (a new MQTT session; after its lwt or OFFLINE
the `why` says so), or its first message after a silence longer than
`node_silent_after_s` (a broker outage is not a node's silence). At most once per
message.

Nothing here stores anything: the service's MQTT door does that. A malformed
payload or a sender the rule set does not place in the topic's zone is logged
(throttled) and counted in `counts`, never raised. Retained messages are old
news: they are neither readings' proof of life nor comebacks. The callbacks run
as tasks in arrival order (the PUBACK does not wait for them) up to
`max_inflight` at a time, after which the feed waits for them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from types import SimpleNamespace

from .. import messages as W
from ..lang import model as M
from ..service.config import Settings as ServiceSettings
from ..service.ingest import IngestCore, Meaning
from ..service.logs import Throttled
from ..transport import payloads, topics
from ..transport.mqtt import PAYLOAD_FORMAT_INVALID, SUCCESS, MqttClient
from ..transport.payloads import Malformed

log = logging.getLogger(__name__)

#: what the daemon listens to: channel telemetry and the node-level liveness and error topics
SUBSCRIPTIONS = (
    f"{topics.ROOT}/+/+/+/+/telemetry",
    *(f"{topics.ROOT}/+/+/+/{t}" for t in ("error", "status", "lwt", "heartbeat")),
)
#: a channel attribute that is a reading of the channel's node
_CHANNEL_METRICS = ("current", "flow", "flow_flag")
MAX_INFLIGHT = 1000
MEANINGS_MAX = 100_000


def safety_metrics(rs: M.RuleSet) -> frozenset[str]:
    """The metrics whose new sample should be evaluated at once: what guards and locking alerts read
    (a channel attribute meaning its node's metric), every channel's current / flow / flow flag, and
    what level sensors measure."""
    out: set[str] = set()
    for ch in rs.channels.values():
        out.update(m for m in (ch.current, ch.flow, ch.flow_flag) if m)
        if ch.kind == "sensor" and ch.measures:
            out.add(ch.measures)
    exprs = [(d.expr, g.scope) for g in rs.guards.values() for d in g.denies]
    for a in rs.alerts.values():
        if a.locks:
            exprs += [(c.expr, a.scope) for c in a.when]
    for expr, scope in exprs:
        for e in _walk(expr):
            if isinstance(e, M.MetricRef | M.MetricIs):
                out.add(e.metric)
            elif isinstance(e, M.Func) and e.name in ("change", "drift") and isinstance(e.args[0], str):
                out.add(e.args[0])
            elif isinstance(e, M.ChannelRef) and e.attr in _CHANNEL_METRICS:
                if e.channel is not None:
                    chans = [rs.channels[e.channel]] if e.channel in rs.channels else []
                else:
                    chans = [c for c in rs.channels.values() if scope is not None and scope.covers(c)]
                out.update(m for c in chans if (m := getattr(c, e.attr)))
    return frozenset(m for m in out if m in rs.metrics)


def _walk(e):
    """Every node of a typed expression (fields holding model nodes, tuples of them)."""
    yield e
    if not dataclasses.is_dataclass(e):
        return
    for f in dataclasses.fields(e):
        v = getattr(e, f.name)
        for child in v if isinstance(v, tuple) else (v,):
            if dataclasses.is_dataclass(child) and not isinstance(child, type) and not isinstance(child, M.Span):
                yield from _walk(child)


def _limits(settings) -> SimpleNamespace:
    """The ingest's time limits on a sample (the daemon's settings may name them; else the service's defaults)."""
    fields = ServiceSettings.model_fields
    return SimpleNamespace(
        max_clock_skew_s=getattr(settings, "max_clock_skew_s", fields["max_clock_skew_s"].default),
        max_sample_age_s=getattr(settings, "max_sample_age_s", fields["max_sample_age_s"].default),
    )


class _FeedClient(MqttClient):
    """The MQTT client, telling the feed when its link goes up or down."""

    def __init__(self, *args, on_link: Callable[[bool], None], **kw) -> None:
        self._on_link = on_link
        super().__init__(*args, **kw)

    def _on_connect(self, client, flags, rc, properties) -> None:
        super()._on_connect(client, flags, rc, properties)
        self._on_link(True)

    def _on_disconnect(self, client, packet, exc=None) -> None:
        super()._on_disconnect(client, packet, exc)
        self._on_link(False)


class LiveFeed:
    def __init__(
        self,
        settings,
        ruleset: M.RuleSet,
        *,
        on_readings: Callable[[str, list[W.Reading], bool], Awaitable | None],
        on_node_back: Callable[[str, str], Awaitable | None],
        clock: Callable[[], float] = time.time,
        max_inflight: int = MAX_INFLIGHT,
    ) -> None:
        self.settings = settings
        self.on_readings = on_readings
        self.on_node_back = on_node_back
        self.clock = clock
        self.max_inflight = max_inflight
        self.silent_after_s = float(getattr(settings, "node_silent_after_s", 120.0))
        self.counts: Counter[str] = Counter()
        self.last_seen: dict[str, float] = {}  # node -> when a live message of it last came
        self.down_since: float | None = None
        self.up_since: float | None = None
        self._uptime: dict[str, int] = {}
        self._offline: dict[str, str] = {}  # node -> "lwt" | "OFFLINE" seen since its last ONLINE
        self._tasks: set[asyncio.Task] = set()
        self._room = asyncio.Event()
        self._room.set()
        self._connector: asyncio.Task | None = None
        self._started_at: float | None = None
        self._log = Throttled(log)
        self.set_ruleset(ruleset)
        self.mqtt: MqttClient = _FeedClient(
            settings.mqtt_url,
            client_id=settings.mqtt_client_id,
            handler=self.handle,
            subscriptions=SUBSCRIPTIONS,
            clean_session=True,
            on_link=self._link,
        )

    # ---- the rule set ------------------------------------------------------------------------
    def set_ruleset(self, ruleset: M.RuleSet) -> None:
        """A new rule set (a reload): its vocabulary, zones and safety metrics from now on."""
        self.ruleset = ruleset
        self._core = IngestCore(None, ruleset, _limits(self.settings), clock=self.clock)  # its checks only
        self.safety = safety_metrics(ruleset)
        #: zone -> (greenhouse, its nodes); node -> its zone
        self.zones = {z.uid: (z.greenhouse_uid, frozenset(z.nodes)) for z in ruleset.zones}
        self.node_zone = {n: z.uid for z in ruleset.zones for n in z.nodes}
        self._meanings: dict[tuple, Meaning] = {}

    # ---- life -----------------------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self.mqtt.is_connected

    def _link(self, up: bool) -> None:
        now = self.clock()
        if up:
            self.down_since = None
            self.up_since = now
        elif self.down_since is None:
            self.down_since = now
            self.up_since = None

    async def start(self, timeout: float = 5.0) -> None:
        """Connect (waiting at most `timeout`; without a broker, connecting goes on in the background)."""
        self._started_at = self.clock()
        if not self.connected and self.down_since is None:
            self.down_since = self._started_at
        self._connector = asyncio.create_task(self.mqtt.connect(), name="live-feed-connect")
        try:
            await asyncio.wait_for(asyncio.shield(self._connector), timeout)
            await asyncio.wait_for(self.mqtt.connected.wait(), timeout)
        except TimeoutError:
            log.warning("MQTT broker %s not reachable yet: the daemon controls on, connecting", self.settings.mqtt_url)

    async def stop(self) -> None:
        if self._connector is not None and not self._connector.done():
            self._connector.cancel()
            await asyncio.gather(self._connector, return_exceptions=True)
        await cancel_and_wait(self._tasks)  # an evaluation still running would wait for a broker it has just left
        await self.mqtt.disconnect()

    @property
    def node_last_seen(self) -> dict[str, float]:
        """Every node of the rule set's zones -> when it was last heard (since the feed started, for one not heard)."""
        return self.last_seen_of(None)

    def last_seen_of(self, zone_uids) -> dict[str, float]:
        """As `node_last_seen`, for the nodes of these zones only (None: all); e.g. the zones a daemon owns."""
        start = self._started_at if self._started_at is not None else self.clock()
        wanted = None if zone_uids is None else set(zone_uids)
        return {
            node: self.last_seen.get(node, start)
            for node, zone in self.node_zone.items()
            if wanted is None or zone in wanted
        }

    # ---- messages -------------------------------------------------------------------------------
    async def handle(self, topic: str, payload: bytes, retained: bool) -> int:
        """The MQTT handler: never raises (a PUBACK always goes back)."""
        self.counts["messages"] += 1
        t = topics.parse(topic)
        if t is None or t.temporary or t.node is None:
            return SUCCESS
        try:
            zone = self._zone_of(t)
            if zone is None:
                return SUCCESS
            calls: list = []
            if t.type == "telemetry":
                calls += self._telemetry(t, payload, zone)
            elif t.type == "error":
                payloads.node_error(payload)  # a malformed one is not an error report
                self.counts["node_errors"] += 1
                calls.append((self.on_readings, zone, [], True))
            if not retained:
                why = self._liveness(t, payload)
                if why is not None:  # first: its relays are re-asserted by the evaluation its message brings
                    self.counts["node_back"] += 1
                    log.info("node %s is back: %s", t.node, why)
                    calls.insert(0, (self.on_node_back, t.node, why))
            for fn, *args in calls:
                await self._call(fn, *args)
            return SUCCESS
        except Malformed as e:
            self.counts["malformed"] += 1
            self._log.warning(("malformed", t.node, t.type), "malformed %s on %s: %s", t.type, topic, e)
            return PAYLOAD_FORMAT_INVALID
        except Exception:
            self.counts["errors"] += 1
            log.exception("live feed: %s on %s not handled", t.type, topic)
            return SUCCESS

    def _zone_of(self, t: topics.Topic) -> str | None:
        """The topic's zone when the rule set places the node there; None (counted, logged) otherwise."""
        placed = self.zones.get(t.zone)
        if placed is None or placed[0] != t.greenhouse or t.node not in placed[1]:
            self.counts["refused"] += 1
            self._log.warning(
                ("placed", t.node),
                "%s of node %s under %s/%s ignored: the rule set does not place it there",
                t.type,
                t.node,
                t.greenhouse,
                t.zone,
            )
            return None
        return t.zone

    def _telemetry(self, t: topics.Topic, payload: bytes, zone: str) -> list:
        p = payloads.telemetry(payload)
        if p.stub:
            self.counts["stub"] += 1
            return []
        key = (p.metric_type, zone, t.node, t.channel, p.unit)
        meaning = self._meanings.get(key)
        if meaning is None:
            if len(self._meanings) >= MEANINGS_MAX:
                self._meanings.clear()
            meaning = self._meanings[key] = self._core.vocab.resolve(*key)
        if meaning.outcome is not None:
            self.counts[meaning.outcome] += 1
            self._log.warning(("reading", t.node, p.metric_type), "reading of %s ignored: %s", t.node, meaning.reason)
            return []
        why = self._core.check_value(meaning.metric, p.value, p.ts, self.clock(), meaning.factor)
        if why is not None:
            self.counts["invalid_value"] += 1
            self._log.warning(("value", t.node, meaning.metric), "reading of %s ignored: %s", t.node, why)
            return []
        self.counts["readings"] += 1
        reading = W.Reading(t.node, meaning.metric, float(p.value * meaning.factor), float(p.ts), t.channel)
        return [(self.on_readings, zone, [reading], meaning.metric in self.safety)]

    def _liveness(self, t: topics.Topic, payload: bytes) -> str | None:
        """Note a live message of the node; why it has come back, or None."""
        now = self.clock()
        why = None
        if t.type == "heartbeat":
            hb = payloads.heartbeat(payload)
            before = self._uptime.get(t.node)
            if hb.uptime is not None:
                self._uptime[t.node] = hb.uptime
                if before is not None and hb.uptime < before:
                    why = f"rebooted: uptime {hb.uptime} s after {before} s"
        elif t.type in ("status", "lwt"):
            s = payloads.status(payload) if t.type == "status" else payloads.lwt(payload)
            if not s.online:
                self._offline[t.node] = "its lwt" if t.type == "lwt" else "OFFLINE"
            else:
                after = self._offline.pop(t.node, None)
                why = f"status ONLINE after {after}" if after else "status ONLINE: a new MQTT session"
        last = self.last_seen.get(t.node)
        self.last_seen[t.node] = now
        if why is None and last is not None:
            since = max(last, self.up_since if self.up_since is not None else last)
            if now - since > self.silent_after_s:
                why = f"heard again after {now - last:.0f} s of silence"
        if why is not None and t.type != "heartbeat":
            self._uptime.pop(t.node, None)  # a rebooted node's next heartbeat starts a new count
        return why

    async def _call(self, fn: Callable, *args) -> None:
        """Run a callback; a coroutine as a task (the PUBACK does not wait), up to max_inflight at once."""
        try:
            result = fn(*args)
        except Exception:
            self.counts["callback_errors"] += 1
            log.exception("live feed: %s failed", getattr(fn, "__name__", fn))
            return
        if not inspect.isawaitable(result):
            return
        while len(self._tasks) >= self.max_inflight:
            self._room.clear()
            await self._room.wait()
        task = asyncio.ensure_future(result)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        self._room.set()
        if not task.cancelled() and task.exception() is not None:
            self.counts["callback_errors"] += 1
            log.error("live feed callback failed", exc_info=task.exception())


async def cancel_and_wait(tasks) -> None:
    """Cancel the tasks and wait until each has ended, cancelling again every second: Python 3.11's
    wait_for can swallow a cancellation that races its result, and a loop then goes on."""
    pending = set(tasks)
    while pending:
        for t in pending:
            t.cancel()
        _, pending = await asyncio.wait(pending, timeout=1.0)
