"""The dead-man of the NC recirculation pump, in the service: the fallback when no site daemon runs.

Today's relay firmware does not bound an OFF (it ignores `duration_ms` on
`set_relay {state:false}`) and boots with every relay OPEN, which holds an NC
pump OFF. A site daemon that dies with the recirculation pump off would leave it
off for good. So the service, a process other than the daemon, watches the
daemons' heartbeats (`daemons` table) and, while none has beaten within
`daemon_dead_after_s` (and one ever did):

- raises `infra_service_down_daemon` once (resolved when a daemon beats again);
- for each NC pump the daemon's record (`zones.engine_state`, with the commands
  sent after it was saved: the newest evidence wins) believes OFF, counts from the
  pump's OFF-since, not from the heartbeat loss: at `deadline - deadman_margin_s`
  (the deadline is OFF-since + `max_recirc_off`, `engine.api.nc_off_deadlines`) it
  switches the pump ON through `CommandService.submit`, the guarded path, unless an
  active alert that locks holds the pump; a zone event DEADMAN_ON says why;
- when a node comes back (heartbeat uptime went down, ONLINE after its will: the
  MQTT door tells), re-asserts ON each of its NC pumps that the daemon's record
  wants on (relays boot OPEN).

It stands down at once when a daemon beats again: no further commands. The
service itself never sends an OFF, so nodes announcing a bounded OFF need nothing
more from it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ..engine import api as engine_api
from ..lang.model import RuleSet
from ..store import Database, DatabaseUnavailable
from ..store import alerts as alert_store
from ..store import commands as command_store
from ..store import daemons as daemon_store
from ..store import decisions as decision_store
from ..store import events as event_store
from ..store import zones as zone_store
from .commands import CommandRefused, CommandRequest, CommandService
from .config import Settings
from .logs import Throttled

log = logging.getLogger(__name__)

#: who the dead-man's commands are requested by
DEADMAN = "deadman"
#: the infra alert while no daemon beats (one per site, no zone)
DOWN_ALERT = "infra_service_down_daemon"
#: the zone event of each ON the dead-man sent
EVENT = "DEADMAN_ON"
#: a refused or unsent ON is asked again after this long at the soonest
RETRY_AFTER_S = 30.0
#: deadlines are compared with this tolerance (times pass through JSON and timestamptz)
EPS = 1e-6
#: what the dead-man sends, as the decision log words a command
ON = "set_relay state=true"


def _at(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def _iso(ts: float) -> str:
    return _at(ts).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass(slots=True)
class _Back:
    """A node that came back (rebooted), its NC pumps waiting for their re-assertion."""

    why: str
    at: float
    open: bool = True  # a pump it wants on is not switched on yet (or it is not looked at yet)
    done: set = field(default_factory=set)  # (zone, channel) switched on since


class DeadMan:
    """The NC-pump dead-man. `await sweep()` is one pass; `run()` sweeps every `deadman_every_s`."""

    def __init__(
        self,
        db: Database,
        ruleset: RuleSet,
        commands: CommandService,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.rs = ruleset
        self.commands = commands
        self.dead_after_s = settings.daemon_dead_after_s
        self.margin_s = settings.deadman_margin_s
        self.every_s = settings.deadman_every_s
        self.clock = clock
        self.daemon_down: bool | None = None  # None: not known yet (first pass)
        self.sweeps = 0  # passes done: tests wait on it
        self.sent: list[str] = []  # cmd_ids of the ONs sent, oldest first
        self._retry_at: dict[tuple[str, str], float] = {}  # (zone, channel) -> not before
        self._back: dict[str, _Back] = {}  # node uid -> its comeback
        self._wake = asyncio.Event()
        self._said = Throttled(log)
        #: zone -> its NC pump channels (fail_safe NC), from the rule set
        self._nc = {
            z.uid: sorted(
                name
                for name in z.channels
                if (ch := ruleset.channels.get(name)) is not None and ch.kind == "pump" and ch.fail_safe == "NC"
            )
            for z in ruleset.zones
        }
        self._nc_nodes = {z.channels[n].node_uid for z in ruleset.zones for n in self._nc[z.uid]}

    # ---- the MQTT door's hook ------------------------------------------------------------------
    def node_back(self, node_uid: str, why: str) -> None:
        """A node came back (rebooted): its relays are OPEN. While no daemon runs, the next pass
        re-asserts its NC pumps (a daemon that beats after this heard the node itself)."""
        if node_uid in self._nc_nodes:
            self._back[node_uid] = _Back(why, self.clock())
            self._wake.set()

    # ---- the loop ------------------------------------------------------------------------------
    async def run(self) -> None:
        while True:
            self._wake.clear()  # a comeback told during the pass wakes the next one at once
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except DatabaseUnavailable as e:
                self._said.warning("db", "dead-man waits for the database: %s", e)
            except Exception:
                self._said.log(
                    logging.ERROR, "failed", "dead-man pass failed; trying again\n%s", traceback.format_exc()
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.every_s)

    async def sweep(self) -> dict:
        """One pass. Returns what it found and did (`daemon`: alive | never | down; `sent`: cmd_ids)."""
        now = self.clock()
        async with self.db.acquire() as conn:
            alive = await daemon_store.alive(conn, _at(now), self.dead_after_s)
            last_beat = None if alive else await daemon_store.newest_beat(conn)
            if alive or last_beat is None:
                await self._stand_down(conn, alive, now)
                self.sweeps += 1
                return {"daemon": "alive" if alive else "never", "sent": []}
            if not self.daemon_down:
                await self._raise_down(conn, last_beat.timestamp(), now)
        seen = list(self._back.items())  # a comeback told during the pass waits for the next one
        for _, back in seen:
            back.open = False
        sent = []
        for zone in self.rs.zones:
            if self._nc[zone.uid]:
                sent += await self._zone(zone, last_beat.timestamp())
        for node_uid, back in seen:
            if not back.open and self._back.get(node_uid) is back:
                del self._back[node_uid]
        self.sweeps += 1
        return {"daemon": "down", "sent": sent}

    async def _stand_down(self, conn, alive: list[dict], now: float) -> None:
        """A daemon beats (or none ever did): send nothing, resolve the infra alert, forget the
        comebacks a beating daemon heard of itself."""
        if alive and self.daemon_down is not False:
            who = alive[0]["daemon_id"]
            resolved = await alert_store.resolve(
                conn, zone_id=None, code=DOWN_ALERT, by=DEADMAN, reason=f"site daemon {who} beats again", at=_at(now)
            )
            if resolved is not None:
                log.warning("site daemon %s beats again: the dead-man stands down", who)
        if alive:
            newest = max(d["beat_at"].timestamp() for d in alive)
            self._back = {n: b for n, b in self._back.items() if b.at > newest}
            self.daemon_down = False
        else:
            self._back.clear()  # no daemon ever ran: nothing records what the pumps should do
        self._retry_at.clear()

    async def _raise_down(self, conn, last_beat: float, now: float) -> None:
        """Raise `infra_service_down_daemon` once per outage (also across a restart of the service)."""
        self.daemon_down = True
        if await alert_store.active_details(conn, None, DOWN_ALERT, "") is not None:
            return
        await alert_store.raise_alert(
            conn,
            zone_id=None,
            source="infra",
            code=DOWN_ALERT,
            type=(
                f"No site daemon has beaten since {_iso(last_beat)} (more than {self.dead_after_s:g} s): the "
                "service's dead-man keeps the NC pumps from staying off past max_recirc_off"
            ),
            severity="critical",
            details={"last_beat": _iso(last_beat), "dead_after_s": self.dead_after_s, "margin_s": self.margin_s},
            ruleset_version=self.rs.ruleset_version,
            at=_at(now),
        )
        log.error("no site daemon has beaten since %s: the dead-man takes over the NC pumps", _iso(last_beat))

    # ---- one zone --------------------------------------------------------------------------------
    async def _zone(self, zone, last_beat: float) -> list[str]:
        """Switch ON the zone's NC pumps whose time has come, and those of nodes that came back."""
        now = self.clock()
        async with self.db.acquire() as conn:
            row = await zone_store.get(conn, zone.uid)
            state = await zone_store.engine_state(conn, row["id"]) if row else None
            if not state:
                return []  # no daemon recorded this zone: nothing says what its pumps should do
            newest = await self._newest(conn, row["id"], zone.uid, state, now)
            locking = [
                (code, ch)
                for code, ch in await alert_store.active(conn, row["id"])
                if (a := self.rs.alerts.get(code)) is not None and a.locks
            ]
            for name in self._nc[zone.uid]:  # switched on since the node came back: re-asserted already
                back = self._back.get(zone.channels[name].node_uid)
                if back is not None and (zone.uid, name) not in back.done:
                    last = await command_store.last_switch(conn, row["id"], name)
                    on = last is not None and last["cmd"] == "set_relay" and (last["params"] or {}).get("state") is True
                    if on and last["at"].timestamp() >= back.at:
                        back.done.add((zone.uid, name))
        since = f"no site daemon has beaten since {_iso(last_beat)}"
        wants: dict[str, tuple[str, dict]] = {}  # channel -> (reason, why)
        for d in engine_api.nc_off_deadlines(self.rs, zone.uid, newest, now):
            if now >= d["deadline"] - self.margin_s - EPS:
                why = {
                    "cause": "max_recirc_off",
                    "off_since": _iso(d["off_since"]),
                    "deadline": _iso(d["deadline"]),
                    "margin_s": self.margin_s,
                }
                wants[d["channel"]] = (
                    f"dead-man: {since}; {d['channel']} (NC) off since {_iso(d['off_since'])}, max_recirc_off "
                    f"runs out at {_iso(d['deadline'])}: ON {self.margin_s:g} s before",
                    why,
                )
        backs: dict[str, _Back] = {}  # channel -> the comeback that wants it re-asserted
        channels = newest.get("channels") or {}
        for name in self._nc[zone.uid]:
            back = self._back.get(zone.channels[name].node_uid)
            if back is None or (zone.uid, name) in back.done or (channels.get(name) or {}).get("is_on") is not True:
                continue  # the daemon's record has it off: its deadline decides when it runs
            backs[name] = back
            node_uid = zone.channels[name].node_uid
            wants.setdefault(
                name,
                (
                    f"dead-man: re-assert after {node_uid} {back.why} (relays boot open); {since} and its record "
                    f"has {name} on",
                    {"cause": "node_back", "node_uid": node_uid, "why": back.why},
                ),
            )
        if wants and await self._daemon_back():
            return []  # one beat meanwhile: stand down at once, the next pass says so
        sent = []
        for name, (reason, why) in wants.items():
            lock = next((code for code, ch in locking if ch in (name, None)), None)
            if lock is not None:
                self._said.info(
                    ("locked", zone.uid, name), "dead-man leaves %s/%s off: %s locks it", zone.uid, name, lock
                )
            elif self._retry_at.get((zone.uid, name), 0.0) <= now:
                cmd_id = await self._switch_on(zone, name, reason, {**why, "last_daemon_beat": _iso(last_beat)}, now)
                if cmd_id is not None:
                    sent.append(cmd_id)
                    if name in backs:
                        backs[name].done.add((zone.uid, name))
                    continue
                self._retry_at[(zone.uid, name)] = now + RETRY_AFTER_S
            if name in backs:
                backs[name].open = True
        return sent

    async def _daemon_back(self) -> bool:
        async with self.db.acquire() as conn:
            return bool(await daemon_store.alive(conn, _at(self.clock()), self.dead_after_s))

    async def _newest(self, conn, zone_id: int, zone_uid: str, state: dict, now: float) -> dict:
        """The daemon's record of the zone with each NC pump's belief brought up to the newest evidence:
        a switching command sent after the record was saved (or a restart of its node) wins over it."""
        channels = dict(state.get("channels") or {})
        for name in self._nc[zone_uid]:
            ch = channels.get(name)
            if ch is None:
                continue
            off = await self.commands._off_for(conn, zone_id, name, state, now)  # noqa: SLF001 - the one merge
            channels[name] = {**ch, "is_on": off <= 0, "since": now - off if off > 0 else ch.get("since", now)}
        return {**state, "channels": channels}

    async def _switch_on(self, zone, channel: str, reason: str, why: dict, now: float) -> str | None:
        """ON through the guarded path; its cmd_id, or None when refused or not sent (the refusal audited).

        Each attempt leaves a decision row (kind `deadman`, or `refusal`); an ON sent, a zone event DEADMAN_ON.
        """
        req = CommandRequest(zone.uid, channel, "set_relay", {"state": True}, reason=reason)
        try:
            cmd = await self.commands.submit(req, by=DEADMAN, may_override=False)
        except CommandRefused as e:
            log.warning("dead-man: ON of %s/%s refused: %s", zone.uid, channel, e.message)
            await self.commands.record_refusal(e, by=DEADMAN, scopes=None, request=req)
            async with self.db.acquire() as conn:
                row = await zone_store.get(conn, zone.uid)
                await decision_store.add_many(
                    conn,
                    [self._decision(row["id"], now, "refusal", channel, f"{ON} refused: {e.message}", reason, why)],
                )
            return None
        self.sent.append(cmd["cmd_id"])
        log.warning("dead-man switched %s/%s ON (%s): %s", zone.uid, channel, cmd["cmd_id"], reason)
        details = {"channel": channel, "cmd_id": cmd["cmd_id"], "reason": reason, **why}
        async with self.db.acquire() as conn, conn.transaction():
            await event_store.add(
                conn,
                zone_id=cmd["zone_id"],
                node_id=cmd["node_id"],
                type=EVENT,
                details=details,
                ruleset_version=self.rs.ruleset_version,
                ts=_at(now),
            )
            decision = self._decision(cmd["zone_id"], now, "deadman", channel, ON, reason, details)
            await decision_store.add_many(conn, [decision])
        return cmd["cmd_id"]

    def _decision(self, zone_id, now, kind, channel, what, reason, details) -> decision_store.DecisionRow:
        return decision_store.DecisionRow(
            zone_id=zone_id,
            at=_at(now),
            kind=kind,
            ruleset_version=self.rs.ruleset_version,
            summary=f"{channel} {what} \N{LEFTWARDS ARROW} {reason}",
            channel=channel,
            details=details,
        )
