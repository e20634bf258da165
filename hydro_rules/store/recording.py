"""What a replay reads of one zone for a window [since, until): samples, commands, decision log.

Samples are the zone's stored telemetry with when each was stored (stubs left
out, as they never reach the rules), plus the newest sample of each series from the `lookback` before the
window (what `telemetry_last` held when the window opened). Commands are those
decided in the window, each with its final status and that status's time, its
ACK's time and the node's own word. Decisions are the daemon's decision log.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import asyncpg

from . import decisions as decision_store
from . import zones as zone_store

#: how far before the window the newest sample of each series is looked for
LOOKBACK = timedelta(hours=1)


async def zone_window(
    conn: asyncpg.Connection, zone_uid: str, since: datetime, until: datetime, *, lookback: timedelta = LOOKBACK
) -> dict | None:
    """{"zone": the zones row, "samples", "commands", "decisions": rows oldest first}; None: no such zone."""
    zone = await zone_store.get(conn, zone_uid)
    if zone is None:
        return None
    zid = zone["id"]
    samples = await conn.fetch(
        """SELECT * FROM (
               SELECT DISTINCT ON (s.node_id, s.metric_type, s.channel)
                      s.ts, n.uid AS node_uid, s.metric_type AS metric, s.value, s.channel, s.received_at
               FROM telemetry_samples s JOIN nodes n ON n.id = s.node_id
               WHERE s.zone_id = $1 AND s.ts >= $4 AND s.ts < $2 AND NOT s.stub
               ORDER BY s.node_id, s.metric_type, s.channel, s.ts DESC) before
           UNION ALL
           SELECT s.ts, n.uid, s.metric_type, s.value, s.channel, s.received_at
           FROM telemetry_samples s JOIN nodes n ON n.id = s.node_id
           WHERE s.zone_id = $1 AND s.ts >= $2 AND s.ts < $3 AND NOT s.stub
           ORDER BY 1, 2, 3, 5 NULLS FIRST""",
        zid,
        since,
        until,
        since - lookback,
    )
    commands = await conn.fetch(
        """SELECT c.cmd_id, c.created_at, c.channel, n.uid AS node_uid, c.cmd, c.params, c.status,
                  CASE c.status WHEN 'done' THEN c.done_at WHEN 'failed' THEN c.failed_at
                                WHEN 'timeout' THEN c.timeout_at WHEN 'ack' THEN c.ack_at
                                WHEN 'sent' THEN c.sent_at ELSE c.created_at END AS status_at,
                  c.ack_at, c.node_status, c.error_code, c.source, c.details
           FROM commands c JOIN nodes n ON n.id = c.node_id
           WHERE c.zone_id = $1 AND c.created_at >= $2 AND c.created_at < $3
           ORDER BY c.created_at, c.id""",
        zid,
        since,
        until,
    )
    decisions = await decision_store.list_decisions(conn, zid, since=since, until=until, limit=10_000_000)
    return {
        "zone": zone,
        "samples": [dict(r) for r in samples],
        "commands": [dict(r) for r in commands],
        "decisions": decisions,
    }
