"""The one command path for manual commands (the plan's mqtt-bridge): guard, record, sign, publish.

A start (run_pump, dose, set_relay on, set_pwm above 0) asks the channel's
guards exactly as the engine's own starts do; a refusal names the guard and
its reason. Only a caller allowed to override (scope `override`, and asking
for it) may bypass a guard, and the bypass is recorded with the command.

Every command ends: `sweep` (run by the service about once a second) times out
those without a terminal answer after their own response timeout, the zone's
`commands.response_timeout` when they were created. A `restart` of a node that
drives an NC pump switches that pump off until it is told `set_relay {state:true}`
(relays boot OPEN): it is refused when that would hold the pump off past the
zone's `max_recirc_off`, and `sweep` re-asserts the pump once the node is back.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from .. import messages as W
from ..engine.api import check_start, nc_run_by, setting_now
from ..lang.model import RuleSet
from ..lang.settings import SCHEMA as SETTINGS
from ..pgtext import TooDeep, clean_text, storable
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
#: who the service's own commands (re-assertions after a restart) are requested by
SERVICE = "service"


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


def _at(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


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
        self.default_timeout_s = float(SETTINGS["commands.response_timeout"][1])
        self.sweeps = 0  # sweep passes done: tests wait on it

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
            override, nc_pumps = None, []
            if is_start(req.cmd, req.params):
                override = await self._guard(conn, req, zone_row, now, by)
            elif req.cmd == "restart":
                nc_pumps = self._nc_pumps(zone, binding.node_uid)
                override = await self._restart_allowed(conn, req, zone, zone_row, nc_pumps, now, by, may_override)
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
                response_timeout_s=self.response_timeout(zone),
                reassert_channels=nc_pumps,
                created_at=_at(now),
            )
        return await self._send(cmd_id, zone_row, node, binding.channel_key, req.cmd, req.params, now)

    async def dispatch(self, command) -> dict:
        """Record, sign and publish a command the engine decided (its guards already asked).

        `command` is an engine `decisions.Command` (cmd_id, zone_uid, channel,
        node_uid, channel_key, cmd, params, rule). Raises CommandRefused (503)
        when the broker cannot take it; the command is then recorded `failed`.
        The site daemon calls the two steps itself: `record` inside the
        transaction of its tick, `publish` after it committed.
        """
        now = self.clock()
        async with self.db.acquire() as conn:
            node = await node_store.get(conn, command.node_uid)
            zone_row = await zone_store.get(conn, command.zone_uid)
            if node is None or zone_row is None:
                raise CommandRefused(409, "not_synced", f"{command.zone_uid}/{command.node_uid} is not in the database")
            if not node["secret"]:
                raise CommandRefused(409, "node_has_no_secret", f"node {command.node_uid} has no command secret")
            await self.record(conn, command, zone_id=zone_row["id"], node_id=node["id"], now=now)
        return await self._send(command.cmd_id, zone_row, node, command.channel_key, command.cmd, command.params, now)

    async def record(self, conn, command, *, zone_id: int, node_id: int, now: float, source: str = "engine") -> None:
        """The record step: an engine command as a `queued` row, on the caller's connection (and transaction).

        The rule and rule-set version are the command's own (those that decided it).
        Raises store.commands.CommandExists when the cmd_id is recorded already.
        """
        await command_store.create(
            conn,
            cmd_id=command.cmd_id,
            zone_id=zone_id,
            node_id=node_id,
            channel=command.channel,
            channel_key=command.channel_key,
            cmd=command.cmd,
            params=command.params,
            ruleset_version=command.ruleset_version or self.rs.ruleset_version,
            rule=command.rule,
            source=source,
            response_timeout_s=self.response_timeout(self.rs.zone(command.zone_uid)),
            created_at=_at(now),
        )

    async def publish(
        self,
        *,
        greenhouse_uid: str,
        zone_uid: str,
        node_uid: str,
        secret: str,
        cmd_id: str,
        channel_key: str,
        cmd: str,
        params: dict,
        now: float,
    ) -> None:
        """The publish step: sign with the node's secret and hand the command to the broker.

        Touches no database (the daemon publishes while it is down, with secrets it
        keeps). Raises CommandRefused (503, mqtt_unavailable) when the broker cannot
        take it; recording that, and `mark_sent`, are the caller's.
        """
        topic = topics.command(greenhouse_uid, zone_uid, node_uid, channel_key)
        body = payloads.command(secret, cmd_id, cmd, params, int(now))
        if self.mqtt is None or not self.mqtt.is_connected:
            raise CommandRefused(
                503, "mqtt_unavailable", "the MQTT broker is not reachable; command not sent", cmd_id=cmd_id
            )
        try:
            await asyncio.wait_for(self.mqtt.publish(topic, body, qos=1), self.publish_timeout_s)
        except TimeoutError:
            raise CommandRefused(
                503, "mqtt_unavailable", "the broker did not take the command in time", cmd_id=cmd_id
            ) from None

    async def _guard(self, conn, req: CommandRequest, zone_row: dict, now: float, by: str) -> dict | None:
        state = await zone_store.engine_state(conn, zone_row["id"])
        readings = [
            W.Reading(r["node_uid"], r["metric_type"], r["value"], r["ts"].timestamp(), r.get("channel"))
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
        """Sign and publish a recorded command to its node's channel; return it as stored then.

        A command the broker cannot take is recorded `failed` (mqtt_unavailable) and refused (503).
        """
        try:
            await self.publish(
                greenhouse_uid=zone_row["greenhouse_uid"],
                zone_uid=zone_row["uid"],
                node_uid=node["uid"],
                secret=node["secret"],
                cmd_id=cmd_id,
                channel_key=channel_key,
                cmd=cmd,
                params=params,
                now=now,
            )
        except CommandRefused as e:
            await self._fail(cmd_id, e.code, e.message)
            raise
        async with self.db.acquire() as conn:
            await command_store.mark_sent(conn, cmd_id, _at(now))
            return await command_store.get(conn, cmd_id)

    async def _fail(self, cmd_id: str, code: str, message: str) -> None:
        async with self.db.acquire() as conn:
            await command_store.mark_failed(conn, cmd_id, code, message)

    # ---- settings of a zone -----------------------------------------------------------------------
    def _setting(self, zone, path: str) -> float:
        """The setting in the zone now (its recipe phase's, its own, its profile's); the default without a zone."""
        if zone is None:
            return float(SETTINGS[path][1])
        return setting_now(self.rs, zone.uid, path, time.time())

    def response_timeout(self, zone) -> float:
        """The zone's `commands.response_timeout`: a command without a terminal answer ends then."""
        return self._setting(zone, "commands.response_timeout")

    # ---- restart of a node with NC pumps ------------------------------------------------------------
    def _nc_pumps(self, zone, node_uid: str) -> list[str]:
        """The zone's pump channels on `node_uid` whose relay is normally closed (fail_safe NC)."""
        return sorted(
            name
            for name, b in zone.channels.items()
            if b.node_uid == node_uid
            and (ch := self.rs.channels.get(name)) is not None
            and ch.kind == "pump"
            and ch.fail_safe == "NC"
        )

    async def _restart_allowed(
        self, conn, req: CommandRequest, zone, zone_row: dict, nc_pumps: list[str], now: float, by: str, may: bool
    ) -> dict | None:
        """Refuse a restart that would hold an NC pump off past the zone's `max_recirc_off`.

        After the restart the pump stands still until it is re-asserted, which takes up to
        the zone's response timeout (the node has that long to come back). Added to how long
        the pump has been off already, that must stay within `max_recirc_off`. With the
        override scope, asking for it, the refusal is bypassed and recorded.
        """
        hold = self.response_timeout(zone)
        state = await zone_store.engine_state(conn, zone_row["id"])
        for name in nc_pumps:
            off = await self._off_for(conn, zone_row["id"], name, state, now)
            # the window's own max_off, max_recirc_off, or the end of an `off` window: the engine's limit
            limit = nc_run_by(self.rs, zone.uid, now - off, now) - (now - off)
            if off + hold <= limit:
                continue
            reason = (
                f"a restart of {zone.channels[name].node_uid} switches {name} (NC) off until it is re-asserted, up "
                f"to {hold:g} s; it has been off {off:.0f} s already and max_recirc_off is {limit:g} s"
            )
            if req.override and may:
                log.warning("NC restart limit bypassed by %s on %s/%s: %s", by, req.zone_uid, name, req.reason)
                return {"guard": "nc_restart", "reason": reason, "by": by, "why": req.reason}
            raise CommandRefused(
                409, "restart_holds_pump_off", reason, guard="nc_restart", channel=name, off_s=round(off, 1),
                max_recirc_off_s=limit,
            )  # fmt: skip
        return None

    async def _off_for(self, conn, zone_id: int, channel: str, state: dict | None, now: float) -> float:
        """How long the channel's pump has been off at `now` (0 when on or not known).

        The newest of two records decides: the engine's saved belief (is_on, since) and
        the channel's last switching command (or a restart that still owes it its
        re-assertion). A timed run that has ended is off since its end.
        """
        evidence: list[tuple[float, bool]] = []
        ch = ((state or {}).get("channels") or {}).get(channel) or {}
        if isinstance(ch.get("since"), int | float) and ch["since"] > 0:
            evidence.append((float(ch["since"]), bool(ch.get("is_on"))))
        last = await command_store.last_switch(conn, zone_id, channel)
        if last is not None:
            evidence.append(_switch_effect(last, now))
        if not evidence:
            return 0.0
        since, on = max(evidence)
        return 0.0 if on else max(0.0, now - since)

    # ---- the sweep ---------------------------------------------------------------------------------
    async def sweep(self) -> dict:
        """One pass: time out overdue commands, re-assert NC pumps of restarted nodes that are back."""
        now = _at(self.clock())
        async with self.db.acquire() as conn:
            timed_out = await command_store.mark_timeouts(conn, now, response_timeout_s=self.default_timeout_s)
            due = await command_store.claim_reassertions(conn, now)
        for c in timed_out:
            log.warning(
                "command %s (%s on %s/%s) timed out: no terminal answer", c["cmd_id"], c["cmd"], c["zone_uid"],
                c["channel"],
            )  # fmt: skip
        reasserted = [await self._reassert(r) for r in due]
        self.sweeps += 1
        return {"timed_out": [c["cmd_id"] for c in timed_out], "reasserted": [c for r in reasserted for c in r]}

    async def _reassert(self, restart: dict) -> list[str]:
        """Switch the NC pumps of a restarted node on again, through the guarded path; their cmd_ids.

        A guard that refuses leaves the pump off (the refusal is audited): the engine's
        rules then decide when it runs, as for any start.
        """
        sent = []
        for channel in restart["reassert_channels"]:
            req = CommandRequest(
                restart["zone_uid"],
                channel,
                "set_relay",
                {"state": True},
                reason=f"re-assert after restart {restart['cmd_id']} of {restart['node_uid']} (relays boot open)",
            )
            try:
                cmd = await self.submit(req, by=SERVICE, may_override=False)
            except CommandRefused as e:
                log.warning("re-assertion of %s/%s refused: %s", req.zone_uid, channel, e.message)
                await self.record_refusal(e, by=SERVICE, scopes=None, request=req)
                continue
            log.info("re-asserted %s/%s after restart %s: %s", req.zone_uid, channel, restart["cmd_id"], cmd["cmd_id"])
            sent.append(cmd["cmd_id"])
        return sent

    # ---- refusals ------------------------------------------------------------------------------------
    async def record_refusal(
        self, e: CommandRefused, *, by: str | None, scopes: list[str] | None, request: CommandRequest | dict | None
    ) -> dict:
        """Audit a refused command: who asked (token), what (zone, channel, cmd, params), why (code, guard)."""
        what = _request_fields(request)
        extra = {k: v for k, v in e.extra.items() if k not in ("guard",)}
        async with self.db.acquire() as conn:
            return await command_store.record_refusal(
                conn,
                http_status=e.status,
                code=e.code,
                message=clean_text(e.message),
                token_name=by,
                token_scopes=scopes,
                guard=e.extra.get("guard"),
                details=_bounded(extra),
                at=_at(self.clock()),
                **what,
            )


