"""A node's check of a command's signature, written from the protocol alone (not transport.signing).

node-mqtt-protocol.md: `sig = hex(HMAC_SHA256(node_secret, canonical_json(command without "sig")))`;
canonical_json: keys sorted, no whitespace (`,` and `:`), arrays in order, integral numbers printed
as integers, UTF-8, `/` not escaped. The fake nodes of the command tests check with this, so a change
of the service's signing fails them end to end; test_node_signature.py holds it to the protocol's
vectors (tests/transport/hmac-vectors.json, a copy of the shared protocol's file).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re


def _canonical(value) -> str:
    if isinstance(value, dict):
        return "{" + ",".join(f"{_canonical(str(k))}:{_canonical(value[k])}" for k in sorted(value)) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_canonical(v) for v in value) + "]"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # quotes and escapes, `/` left alone
    return repr(value)


def node_verify(secret: str, command: dict) -> bool:
    """What a node does with a command: recompute the HMAC over the canonical body, compare."""
    sig = command.get("sig")
    if not isinstance(sig, str) or not re.fullmatch(r"[0-9a-f]{64}", sig):
        return False
    body = _canonical({k: v for k, v in command.items() if k != "sig"}).encode("utf-8")
    return hmac.compare_digest(sig, hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest())
