"""API bearer tokens: stored as SHA-256 hashes, found by a public prefix, compared in constant time.

A token reads `hr_<prefix>_<secret>`; only its hash is kept, so a token is shown
once, when created. A revocation is announced on the PostgreSQL channel
`hydro_tokens` (payload: the prefix) when its transaction commits, so that every
service forgets the token at once instead of trusting its cache.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg

from .db import CONNECTION_ERRORS, DatabaseUnavailable, connect_once

log = logging.getLogger(__name__)

SCOPES = ("ingest", "read", "operator", "override")
#: the NOTIFY channel of revocations
REVOKED = "hydro_tokens"
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
    """Revoke the active token with this prefix (False: none); listeners hear it when the transaction commits."""
    async with conn.transaction():
        status = await conn.execute(
            "UPDATE api_tokens SET revoked_at = now() WHERE prefix = $1 AND revoked_at IS NULL", prefix
        )
        revoked = status.endswith(" 1")
        if revoked:
            await conn.execute("SELECT pg_notify($1, $2)", REVOKED, prefix)
    return revoked


async def follow_revocations(
    dsn: str,
    on_revoked: Callable[[str], None],
    on_listening: Callable[[bool], None],
    *,
    check_every_s: float = 5.0,
) -> None:
    """Call `on_revoked(prefix)` for every revocation committed anywhere, until cancelled.

    One dedicated connection LISTENs. `on_listening(True)` is called each time listening (re)starts
    (revocations made in between were not heard: forget what you cached), `on_listening(False)` when
    the connection is lost; it is then opened again. A connection that dies silently is found by a
    query every `check_every_s`.
    """
    delay = 0.5
    while True:
        try:
            await _listen_once(dsn, on_revoked, on_listening, check_every_s)
            delay = 0.5
        except (DatabaseUnavailable, *CONNECTION_ERRORS) as e:
            log.warning("not listening for token revocations (%s); retrying", e)
        await asyncio.sleep(delay)
        delay = min(delay * 2, 10.0)


async def _listen_once(dsn: str, on_revoked, on_listening, check_every_s: float) -> None:
    """Listen on one connection until it is lost."""
    conn = await connect_once(dsn)
    lost = asyncio.Event()
    try:
        conn.add_termination_listener(lambda _conn: lost.set())
        await conn.add_listener(REVOKED, lambda _conn, _pid, _channel, prefix: on_revoked(prefix))
        on_listening(True)
        while not lost.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(lost.wait(), check_every_s)
            if not lost.is_set():
                await asyncio.wait_for(conn.fetchval("SELECT 1"), check_every_s)
    finally:
        on_listening(False)
        conn.terminate()


async def list_tokens(conn: asyncpg.Connection) -> list[dict]:
    rows = await conn.fetch(
        "SELECT name, prefix, scopes, created_at, last_used_at, revoked_at FROM api_tokens ORDER BY created_at"
    )
    return [dict(r) for r in rows]
