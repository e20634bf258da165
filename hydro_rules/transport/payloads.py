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
from .. import pgtext
from . import signing, topics

CMD_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
RESPONSE_STATUSES = (M.ACK, M.DONE, M.ERROR, M.INVALID, M.BUSY, M.NO_EFFECT, M.TIMEOUT)
_MS_THRESHOLD = 1e11  # a seconds timestamp below this is before year 5138; above it, milliseconds
MAX_DEPTH = 32  # how deep a stored document may nest


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
    except RecursionError:
        raise Malformed("not JSON this parser can read: nested too deep") from None
    if not isinstance(data, dict):
        raise Malformed(f"expected a JSON object, got {type(data).__name__}")
    return data if keep_nan else _storable(data, payload)


def _storable(doc: dict, payload: bytes) -> dict:
    """A document as jsonb takes it: at most MAX_DEPTH levels deep, NUL and lone surrogates
    (which only a \\u escape can bring, or a UTF-16/32 payload) replaced by U+FFFD. Telemetry is
    left to the ingest core, which keeps a reading whatever its extra keys hold."""
    if payload.count(b"[") + payload.count(b"{") > MAX_DEPTH and pgtext.depth(doc) > MAX_DEPTH:
        raise Malformed(f"nested deeper than {MAX_DEPTH} levels")
    return pgtext.storable(doc, MAX_DEPTH + 1) if b"\\u" in payload or b"\x00" in payload else doc


def _number(data: dict, key: str, *, required: bool = True) -> float | None:
    v = data.get(key)
    if v is None:
        if required:
            raise Malformed(f"`{key}` is missing")
        return None
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise Malformed(f"`{key}` must be a number, got {v!r:.64}")
    return v


def _text(data: dict, key: str, *, required: bool = True) -> str | None:
    v = data.get(key)
    if v is None:
        if required:
            raise Malformed(f"`{key}` is missing")
        return None
    if not isinstance(v, str) or not v.strip():
        raise Malformed(f"`{key}` must be a non-empty string, got {v!r:.64}")
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
    extra: dict = field(default_factory=dict)  # every other key, `unit` and `stub` included, for the record
    unit: str | None = None
    stub: bool = False  # a simulated reading from a node without its sensor fitted


def telemetry(payload: bytes) -> Telemetry:
    """A reading. `value` must be a JSON number (a bool or a string is refused, not read as one);
    `unit` a string; `stub` a bool. NaN and infinities are kept for the ingest core to refuse."""
    data = _object(payload, keep_nan=True)
    metric = _text(data, "metric_type")
    value = data.get("value")
    if value is None:
        raise Malformed("`value` is missing")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Malformed(f"`value` must be a number, got {value!r:.64}")
    ts = _seconds(_number(data, "ts"))
    unit = data.get("unit")
    if unit is not None and (not isinstance(unit, str) or len(unit) > 32):
        raise Malformed(f"`unit` must be a string of at most 32 characters, got {unit!r:.64}")
    stub = data.get("stub", False)
    if not isinstance(stub, bool):
        raise Malformed(f"`stub` must be true or false, got {stub!r:.64}")
    extra = {k: v for k, v in data.items() if k not in ("metric_type", "value", "ts")}
    return Telemetry(metric, value, ts, extra, unit.strip() or None if unit is not None else None, stub)


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
    error_code = _said(data, details, "error_code")
    if error_code is not None and not isinstance(error_code, str):
        raise Malformed("`error_code` must be a string")
    return M.CommandResponse(cmd_id, status, ts, error_code, details or {})


def _said(data: dict, details: dict | None, *keys: str):
    """The first of `keys` a response carries, at its top level or (some builds) inside `details`."""
    for where in (data, details or {}):
        for key in keys:
            if where.get(key) is not None:
                return where[key]
    return None


def response_message(doc: dict) -> str | None:
    """A command_response's error text: `error_message` or `message`, top level or inside `details`."""
    details = doc.get("details")
    text = _said(doc, details if isinstance(details, dict) else None, "error_message", "message")
    return text if isinstance(text, str) and text.strip() else None


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


NODE_TYPES = ("ph", "ec", "climate", "irrig", "light", "relay", "water_sensor", "recirculation", "pump", "unknown")


def hello(payload: bytes) -> Hello:
    """A node's first contact. The hardware id is refused when it cannot be a topic segment and a broker login."""
    data = _object(payload)
    hw = _text(data, "hardware_id")
    problem = topics.hardware_id_problem(hw)
    if problem:
        raise Malformed(problem)
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


def node_config(
    *, node_uid: str, node_type: str | None, greenhouse: str, zone: str, channels: list[dict], secret: str
) -> bytes:
    """The NodeConfig (format version 3) that binds a node: where it lives, its channels, its command key.

    Wi-Fi and MQTT say `configured: true`: the node keeps the credentials it has.
    """
    doc = {
        "node_id": node_uid,
        "version": 3,
        "type": node_type or "unknown",
        "gh_uid": greenhouse,
        "zone_uid": zone,
        "channels": channels,
        "wifi": {"configured": True},
        "mqtt": {"configured": True},
        "node_secret": secret,
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def time_response(now: float) -> bytes:
    t = int(now)
    return json.dumps({"message_type": "time_response", "unix_ts": t, "server_time": t}).encode()
