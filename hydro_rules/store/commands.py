"""Commands and their statuses (§5.2). Only this module changes `commands.status`.

A status only moves forward: queued -> sent -> ack -> done | failed | timeout, and
a terminal status is final. Responses are idempotent (a duplicate changes
nothing); one that comes after the command ended is recorded on it without
reviving it; one from another node than the command's is kept as foreign and
changes nothing. `mark_timeouts` (the service's sweep) is the one writer of
`timeout`, each command after its own `response_timeout_s`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from .. import messages as M

QUEUED, SENT, ACKED, DONE, FAILED, TIMEOUT = "queued", "sent", "ack", "done", "failed", "timeout"
TERMINAL = frozenset({DONE, FAILED, TIMEOUT})
#: the sweep's timeout for commands stored without one of their own
DEFAULT_RESPONSE_TIMEOUT_S = 60.0
_RANK = {QUEUED: 0, SENT: 1, ACKED: 2, DONE: 3, FAILED: 3, TIMEOUT: 3}

#: what a node's response status means for the command
FROM_NODE = {
    M.ACK: ACKED,
    M.DONE: DONE,
    M.NO_EFFECT: DONE,
    M.ERROR: FAILED,
    M.INVALID: FAILED,
    M.BUSY: FAILED,
    M.TIMEOUT: FAILED,
}
_STAMP = {ACKED: "ack_at", DONE: "done_at", FAILED: "failed_at"}


class CommandExists(Exception):
    pass


async def create(
    conn: asyncpg.Connection,
    *,
    cmd_id: str,
    zone_id: int | None,
    node_id: int,
    channel: str | None,
    channel_key: str,
    cmd: str,
    params: dict,
    ruleset_version: str | None,
    rule: str | None,
    source: str = "engine",
    requested_by: str | None = None,
    reason: str | None = None,
    override: dict | None = None,
    response_timeout_s: float | None = None,
    reassert_channels: list[str] | None = None,
    created_at: datetime | None = None,
) -> dict:
    """Record a command before it is published (status `queued`).

    `response_timeout_s`: the sweep times it out this long after `created_at` (after
    its ACK plus its own duration once acknowledged). `reassert_channels`: for a
    restart, the NC pump channels to switch on again once the node is back.
    """
    try:
        row = await conn.fetchrow(
            """INSERT INTO commands (cmd_id, zone_id, node_id, channel, channel_key, cmd, params, ruleset_version,
                                     rule, source, requested_by, reason, override, response_timeout_s,
                                     reassert_channels, reassert_open, created_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14,
                       $15::text[], $15::text[] IS NOT NULL, coalesce($16, now()))
               RETURNING *""",
            cmd_id,
            zone_id,
            node_id,
            channel,
            channel_key,
            cmd,
            params,
            ruleset_version,
            rule,
            source,
            requested_by,
            reason,
            override,
            response_timeout_s,
            reassert_channels or None,
            created_at,
        )
    except asyncpg.UniqueViolationError as e:
        raise CommandExists(cmd_id) from e
    return dict(row)


async def mark_sent(conn: asyncpg.Connection, cmd_id: str, at: datetime | None = None) -> bool:
    """The command was handed to the broker. A response may already have moved it further."""
    status = await conn.execute(
        """UPDATE commands SET sent_at = coalesce(sent_at, coalesce($2, now())),
               status = CASE WHEN status = 'queued' THEN 'sent' ELSE status END, updated_at = now()
           WHERE cmd_id = $1""",
        cmd_id,
        at,
    )
    return status.endswith(" 1")


async def mark_failed(
    conn: asyncpg.Connection, cmd_id: str, error_code: str, message: str | None = None, at: datetime | None = None
) -> bool:
    """Fail a command that has no terminal status yet (e.g. it could not be published)."""
    status = await conn.execute(
        """UPDATE commands SET status = 'failed', error_code = $2, error_message = $3,
               failed_at = coalesce($4, now()), updated_at = now()
           WHERE cmd_id = $1 AND status IN ('queued', 'sent', 'ack')""",
        cmd_id,
        error_code,
        message,
        at,
    )
    return status.endswith(" 1")


@dataclass(frozen=True, slots=True)
class ResponseResult:
    """What one response did. `command` is None for an unknown cmd_id."""

    command: dict | None
    duplicate: bool = False
    applied: bool = False  # the status moved forward
    late: bool = False  # a terminal word after the command had ended (or any word after its timeout): recorded
    foreign: bool = False  # sent by another node than the command's: recorded, not applied
    ended_as: str | None = None  # the command's terminal status when a late response came
    late_status: str | None = None  # the late response's status word
    note: str = ""

    @property
    def late_error(self) -> bool:
        """A failure reported after the command was done (e.g. an overcurrent found after DONE)."""
        return self.late and self.ended_as == DONE and self.late_status in M.FAILED


async def apply_response(
    conn: asyncpg.Connection,
    *,
    node_uid: str | None = None,
    node_id: int | None = None,
    cmd_id: str,
    status: str,
    ts: datetime,
    error_code: str | None,
    error_message: str | None,
    details: dict | None,
    payload: dict,
    at: datetime | None = None,
) -> ResponseResult:
    """Record a node's command_response and move the command forward if it may.

    The sender is named by `node_uid` (the topic's node, registered or not) or by
    `node_id`; a response is applied only when the sender is the command's node.
    `at` is when it was received by the caller's clock (default: the database's),
    the clock the timeout sweep also counts an ACKed command's time on.
    """
    new = FROM_NODE.get(status)
    if new is None:
        raise ValueError(f"unknown response status {status!r}")
    async with conn.transaction():
        sender_uid, sender_id = await _sender(conn, node_uid, node_id)
        row = await conn.fetchrow(
            """SELECT c.*, n.uid AS node_uid FROM commands c JOIN nodes n ON n.id = c.node_id
               WHERE c.cmd_id = $1 FOR UPDATE OF c""",
            cmd_id,
        )
        foreign = row is not None and row["node_uid"] != sender_uid
        rid = await conn.fetchval(
            """INSERT INTO command_responses (cmd_id, node_id, sender_uid, foreign_sender, status, ts, error_code,
                                              payload, applied)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, false)
               ON CONFLICT ON CONSTRAINT command_responses_once DO NOTHING RETURNING id""",
            cmd_id,
            sender_id,
            sender_uid,
            foreign,
            status,
            ts,
            error_code,
            payload,
        )
        cmd = dict(row) if row else None
        if rid is None:
            return ResponseResult(cmd, duplicate=True, foreign=foreign, note="duplicate response")
        if cmd is None:
            return ResponseResult(None, note="unknown cmd_id")
        if foreign:
            return ResponseResult(
                cmd, foreign=True, note=f"response from {sender_uid}, not from the command's node {cmd['node_uid']}"
            )
        current = cmd["status"]
        if current == TIMEOUT or (current in TERMINAL and new in TERMINAL):
            return ResponseResult(
                await _record_late(conn, cmd, status, payload, set_node_status=current == TIMEOUT),
                late=True,
                ended_as=current,
                late_status=status,
                note=f"late {status} after the command ended {current}, recorded",
            )
        if _RANK[new] <= _RANK[current]:
            return ResponseResult(cmd, note=f"{status} does not move a {current} command")
        stamp = _STAMP[new]
        cmd = dict(
            await conn.fetchrow(
                f"""UPDATE commands SET status = $2, node_status = $3, {stamp} = coalesce($7, now()),
                        error_code = coalesce($4, error_code), error_message = coalesce($5, error_message),
                        details = coalesce($6, details), updated_at = now()
                    WHERE id = $1 RETURNING *""",
                cmd["id"],
                new,
                status,
                error_code if new == FAILED else None,
                error_message if new == FAILED else None,
                details,
                at,
            )
        )
        await conn.execute("UPDATE command_responses SET applied = true WHERE id = $1", rid)
        return ResponseResult(cmd, applied=True)


async def _sender(conn: asyncpg.Connection, node_uid: str | None, node_id: int | None) -> tuple[str, int | None]:
    """(uid, id or None when not registered) of a response's sender."""
    if node_uid is not None:
        return node_uid, await conn.fetchval("SELECT id FROM nodes WHERE uid = $1", node_uid)
    if node_id is None:
        raise ValueError("a response needs its sender: node_uid or node_id")
    uid = await conn.fetchval("SELECT uid FROM nodes WHERE id = $1", node_id)
    if uid is None:
        raise ValueError(f"no node with id {node_id}")
    return uid, node_id


