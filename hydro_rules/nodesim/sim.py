"""NodeSim: the zones' digital twins in real time, each node speaking the node protocol over MQTT.

One MQTT connection per node, as field nodes have: its own client id (the node uid),
its last will (`offline`, retained, on `.../{node}/lwt`) and its subscription to
`hydro/{gh}/{zone}/{node}/+/command`. Going down on purpose (a simulated reboot, a
`node_offline` or `controller_crash` fault, stopping the simulator) publishes that
`offline` itself before a clean disconnect (which suppresses a will); a simulator
killed outright leaves it to the broker to publish every node's will.

Each tick (`tick_s`, 1 s) every zone's ZoneTwin advances to the wall clock; every node
that is up publishes one telemetry message per channel and metric it reports, its
heartbeat every `heartbeat_s`, and the command responses its firmware gave. A
command is checked as the firmware does (`firmware.check_command`: format, `ts`
within `max_clock_skew_s` of the node's synced clock, HMAC with the node's secret),
then handed to the twin exactly as the dry run hands the engine's commands over
(`WireCommand`), and answered ACK then DONE, NO_EFFECT, INVALID or ERROR as the
twin's node firmware says.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import random
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit, urlunsplit

from ..lang.model import RuleSet, Zone
from ..messages import ACK, DONE, ERROR, INVALID, CommandResponse, Reading, WireCommand
from ..transport import topics
from ..transport.mqtt import SUCCESS, MqttClient
from ..twin import DEFAULT_FIRMWARE, FIRMWARES, Fault, FaultError, TwinConfig, ZoneTwin, parse_duration, parse_fault
from ..twin.faults import applies_to, check_fault
from .firmware import check_command

log = logging.getLogger(__name__)

FW_VERSION = {"hydro2": "2.0.1-sim", "bounded-off": "1.9.0-sim"}
_ROUTES_KEPT = 10_000  # commands remembered for routing their late answers (DONE of a timed run)
_WINDOW = 16  # messages a node publishes before it waits for their acknowledgements
_QUEUE_MAX = 5_000  # messages a node holds for a broker that does not take them; telemetry beyond is dropped


@dataclass
class Counters:
    telemetry_sent: int = 0  # acknowledged by the broker
    telemetry_dropped: int = 0  # a node's queue was full (broker unreachable)
    heartbeats_sent: int = 0
    statuses_sent: int = 0
    time_syncs: int = 0  # answered time requests
    time_sync_fallbacks: int = 0  # no answer in time: the node ran on the local clock
    commands_received: int = 0
    commands_accepted: int = 0
    commands_refused: Counter = field(default_factory=Counter)  # by reason
    responses: Counter = field(default_factory=Counter)  # by status
    reboots: int = 0

    def as_dict(self) -> dict:
        return {
            "telemetry_sent": self.telemetry_sent,
            "telemetry_dropped": self.telemetry_dropped,
            "heartbeats_sent": self.heartbeats_sent,
            "statuses_sent": self.statuses_sent,
            "time_syncs": self.time_syncs,
            "time_sync_fallbacks": self.time_sync_fallbacks,
            "commands_received": self.commands_received,
            "commands_accepted": self.commands_accepted,
            "commands_refused": dict(sorted(self.commands_refused.items())),
            "responses": dict(sorted(self.responses.items())),
            "reboots": self.reboots,
        }


@dataclass(frozen=True, slots=True)
class Reboot:
    """`reboot@OFFSET[:NODE|CHANNEL]`: the node's firmware restarts (relays, uptime, status)."""

    offset_s: float
    target: str | None
    text: str


def parse_reboot(text: str) -> Reboot | None:
    """A `reboot@OFFSET[:NODE|CHANNEL]` spec, or None when `text` is another kind (a twin fault)."""
    spec = text.strip()
    head, _, arg = spec.partition(":")
    kind, at, offset = head.partition("@")
    if kind.strip() != "reboot":
        return None
    if not at:
        raise FaultError(f"bad fault {spec!r}: expected reboot@OFFSET[:NODE], e.g. reboot@2m:nd-pump-1")
    try:
        offset_s = parse_duration(offset.strip())
    except ValueError:
        raise FaultError(f"bad fault {spec!r}: offset {offset.strip()!r} is not a duration like 90s, 10m") from None
    arg = arg.strip()
    if "=" in arg or "," in arg:
        raise FaultError(f"bad fault {spec!r}: reboot takes one target (a node uid or a channel) and no parameters")
    return Reboot(offset_s, arg or None, spec)


