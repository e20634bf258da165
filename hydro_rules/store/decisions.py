"""The decision log (the plan's ai_logs): what the daemon decided for a zone, and why.

One row per transition, command, refusal, hold, alert change, event, reset,
recovery, rule-set change, re-assertion, ownership change or dead-man action:
the zone, the time, the rule-set version, the causing rule with its span, the
channel, a one-line summary (worded as the dry-run timeline words it) and the
values seen (`details["values"]`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the CLI reads KINDS without loading the driver
    import asyncpg

#: the kinds of rows the daemon and the service's dead-man write
KINDS = frozenset(
    {
        "transition",
        "command",
        "refusal",
        "held",
        "alert_raised",
        "alert_resolved",
        "event",
        "reset",
        "recovery",
        "ruleset",
        "reassert",
        "ownership",
        "deadman",
    }
)

#: the columns a reader gets, in this order (the API's shape, plus the row id)
FIELDS = ("at", "kind", "ruleset_version", "rule", "channel", "summary", "details", "daemon_id")


@dataclass(frozen=True, slots=True)
class DecisionRow:
    zone_id: int
    at: datetime
    kind: str
    ruleset_version: str
    summary: str
    rule: str | None = None
    channel: str | None = None
    details: dict = field(default_factory=dict)
    daemon_id: str | None = None


async def add_many(conn: asyncpg.Connection, rows: Sequence[DecisionRow]) -> int:
    """Store the rows (one statement, in their order); return how many were stored."""
    if not rows:
        return 0
    status = await conn.execute(
        """INSERT INTO decisions (zone_id, at, kind, ruleset_version, rule, channel, summary, details, daemon_id)
           SELECT * FROM unnest($1::bigint[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::text[],
                                $7::text[], $8::jsonb[], $9::text[])""",
        [r.zone_id for r in rows],
        [r.at for r in rows],
        [r.kind for r in rows],
        [r.ruleset_version for r in rows],
        [r.rule for r in rows],
        [r.channel for r in rows],
        [r.summary for r in rows],
        [r.details or {} for r in rows],
        [r.daemon_id for r in rows],
    )
    return int(status.split()[-1])


async def list_decisions(
    conn: asyncpg.Connection,
    zone_id: int,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    kind: str | None = None,
    channel: str | None = None,
    limit: int = 500,
) -> list[dict]:
    """The zone's decisions in [since, until), oldest first.

    With `since`: the first `limit` rows from it. Without: the newest `limit` rows
    (before `until`), still oldest first, so a bare read shows what happened last.
    """
    newest_first = since is None
    rows = await conn.fetch(
        f"""SELECT id, {", ".join(FIELDS)} FROM decisions
            WHERE zone_id = $1 AND ($2::timestamptz IS NULL OR at >= $2) AND ($3::timestamptz IS NULL OR at < $3)
              AND ($4::text IS NULL OR kind = $4) AND ($5::text IS NULL OR channel = $5)
            ORDER BY {"at DESC, id DESC" if newest_first else "at, id"} LIMIT $6""",
        zone_id,
        since,
        until,
        kind,
        channel,
        limit,
    )
    out = [dict(r) for r in rows]
    if newest_first:
        out.reverse()
    return out
