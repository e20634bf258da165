"""The periodic housekeeping of the service (§17, §15): partitions ahead, aggregates, water usage."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from ..lang.model import RuleSet
from ..store import Database, DatabaseUnavailable
from ..store import aggregate as aggregate_store
from ..store import water as water_store
from ..store.partitions import Partitions

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PassReport:
    ran: bool
    rows_1m: int
    rows_1h: int
    rows_daily: int
    pump_runs: int
    partitions_created: int


def flow_metrics(rs: RuleSet | None) -> dict[str, str]:
    """Pump channel -> the metric that measures its flow."""
    if rs is None:
        return {}
    return {name: ch.flow for name, ch in rs.channels.items() if ch.kind == "pump" and ch.flow}


async def run_once(
    db: Database,
    rs: RuleSet | None,
    *,
    partitions: Partitions | None = None,
    ahead_days: int = 7,
    max_sample_age_s: float = 30 * 86400,
    water_grace_s: float = 30.0,
    now: datetime | None = None,
) -> PassReport:
    """One pass: partitions for the coming days, aggregates, and water logs of finished pump runs."""
    now = now or datetime.now(UTC)
    partitions = partitions or Partitions()
    async with db.acquire() as conn:
        created = await partitions.ensure_ahead(conn, now.date(), ahead_days)
        agg = await aggregate_store.run(conn, max_age_s=max_sample_age_s + 86400)
        async with conn.transaction():
            runs = await water_store.log_pump_runs(conn, now, flow_metrics=flow_metrics(rs), grace_s=water_grace_s)
    return PassReport(agg.ran, agg.rows_1m, agg.rows_1h, agg.rows_daily, len(runs), len(created))


async def loop(db: Database, rs: RuleSet | None, every_s: float, partitions: Partitions, **kw) -> None:
    """Run `run_once` every `every_s` seconds for as long as the service runs; outages are waited out."""
    while True:
        try:
            report = await run_once(db, rs, partitions=partitions, **kw)
            if report.rows_1m or report.pump_runs:
                log.info(
                    "aggregated %d/%d/%d rows (1m/1h/daily), logged %d pump run(s)",
                    report.rows_1m,
                    report.rows_1h,
                    report.rows_daily,
                    report.pump_runs,
                )
        except DatabaseUnavailable as e:
            log.warning("aggregation skipped: database unavailable (%s)", e)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("aggregation pass failed")
        await asyncio.sleep(every_s)
