"""The HTTP routes. One table drives both the router and /openapi.json."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..engine import api as engine_api
from ..pgtext import bad_text
from ..sim.times import parse_time
from ..store import DatabaseUnavailable
from ..store import aggregate as aggregate_store
from ..store import alerts as alert_store
from ..store import commands as command_store
from ..store import decisions as decision_store
from ..store import events as event_store
from ..store import nodes as node_store
from ..store import telemetry as telemetry_store
from ..store import water as water_store
from ..store import zones as zone_store
from ..store.tokens import TokenInfo
from ..transport import topics
from ..twin import FaultError
from . import schemas
from .app import Service
from .binding import config_channels
from .commands import CommandRefused, CommandRequest
from .ingest import Sample
from .openapi import build_spec
from .schemas import epoch
from .web import ApiError, invalid, json_response, parse_body

log = logging.getLogger(__name__)

LEVELS = ("raw", "1m", "1h", "daily")
ALERT_STATUSES = (alert_store.ACTIVE, alert_store.RESOLVED)
ALERT_SOURCES = ("biz", "infra")
COMMAND_STATUSES = (
    command_store.QUEUED,
    command_store.SENT,
    command_store.ACKED,
    command_store.DONE,
    command_store.FAILED,
    command_store.TIMEOUT,
)

Handler = Callable[[Service, Request, TokenInfo | None, BaseModel | None], Awaitable[Response]]


@dataclass(frozen=True)
class Spec:
    method: str
    path: str
    fn: Handler
    summary: str
    scope: str | None  # None: no token needed
    body: schemas.Body | None = None
    query: tuple[tuple[str, str, str], ...] = ()  # (name, type, description)
    responses: tuple[int, ...] = ()
    #: called with (svc, request, token or None, the ApiError) when the route refuses a request
    on_refused: Callable[..., Awaitable[None]] | None = None


# ---- helpers --------------------------------------------------------------------------
def _time(request: Request, name: str, default: datetime | None = None) -> datetime | None:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        return datetime.fromtimestamp(float(raw) if raw.replace(".", "").isdigit() else parse_time(raw), UTC)
    except (ValueError, OverflowError, OSError):  # not a time, or one datetime cannot hold
        raise invalid(
            ["query", name], f"query parameter {name} is not a time", "ISO 8601 time or epoch seconds"
        ) from None


def _int(request: Request, name: str, default: int, lo: int = 1, hi: int = 1000) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = None
    if value is None or not lo <= value <= hi:
        raise invalid(
            ["query", name], f"query parameter {name} must be an integer {lo} .. {hi}", f"integer {lo} .. {hi}"
        )
    return value


def _choice(request: Request, name: str, choices: tuple[str, ...]) -> str | None:
    raw = request.query_params.get(name)
    if raw is not None and raw not in choices:
        one_of = f"one of {', '.join(choices)}"
        raise invalid(["query", name], f"query parameter {name} must be {one_of}", one_of, "enum")
    return raw


async def _zone(conn, uid: str) -> dict:
    zone = await zone_store.get(conn, uid)
    if zone is None:
        raise ApiError(404, "unknown_zone", f"no zone {uid!r}")
    return zone


async def _zone_filter(conn, request: Request) -> int | None:
    """The id of the zone named by the path or by `?zone=`; None (every zone) when neither names one."""
    uid = request.path_params.get("uid") or request.query_params.get("zone")
    return (await _zone(conn, uid))["id"] if uid else None


def _ready(svc: Service) -> None:
    if not svc.ready.is_set():
        raise ApiError(
            503, "not_ready", f"the service is not ready: {svc.problem or 'starting'}", headers={"Retry-After": "5"}
        )


# ---- handlers -------------------------------------------------------------------------
async def health(svc: Service, request, token, body) -> Response:
    h = await svc.health()
    # 503 only when nothing can be stored; a lost broker is "degraded" while HTTP ingest still works
    return json_response(h, 200 if h["database"] and h["ready"] else 503)


async def openapi(svc: Service, request, token, body) -> Response:
    return json_response(build_spec(SPECS))


async def ingest_telemetry(svc: Service, request, token, body: dict) -> Response:
    _ready(svc)
    if len(body["samples"]) > svc.settings.max_samples_per_request:
        raise ApiError(
            413,
            "too_many_samples",
            f"at most {svc.settings.max_samples_per_request} samples per request",
            limit=svc.settings.max_samples_per_request,
        )
    samples = [_sample(s) for s in body["samples"]]
    result = await svc.core.ingest(samples)
    return json_response(
        {
            "status": "ok",
            "count": len(samples),
            "stored": result.stored,
            "stub": result.stub,
            "counts": result.counts,
            "rejected": [{"index": r.index, "outcome": r.outcome, "reason": r.reason} for r in result.rejections],
            "notes": [{"index": n.index, "note": n.note} for n in result.notes],
        }
    )


def _sample(s: dict | schemas.SampleRefused) -> Sample:
    if isinstance(s, schemas.SampleRefused):
        return Sample("", "", 0.0, 0.0, malformed=s.reason)
    return Sample(
        s["node_uid"],
        s["metric_type"],
        s["value"],
        epoch(s["ts"]),
        s.get("zone_uid"),
        s.get("channel"),
        s.get("raw"),
        unit=s.get("unit"),
        stub=s.get("stub", False),
    )


async def register_node(svc: Service, request, token, body: schemas.RegisterRequest) -> Response:
    """Validation is the binding step: the operator names the node and its zone; a node whose hardware
    id is known (it said hello) is then sent its NodeConfig and is "binding" until it confirms."""
    _ready(svc)
    owner = _rule_set_zone(svc, body.node_uid)
    if owner is not None and body.zone_uid not in (None, owner):
        raise ApiError(
            409,
            "zone_conflict",
            f"the rule set binds node {body.node_uid} in zone {owner}, not {body.zone_uid}",
            zone_uid=owner,
        )
    async with svc.db.acquire() as conn:
        try:
            node, secret = await node_store.register(
                conn,
                body.node_uid,
                zone_uid=body.zone_uid or owner,
                firmware_version=body.firmware_version,
                hardware_revision=body.hardware_revision,
                hardware_id=body.hardware_id,
                node_type=body.node_type,
                secret=body.secret,
            )
        except node_store.UnknownZone:
            raise invalid(["zone_uid"], f"no zone {body.zone_uid!r}", "unknown zone") from None
        except node_store.HardwareTaken as e:
            raise ApiError(409, "hardware_taken", str(e), node_uid=e.node_uid) from None
    svc.core.forget_node(body.node_uid)
    config = await _push_config(svc, node)
    if config["pushed"]:
        async with svc.db.acquire() as conn:
            node = await node_store.get(conn, body.node_uid)
    out = _node_resource(node)
    out["config"] = config
    if secret is not None:
        out["secret"] = secret  # shown once (the config push carries it to the node)
    log.info("node %s registered and validated by %s (config pushed: %s)", body.node_uid, token.name, config["pushed"])
    return json_response(out, 200)


def _rule_set_zone(svc: Service, node_uid: str) -> str | None:
    """The zone the rule set binds the node in, if any."""
    return next((z.uid for z in svc.rs.zones if node_uid in z.nodes), None)


async def _push_config(svc: Service, node: dict) -> dict:
    """Send a validated node its NodeConfig; what was sent, or why nothing was."""
    if not node.get("hardware_id"):
        return {"pushed": False, "reason": "no hardware id known: give the hardware_id of the node's hello"}
    if node.get("zone_uid") is None:
        return {"pushed": False, "reason": "the node has no zone"}
    if svc.door is None:
        return {"pushed": False, "reason": "the service has no MQTT broker"}
    try:
        await svc.door.push_config(node_uid=node["uid"])
    except TimeoutError:
        return {"pushed": False, "reason": "the broker did not take it in time; it is sent when the node next talks"}
    return {
        "pushed": True,
        "topic": topics.temp_config(node["hardware_id"]),
        "channels": config_channels(svc.rs, node["zone_uid"], node["uid"]),
    }


def _node_resource(node: dict) -> dict:
    keep = (
        "uid",
        "zone_uid",
        "greenhouse_uid",
        "node_type",
        "hardware_id",
        "validated",
        "binding_state",
        "config_pushed_at",
        "config_pushes",
        "bound_at",
        "first_seen_at",
        "firmware_version",
        "hardware_revision",
        "status",
        "last_seen_at",
        "last_heartbeat_at",
        "uptime_s",
    )
    return {k: node.get(k) for k in keep}


async def list_zones(svc: Service, request, token, body) -> Response:
    async with svc.db.acquire() as conn:
        return json_response({"zones": await zone_store.list_zones(conn)})


async def get_zone(svc: Service, request, token, body) -> Response:
    async with svc.db.acquire() as conn:
        zone = await _zone(conn, request.path_params["uid"])
        zone["channels"] = await zone_store.channels(conn, zone["id"])
        zone["nodes"] = await node_store.list_nodes(conn, zone["id"])
    zone.pop("id")
    return json_response(zone)


async def latest_telemetry(svc: Service, request, token, body) -> Response:
    async with svc.db.acquire() as conn:
        zone = await _zone(conn, request.path_params["uid"])
        rows = await telemetry_store.latest(conn, zone["id"])
    stale = {name: m.stale_s for name, m in svc.rs.metrics.items()}
    now = datetime.now(UTC)
    for r in rows:
        r["age_s"] = (now - r["ts"]).total_seconds()
        r["stale"] = r["age_s"] > stale.get(r["metric_type"], float("inf"))
    return json_response({"zone_uid": zone["uid"], "telemetry": rows})


async def telemetry_series(svc: Service, request, token, body) -> Response:
    metric = request.query_params.get("metric")
    if not metric:
        raise invalid(["query", "metric"], "query parameter metric is required", "field required", "missing")
    level = _choice(request, "level", LEVELS) or "1m"
    until = _time(request, "until", datetime.now(UTC))
    since = _time(request, "since", until - timedelta(hours=24))
    channel = request.query_params.get("channel")
    async with svc.db.acquire() as conn:
        zone = await _zone(conn, request.path_params["uid"])
        if level == "raw":
            rows = await telemetry_store.samples(conn, zone["id"], metric, since, until, channel=channel)
        else:
            rows = await aggregate_store.series(conn, level, zone["id"], metric, since, until, channel=channel)
    return json_response({"zone_uid": zone["uid"], "metric": metric, "level": level, "points": rows})


async def list_alerts(svc: Service, request, token, body) -> Response:
    status = _choice(request, "status", ALERT_STATUSES)
    source = _choice(request, "source", ALERT_SOURCES)
    limit = _int(request, "limit", 100)
    async with svc.db.acquire() as conn:
        zone_id = await _zone_filter(conn, request)
        rows = await alert_store.list_alerts(conn, zone_id=zone_id, status=status, source=source, limit=limit)
    return json_response({"alerts": rows})


async def list_commands(svc: Service, request, token, body) -> Response:
    status = _choice(request, "status", COMMAND_STATUSES)
    limit = _int(request, "limit", 100)
    async with svc.db.acquire() as conn:
        zone_id = await _zone_filter(conn, request)
        rows = await command_store.list_commands(conn, zone_id=zone_id, status=status, limit=limit)
    return json_response({"commands": rows})


async def get_command(svc: Service, request, token, body) -> Response:
    async with svc.db.acquire() as conn:
        cmd = await command_store.get(conn, request.path_params["cmd_id"])
        if cmd is not None:
            cmd["responses"] = await command_store.responses(conn, cmd["cmd_id"])
    if cmd is None:
        raise ApiError(404, "unknown_command", f"no command {request.path_params['cmd_id']!r}")
    for k in ("id", "zone_id", "node_id"):
        cmd.pop(k, None)
    return json_response(cmd)


async def list_refusals(svc: Service, request, token, body) -> Response:
    since = _time(request, "since")
    limit = _int(request, "limit", 100)
    zone = request.query_params.get("zone")
    async with svc.db.acquire() as conn:
        rows = await command_store.list_refusals(conn, zone_uid=zone, since=since, limit=limit)
    return json_response({"refusals": rows})


async def zone_events(svc: Service, request, token, body) -> Response:
    since = _time(request, "since")
    limit = _int(request, "limit", 100)
    async with svc.db.acquire() as conn:
        zone = await _zone(conn, request.path_params["uid"])
        rows = await event_store.list_events(
            conn, zone["id"], since=since, type=request.query_params.get("type"), limit=limit
        )
    return json_response({"zone_uid": zone["uid"], "events": rows})


DECISION_KINDS = tuple(sorted(decision_store.KINDS))


async def zone_decisions(svc: Service, request, token, body) -> Response:
    since = _time(request, "since")
    until = _time(request, "until")
    kind = _choice(request, "kind", DECISION_KINDS)
    limit = _int(request, "limit", 500, hi=10_000)
    async with svc.db.acquire() as conn:
        zone = await _zone(conn, request.path_params["uid"])
        rows = await decision_store.list_decisions(
            conn,
            zone["id"],
            since=since,
            until=until,
            kind=kind,
            channel=request.query_params.get("channel"),
            limit=limit,
        )
    return json_response(
        {"zone_uid": zone["uid"], "decisions": [{f: r[f] for f in decision_store.FIELDS} for r in rows]}
    )


async def water_usage(svc: Service, request, token, body) -> Response:
    until = _time(request, "until", datetime.now(UTC))
    since = _time(request, "since", until - timedelta(days=7))
    async with svc.db.acquire() as conn:
        zone = await _zone(conn, request.path_params["uid"])
        usage = await water_store.usage(conn, zone["id"], since, until)
    return json_response({"zone_uid": zone["uid"], **usage})


async def list_nodes(svc: Service, request, token, body) -> Response:
    async with svc.db.acquire() as conn:
        return json_response({"nodes": await node_store.list_nodes(conn, await _zone_filter(conn, request))})


async def safety_reset(svc: Service, request, token, body: schemas.ResetIn) -> Response:
    _ready(svc)
    uid = request.path_params["uid"]
    codes = sorted(code for code, a in svc.rs.alerts.items() if a.locks or a.clear_on_reset)
    who = body.by or token.name
    async with svc.db.transaction() as conn:
        zone = await _zone(conn, uid)
        resolved = await alert_store.resolve_codes(conn, zone["id"], codes, by=who, reason=body.reason)
        event_id = await event_store.add(
            conn,
            zone_id=zone["id"],
            type="SAFETY_RESET",
            details={
                "by": who,
                "token": token.name,
                "reason": body.reason,
                "resolved": [{"code": a["code"], "channel": a["channel"]} for a in resolved],
            },
            ruleset_version=svc.rs.ruleset_version,
        )
    log.warning("safety reset of zone %s by %s: %s (%d alert(s) resolved)", uid, who, body.reason, len(resolved))
    return json_response(
        {"zone_uid": uid, "event_id": event_id, "resolved": resolved, "by": who, "reason": body.reason}
    )


async def post_command(svc: Service, request, token, body: schemas.CommandIn) -> Response:
    _ready(svc)
    if body.override and not body.reason:
        raise invalid(["reason"], "an override needs a reason", "required when override is true", "missing")
    req = CommandRequest(body.zone_uid, body.channel, body.cmd, body.params, body.reason, body.override)
    try:
        cmd = await svc.commands.submit(req, by=token.name, may_override="override" in token.scopes)
    except CommandRefused as e:
        raise ApiError(e.status, e.code, e.message, **e.extra) from None
    for k in ("id", "zone_id", "node_id"):
        cmd.pop(k, None)
    return json_response(cmd, 202)


#: refusals of POST /commands that leave an audit row (401: no token, nobody to name)
AUDITED_REFUSALS = frozenset({400, 403, 404, 409, 422})


async def audit_refused_command(svc: Service, request: Request, token: TokenInfo | None, e: ApiError) -> None:
    """Record who asked for what and why it was refused. A failure to record is logged, never the answer."""
    if e.status not in AUDITED_REFUSALS:
        return
    try:
        if token is None:
            token = await svc.auth.identify(request)  # a 403 for the scope: the token is known
        try:
            doc = json.loads(await request.body())
        except ValueError:
            doc = None
        await svc.commands.record_refusal(
            CommandRefused(e.status, e.code, e.message, **e.extra),
            by=token.name,
            scopes=sorted(token.scopes),
            request=doc if isinstance(doc, dict) else None,
        )
    except ApiError:
        return
    except Exception as exc:  # the refusal is answered whatever happens to its record
        log.warning("refused command not audited (%s): %s %s", type(exc).__name__, e.code, e.message)


_simulations = asyncio.Semaphore(1)


def engine_ticks(days: float, tick_s: float) -> int:
    """The ticks a dry run of `days` evaluates, counted as the dry run counts them."""
    return int(round(days * 86400.0 / tick_s))


async def revoke_token(svc: Service, request, token, body) -> Response:
    prefix = request.path_params["prefix"]
    if not await svc.auth.revoke(prefix):
        raise ApiError(404, "unknown_token", f"no active token with prefix {prefix!r}")
    log.warning("token %s revoked by %s", prefix, token.name)
    return json_response({"prefix": prefix, "revoked": True, "by": token.name})


async def simulate(svc: Service, request, token, body: schemas.SimulateIn) -> Response:
    uid = request.path_params["uid"]
    if svc.rs.zone(uid) is None:
        raise ApiError(404, "unknown_zone", f"no zone {uid!r} in the rule set")
    if body.days > svc.settings.simulate_max_days:
        most = f"at most {svc.settings.simulate_max_days:g}"
        raise invalid(["days"], f"{most} days", most, "less_than_equal")
    ticks, most_ticks = engine_ticks(body.days, body.tick_s), svc.settings.simulate_max_ticks
    if ticks > most_ticks:
        most = f"at most {most_ticks} engine ticks (days x 86400 / tick_s)"
        longest = most_ticks * body.tick_s / 86400
        raise invalid(
            ["days"],
            f"{most}: this asks for {ticks}; at tick_s {body.tick_s:g}, days {longest:g} at most",
            most,
            "less_than_equal",
        )
    if _simulations.locked():
        raise ApiError(429, "busy", "another dry run is running; try again shortly", headers={"Retry-After": "5"})
    async with _simulations:
        try:
            doc = await asyncio.to_thread(
                engine_api.simulate,
                svc.rs,
                uid,
                days=body.days,
                tick_s=body.tick_s,
                seed=body.seed,
                start=body.start,
                faults=list(body.faults),
            )
        except (ValueError, KeyError) as e:
            field = "faults" if isinstance(e, FaultError) else "start"
            raise invalid([field], str(e).strip("'\"")) from None
    return json_response(doc)


# the query parameters the handlers read, as the description lists them
def _one_of(name: str, choices: tuple[str, ...]) -> tuple[str, str, str]:
    return (name, "string", " | ".join(choices))


_ZONE = ("zone", "string", "zone uid")
_LIMIT = ("limit", "integer", "1 .. 1000")
_SINCE = ("since", "string", "ISO 8601 time or epoch seconds")
_UNTIL = ("until", "string", "ISO 8601 time or epoch seconds")
_ALERT_QUERY = (_one_of("status", ALERT_STATUSES), _one_of("source", ALERT_SOURCES), _LIMIT)
_COMMAND_QUERY = (_one_of("status", COMMAND_STATUSES), _LIMIT)

SPECS: tuple[Spec, ...] = (
    Spec("GET", "/health", health, "Liveness of the service, its database and broker", None, responses=(200, 503)),
    Spec("GET", "/openapi.json", openapi, "This description", None),
    Spec(
        "POST",
        "/ingest/telemetry",
        ingest_telemetry,
        "Store a batch of telemetry samples (§2.1)",
        "ingest",
        schemas.SampleBatch(),
        responses=(200, 401, 403, 413, 422, 503),
    ),
    Spec(
        "POST",
        "/nodes/register",
        register_node,
        "Validate a node into a zone and send it its NodeConfig (binding)",
        "operator",
        schemas.Body(schemas.RegisterRequest),
        responses=(200, 401, 403, 409, 422, 503),
    ),
    Spec("GET", "/nodes", list_nodes, "Nodes and their liveness", "read", query=(_ZONE,)),
    Spec("GET", "/zones", list_zones, "Zones", "read"),
    Spec("GET", "/zones/{uid}", get_zone, "A zone with its channels and nodes", "read", responses=(200, 404)),
    Spec(
        "GET",
        "/zones/{uid}/telemetry/latest",
        latest_telemetry,
        "Latest value per node, metric and channel",
        "read",
        responses=(200, 404),
    ),
    Spec(
        "GET",
        "/zones/{uid}/telemetry",
        telemetry_series,
        "Samples or aggregates of one metric",
        "read",
        query=(
            ("metric", "string", "canonical metric"),
            ("channel", "string", "one node channel's series (default: every channel)"),
            _one_of("level", LEVELS),
            _SINCE,
            _UNTIL,
        ),
    ),
    Spec(
        "GET",
        "/zones/{uid}/alerts",
        list_alerts,
        "The zone's alerts",
        "read",
        query=_ALERT_QUERY,
    ),
    Spec(
        "GET",
        "/alerts",
        list_alerts,
        "Alerts of every zone",
        "read",
        query=(_ZONE, *_ALERT_QUERY),
    ),
    Spec(
        "GET",
        "/zones/{uid}/commands",
        list_commands,
        "The zone's commands",
        "read",
        query=_COMMAND_QUERY,
    ),
    Spec(
        "GET",
        "/commands",
        list_commands,
        "Commands",
        "read",
        query=(_ZONE, *_COMMAND_QUERY),
    ),
    Spec(
        "GET",
        "/commands/refusals",
        list_refusals,
        "Refused commands (400, 403, 404, 409, 422 to POST /commands): who asked, what, why refused",
        "read",
        query=(_ZONE, _SINCE, _LIMIT),
    ),
    Spec(
        "GET",
        "/commands/{cmd_id}",
        get_command,
        "One command with its status history and every response received (foreign ones marked)",
        "read",
        responses=(200, 404),
    ),
    Spec(
        "POST",
        "/commands",
        post_command,
        "Send a command: guard, record, sign, publish. A refusal (other than 401) is audited: see /commands/refusals",
        "operator",
        schemas.Body(schemas.CommandIn),
        responses=(202, 401, 403, 404, 409, 422, 503),
        on_refused=audit_refused_command,
    ),
    Spec(
        "GET",
        "/zones/{uid}/events",
        zone_events,
        "The zone's events",
        "read",
        query=(_SINCE, ("type", "string", "event type"), _LIMIT),
    ),
    Spec(
        "GET",
        "/zones/{uid}/decisions",
        zone_decisions,
        "The daemon's decision log of the zone, oldest first: what it decided, by which rule, on which values"
        " (without since: the newest `limit` rows)",
        "read",
        query=(
            _SINCE,
            _UNTIL,
            _one_of("kind", DECISION_KINDS),
            ("channel", "string", "one channel's decisions"),
            ("limit", "integer", "1 .. 10000 (default 500)"),
        ),
        responses=(200, 404, 422),
    ),
    Spec(
        "GET",
        "/zones/{uid}/water-usage",
        water_usage,
        "Pump runs and daily water totals (§15)",
        "read",
        query=(_SINCE, _UNTIL),
    ),
    Spec(
        "POST",
        "/zones/{uid}/safety/reset",
        safety_reset,
        "Resolve the zone's safety-lock alerts (§16.2)",
        "operator",
        schemas.Body(schemas.ResetIn),
        responses=(200, 401, 403, 404, 422, 503),
    ),
    Spec(
        "DELETE",
        "/tokens/{prefix}",
        revoke_token,
        "Revoke an API token by its prefix (the 12 hex digits after hr_): refused here at once, elsewhere"
        " as soon as PostgreSQL's NOTIFY arrives (at most the token cache's 10 s if that link is down)",
        "override",
        responses=(200, 401, 403, 404, 503),
    ),
    Spec(
        "POST",
        "/zones/{uid}/simulate",
        simulate,
        "Dry run of the zone through the engine and the twin (§4)",
        "read",
        schemas.Body(schemas.SimulateIn),
        responses=(200, 401, 403, 404, 422, 429, 503),
    ),
)


def _refuse_bad_text(request: Request) -> None:
    """A 422 for a path or query parameter holding text the database cannot store (NUL, a lone surrogate)."""
    for where, params in (("path", request.path_params.items()), ("query", request.query_params.multi_items())):
        for name, value in params:
            why = bad_text(value) if isinstance(value, str) else None
            if why:
                raise invalid([where, name], f"{where} parameter {name} {why}", why)


def _endpoint(svc: Service, spec: Spec):
    async def endpoint(request: Request) -> Response:
        token = None
        try:
            token = await svc.auth.require(request, spec.scope) if spec.scope else None
            _refuse_bad_text(request)
            body = await parse_body(request, spec.body) if spec.body else None
            return await spec.fn(svc, request, token, body)
        except ApiError as e:
            if spec.on_refused is not None:
                await spec.on_refused(svc, request, token, e)
            return e.response()
        except DatabaseUnavailable as e:
            log.warning("%s %s: database unavailable (%s)", spec.method, spec.path, e)
            return ApiError(
                503, "database_unavailable", "the database is unreachable; retry later", headers={"Retry-After": "2"}
            ).response()
        except asyncpg.DataError as e:  # a value the database refuses that no check above caught
            log.warning("%s %s: data the database refuses: %s", spec.method, spec.path, e)
            return ApiError(422, "unstorable_data", f"the database refuses a value of this request: {e}").response()
        except Exception:
            log.exception("%s %s failed", spec.method, spec.path)
            return ApiError(500, "internal_error", "the service failed to handle this request").response()

    endpoint.__name__ = spec.fn.__name__
    return endpoint


def routes(svc: Service) -> list[Route]:
    return [Route(s.path, _endpoint(svc, s), methods=[s.method]) for s in SPECS]
