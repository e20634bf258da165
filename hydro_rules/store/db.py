"""The connection pool, and one error for "the database cannot be reached now".

Callers above the store see `DatabaseUnavailable` for every kind of lost or
refused connection, so the HTTP door can answer 503 and the MQTT door can hold
its acknowledgements and retry.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

import asyncpg

T = TypeVar("T")


class DatabaseUnavailable(Exception):
    """The database is down, restarting or unreachable; the same request may succeed later."""


async def until_available(step: Callable[[], Awaitable[T]], *, max_delay_s: float, on_wait: Callable) -> T:
    """`await step()` until the database takes it, backing off from 0.1 s up to `max_delay_s`.

    `on_wait(error)` is called before each wait (to log, or to say that work is held).
    """
    delay = 0.1
    while True:
        try:
            return await step()
        except DatabaseUnavailable as e:
            on_wait(e)
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_delay_s)


CONNECTION_ERRORS = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,  # class 08
    asyncpg.exceptions.OperatorInterventionError,  # class 57: shutdown, cannot connect now
    asyncpg.InterfaceError,  # connection closed under us
    asyncpg.exceptions.TooManyConnectionsError,
)


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("json", encoder=_dumps, decoder=json.loads, schema="pg_catalog")
    # binary, so that COPY (always binary in asyncpg) can carry jsonb too
    await conn.set_type_codec(
        "jsonb", encoder=_jsonb_encode, decoder=_jsonb_decode, schema="pg_catalog", format="binary"
    )


def without_nan(value):
    """`value` with every NaN and infinity (numbers JSON lacks) replaced by None, at any depth."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: without_nan(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [without_nan(v) for v in value]
    return value


def _dumps(value) -> str:
    """JSON for json/jsonb columns. NaN or an infinity raises ValueError: pass documents that
    may hold them (what a node sent) through `without_nan` first."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _jsonb_encode(value) -> bytes:
    return b"\x01" + _dumps(value).encode()


def _jsonb_decode(data: bytes):
    return json.loads(data[1:])


class Database:
    """An asyncpg pool whose connection failures surface as `DatabaseUnavailable`.

    The pool starts empty (min_size 0), so a service can start while the
    database is down and connect once it is back.
    """

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    @classmethod
    async def connect(
        cls, dsn: str, *, min_size: int = 0, max_size: int = 10, connect_timeout: float = 5.0
    ) -> Database:
        pool = asyncpg.create_pool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            init=_init_connection,
            timeout=connect_timeout,
            command_timeout=60,
            max_inactive_connection_lifetime=300,
        )
        try:
            await pool
        except CONNECTION_ERRORS as e:
            raise DatabaseUnavailable(str(e)) from e
        return cls(pool)

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[asyncpg.Connection]:
        try:
            async with self.pool.acquire(timeout=10) as conn:
                yield conn
        except CONNECTION_ERRORS as e:
            raise DatabaseUnavailable(f"{type(e).__name__}: {e}") from e

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[asyncpg.Connection]:
        async with self.acquire() as conn, conn.transaction():
            yield conn

    async def ping(self) -> bool:
        try:
            async with self.acquire() as conn:
                await conn.fetchval("SELECT 1")
            return True
        except DatabaseUnavailable:
            return False

    async def close(self) -> None:
        try:
            await asyncio.wait_for(self.pool.close(), 5)
        except (TimeoutError, *CONNECTION_ERRORS):
            self.pool.terminate()


async def connect_once(dsn: str, timeout: float = 5.0) -> asyncpg.Connection:
    """One plain connection (CLI commands, migrations), with the store's JSON codecs."""
    try:
        conn = await asyncpg.connect(dsn, timeout=timeout)
    except CONNECTION_ERRORS as e:
        raise DatabaseUnavailable(f"cannot connect to the database: {e}") from e
    await _init_connection(conn)
    return conn
