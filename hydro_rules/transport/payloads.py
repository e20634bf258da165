"""Payloads of the node protocol: parse what nodes send (liberally), build what we send (strictly).

Parsers raise `Malformed` with a reason; they accept what real nodes do
beyond the letter of the protocol (a float `ts`, extra keys, lower-case
status words) and keep unknown keys for the record.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field

from .. import messages as M
from . import signing

CMD_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
RESPONSE_STATUSES = (M.ACK, M.DONE, M.ERROR, M.INVALID, M.BUSY, M.NO_EFFECT, M.TIMEOUT)
_MS_THRESHOLD = 1e11  # a seconds timestamp below this is before year 5138; above it, milliseconds


class Malformed(ValueError):
    """A payload that does not follow the protocol."""


def _no_constant(name: str):
    return None  # NaN, Infinity: not JSON; a document keeps them as null


def _object(payload: bytes, *, keep_nan: bool = False) -> dict:
    """The payload as a JSON object. NaN and infinities become null unless `keep_nan`
    (telemetry keeps them, so that the value is refused as invalid with a reason)."""
    try:
        data = json.loads(payload) if keep_nan else json.loads(payload, parse_constant=_no_constant)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise Malformed(f"not JSON: {e}") from e
    if not isinstance(data, dict):
        raise Malformed(f"expected a JSON object, got {type(data).__name__}")
    return data


def _number(data: dict, key: str, *, required: bool = True) -> float | None:
    v = data.get(key)
    if v is None:
        if required:
            raise Malformed(f"`{key}` is missing")
        return None
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise Malformed(f"`{key}` must be a number, got {v!r}")
    return v


def _text(data: dict, key: str, *, required: bool = True) -> str | None:
    v = data.get(key)
    if v is None:
        if required:
            raise Malformed(f"`{key}` is missing")
        return None
    if not isinstance(v, str) or not v.strip():
        raise Malformed(f"`{key}` must be a non-empty string, got {v!r}")
    return v.strip()


def _seconds(v: float) -> float:
    """A node time in seconds; a value that can only be milliseconds is converted."""
    if not math.isfinite(v):
        raise Malformed(f"`ts` {v} is not a time")
    return v / 1000.0 if abs(v) >= _MS_THRESHOLD else float(v)


@dataclass(frozen=True, slots=True)
class Telemetry:
    metric_type: str
    value: float
    ts: float  # epoch seconds
    extra: dict = field(default_factory=dict)


def telemetry(payload: bytes) -> Telemetry:
    data = _object(payload, keep_nan=True)
    metric = _text(data, "metric_type")
    value = data.get("value")
    if value is None:
        raise Malformed("`value` is missing")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Malformed(f"`value` must be a number, got {value!r}")
    ts = _seconds(_number(data, "ts"))
    extra = {k: v for k, v in data.items() if k not in ("metric_type", "value", "ts")}
    return Telemetry(metric, value, ts, extra)


def command_response(payload: bytes) -> M.CommandResponse:
    data = _object(payload)
    cmd_id = _text(data, "cmd_id")
    if not CMD_ID.match(cmd_id):
        raise Malformed(f"`cmd_id` {cmd_id!r} is not a command id")
    status = _text(data, "status").upper()
    if status not in RESPONSE_STATUSES:
        raise Malformed(f"`status` {status!r} is not one of {', '.join(RESPONSE_STATUSES)}")
    ts = _seconds(_number(data, "ts"))  # the protocol says ms; a node sending s is read as s
    details = data.get("details")
    if details is not None and not isinstance(details, dict):
        raise Malformed("`details` must be an object")
    error_code = data.get("error_code")
    if error_code is not None and not isinstance(error_code, str):
        raise Malformed("`error_code` must be a string")
    return M.CommandResponse(cmd_id, status, ts, error_code, details or {})


@dataclass(frozen=True, slots=True)
class Heartbeat:
    uptime: int | None
    free_heap: int | None
    rssi: int | None
    fw_version: str | None


def heartbeat(payload: bytes) -> Heartbeat:
    data = _object(payload)
    nums = {k: _number(data, k, required=False) for k in ("uptime", "free_heap", "rssi")}
    if nums["uptime"] is None and nums["free_heap"] is None and nums["rssi"] is None:
        raise Malformed("a heartbeat needs at least `uptime`")
    if nums["uptime"] is not None and nums["uptime"] < 0:
        raise Malformed("`uptime` cannot be negative")
    fw = data.get("fw_version")
    return Heartbeat(
        *(int(v) if v is not None else None for v in (nums["uptime"], nums["free_heap"], nums["rssi"])),
        fw if isinstance(fw, str) else None,
    )


@dataclass(frozen=True, slots=True)
class Status:
    online: bool
    ts: float | None


def status(payload: bytes) -> Status:
    data = _object(payload)
    word = _text(data, "status").upper()
    if word not in ("ONLINE", "OFFLINE"):
        raise Malformed(f"`status` {word!r} is not ONLINE or OFFLINE")
    ts = _number(data, "ts", required=False)
    return Status(word == "ONLINE", _seconds(ts) if ts is not None else None)


def lwt(payload: bytes) -> Status:
    """The last will: the plain string `offline` (a JSON status object is accepted too)."""
    try:
        text = payload.decode().strip()
    except UnicodeDecodeError as e:
        raise Malformed("not UTF-8 text") from e
    if text.strip('"').lower() == "offline":
        return Status(False, None)
    if text.startswith("{"):
        return status(payload)
    raise Malformed(f"expected `offline`, got {text[:40]!r}")


@dataclass(frozen=True, slots=True)
class Hello:
    hardware_id: str
    node_type: str | None
    fw_version: str | None
    hardware_revision: str | None
    capabilities: list | None


NODE_TYPES = ("ph", "ec", "climate", "irrig", "light", "relay", "water_sensor", "recirculation", "unknown")


def hello(payload: bytes) -> Hello:
    data = _object(payload)
    hw = _text(data, "hardware_id")
    caps = data.get("capabilities")
    if caps is not None and not (isinstance(caps, list) and all(isinstance(c, str) for c in caps)):
        raise Malformed("`capabilities` must be a list of strings")
    node_type = data.get("node_type")
    if node_type is not None and node_type not in NODE_TYPES:
        node_type = "unknown"
    return Hello(
        hw,
        node_type,
        _text(data, "fw_version", required=False),
        _text(data, "hardware_revision", required=False),
        caps,
    )


@dataclass(frozen=True, slots=True)
class NodeError:
    level: str
    component: str | None
    error_code: str | None
    message: str | None
    ts: float | None
    extra: dict


def node_error(payload: bytes) -> NodeError:
    data = _object(payload)
    level = (_text(data, "level", required=False) or "ERROR").upper()
    ts = _number(data, "ts", required=False)
    return NodeError(
        level,
        _text(data, "component", required=False),
        _text(data, "error_code", required=False),
        data.get("message") if isinstance(data.get("message"), str) else None,
        _seconds(ts) if ts is not None else None,
        {k: v for k, v in data.items() if k not in ("level", "component", "error_code", "message", "ts")},
    )


def document(payload: bytes) -> dict:
    """A free-form JSON object (event, config_report, diagnostics)."""
    return _object(payload)


# ---- what we send ---------------------------------------------------------------------
def command(secret: str, cmd_id: str, cmd: str, params: dict, ts: int) -> bytes:
    """A signed command, serialised canonically."""
    if not CMD_ID.match(cmd_id):
        raise ValueError(f"cmd_id {cmd_id!r} does not match {CMD_ID.pattern}")
    body = signing.signed(secret, {"cmd": cmd, "cmd_id": cmd_id, "params": params, "ts": int(ts)})
    return signing.canonical_json(body)


def time_response(now: float) -> bytes:
    t = int(now)
    return json.dumps({"message_type": "time_response", "unix_ts": t, "server_time": t}).encode()