async def _record_late(
    conn: asyncpg.Connection, cmd: dict, status: str, payload: dict, *, set_node_status: bool
) -> dict:
    """Keep a response that came after the command ended on the command, without changing its status.

    After a timeout it is the node's first word on the command (`node_status`); after
    DONE or a failure the node's earlier word stays, the late one is in the details.
    """
    row = await conn.fetchrow(
        """UPDATE commands SET late_response_at = now(),
               node_status = CASE WHEN $4 THEN $2 ELSE node_status END,
               details = coalesce(details, '{}'::jsonb) || jsonb_build_object('late_response', $3::jsonb),
               updated_at = now()
           WHERE id = $1 RETURNING *""",
        cmd["id"],
        status,
        payload,
        set_node_status,
    )
    return {**dict(row), "node_uid": cmd["node_uid"]}


async def mark_timeouts(
    conn: asyncpg.Connection, now: datetime, *, response_timeout_s: float = DEFAULT_RESPONSE_TIMEOUT_S
) -> list[dict]:
    """Time out commands that got no terminal answer in time; return them.

    A command not acknowledged within its own response timeout (`response_timeout_s`
    of the row, else the argument) of its creation times out at that instant; an
    acknowledged one gets its own duration (`duration_ms`) on top, counted from the
    ACK. A command with a terminal status is never taken.
    """
    rows = await conn.fetch(
        """UPDATE commands c SET status = 'timeout', timeout_at = $1, updated_at = now()
           WHERE (c.status IN ('queued', 'sent')
                  AND c.created_at + make_interval(secs => coalesce(c.response_timeout_s, $2)) <= $1)
              OR (c.status = 'ack' AND c.ack_at + make_interval(
                      secs => coalesce(c.response_timeout_s, $2)
                               + coalesce((c.params->>'duration_ms')::float8, 0) / 1000) <= $1)
           RETURNING c.cmd_id, c.zone_id, c.node_id, c.channel, c.channel_key, c.cmd, c.params, c.created_at,
                     c.sent_at, c.ack_at, c.timeout_at""",
        now,
        response_timeout_s,
    )
    if not rows:
        return []
    uids = await conn.fetch(
        "SELECT z.id, z.uid FROM zones z WHERE z.id = ANY($1::bigint[])", list({r["zone_id"] for r in rows})
    )
    zone_uid = {r["id"]: r["uid"] for r in uids}
    return [{**dict(r), "zone_uid": zone_uid.get(r["zone_id"])} for r in rows]