class _Node:
    """One simulated node: its MQTT connection, clock, uptime and outgoing queue."""

    def __init__(self, sim: NodeSim, zs: _Zone, uid: str) -> None:
        self.sim, self.zs, self.uid = sim, zs, uid
        self.base = f"{topics.ROOT}/{zs.zone.greenhouse_uid}/{zs.zone.uid}/{uid}"
        self.client: MqttClient | None = None
        self.connects_seen = 0
        self.offset: float | None = None  # node clock - sim clock, known after time sync
        self.awaiting_time = False
        self.synced = asyncio.Event()
        self.boot_at = 0.0
        self.state = "up"  # as the twin says: up | offline | down
        self.live = False  # connected, time known, status sent: it publishes
        self.next_heartbeat = 0.0
        self.last_ts: dict[tuple, int] = {}
        self.queue: asyncio.Queue = asyncio.Queue()
        self.sender: asyncio.Task | None = None
        self.lock = asyncio.Lock()  # one reboot or state change at a time

    def now(self) -> float:
        return self.sim.clock() + (self.offset or 0.0)

    def _client(self) -> MqttClient:
        sim = self.sim
        cid = f"{self.uid}-{sim.client_tag}" if sim.client_tag else self.uid
        return MqttClient(
            sim.node_url(self.uid),
            client_id=cid,
            handler=self._on_message,
            subscriptions=(f"{self.base}/+/command", f"{self.base}/config", topics.TIME_RESPONSE),
            window=_WINDOW * 2,
            will=(f"{self.base}/lwt", b"offline", True),
        )

    def put(self, topic: str, doc, *, retain: bool = False, telemetry: bool = False) -> bool:
        if telemetry and self.queue.qsize() >= _QUEUE_MAX:
            self.sim.counters.telemetry_dropped += 1
            return False
        body = doc if isinstance(doc, bytes) else json.dumps(doc, separators=(",", ":")).encode()
        self.queue.put_nowait((topic, body, retain, telemetry))
        return True

    async def _send_loop(self) -> None:
        """Publish what is queued, in order, a window at a time, each window until the broker acknowledged
        all of it: a window the connection lost is sent again once it is back, as the firmware's MQTT
        outbox does (a clean session drops what was in flight). `telemetry_sent` counts acknowledged
        samples; a sample sent twice is a redelivery the ingest stores once."""
        while True:
            batch = [await self.queue.get()]
            while len(batch) < _WINDOW and not self.queue.empty():
                batch.append(self.queue.get_nowait())
            try:
                await self._deliver(batch)
            finally:
                for _ in batch:
                    self.queue.task_done()

    async def _deliver(self, batch: list) -> None:
        while True:
            while self.client is None:
                await asyncio.sleep(0.05)
            client = self.client
            connects = client.connects
            for topic, body, retain, _ in batch:
                await client.publish(topic, body, retain=retain)
            await client.drain()
            if client is self.client and client.connects == connects and client.is_connected:
                break
        self.sim.counters.telemetry_sent += sum(1 for m in batch if m[3])

    # ---- life -----------------------------------------------------------------------------
    async def boot(self, *, reset_uptime: bool = True) -> None:
        """Connect, sync the clock, say ONLINE (retained), heartbeat at once."""
        sim = self.sim
        if reset_uptime:
            self.boot_at = sim.clock()
        self.client = self._client()
        await self.client.connect(sim.connect_timeout_s)
        self.connects_seen = self.client.connects
        if self.sender is None or self.sender.done():
            self.sender = asyncio.create_task(self._send_loop(), name=f"nodesim-send-{self.uid}")
        await self._time_sync()
        self.put(f"{self.base}/status", {"status": "ONLINE", "ts": int(self.now())}, retain=True)
        sim.counters.statuses_sent += 1
        self.live = True
        self.next_heartbeat = sim.clock()
        log.info("node %s online (uptime %d s)", self.uid, int(sim.clock() - self.boot_at))

    async def _time_sync(self) -> None:
        sim = self.sim
        self.synced.clear()
        self.awaiting_time = True
        await self.client.publish(
            topics.TIME_REQUEST, json.dumps({"message_type": "time_request", "node_id": self.uid}).encode()
        )
        try:
            await asyncio.wait_for(self.synced.wait(), sim.time_sync_timeout_s)
            sim.counters.time_syncs += 1
        except TimeoutError:
            self.awaiting_time = False
            if self.offset is None:
                self.offset = 0.0
            sim.counters.time_sync_fallbacks += 1
            log.warning("node %s: no time_response within %g s; running on the local clock", self.uid,
                        sim.time_sync_timeout_s)  # fmt: skip

    async def go_down(self) -> None:
        """Off the network: `offline` on the lwt topic (as the broker would), then gone."""
        self.live = False
        if self.client is None:
            return
        if self.client.is_connected:
            self.put(f"{self.base}/lwt", b"offline", retain=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.queue.join(), 5)
            await self.client.drain(2)
        client, self.client = self.client, None
        await client.disconnect()
        if self.queue._unfinished_tasks and self.sender is not None:  # stuck on a broker that went away
            self.sender.cancel()
            self.sender = None

    async def stop(self) -> None:
        await self.go_down()
        if self.sender is not None:
            self.sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.sender
            self.sender = None

    # ---- what arrives ------------------------------------------------------------------------
    async def _on_message(self, topic: str, payload: bytes, retained: bool) -> int:
        if topic == topics.TIME_RESPONSE:
            if self.awaiting_time:
                try:
                    doc = json.loads(payload)
                    server = doc.get("unix_ts", doc.get("server_time"))
                    if isinstance(server, int | float) and not isinstance(server, bool):
                        self.offset = float(server) - self.sim.clock()
                        self.awaiting_time = False
                        self.synced.set()
                except (ValueError, AttributeError):
                    log.warning("node %s: unreadable time_response %r", self.uid, payload[:80])
            return SUCCESS
        if topic == f"{self.base}/config":
            self._config(payload)
            return SUCCESS
        parts = topic.split("/")
        if len(parts) == 6 and parts[5] == "command":  # even while it boots: on the clock it has
            await self.sim._command(self, parts[4], payload)
        return SUCCESS

    def _config(self, payload: bytes) -> None:
        """A NodeConfig pushed to the node where it lives: it keeps the command secret the push carries
        and answers with its config_report (the push without the secret)."""
        try:
            doc = json.loads(payload)
        except ValueError:
            log.warning("node %s: unreadable config %r", self.uid, payload[:80])
            return
        if not isinstance(doc, dict):
            return
        secret = doc.get("node_secret")
        if isinstance(secret, str) and secret:
            self.sim.secrets[self.uid] = secret
        report = {k: v for k, v in doc.items() if k != "node_secret"}
        self.put(f"{self.base}/config_report", report)
        log.info("node %s: config received%s", self.uid, " with its secret" if secret else "")


