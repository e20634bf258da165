"""Which zones this daemon controls: PostgreSQL advisory locks, one owner per zone, ever.

A zone belongs to the database session that holds its advisory lock
(store/daemons.py). This module holds one dedicated connection for those
locks. Each `refresh`:

- checks the connection; a lost one is replaced and every zone owned is taken
  again on the new session before `refresh` returns: a zone another daemon took
  meanwhile is lost at once. While the database cannot be reached at all,
  nobody can take a zone: the owner keeps what it has (it goes on controlling
  from memory) and re-takes it as soon as the database answers again;
- takes free zones up to its fair share: ceil(zones / live daemons), where the
  live daemons are those that beat recently (`daemons.alive`, this one always
  counted), or `max_zones` when that is set;
- takes any zone seen free at 2 refreshes in a row whatever its share (a dead
  daemon's zones, when the live ones have their share already), up to
  `max_zones`.

It never gives a zone away by itself (a handover would fail a water change,
§13); `set_zones` after a reload lets go of zones that no longer exist.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

import asyncpg

from ..store import daemons as daemon_store
from ..store.db import CONNECTION_ERRORS, DatabaseUnavailable, connect_once

log = logging.getLogger(__name__)

#: a zone seen free at this many refreshes in a row is taken whatever the share
FREE_REFRESHES = 2
#: a daemon that beat within this long counts as live for the fair share
ALIVE_WITHIN_S = 10.0

_LOST = (*CONNECTION_ERRORS, DatabaseUnavailable, asyncpg.PostgresError)


class Ownership:
    def __init__(
        self,
        dsn: str,
        daemon_id: str,
        zone_uids: Iterable[str],
        *,
        clock: Callable[[], float] = time.time,
        max_zones: int | None = None,
        alive_within_s: float = ALIVE_WITHIN_S,
        connect_timeout_s: float = 5.0,
        reconnect_wait_s: float = 0.5,
        query_timeout_s: float = 5.0,
    ) -> None:
        self.dsn = dsn
        self.daemon_id = daemon_id
        self.zone_uids = list(dict.fromkeys(zone_uids))
        self.clock = clock
        self.max_zones = max_zones
        self.alive_within_s = alive_within_s
        self.connect_timeout_s = connect_timeout_s
        self.reconnect_wait_s = reconnect_wait_s
        self.query_timeout_s = query_timeout_s
        self.owned: set[str] = set()
        self.connected = False
        self.live_daemons = 1  # as of the last refresh
        self._conn: asyncpg.Connection | None = None
        self._session: tuple | None = None  # (pid, backend start) of the last session we had
        self._connecting: asyncio.Future | None = None
        self._said_down = False
        self._free: dict[str, int] = {}  # zone -> refreshes in a row it was seen free
        self._dropped: set[str] = set()  # let go by set_zones: reported as lost by the next refresh
        self._unlock: set[str] = set()  # let go by set_zones, their locks not released yet
        self._lock = asyncio.Lock()  # one operation at a time on the connection (a tick's confirm, a refresh)

    # ---- the share --------------------------------------------------------------------------
    def share(self, live_daemons: int | None = None) -> int:
        """How many zones this daemon takes without waiting: max_zones, or its fair share."""
        n = max(1, live_daemons or self.live_daemons)
        fair = math.ceil(len(self.zone_uids) / n)
        return fair if self.max_zones is None else min(fair, self.max_zones)

    # ---- the connection ------------------------------------------------------------------------
    async def _open(self) -> tuple[asyncpg.Connection, tuple]:
        conn = await connect_once(self.dsn, timeout=self.connect_timeout_s)
        try:
            return conn, await asyncio.wait_for(daemon_store.session(conn), self.query_timeout_s)
        except BaseException:
            conn.terminate()
            raise

    async def _connect(self) -> bool:
        """A new session; False when the database cannot be reached (yet).

        The attempt goes on in the background: a call waits for it `reconnect_wait_s` at most
        (the first connect `connect_timeout_s`), so that a database that does not answer at all
        never holds the daemon's tick for long.
        """
        if self._connecting is None:
            self._connecting = asyncio.ensure_future(self._open())
        wait = self.reconnect_wait_s if self._session is not None else self.connect_timeout_s
        done, _ = await asyncio.wait({self._connecting}, timeout=wait)
        if not done:
            self.connected = False
            return False
        task, self._connecting = self._connecting, None
        if task.exception() is not None:
            if self.connected or not self._said_down:
                log.warning(
                    "zone locks: database unreachable (%s); keeping %d zones from memory",
                    task.exception(),
                    len(self.owned),
                )
                self._said_down = True
            self.connected = False
            return False
        old = self._session
        self._conn, self._session = task.result()
        self.connected, self._said_down = True, False
        if old is not None:
            try:  # our previous session may live on in the server (a half-open link) with our locks
                ending = daemon_store.end_session(self._conn, *old, wait_s=self.query_timeout_s / 2)
                if await asyncio.wait_for(ending, self.query_timeout_s):
                    log.warning("zone locks: ended our previous session (pid %s), still held by the server", old[0])
            except (*_LOST, TimeoutError) as e:
                log.warning("zone locks: could not end our previous session (pid %s): %s", old[0], e)
        return True

    def _drop_connection(self) -> None:
        if self._conn is not None:
            self._conn.terminate()
        self._conn = None
        self.connected = False
        self._unlock = set()  # locks go with the session

    async def _session_alive(self) -> bool:
        if self._conn is None or self._conn.is_closed():
            return False
        try:
            await self._conn.fetchval("SELECT 1", timeout=self.query_timeout_s)
            return True
        except Exception as e:  # whatever went wrong, this session is not to be trusted with locks
            log.warning("zone locks: session lost (%s: %s)", type(e).__name__, e)
            return False

    async def confirm(self) -> set[str]:
        """Make sure the zones owned are held by this daemon's live session; the zones lost.

        A cheap check (one round trip) for before commands: when the session is gone, a new one
        takes the zones again, and those another daemon took meanwhile are lost. When the
        database cannot be reached, nothing is lost (nobody can take a zone then).
        """
        async with self._lock:
            return await self._confirm()

    async def _confirm(self) -> set[str]:
        if await self._session_alive():
            return set()
        self._drop_connection()
        if not await self._connect():
            return set()
        lost: set[str] = set()

        async def retake():
            for uid in sorted(self.owned):
                if not await daemon_store.try_lock_zone(self._conn, uid):
                    lost.add(uid)

        try:
            await asyncio.wait_for(retake(), self.query_timeout_s)
        except (*_LOST, TimeoutError) as e:
            log.warning("zone locks: connection lost again while re-taking zones (%s)", e)
            self._drop_connection()
            return set()  # no session: the next confirm or refresh tries again
        self.owned -= lost
        if lost:
            log.warning("zones %s were taken by another daemon while our session was gone", ", ".join(sorted(lost)))
        else:
            log.info("zone locks: new session, %d zones taken again", len(self.owned))
        return lost

    # ---- refresh ------------------------------------------------------------------------------
    async def refresh(self) -> tuple[set[str], set[str]]:
        """(gained, lost) zones since the last refresh."""
        async with self._lock:
            return await self._refresh()

    async def _refresh(self) -> tuple[set[str], set[str]]:
        lost = await self._confirm() | self._dropped
        self._dropped = set()
        gained: set[str] = set()
        if not self.connected:
            return gained, lost

        async def look_and_take():
            for uid in sorted(self._unlock):  # zones a reload removed: let them go on this session
                await daemon_store.unlock_zone(self._conn, uid)
            self._unlock = set()
            now = datetime.fromtimestamp(self.clock(), UTC)
            live = await daemon_store.alive(self._conn, now, self.alive_within_s)
            self.live_daemons = len({d["daemon_id"] for d in live} | {self.daemon_id})
            locked = await daemon_store.locked_zones(self._conn, self.zone_uids)
            free = [uid for uid in self.zone_uids if uid not in locked and uid not in self.owned]
            self._free = {uid: self._free.get(uid, 0) + 1 for uid in free}
            cap = math.inf if self.max_zones is None else self.max_zones
            # first the zones free longest (a dead daemon's), then the rest, in a stable order
            for uid in sorted(free, key=lambda u: (-self._free[u], u)):
                if len(self.owned) >= cap:
                    break
                if len(self.owned) >= self.share() and self._free[uid] < FREE_REFRESHES:
                    continue
                if await daemon_store.try_lock_zone(self._conn, uid):
                    self.owned.add(uid)
                    gained.add(uid)
                    self._free.pop(uid, None)

        try:
            await asyncio.wait_for(look_and_take(), self.query_timeout_s)
        except (*_LOST, TimeoutError) as e:
            log.warning("zone locks: connection lost during refresh (%s)", e or type(e).__name__)
            self._drop_connection()
            # the zones gained on that session went with it; the others are re-taken now
            self.owned -= gained
            gained = set()
            lost |= await self._confirm()
        return gained, lost - gained

    def set_zones(self, zone_uids: Iterable[str]) -> None:
        """The site's zones changed (a reload): zones gone are let go at the next refresh (reported lost)."""
        self.zone_uids = list(dict.fromkeys(zone_uids))
        gone = self.owned - set(self.zone_uids)
        self.owned -= gone
        self._dropped |= gone
        self._unlock |= gone

    async def close(self) -> None:
        """Let every zone go (closing the session releases its locks)."""
        async with self._lock:
            await self._close()

    async def _close(self) -> None:
        self.owned = set()
        if self._connecting is not None:
            self._connecting.cancel()
            done = await asyncio.gather(self._connecting, return_exceptions=True)
            if isinstance(done[0], tuple):
                done[0][0].terminate()
            self._connecting = None
        if self._conn is not None:
            try:
                await self._conn.close(timeout=5)
            except (*_LOST, TimeoutError):
                self._conn.terminate()
        self._conn = None
        self.connected = False