async def get(conn: asyncpg.Connection, cmd_id: str) -> dict | None:
    row = await conn.fetchrow(
        """SELECT c.*, z.uid AS zone_uid, n.uid AS node_uid FROM commands c
           LEFT JOIN zones z ON z.id = c.zone_id JOIN nodes n ON n.id = c.node_id WHERE c.cmd_id = $1""",
        cmd_id,
    )
    return dict(row) if row else None


async def statuses(conn: asyncpg.Connection, cmd_ids: list[str]) -> list[dict]:
    """Where these commands stand (one query; unknown ids are left out): what the daemon folds in each tick."""
    if not cmd_ids:
        return []
    rows = await conn.fetch(
        """SELECT cmd_id, status, node_status, error_code, error_message, details, ack_at, done_at, failed_at,
                  timeout_at
           FROM commands WHERE cmd_id = ANY($1::text[]) ORDER BY id""",
        list(cmd_ids),
    )
    return [dict(r) for r in rows]


async def responses(conn: asyncpg.Connection, cmd_id: str) -> list[dict]:
    """Every response received for a command, in arrival order, foreign and duplicate-free."""
    rows = await conn.fetch(
        """SELECT status, ts, sender_uid, foreign_sender AS foreign, applied, error_code, payload, received_at
           FROM command_responses WHERE cmd_id = $1 ORDER BY received_at, id""",
        cmd_id,
    )
    return [dict(r) for r in rows]


async def list_commands(
    conn: asyncpg.Connection, *, zone_id: int | None = None, status: str | None = None, limit: int = 100
) -> list[dict]:
    rows = await conn.fetch(
        """SELECT c.cmd_id, z.uid AS zone_uid, n.uid AS node_uid, c.channel, c.channel_key, c.cmd, c.params,
                  c.status, c.node_status, c.error_code, c.error_message, c.details, c.ruleset_version, c.rule,
                  c.source, c.requested_by, c.reason, c.override, c.response_timeout_s, c.reassert_channels,
                  c.reasserted_at, c.created_at, c.sent_at, c.ack_at, c.done_at, c.failed_at, c.timeout_at,
                  c.late_response_at
           FROM commands c LEFT JOIN zones z ON z.id = c.zone_id JOIN nodes n ON n.id = c.node_id
           WHERE ($1::bigint IS NULL OR c.zone_id = $1) AND ($2::text IS NULL OR c.status = $2)
           ORDER BY c.created_at DESC, c.id DESC LIMIT $3""",
        zone_id,
        status,
        limit,
    )
    return [dict(r) for r in rows]


async def failure_times(conn: asyncpg.Connection, zone_id: int, since: datetime) -> dict[str, list[float]]:
    """Per channel, when the zone's commands failed or timed out since `since` (for failures(pump, 1h)).

    One time per failed command: its status is terminal, so no later answer adds another.
    """
    rows = await conn.fetch(
        """SELECT channel, coalesce(failed_at, timeout_at) AS at FROM commands
           WHERE zone_id = $1 AND status IN ('failed', 'timeout') AND coalesce(failed_at, timeout_at) >= $2""",
        zone_id,
        since,
    )
    out: dict[str, list[float]] = {}
    for r in rows:
        out.setdefault(r["channel"], []).append(r["at"].timestamp())
    return out


