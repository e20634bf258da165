"""Commands and their statuses (§5.2). Only this module changes `commands.status`.

A status only moves forward: queued -> sent -> ack -> done | failed | timeout.
Responses are idempotent (a duplicate changes nothing) and a response that
comes after a timeout is recorded on the command without reviving it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from .. import messages as M

QUEUED, SENT, ACKED, DONE, FAILED, TIMEOUT = "queued", "sent", "ack", "done", "failed", "timeout"
TERMINAL = frozenset({DONE, FAILED, TIMEOUT})
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
) -> dict:
    """Record a command before it is published (status `queued`)."""
    try:
        row = await conn.fetchrow(
            """INSERT INTO commands (cmd_id, zone_id, node_id, channel, channel_key, cmd, params, ruleset_version,
                                     rule, source, requested_by, reason, override)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING *""",
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
    late: bool = False  # arrived after the command timed out
    foreign: bool = False  # sent by another node than the command's: recorded, not applied
    note: str = ""


async def apply_response(
    conn: asyncpg.Connection,
    *,
    node_id: int | None,
    cmd_id: str,
    status: str,
    ts: datetime,
    error_code: str | None,
    error_message: str | None,
    details: dict | None,
    payload: dict,
) -> ResponseResult:
    """Record a node's command_response and move the command forward if it may."""
    new = FROM_NODE.get(status)
    if new is None:
        raise ValueError(f"unknown response status {status!r}")
    async with conn.transaction():
        rid = await conn.fetchval(
            """INSERT INTO command_responses (cmd_id, node_id, status, ts, error_code, payload, applied)
               VALUES ($1, $2, $3, $4, $5, $6, false)
               ON CONFLICT ON CONSTRAINT command_responses_once DO NOTHING RETURNING id""",
            cmd_id,
            node_id,
            status,
            ts,
            error_code,
            payload,
        )
        row = await conn.fetchrow("SELECT * FROM commands WHERE cmd_id = $1 FOR UPDATE", cmd_id)
        if rid is None:
            return ResponseResult(dict(row) if row else None, duplicate=True, note="duplicate response")
        if row is None:
            return ResponseResult(None, note="unknown cmd_id")
        cmd = dict(row)
        if node_id is not None and cmd["node_id"] != node_id:
            return ResponseResult(cmd, foreign=True, note="response from another node than the command's")
        current = cmd["status"]
        if current == TIMEOUT:
            cmd = dict(
                await conn.fetchrow(
                    """UPDATE commands SET late_response_at = now(), node_status = $2,
                           details = coalesce(details, '{}'::jsonb) || jsonb_build_object('late_response', $3::jsonb),
                           updated_at = now()
                       WHERE id = $1 RETURNING *""",
                    cmd["id"],
                    status,
                    payload,
                )
            )
            return ResponseResult(cmd, late=True, note="late response after timeout, recorded")
        if _RANK[new] <= _RANK[current]:
            return ResponseResult(cmd, note=f"{status} does not move a {current} command")
        stamp = _STAMP[new]
        cmd = dict(
            await conn.fetchrow(
                f"""UPDATE commands SET status = $2, node_status = $3, {stamp} = now(),
                        error_code = coalesce($4, error_code), error_message = coalesce($5, error_message),
                        details = coalesce($6, details), updated_at = now()
                    WHERE id = $1 RETURNING *""",
                cmd["id"],
                new,
                status,
                error_code if new == FAILED else None,
                error_message,
                details,
            )
        )
        await conn.execute("UPDATE command_responses SET applied = true WHERE id = $1", rid)
        return ResponseResult(cmd, applied=True)


async def mark_timeouts(conn: asyncpg.Connection, now: datetime, *, response_timeout_s: float = 60.0) -> list[dict]:
    """Time out commands that got no terminal answer in time; return them (for the daemon's engine).

    A command not acknowledged within `response_timeout_s` of its creation times
    out; an acknowledged one gets its own duration (`duration_ms`) on top,
    counted from the ACK.
    """
    rows = await conn.fetch(
        """UPDATE commands c SET status = 'timeout', timeout_at = $1, updated_at = now()
           WHERE (c.status IN ('queued', 'sent') AND c.created_at < $1::timestamptz - make_interval(secs => $2))
              OR (c.status = 'ack' AND c.ack_at + make_interval(
                      secs => $2::float8 + coalesce((c.params->>'duration_ms')::float8, 0) / 1000) < $1)
           RETURNING c.cmd_id, c.zone_id, c.node_id, c.channel, c.channel_key, c.cmd, c.params, c.created_at,
                     c.sent_at, c.ack_at""",
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


async def list_commands(
    conn: asyncpg.Connection, *, zone_id: int | None = None, status: str | None = None, limit: int = 100
) -> list[dict]:
    rows = await conn.fetch(
        """SELECT c.cmd_id, z.uid AS zone_uid, n.uid AS node_uid, c.channel, c.channel_key, c.cmd, c.params,
                  c.status, c.node_status, c.error_code, c.error_message, c.details, c.ruleset_version, c.rule,
                  c.source, c.requested_by, c.reason, c.override, c.created_at, c.sent_at, c.ack_at, c.done_at,
                  c.failed_at, c.timeout_at, c.late_response_at
           FROM commands c LEFT JOIN zones z ON z.id = c.zone_id JOIN nodes n ON n.id = c.node_id
           WHERE ($1::bigint IS NULL OR c.zone_id = $1) AND ($2::text IS NULL OR c.status = $2)
           ORDER BY c.created_at DESC, c.id DESC LIMIT $3""",
        zone_id,
        status,
        limit,
    )
    return [dict(r) for r in rows]


async def failure_times(conn: asyncpg.Connection, zone_id: int, since: datetime) -> dict[str, list[float]]:
    """Per channel, when the zone's commands failed or timed out since `since` (for failures(pump, 1h))."""
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
