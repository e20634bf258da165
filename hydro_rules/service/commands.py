"""The one command path for manual commands (the plan's mqtt-bridge): guard, record, sign, publish.

A start (run_pump, dose, set_relay on, set_pwm above 0) asks the channel's
guards exactly as the engine's own starts do; a refusal names the guard and
its reason. Only a caller allowed to override (scope `override`, and asking
for it) may bypass a guard, and the bypass is recorded with the command.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from .. import messages as W
from ..engine.api import check_start
from ..lang.model import RuleSet
from ..store import Database
from ..store import alerts as alert_store
from ..store import commands as command_store
from ..store import nodes as node_store
from ..store import telemetry as telemetry_store
from ..store import zones as zone_store
from ..transport import payloads, topics
from ..transport.mqtt import MqttClient

log = logging.getLogger(__name__)

#: commands each channel kind takes, with their parameters: name -> (type, required)
COMMANDS: dict[str, dict[str, dict[str, tuple[type | tuple, bool]]]] = {
    "pump": {
        "run_pump": {"duration_ms": (int, True)},
        "set_relay": {"state": (bool, True), "duration_ms": (int, False)},
        "set_pwm": {"value": ((int, float), True)},
    },
    "valve": {"set_relay": {"state": (bool, True), "duration_ms": (int, False)}},
    "doser": {"dose": {"ml": ((int, float), True)}, "run_pump": {"duration_ms": (int, True)}},
    "sensor": {"calibrate": {"type": (str, True)}, "test_sensor": {}},
}
ANY_KIND = {"restart": {}}
MAX_DURATION_MS = 3_600_000
MAX_DOSE_ML = 1000.0


class CommandRefused(Exception):
    """HTTP-shaped refusal: status, machine code, message, extra fields."""

    def __init__(self, status: int, code: str, message: str, **extra) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.extra = status, code, message, extra


@dataclass(frozen=True, slots=True)
class CommandRequest:
    zone_uid: str
    channel: str
    cmd: str
    params: dict
    reason: str | None = None
    override: bool = False


def is_start(cmd: str, params: dict) -> bool:
    if cmd in ("run_pump", "dose"):
        return True
    if cmd == "set_relay":
        return params.get("state") is True
    if cmd == "set_pwm":
        return params.get("value", 0) > 0
    return False


def check_params(kind: str, cmd: str, params: dict) -> list[dict]:
    """Validation problems as 422 details (`loc` names the field), empty when fine."""
    allowed = {**COMMANDS.get(kind, {}), **ANY_KIND}
    if cmd not in allowed:
        return [
            {
                "loc": ["cmd"],
                "msg": f"a {kind} channel takes {', '.join(sorted(allowed))}, not {cmd!r}",
                "type": "value_error",
            }
        ]
    spec = allowed[cmd]
    problems = []
    for name, value in params.items():
        if name not in spec:
            problems.append({"loc": ["params", name], "msg": f"{cmd} takes no parameter {name!r}", "type": "extra"})
            continue
        typ = spec[name][0]
        if isinstance(value, bool) and typ is not bool or not isinstance(value, typ):
            problems.append({"loc": ["params", name], "msg": f"must be {_name(typ)}", "type": "type_error"})
    for name, (_, required) in spec.items():
        if required and name not in params:
            problems.append({"loc": ["params", name], "msg": "field required", "type": "missing"})
    if problems:
        return problems
    d = params.get("duration_ms")
    if d is not None and not 0 < d <= MAX_DURATION_MS:
        problems.append({"loc": ["params", "duration_ms"], "msg": f"must be 1 .. {MAX_DURATION_MS}", "type": "range"})
    ml = params.get("ml")
    if ml is not None and not 0 < ml <= MAX_DOSE_ML:
        problems.append(
            {"loc": ["params", "ml"], "msg": f"must be above 0 and at most {MAX_DOSE_ML:g}", "type": "range"}
        )
    v = params.get("value")
    if cmd == "set_pwm" and v is not None and not 0 <= v <= 100:
        problems.append({"loc": ["params", "value"], "msg": "must be 0 .. 100 (%)", "type": "range"})
    return problems


def _name(typ) -> str:
    if typ is bool:
        return "true or false"
    if typ is int:
        return "an integer"
    if typ is str:
        return "a string"
    return "a number"


class CommandService:
    def __init__(
        self,
        db: Database,
        ruleset: RuleSet,
        mqtt: MqttClient | None,
        *,
        clock: Callable[[], float] = time.time,
        publish_timeout_s: float = 2.0,
    ) -> None:
        self.db = db
        self.rs = ruleset
        self.mqtt = mqtt
        self.clock = clock
        self.publish_timeout_s = publish_timeout_s

    async def submit(self, req: CommandRequest, *, by: str, may_override: bool) -> dict:
        """Validate, guard, record, sign and publish; return the stored command."""
        zone = self.rs.zone(req.zone_uid)
        if zone is None:
            raise CommandRefused(404, "unknown_zone", f"no zone {req.zone_uid!r} in the rule set")
        binding = zone.channels.get(req.channel)
        if binding is None:
            raise CommandRefused(
                422,
                "validation_error",
                f"zone {zone.uid} has no channel {req.channel!r}",
                detail=[{"loc": ["channel"], "msg": f"choose from {', '.join(sorted(zone.channels))}", "type": "enum"}],
            )
        channel = self.rs.channels.get(req.channel)
        kind = channel.kind if channel else "pump"
        problems = check_params(kind, req.cmd, req.params)
        if problems:
            raise CommandRefused(422, "validation_error", "invalid command", detail=problems)
        if req.override and not may_override:
            raise CommandRefused(403, "forbidden", "bypassing a guard needs a token with scope `override`")
        now = self.clock()
        async with self.db.acquire() as conn:
            node = await node_store.get(conn, binding.node_uid)
            if node is None or not node["validated"]:
                raise CommandRefused(
                    409, "node_not_validated", f"node {binding.node_uid} is not registered and validated"
                )
            if not node["secret"]:
                raise CommandRefused(409, "node_has_no_secret", f"node {binding.node_uid} has no command secret")
            zone_row = await zone_store.get(conn, zone.uid)
            if zone_row is None:
                raise CommandRefused(409, "zone_not_synced", f"zone {zone.uid} is not in the database; run db sync")
            override = None
            if is_start(req.cmd, req.params):
                override = await self._guard(conn, req, zone_row, now, by)
            cmd_id = f"api-{uuid.uuid4().hex[:16]}"
            await command_store.create(
                conn,
                cmd_id=cmd_id,
                zone_id=zone_row["id"],
                node_id=node["id"],
                channel=req.channel,
                channel_key=binding.channel_key,
                cmd=req.cmd,
                params=req.params,
                ruleset_version=self.rs.ruleset_version,
                rule="api",
                source="api",
                requested_by=by,
                reason=req.reason,
                override=override,
            )
        return await self._send(cmd_id, zone_row, node, binding.channel_key, req.cmd, req.params, now)

    async def dispatch(self, command) -> dict:
        """Record, sign and publish a command the engine decided (its guards already asked).

        `command` is an engine `decisions.Command` (cmd_id, zone_uid, channel,
        node_uid, channel_key, cmd, params, rule). Raises CommandRefused (503)
        when the broker cannot take it; the command is then recorded `failed`.
        """
        now = self.clock()
        async with self.db.acquire() as conn:
            node = await node_store.get(conn, command.node_uid)
            zone_row = await zone_store.get(conn, command.zone_uid)
            if node is None or zone_row is None:
                raise CommandRefused(409, "not_synced", f"{command.zone_uid}/{command.node_uid} is not in the database")
            if not node["secret"]:
                raise CommandRefused(409, "node_has_no_secret", f"node {command.node_uid} has no command secret")
            await command_store.create(
                conn,
                cmd_id=command.cmd_id,
                zone_id=zone_row["id"],
                node_id=node["id"],
                channel=command.channel,
                channel_key=command.channel_key,
                cmd=command.cmd,
                params=command.params,
                ruleset_version=self.rs.ruleset_version,
                rule=command.rule,
                source="engine",
            )
        return await self._send(command.cmd_id, zone_row, node, command.channel_key, command.cmd, command.params, now)

    async def _guard(self, conn, req: CommandRequest, zone_row: dict, now: float, by: str) -> dict | None:
        state = await zone_store.engine_state(conn, zone_row["id"])
        readings = [
            W.Reading(r["node_uid"], r["metric_type"], r["value"], r["ts"].timestamp())
            for r in await telemetry_store.latest(conn, zone_row["id"])
        ]
        verdict = check_start(
            self.rs,
            req.zone_uid,
            req.channel,
            state,
            readings,
            now,
            active_alerts=await alert_store.active(conn, zone_row["id"]),
            failures=await command_store.failure_times(
                conn, zone_row["id"], datetime.fromtimestamp(now - 7 * 86400, UTC)
            ),
        )
        if verdict.allowed:
            return None
        if req.override:
            log.warning(
                "guard %s bypassed by %s on %s/%s: %s", verdict.guard, by, req.zone_uid, req.channel, req.reason
            )
            return {"guard": verdict.guard, "reason": verdict.reason, "by": by, "why": req.reason}
        raise CommandRefused(
            409,
            "guard_refused",
            f"{verdict.guard}: {verdict.reason}",
            guard=verdict.guard,
            reason=verdict.reason,
            raises=verdict.raises,
        )

    async def _send(
        self, cmd_id: str, zone_row: dict, node: dict, channel_key: str, cmd: str, params: dict, now: float
    ) -> dict:
        """Sign and publish a recorded command to its node's channel; return it as stored then."""
        topic = topics.command(zone_row["greenhouse_uid"], zone_row["uid"], node["uid"], channel_key)
        body = payloads.command(node["secret"], cmd_id, cmd, params, int(now))
        await self._publish(cmd_id, topic, body)
        async with self.db.acquire() as conn:
            return await command_store.get(conn, cmd_id)

    async def _publish(self, cmd_id: str, topic: str, body: bytes) -> None:
        at = datetime.now(UTC)
        if self.mqtt is None or not self.mqtt.is_connected:
            await self._fail(cmd_id, "mqtt_unavailable", "not connected to the broker")
            raise CommandRefused(
                503, "mqtt_unavailable", "the MQTT broker is not reachable; command not sent", cmd_id=cmd_id
            )
        try:
            await asyncio.wait_for(self.mqtt.publish(topic, body, qos=1), self.publish_timeout_s)
        except TimeoutError:
            await self._fail(cmd_id, "mqtt_unavailable", "the broker did not take the command in time")
            raise CommandRefused(
                503, "mqtt_unavailable", "the broker did not take the command in time", cmd_id=cmd_id
            ) from None
        async with self.db.acquire() as conn:
            await command_store.mark_sent(conn, cmd_id, at)

    async def _fail(self, cmd_id: str, code: str, message: str) -> None:
        async with self.db.acquire() as conn:
            await command_store.mark_failed(conn, cmd_id, code, message)