# ---- NC pumps around a restart -----------------------------------------------------------------
async def last_switch(conn: asyncpg.Connection, zone_id: int, channel: str) -> dict | None:
    """The newest command that set the channel's output and that the node took or may have taken.

    A switching command (set_relay, run_pump, set_pwm) on the channel, or a restart of its
    node that still owes the channel its re-assertion. `at` is when it took effect as far
    as the store knows (its ACK, else its DONE, else when it was sent).
    """
    row = await conn.fetchrow(
        """SELECT cmd, params, status, coalesce(ack_at, done_at, sent_at) AS at FROM commands
           WHERE zone_id = $1 AND status IN ('sent', 'ack', 'done')
             AND ((channel = $2 AND cmd IN ('set_relay', 'run_pump', 'set_pwm'))
                  OR (cmd = 'restart' AND reassert_open AND $2 = ANY(reassert_channels)))
             AND coalesce(ack_at, done_at, sent_at) IS NOT NULL
           ORDER BY coalesce(ack_at, done_at, sent_at) DESC, id DESC LIMIT 1""",
        zone_id,
        channel,
    )
    return dict(row) if row else None


async def claim_reassertions(conn: asyncpg.Connection, at: datetime) -> list[dict]:
    """Restarts whose NC pumps are to be switched on again now; each is claimed by one caller.

    Due once the node is seen booted after the restart was sent (a heartbeat's uptime
    reaches back to after it), which also closes the restart's re-assertion; and once
    when the restart is answered DONE (a node that answers after its reboot), which
    leaves it open for the boot to confirm.
    """
    rows = await conn.fetch(
        """WITH due AS (
               SELECT c.id, (n.last_heartbeat_at IS NOT NULL AND n.uptime_s IS NOT NULL
                             AND n.last_heartbeat_at - make_interval(secs => n.uptime_s) > c.sent_at) AS booted
               FROM commands c JOIN nodes n ON n.id = c.node_id
               WHERE c.reassert_open AND c.sent_at IS NOT NULL
               FOR UPDATE OF c SKIP LOCKED)
           UPDATE commands c SET reasserted_at = $1, reassert_open = NOT due.booted, updated_at = now()
           FROM due
           WHERE c.id = due.id AND (due.booted OR (c.status = 'done' AND c.reasserted_at IS NULL))
           RETURNING c.cmd_id, c.reassert_channels, due.booted,
                     (SELECT uid FROM zones WHERE id = c.zone_id) AS zone_uid,
                     (SELECT uid FROM nodes WHERE id = c.node_id) AS node_uid""",
        at,
    )
    return [dict(r) for r in rows]


# ---- refused commands ---------------------------------------------------------------------------
async def record_refusal(
    conn: asyncpg.Connection,
    *,
    http_status: int,
    code: str,
    message: str,
    token_name: str | None,
    token_scopes: list[str] | None = None,
    zone_uid: str | None = None,
    channel: str | None = None,
    cmd: str | None = None,
    params: dict | None = None,
    reason: str | None = None,
    override: bool | None = None,
    guard: str | None = None,
    details: dict | None = None,
    at: datetime | None = None,
) -> dict:
    """Audit a refused command: who asked, what, and why it was refused."""
    row = await conn.fetchrow(
        """INSERT INTO command_refusals (at, token_name, token_scopes, zone_uid, channel, cmd, params, reason,
                                         override, http_status, code, message, guard, details)
           VALUES (coalesce($1, now()), $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, coalesce($14, '{}'::jsonb))
           RETURNING *""",
        at,
        token_name,
        token_scopes,
        zone_uid,
        channel,
        cmd,
        params,
        reason,
        override,
        http_status,
        code,
        message,
        guard,
        details,
    )
    return dict(row)


async def list_refusals(
    conn: asyncpg.Connection, *, zone_uid: str | None = None, since: datetime | None = None, limit: int = 100
) -> list[dict]:
    rows = await conn.fetch(
        """SELECT id, at, token_name, token_scopes, zone_uid, channel, cmd, params, reason, override, http_status,
                  code, message, guard, details
           FROM command_refusals
           WHERE ($1::text IS NULL OR zone_uid = $1) AND ($2::timestamptz IS NULL OR at >= $2)
           ORDER BY at DESC, id DESC LIMIT $3""",
        zone_uid,
        since,
        limit,
    )
    return [dict(r) for r in rows]