class _Zone:
    def __init__(self, zone: Zone, twin: ZoneTwin) -> None:
        self.zone, self.twin = zone, twin
        self.nodes: dict[str, _Node] = {}
        self.pending: dict[tuple, Reading] = {}  # (node, channel, metric) -> latest reading not yet published
        self.routes: OrderedDict[str, tuple[str, str]] = OrderedDict()  # cmd_id -> (node uid, channel key)
        self.sensor_keys: dict[tuple[str, str], str] = {}  # (node, metric) -> channel key, when the twin names none


class NodeSim:
    """Simulated nodes of `zone_uids` on the broker at `mqtt_url`; `secrets` maps node uid -> command secret."""

    def __init__(
        self,
        ruleset: RuleSet,
        zone_uids: Sequence[str] | None,
        mqtt_url: str,
        secrets: dict[str, str],
        *,
        firmware: str = DEFAULT_FIRMWARE,
        faults: Sequence[str] = (),
        seed: int = 0,
        clock: Callable[[], float] = time.time,
        config: TwinConfig | None = None,
        tick_s: float = 1.0,
        heartbeat_s: float = 10.0,
        time_sync_timeout_s: float = 3.0,
        connect_timeout_s: float = 10.0,
        client_tag: str | None = None,
        node_passwords: dict[str, str] | None = None,
    ) -> None:
        if firmware not in FIRMWARES:
            raise ValueError(f"firmware {firmware!r}: nodes run {', '.join(FIRMWARES)}")
        if not tick_s > 0 or not heartbeat_s > 0:
            raise ValueError("tick_s and heartbeat_s must be positive")
        self.ruleset, self.mqtt_url, self.secrets = ruleset, mqtt_url, dict(secrets)
        self.zones_wanted = [ruleset.zone(u) for u in zone_uids] if zone_uids else list(ruleset.zones)
        self.firmware, self.seed, self.clock = firmware, seed, clock
        base = config or TwinConfig()
        self.config = dataclasses.replace(base, firmware=firmware)
        self.config.check()
        self.tick_s, self.heartbeat_s = tick_s, heartbeat_s
        self.time_sync_timeout_s, self.connect_timeout_s = time_sync_timeout_s, connect_timeout_s
        self.client_tag = client_tag
        #: broker logins: node uid (or "*" for every node) -> password; the login is the node uid, as on a
        #: site's broker (runtime/README.md); without one a node logs in as mqtt_url says
        self.node_passwords = dict(node_passwords or {})
        self.counters = Counters()
        self.twins: dict[str, ZoneTwin] = {}
        self.nodes: dict[str, _Node] = {}
        self.started_at: float | None = None
        self.tick_count = 0
        self.ticked = asyncio.Event()  # set after every tick
        self._zones: list[_Zone] = []
        self._rng = random.Random(seed)
        self._task: asyncio.Task | None = None
        self._timers: list[asyncio.TimerHandle] = []
        self._tasks: set[asyncio.Task] = set()
        self._reboots: list[Reboot] = []
        self._twin_faults: list[tuple[str, Fault]] = []
        for text in faults:
            rb = parse_reboot(text)
            if rb is not None:
                self._node_of(rb.target, rb.text)
                self._reboots.append(rb)
                continue
            fault = parse_fault(text)
            zones = [z for z in self.zones_wanted if applies_to(fault, z)]
            if not zones:
                raise FaultError(f"fault {text}: no zone of this run has {fault.node or fault.target!r}")
            for z in zones:
                check_fault(fault, z, ruleset, self.config)
            self._twin_faults.append((text, fault))

    # ---- life -------------------------------------------------------------------------------
    async def start(self) -> None:
        """Build the twins at the wall clock, bring every node online, start ticking."""
        from ..sim.dryrun import zone_seed

        now = self.clock()
        self.started_at = now
        if urlsplit(self.mqtt_url).username and not self.node_passwords:
            log.warning(
                "every node logs in as %s: on a broker that makes the login the client id (the kit's), they "
                "take each other's place; give the nodes their own logins (node_passwords, --node-password)",
                urlsplit(self.mqtt_url).username,
            )
        for zone in self.zones_wanted:
            faults = [f for _, f in self._twin_faults if applies_to(f, zone)]
            twin = ZoneTwin(zone, self.ruleset, seed=zone_seed(self.seed, zone.uid), start=now, faults=faults,
                            config=self.config)  # fmt: skip
            zs = _Zone(zone, twin)
            for uid in zone.nodes:
                node = _Node(self, zs, uid)
                zs.nodes[uid] = node
                self.nodes[uid] = node
                if uid not in self.secrets:
                    log.warning("node %s has no command secret: it refuses every command (invalid_signature)", uid)
            self.twins[zone.uid] = twin
            self._zones.append(zs)
        try:
            await asyncio.gather(*(n.boot() for n in self.nodes.values()))
        except BaseException:
            await self.stop()  # the nodes that did connect leave again
            raise
        loop = asyncio.get_running_loop()
        for rb in self._reboots:
            uid = self._node_of(rb.target, rb.text)
            self._timers.append(loop.call_later(max(0.0, now + rb.offset_s - self.clock()), self._spawn_reboot, uid))
        self._task = asyncio.create_task(self._run(), name="nodesim")

    async def stop(self) -> None:
        """Every node says `offline` and leaves the broker."""
        for h in self._timers:
            h.cancel()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for t in list(self._tasks):
            t.cancel()
        for t in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        await asyncio.gather(*(n.stop() for n in self.nodes.values()), return_exceptions=True)

    async def __aenter__(self) -> NodeSim:
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    # ---- in-process hooks ------------------------------------------------------------------------
    async def reboot(self, node_uid: str) -> None:
        """The node's firmware restarts: `offline`, relays as the firmware boots them (hydro2: every one
        OPEN), uptime from 0, time sync, status ONLINE again."""
        node = self.nodes[node_uid]
        await self._bounce(node, reboot_twin=True)

    def inject(self, text: str, zone: str | None = None) -> None:
        """A fault in dry-run syntax whose offset counts from now (`stuck_relay@0:pump_drain`,
        `overcurrent@5s:pump_recirc,for=1m`, `reboot@10s:nd-pump-1`); in `zone` only if given."""
        rb = parse_reboot(text)
        now = self.clock()
        if rb is not None:
            uid = self._node_of(rb.target, rb.text)
            loop = asyncio.get_running_loop()
            self._timers.append(loop.call_later(rb.offset_s, self._spawn_reboot, uid))
            return
        fault = parse_fault(text)
        targets = [zs for zs in self._zones if (zone is None or zs.zone.uid == zone) and applies_to(fault, zs.zone)]
        if not targets:
            raise FaultError(f"fault {text}: no simulated zone has {fault.node or fault.target!r}")
        for zs in targets:
            self._advance(zs, now)
            zs.twin.inject(fault, now + fault.offset_s)

    def stuck(self, channel: str, zone: str | None = None) -> None:
        """The relay of `channel` sticks closed from now on (the `stuck_relay` fault)."""
        self.inject(f"stuck_relay@0:{channel}", zone)

    def overcurrent(self, channel: str, zone: str | None = None) -> None:
        """The pump on `channel` draws too much from now on: a start is answered ERROR overcurrent."""
        self.inject(f"overcurrent@0:{channel}", zone)

    def dry_reservoir(self, zone: str | None = None) -> None:
        self.inject("dry_reservoir@0", zone)

    async def wait_ticks(self, n: int = 1, timeout: float = 10.0) -> None:
        """Wait until `n` more ticks have run."""
        target = self.tick_count + n

        async def _wait():
            while self.tick_count < target:
                self.ticked.clear()
                await self.ticked.wait()

        await asyncio.wait_for(_wait(), timeout)

    def node_url(self, node_uid: str) -> str:
        """The broker URL a node connects with: its own login when it has a password."""
        password = self.node_passwords.get(node_uid, self.node_passwords.get("*"))
        if password is None:
            return self.mqtt_url
        parts = urlsplit(self.mqtt_url)
        host = parts.hostname or "127.0.0.1"
        netloc = f"{quote(node_uid, safe='')}:{quote(password, safe='')}@{host}" + (
            f":{parts.port}" if parts.port else ""
        )
        return urlunsplit(parts._replace(netloc=netloc))

    # ---- internals ---------------------------------------------------------------------------
    def _node_of(self, target: str | None, text: str) -> str:
        """A reboot target: a node uid, or a channel name standing for its node (default pump_recirc's)."""
        name = target or "pump_recirc"
        for zone in self.zones_wanted:
            if name in zone.nodes:
                return name
            if name in zone.channels:
                return zone.channels[name].node_uid
        raise FaultError(f"fault {text}: {name!r} is neither a node nor a channel of the simulated zones")

    def _spawn(self, coro) -> asyncio.Task:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("nodesim: %s", task.exception(), exc_info=task.exception())

    def _spawn_reboot(self, uid: str) -> None:
        self._spawn(self._bounce(self.nodes[uid], reboot_twin=True))

    async def _bounce(self, node: _Node, *, reboot_twin: bool) -> None:
        """A reboot as the broker and the backend see it."""
        async with node.lock:
            await node.go_down()
            if reboot_twin:
                zs = node.zs
                self._advance(zs, self.clock())
                zs.twin.reboot(node.uid)
                self._flush_responses(zs)
            self.counters.reboots += 1
            log.info("node %s rebooted", node.uid)
            await node.boot(reset_uptime=True)

    async def _follow_state(self, node: _Node, was: str, state: str) -> None:
        """The twin took the node off the network (node_offline, controller_crash) or gave it back."""
        async with node.lock:
            if state != "up":
                log.info("node %s %s", node.uid, "loses power" if state == "down" else "drops off the network")
                await node.go_down()
            else:
                rebooted = was == "down"  # power came back: the firmware started afresh
                if rebooted:
                    self.counters.reboots += 1
                await node.boot(reset_uptime=rebooted)

    def _collect(self, zs: _Zone) -> None:
        for r in zs.twin.drain_telemetry():
            zs.pending[(r.node_uid, r.channel, r.metric)] = r

    def _advance(self, zs: _Zone, now: float) -> None:
        zs.twin.advance(max(now, zs.twin.now))
        self._collect(zs)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            now = self.clock()
            for zs in self._zones:
                try:
                    self._tick_zone(zs, now)
                except Exception:  # a bug in one zone must not stop the others' nodes
                    log.exception("nodesim: zone %s", zs.zone.uid)
            self.tick_count += 1
            self.ticked.set()
            next_at += self.tick_s
            delay = next_at - loop.time()
            if delay < 0:  # fell behind: no burst of catch-up ticks
                next_at, delay = loop.time(), 0.0
            await asyncio.sleep(delay)

    def _tick_zone(self, zs: _Zone, now: float) -> None:
        self._advance(zs, now)
        self._flush_responses(zs)
        twin = zs.twin
        for node in zs.nodes.values():
            state = twin.node_state(node.uid)
            if state != node.state:
                was, node.state = node.state, state
                self._spawn(self._follow_state(node, was, state))
            if not node.live or node.client is None:
                continue
            if node.client.connects != node.connects_seen:  # the broker came back: say ONLINE again
                node.connects_seen = node.client.connects
                node.put(f"{node.base}/status", {"status": "ONLINE", "ts": int(node.now())}, retain=True)
                self.counters.statuses_sent += 1
            if now >= node.next_heartbeat:
                node.next_heartbeat = now + self.heartbeat_s
                node.put(f"{node.base}/heartbeat", self._heartbeat(node, now))
                self.counters.heartbeats_sent += 1
        for r in zs.pending.values():
            node = zs.nodes.get(r.node_uid)
            if node is None or not node.live:
                continue
            channel = r.channel or self._sensor_key(zs, r.node_uid, r.metric)
            doc = self._telemetry(node, (channel, r.metric), r)
            node.put(f"{node.base}/{channel}/telemetry", doc, telemetry=True)
        zs.pending.clear()

    def _sensor_key(self, zs: _Zone, node_uid: str, metric: str) -> str:
        """The channel a reading the twin names no channel for goes out on: the zone's sensor channel of
        that node measuring it, else the metric's name (as firmware names its `water_level` channel)."""
        key = zs.sensor_keys.get((node_uid, metric))
        if key is None:
            key = metric
            for name, b in zs.zone.channels.items():
                ch = self.ruleset.channels.get(name)
                if b.node_uid == node_uid and ch is not None and ch.measures == metric:
                    key = b.channel_key
                    break
            zs.sensor_keys[(node_uid, metric)] = key
        return key

    def _telemetry(self, node: _Node, key: tuple, r: Reading) -> dict:
        m = self.ruleset.metrics.get(r.metric)
        doc = {
            "metric_type": m.aliases[0] if m is not None and m.aliases else r.metric.upper(),
            "value": round(r.value, 4),
        }
        t = node.now()
        if self.tick_s >= 1.0:
            # integer seconds as the protocol says, one new second per sample (a repeated ts would not
            # become the latest value), never more than a second ahead of the node's clock
            ts = max(int(t), min(node.last_ts.get(key, -1) + 1, int(t) + 1))
            node.last_ts[key] = ts
        else:
            ts = round(t, 3)  # faster than 1 Hz: seconds with milliseconds, as some field builds send
        doc["ts"] = ts
        if m is not None and m.unit:
            doc["unit"] = m.unit
        return doc

    def _heartbeat(self, node: _Node, now: float) -> dict:
        return {
            "uptime": int(now - node.boot_at),
            "free_heap": 102_000 - self._rng.randrange(0, 4096),
            "rssi": -60 - self._rng.randrange(0, 8),
            "fw_version": FW_VERSION[self.firmware],
        }

    async def _command(self, node: _Node, channel: str, payload: bytes) -> None:
        c = self.counters
        c.commands_received += 1
        checked = check_command(payload, self.secrets.get(node.uid), node.now(), self.config.max_clock_skew_s)
        if checked.refusal is not None:
            c.commands_refused[checked.refusal] += 1
            log.info("node %s refuses %s on %s: %s (%s)", node.uid, checked.cmd_id, channel, checked.refusal,
                     checked.message)  # fmt: skip
            doc = {
                "cmd_id": checked.cmd_id,
                "status": ERROR,
                "ts": int(node.now() * 1000),
                "error_code": checked.refusal,
                "error_message": checked.message,
                "details": {"channel": channel, **(checked.details or {})},
            }
            node.put(f"{node.base}/{channel}/command_response", doc)
            c.responses[ERROR] += 1
            return
        c.commands_accepted += 1
        cmd = checked.command
        zs = node.zs
        self._advance(zs, self.clock())
        zs.routes[checked.cmd_id] = (node.uid, channel)
        while len(zs.routes) > _ROUTES_KEPT:
            zs.routes.popitem(last=False)
        log.info("node %s: %s %s %s", node.uid, channel, cmd["cmd"], json.dumps(cmd["params"]))
        zs.twin.send(WireCommand(checked.cmd_id, node.uid, channel, cmd["cmd"], cmd["params"], zs.twin.now))
        answered = self._flush_responses(zs)
        if cmd["cmd"] == "restart" and (checked.cmd_id, DONE) in answered:
            self._spawn(self._bounce(node, reboot_twin=False))  # the twin's firmware restarted already

    def _flush_responses(self, zs: _Zone) -> set[tuple[str, str]]:
        answered = set()
        for r in zs.twin.drain_responses():
            route = zs.routes.get(r.cmd_id)
            if route is None:
                log.warning("zone %s: an answer to %s, a command no node here received", zs.zone.uid, r.cmd_id)
                continue
            node = zs.nodes[route[0]]
            node.put(f"{node.base}/{route[1]}/command_response", self._response(node, r))
            self.counters.responses[r.status] += 1
            answered.add((r.cmd_id, r.status))
            if r.status != ACK:
                log.info("node %s: %s %s%s", node.uid, r.cmd_id, r.status, f" {r.error_code}" if r.error_code else "")
        return answered

    @staticmethod
    def _response(node: _Node, r: CommandResponse) -> dict:
        doc = {"cmd_id": r.cmd_id, "status": r.status, "ts": int(node.now() * 1000)}
        details = dict(r.details)
        if r.error_code:
            doc["error_code"] = r.error_code
            if r.status in (ERROR, INVALID) and isinstance(details.get("message"), str):
                doc["error_message"] = details["message"]
        if details:
            doc["details"] = details
        return doc


async def read_secrets(conn, node_uids) -> dict[str, str]:
    """The command secret of each node that has one, from the nodes table (as a technician flashes them)."""
    from ..store import nodes as node_store

    out = {}
    for uid in node_uids:
        row = await node_store.get(conn, uid)
        if row is not None and row.get("secret"):
            out[uid] = row["secret"]
    return out
