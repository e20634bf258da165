"""Command signing: canonical JSON and HMAC-SHA256, exactly as nodes check it.

canonical_json: keys sorted, `,` and `:` separators, arrays in order, integral
numbers as integers (2.0 -> 2), UTF-8, `/` not escaped.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import re

_SIG = re.compile(r"^[0-9a-f]{64}$")


def _integral(value):
    if isinstance(value, bool):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("NaN and infinities cannot be signed")
        return int(value) if value.is_integer() else value
    if isinstance(value, dict):
        return {str(k): _integral(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_integral(v) for v in value]
    return value


def canonical_json(value: dict) -> bytes:
    return json.dumps(_integral(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sign(secret: str, command: dict) -> str:
    """hex(HMAC_SHA256(secret, canonical_json(command without "sig")))."""
    body = {k: v for k, v in command.items() if k != "sig"}
    return hmac.new(secret.encode(), canonical_json(body), hashlib.sha256).hexdigest()


def signed(secret: str, command: dict) -> dict:
    """The command with its `sig`."""
    return {**{k: v for k, v in command.items() if k != "sig"}, "sig": sign(secret, command)}


def verify(secret: str, command: dict) -> bool:
    sig = command.get("sig")
    return isinstance(sig, str) and bool(_SIG.match(sig)) and hmac.compare_digest(sig, sign(secret, command))
