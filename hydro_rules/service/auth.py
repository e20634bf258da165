"""Bearer tokens with scopes: 401 (with WWW-Authenticate) without a valid token, 403 without the scope.

Scopes: `ingest` (telemetry in), `read` (GETs, dry runs), `operator` (reads,
commands, safety resets, node registration), `override` (operator, plus
bypassing a guard, revoking tokens). A verified token is remembered for a few
seconds (`cache_s`) so a busy ingest does not look it up for every request.

Revocation: the instance that revokes forgets the token at once; every other
instance forgets it when PostgreSQL's NOTIFY reaches its listening connection
(milliseconds). While that connection is down, a cached token is trusted for at
most `cache_s` more; when it is back, the whole cache is dropped.
"""

from __future__ import annotations

import asyncio
import hashlib
import time

from starlette.requests import Request

from ..store import Database
from ..store import tokens as token_store
from ..store.tokens import TokenInfo
from .web import ApiError

REALM = 'Bearer realm="hydro-rules"'

#: which scopes satisfy a route's need
SATISFIES = {
    "ingest": {"ingest"},
    "read": {"read", "operator", "override"},
    "operator": {"operator", "override"},
    "override": {"override"},
}


class Authenticator:
    def __init__(self, db: Database, cache_s: float = 10.0) -> None:
        self.db = db
        self.cache_s = cache_s
        self._cache: dict[bytes, tuple[TokenInfo, float]] = {}
        self._forgotten = 0  # counts forgets: a lookup that raced one is not cached
        #: set while revocations made elsewhere are heard (the listening connection is up)
        self.listening = asyncio.Event()

    async def identify(self, request: Request) -> TokenInfo:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, "unauthorized", "a bearer token is required", headers={"WWW-Authenticate": REALM})
        token = token.strip()
        key = hashlib.sha256(token.encode()).digest()
        hit = self._cache.get(key)
        now = time.monotonic()
        if hit is not None and now - hit[1] < self.cache_s:
            return hit[0]
        forgotten = self._forgotten
        async with self.db.acquire() as conn:
            info = await token_store.verify(conn, token)
        if info is None:
            raise ApiError(
                401,
                "invalid_token",
                "the token is unknown, revoked or malformed",
                headers={"WWW-Authenticate": f'{REALM}, error="invalid_token"'},
            )
        if forgotten == self._forgotten:
            if len(self._cache) > 1000:
                self._cache.clear()
            self._cache[key] = (info, now)
        return info

    async def revoke(self, prefix: str) -> bool:
        """Revoke a token: refused here from now on, and elsewhere once the NOTIFY arrives."""
        async with self.db.acquire() as conn:
            revoked = await token_store.revoke(conn, prefix)
        self.forget(prefix)
        return revoked

    def forget(self, prefix: str) -> None:
        """Drop the cached token with this prefix (it was revoked)."""
        self._forgotten += 1
        for key in [k for k, (info, _) in self._cache.items() if info.prefix == prefix]:
            del self._cache[key]

    def _listening(self, up: bool) -> None:
        self._forgotten += 1
        if up:
            self._cache.clear()  # revocations made while nobody listened were not heard
            self.listening.set()
        else:
            self.listening.clear()

    async def follow_revocations(self, dsn: str) -> None:
        """Forget tokens revoked by other instances or the CLI as they are revoked; runs until cancelled."""
        await token_store.follow_revocations(dsn, self.forget, self._listening, check_every_s=self.cache_s / 2)

    async def require(self, request: Request, scope: str) -> TokenInfo:
        info = await self.identify(request)
        if not info.scopes & SATISFIES[scope]:
            raise ApiError(
                403,
                "insufficient_scope",
                f"this needs a token with scope `{scope}`",
                headers={"WWW-Authenticate": f'{REALM}, error="insufficient_scope", scope="{scope}"'},
                needed=scope,
                token_scopes=sorted(info.scopes),
            )
        return info
