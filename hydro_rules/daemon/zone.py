"""One zone the daemon owns: its compiled program, its state, what it reads and what it waits for."""

from __future__ import annotations

import asyncio

from .. import messages as W
from ..engine.api import compiled, telemetry_of
from ..engine.state import ZoneState
from ..lang import model as M

#: the store's command statuses -> the response the engine folds in (node_status says more when known)
_STATUS = {"ack": W.ACK, "done": W.DONE, "failed": W.ERROR, "timeout": W.TIMEOUT}


class ZoneRunner:
    """A zone's program and state. One evaluation at a time: hold `lock` around each."""

    def __init__(self, ruleset: M.RuleSet, uid: str, *, zone_id: int, greenhouse_uid: str) -> None:
        self.uid = uid
        self.zone_id = zone_id
        self.greenhouse_uid = greenhouse_uid
        self.lock = asyncio.Lock()
        self.dropped = False  # lost to another daemon: nothing more is sent for it
        self.stored: dict = {}  # (node, metric, channel) -> Reading from telemetry_last
        self.live: dict = {}  # (node, metric, channel) -> Reading heard on MQTT
        self.answered: dict = {}  # cmd_id -> store status already folded in
        self.st: ZoneState | None = None
        self.bounded_off: frozenset[str] = frozenset()  # nodes that announced they end a timed OFF themselves
        self.set_ruleset(ruleset)

    def set_ruleset(self, ruleset: M.RuleSet) -> None:
        self.rs = ruleset
        self.zone = ruleset.zone(self.uid)
        self.prog = compiled(ruleset).program(self.uid)
        self.prog.announce_bounded_off(self.bounded_off)

    def announce_bounded_off(self, node_uids) -> None:
        """Nodes whose hello announced `bounded_off`: their NC pumps get bounded OFFs (kept across reloads)."""
        self.bounded_off = frozenset(node_uids)
        self.prog.announce_bounded_off(self.bounded_off)

    @property
    def nodes(self) -> tuple[str, ...]:
        return self.zone.nodes

    # ---- readings -------------------------------------------------------------------------
    def take_stored(self, rows: list[dict]) -> None:
        """telemetry_last rows of the zone (store.telemetry.latest's shape)."""
        self.stored = {
            (r["node_uid"], r["metric_type"], r.get("channel")): W.Reading(
                r["node_uid"], r["metric_type"], r["value"], r["ts"].timestamp(), r.get("channel")
            )
            for r in rows
            if r.get("value") is not None
        }

    def take_live(self, readings) -> None:
        for r in readings:
            key = (r.node_uid, r.metric, r.channel)
            prev = self.live.get(key)
            if prev is None or r.ts >= prev.ts:
                self.live[key] = r

    def snapshot(self) -> dict:
        """The engine's telemetry: stored and live readings, the newest per (node, metric, channel)."""
        merged = dict(self.stored)
        for key, r in self.live.items():
            prev = merged.get(key)
            if prev is None or r.ts >= prev.ts:
                merged[key] = r
        return telemetry_of(merged.values(), self.zone)

    # ---- commands ------------------------------------------------------------------------
    def outstanding(self) -> list[str]:
        """cmd_ids the engine still waits on (sent, no terminal answer folded in)."""
        if self.st is None:
            return []
        out = []
        for c in self.st.channels.values():
            out.extend(c.pending)
            out.extend(x for x in c.acked if x not in c.pending)
        return out

    def responses(self, rows: list[dict], now: float) -> list[W.CommandResponse]:
        """The store's news on this zone's commands (store.commands.statuses rows) as responses, each once."""
        out = []
        for r in rows:
            status = r.get("status")
            if status not in _STATUS or self.answered.get(r["cmd_id"]) == status:
                continue
            self.answered[r["cmd_id"]] = status
            word = _STATUS[status]
            node = r.get("node_status")
            if status == "done" and node in (W.DONE, W.NO_EFFECT) or status == "failed" and node in W.FAILED:
                word = node
            at = r.get({"ack": "ack_at", "done": "done_at", "failed": "failed_at", "timeout": "timeout_at"}[status])
            out.append(
                W.CommandResponse(
                    r["cmd_id"],
                    word,
                    at.timestamp() if at is not None else now,
                    r.get("error_code"),
                    dict(r.get("details") or {}),
                )
            )
        return out

    def overdue(self, now: float) -> list[W.CommandResponse]:
        """TIMEOUT of each command sent `commands.response_timeout` ago or more without even an ACK.

        Only while the database is away: the service, which writes `timeout`, cannot then, and an
        unanswered OFF holds back every ON of its channel, an NC pump's too."""
        if self.st is None:
            return []
        limit = self.prog.S["commands.response_timeout"]
        return [
            W.CommandResponse(cmd_id, W.TIMEOUT, now)
            for c in self.st.channels.values()
            for cmd_id, sent_at in c.pending.items()
            if cmd_id not in c.acked and now - sent_at >= limit
        ]

    def forget_answered(self) -> None:
        """Keep `answered` to the commands still outstanding (and their last word)."""
        if len(self.answered) > 256:
            keep = set(self.outstanding())
            self.answered = {k: v for k, v in self.answered.items() if k in keep}

    # ---- what readers of the zones table want without parsing the state --------------------
    def water_state(self) -> str | None:
        if self.st is None or not self.st.machines:
            return None
        return self.st.machines.get("water_cycle") or next(iter(self.st.machines.values()))
