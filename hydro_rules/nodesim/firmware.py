"""What a node's firmware checks on a command before it acts on it, in the firmware's order.

1. the payload is a JSON object with a `cmd_id`, a `cmd` and an object `params`
   (else `invalid_command_format`);
2. `ts` is a non-negative integral number and `sig` 64 lower-case hex characters
   (else `invalid_hmac_format`);
3. `|node time - ts| < max_skew_s` (else `timestamp_expired`);
4. the signature is HMAC-SHA256 of the canonical JSON of the command without `sig`,
   under the node's secret (else `invalid_signature`; a node without a secret
   refuses every command so).

A refused command is answered `ERROR` with that `error_code` (every command gets
an answer), under its `cmd_id`, or `unknown` when it has none usable.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from ..transport import signing
from ..transport.payloads import CMD_ID

_SIG = re.compile(r"^[0-9a-f]{64}$")

INVALID_COMMAND_FORMAT = "invalid_command_format"
INVALID_HMAC_FORMAT = "invalid_hmac_format"
TIMESTAMP_EXPIRED = "timestamp_expired"
INVALID_SIGNATURE = "invalid_signature"
REFUSALS = (INVALID_COMMAND_FORMAT, INVALID_HMAC_FORMAT, TIMESTAMP_EXPIRED, INVALID_SIGNATURE)


@dataclass(frozen=True, slots=True)
class Checked:
    cmd_id: str  # "unknown" when the command carries none a response could name
    command: dict | None = None  # the command, when it passed every check
    refusal: str | None = None  # one of REFUSALS
    message: str | None = None
    details: dict | None = None


def check_command(payload: bytes, secret: str | None, node_now: float, max_skew_s: float | None) -> Checked:
    """Accept the command or say why the firmware refuses it."""
    try:
        doc = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return Checked("unknown", refusal=INVALID_COMMAND_FORMAT, message="Command payload must be JSON object")
    if not isinstance(doc, dict):
        return Checked("unknown", refusal=INVALID_COMMAND_FORMAT, message="Command payload must be JSON object")
    raw_id = doc.get("cmd_id")
    cmd_id = raw_id if isinstance(raw_id, str) and CMD_ID.match(raw_id) else "unknown"

    def refuse(code: str, message: str, details: dict | None = None) -> Checked:
        return Checked(cmd_id, refusal=code, message=message, details=details)

    if not isinstance(raw_id, str) or not raw_id:
        return refuse(INVALID_COMMAND_FORMAT, "Missing or invalid cmd_id")
    if not isinstance(doc.get("cmd"), str) or not doc["cmd"]:
        return refuse(INVALID_COMMAND_FORMAT, "Missing or invalid cmd")
    if not isinstance(doc.get("params"), dict):
        return refuse(INVALID_COMMAND_FORMAT, "Missing or invalid params")
    ts = doc.get("ts")
    if isinstance(ts, bool) or not isinstance(ts, int | float):
        return refuse(INVALID_HMAC_FORMAT, "Missing or invalid ts")
    if ts < 0 or ts != ts or (isinstance(ts, float) and not ts.is_integer()):
        return refuse(INVALID_HMAC_FORMAT, "ts must be non-negative integer")
    sig = doc.get("sig")
    if not isinstance(sig, str):
        return refuse(INVALID_HMAC_FORMAT, "Missing or invalid sig")
    if not _SIG.match(sig):
        return refuse(INVALID_HMAC_FORMAT, "sig must be 64-char hex string")
    if max_skew_s is not None and abs(node_now - ts) >= max_skew_s:
        return refuse(
            TIMESTAMP_EXPIRED,
            f"command ts {int(ts)} is {node_now - ts:+.0f} s from node time",
            {"ts": int(ts), "node_time": int(node_now)},
        )
    try:
        good = secret is not None and signing.verify(secret, doc)
    except ValueError:  # NaN and the like cannot be canonical: nothing signed them
        good = False
    if not good:
        return refuse(INVALID_SIGNATURE, "Command HMAC signature verification failed")
    return Checked(cmd_id, command=doc)