def _switch_effect(cmd: dict, now: float) -> tuple[float, bool]:
    """(since when, on?) of the channel's output after a switching command (last_switch's row)."""
    at = cmd["at"].timestamp()
    params = cmd["params"] or {}
    if cmd["cmd"] == "restart":
        return at, False  # relays boot open: the NC pump stands still until re-asserted
    if cmd["cmd"] == "set_pwm":
        return at, bool(params.get("value"))
    if cmd["cmd"] == "set_relay" and params.get("state") is not True:
        return at, False
    duration = params.get("duration_ms")
    if isinstance(duration, int | float) and not isinstance(duration, bool) and duration > 0:
        end = at + duration / 1000.0
        return (end, False) if now >= end else (at, True)
    return at, True


_WHAT = ("zone_uid", "channel", "cmd", "params", "reason", "override")
#: a refused request's params or details larger than this (as JSON) are recorded by size only
MAX_AUDIT_JSON = 4096


def _bounded(doc: dict) -> dict:
    """`doc` as jsonb takes it, or only its size when it is too large or deep to keep in an audit row."""
    try:
        clean = storable(doc, max_depth=8)
        size = len(json.dumps(clean, default=str))
    except (TooDeep, ValueError, TypeError):
        return {"not_recorded": "too deep or not JSON"}
    return clean if size <= MAX_AUDIT_JSON else {"not_recorded": f"{size} bytes of JSON"}


def _request_fields(request: CommandRequest | dict | None) -> dict:
    """What a refused request asked for, as far as it said (a body that failed validation says less)."""
    if request is None:
        return {}
    doc = {k: getattr(request, k) for k in _WHAT} if isinstance(request, CommandRequest) else request
    out = {}
    for key in _WHAT:
        v = doc.get(key)
        if key == "params":
            out[key] = _bounded(v) if isinstance(v, dict) else None
        elif key == "override":
            out[key] = v if isinstance(v, bool) else None
        else:
            out[key] = clean_text(v)[:500] if isinstance(v, str) else None
    return out
