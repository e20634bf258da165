"""Water usage (§15): one log row per finished pump run, and daily totals per zone.

A run is a `run_pump` command that ended DONE (its `duration_ms` from the
ACK), or a `set_relay {state: true}` DONE on a pump channel up to the next
`set_relay {state: false}` DONE on that channel. Volume is the average flow
reading during the run times its duration; with no flow reading the volume
stays unknown (NULL) and the run still counts.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import asyncpg


def _relay_state(params: dict) -> bool | None:
    state = params.get("state")
    return state if isinstance(state, bool) else None


def pair_runs(cmds: list[dict], now: datetime) -> list[dict]:
    """Runs from DONE pump commands of one channel, in time order; runs still going are left out."""
    runs = []
    started: dict | None = None
    for c in cmds:
        at = c["ack_at"] or c["sent_at"] or c["created_at"]
        if c["cmd"] == "run_pump":
            ms = c["params"].get("duration_ms")
            if isinstance(ms, int | float) and ms > 0:
                runs.append({**c, "started_at": at, "finished_at": at + timedelta(milliseconds=ms), "kind": "run"})
        elif c["cmd"] == "set_relay":
            state = _relay_state(c["params"])
            if state is True and started is None:
                started = {**c, "started_at": at}
            elif state is False and started is not None:
                runs.append({**started, "finished_at": at, "kind": "relay"})
                started = None
    return [r for r in runs if r["finished_at"] <= now]


async def log_pump_runs(
    conn: asyncpg.Connection,
    now: datetime,
    *,
    flow_metrics: dict[str, str] | None = None,
    grace_s: float = 30.0,
    lookback_s: float = 7 * 86400,
) -> list[dict]:
    """Write a water_usage_logs row for every run finished `grace_s` ago and not logged yet.

    `flow_metrics`: pump channel -> the metric of its flow (default flow_rate).
    Returns the rows written; daily totals of the days they touch are recomputed.
    """
    cmds = await conn.fetch(
        """SELECT c.cmd_id, c.zone_id, c.channel, c.cmd, c.params, c.created_at, c.sent_at, c.ack_at, c.done_at,
                  zc.node_id AS pump_node
           FROM commands c
           JOIN zone_channels zc ON zc.zone_id = c.zone_id AND zc.channel = c.channel AND zc.kind = 'pump'
           WHERE c.status = 'done' AND c.cmd IN ('run_pump', 'set_relay') AND c.created_at > $1
           ORDER BY c.zone_id, c.channel, c.created_at, c.id""",
        now - timedelta(seconds=lookback_s),
    )
    logged = {
        r["cmd_id"]
        for r in await conn.fetch(
            "SELECT cmd_id FROM water_usage_logs WHERE cmd_id = ANY($1::text[])", [c["cmd_id"] for c in cmds]
        )
    }
    by_channel: dict[tuple, list[dict]] = {}
    for c in cmds:
        by_channel.setdefault((c["zone_id"], c["channel"]), []).append(dict(c))
    written = []
    cutoff = now - timedelta(seconds=grace_s)
    for (zone_id, channel), group in by_channel.items():
        metric = (flow_metrics or {}).get(channel, "flow_rate")
        for run in pair_runs(group, cutoff):
            if run["cmd_id"] in logged:
                continue
            flow = await conn.fetchrow(
                """SELECT avg(value) AS avg, count(*) AS n FROM telemetry_samples
                   WHERE zone_id = $1 AND metric_type = $2 AND ts >= $3 AND ts <= $4 AND NOT stub
                     AND node_id = coalesce((SELECT node_id FROM zone_metrics WHERE zone_id = $1 AND metric_type = $2),
                                            $5)""",
                zone_id,
                metric,
                run["started_at"],
                run["finished_at"],
                run["pump_node"],
            )
            duration_ms = int((run["finished_at"] - run["started_at"]) / timedelta(milliseconds=1))
            avg = flow["avg"]
            volume = avg * duration_ms / 60_000 if avg is not None else None
            row = await conn.fetchrow(
                """INSERT INTO water_usage_logs (zone_id, node_id, pump_channel, cmd_id, volume_l, duration_ms,
                                                 avg_flow_l_min, details, started_at, finished_at)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                   ON CONFLICT (cmd_id) DO NOTHING RETURNING *""",
                zone_id,
                run["pump_node"],
                channel,
                run["cmd_id"],
                volume,
                duration_ms,
                avg,
                {"flow_metric": metric, "flow_samples": flow["n"], "run": run["kind"]},
                run["started_at"],
                run["finished_at"],
            )
            if row:
                written.append(dict(row))
    if written:
        await recompute_daily(conn, {(r["zone_id"], r["started_at"]) for r in written})
    return written


async def recompute_daily(conn: asyncpg.Connection, touched: set[tuple[int, datetime]]) -> None:
    """Recompute water_usage_daily for the zones' local days holding these times."""
    zone_ids = [z for z, _ in touched]
    times = [t for _, t in touched]
    await conn.execute(
        """WITH days AS (
               SELECT DISTINCT v.zone_id, (v.t AT TIME ZONE z.timezone)::date AS date, z.timezone
               FROM unnest($1::bigint[], $2::timestamptz[]) AS v(zone_id, t) JOIN zones z ON z.id = v.zone_id)
           INSERT INTO water_usage_daily (date, zone_id, total_volume_l, irrigation_count, updated_at)
           SELECT d.date, d.zone_id, coalesce(sum(l.volume_l), 0), count(l.id), now()
           FROM days d LEFT JOIN water_usage_logs l
             ON l.zone_id = d.zone_id AND (l.started_at AT TIME ZONE d.timezone)::date = d.date
           GROUP BY d.date, d.zone_id
           ON CONFLICT (zone_id, date) DO UPDATE SET total_volume_l = EXCLUDED.total_volume_l,
               irrigation_count = EXCLUDED.irrigation_count, updated_at = now()""",
        zone_ids,
        times,
    )


async def usage(conn: asyncpg.Connection, zone_id: int, since: datetime, until: datetime) -> dict:
    logs = await conn.fetch(
        """SELECT pump_channel, cmd_id, volume_l, duration_ms, avg_flow_l_min, details, started_at, finished_at
           FROM water_usage_logs WHERE zone_id = $1 AND started_at >= $2 AND started_at < $3 ORDER BY started_at""",
        zone_id,
        since,
        until,
    )
    daily = await conn.fetch(
        """SELECT date, total_volume_l, irrigation_count FROM water_usage_daily
           WHERE zone_id = $1 AND date >= ($2 AT TIME ZONE 'UTC')::date - 1 AND date <= ($3 AT TIME ZONE 'UTC')::date
           ORDER BY date""",
        zone_id,
        since,
        until,
    )
    return {"logs": [dict(r) for r in logs], "daily": [dict(r) for r in daily]}
