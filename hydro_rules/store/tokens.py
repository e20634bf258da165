"""API bearer tokens: stored as SHA-256 hashes, found by a public prefix, compared in constant time.

A token reads `hr_<prefix>_<secret>`; only its hash is kept, so a token is shown
once, when created.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

import asyncpg

SCOPES = ("ingest", "read", "operator", "override")
_TOKEN = re.compile(r"^hr_([0-9a-f]{12})_([A-Za-z0-9_-]{20,100})$")


@dataclass(frozen=True, slots=True)
class TokenInfo:
    id: int
    name: str
    prefix: str
    scopes: frozenset[str]


def _hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


async def create(conn: asyncpg.Connection, name: str, scopes: list[str]) -> tuple[str, TokenInfo]:
    """A new token (returned in clear once) with the given scopes."""
    bad = sorted(set(scopes) - set(SCOPES))
    if bad or not scopes:
        raise ValueError(f"unknown scope(s) {bad}; choose from {', '.join(SCOPES)}" if bad else "no scope given")
    prefix = secrets.token_hex(6)
    token = f"hr_{prefix}_{secrets.token_urlsafe(32)}"
    tid = await conn.fetchval(
        "INSERT INTO api_tokens (name, prefix, token_hash, scopes) VALUES ($1, $2, $3, $4) RETURNING id",
        name,
        prefix,
        _hash(token),
        sorted(set(scopes)),
    )
    return token, TokenInfo(tid, name, prefix, frozenset(scopes))


async def verify(conn: asyncpg.Connection, token: str) -> TokenInfo | None:
    """The token's identity and scopes, or None when it is malformed, unknown, revoked or wrong."""
    m = _TOKEN.match(token)
    if not m:
        return None
    row = await conn.fetchrow(
        "SELECT id, name, prefix, token_hash, scopes FROM api_tokens WHERE prefix = $1 AND revoked_at IS NULL",
        m.group(1),
    )
    if row is None or not hmac.compare_digest(bytes(row["token_hash"]), _hash(token)):
        return None
    await conn.execute("UPDATE api_tokens SET last_used_at = now() WHERE id = $1", row["id"])
    return TokenInfo(row["id"], row["name"], row["prefix"], frozenset(row["scopes"]))


async def revoke(conn: asyncpg.Connection, prefix: str) -> bool:
    status = await conn.execute(
        "UPDATE api_tokens SET revoked_at = now() WHERE prefix = $1 AND revoked_at IS NULL", prefix
    )
    return status.endswith(" 1")


async def list_tokens(conn: asyncpg.Connection) -> list[dict]:
    rows = await conn.fetch(
        "SELECT name, prefix, scopes, created_at, last_used_at, revoked_at FROM api_tokens ORDER BY created_at"
    )
    return [dict(r) for r in rows]
