"""Site daemon capacity: how many zones one daemon keeps at 1 s ticks within half a core.

A site of N zones (default 1,000) on the standard rules (built like the daemon test site's zt-2), a
fresh database with every zone's sensors in telemetry_last, a throwaway Mosquitto, and the daemon
in this process (nothing else runs here): after a few warm-up ticks, the process CPU time over
`--ticks` ticks gives the CPU per tick, per zone and the zones one daemon keeps within half a core
at 1 s ticks (0.5 s of CPU per tick). The database's own CPU is not counted: it is another process.

    .venv/bin/python bench/daemon_zones.py [--zones 1000] [--ticks 10]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from daemon_latency import load_site, make_site
from ingest_common import ROOT, bench_database, report, run

from hydro_rules.service.devservers import ThrowawayMosquitto, broker_sizing
from hydro_rules.store import connect_once
from hydro_rules.store.telemetry import upsert_last

GOAL = 1000.0
VALUES = {"water_level": 60.0, "ph": 6.0, "ec": 1.6, "temp_water": 20.0}


async def seed(url: str, rs) -> int:
    """Every zone's sensor readings, fresh, in telemetry_last."""
    conn = await connect_once(url)
    try:
        ids = {
            r["uid"]: r["id"] for r in await conn.fetch("SELECT uid, id FROM zones UNION ALL SELECT uid, id FROM nodes")
        }
        now = datetime.now(UTC)
        rows = [
            (now, ids[z.uid], ids[node], metric, VALUES[metric], None, None, False)
            for z in rs.zones
            for metric, node in sorted(z.metric_nodes.items())
            if metric in VALUES
        ]
        async with conn.transaction():
            await upsert_last(conn, rows)
        return len(rows)
    finally:
        await conn.close()


async def main(args) -> None:
    from hydro_rules.daemon import Daemon, DaemonSettings

    tmp = Path(tempfile.mkdtemp(prefix="hydro-bench-zones-"))
    try:
        t = time.perf_counter()
        site = make_site(tmp / "site", zones=args.zones)
        rs = load_site(site)
        print(f"site of {len(rs.zones):,} zones loaded in {time.perf_counter() - t:.1f} s")
        with ThrowawayMosquitto(extra=broker_sizing(ROOT / "runtime" / "mosquitto" / "hydro.conf")) as broker:
            async with bench_database(rs) as url:
                n = await seed(url, rs)
                print(f"{n:,} readings in telemetry_last")
                settings = DaemonSettings(
                    database_url=url,
                    mqtt_url=broker.url,
                    mqtt_client_id="bench-daemon",
                    daemon_id="bench-daemon",
                    queue_dir=str(tmp / "queue"),
                    metrics_port=0,
                    tick_s=1.0,
                    node_silent_after_s=3600,
                )
                d = Daemon(settings, site, ruleset=rs)
                t = time.perf_counter()
                await d.start()
                while len(d.zones) < args.zones or d.ticks < args.warmup:
                    await asyncio.sleep(0.05)
                    if time.perf_counter() - t > 300:
                        raise RuntimeError(f"the daemon owns {len(d.zones)} zones after 300 s")
                print(f"daemon owns {len(d.zones):,} zones after {time.perf_counter() - t:.1f} s")
                first, cpu0, wall0 = d.ticks, time.process_time(), time.perf_counter()
                while d.ticks < first + args.ticks:
                    await asyncio.sleep(0.02)
                ticks = d.ticks - first
                cpu = (time.process_time() - cpu0) / ticks
                wall = (time.perf_counter() - wall0) / ticks
                await d.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    per_zone_us = cpu / args.zones * 1e6
    capacity = 0.5 / (cpu / args.zones)
    print(
        f"{args.zones:,} zones, {ticks} ticks of {wall:.2f} s: {cpu * 1000:.1f} ms CPU per tick "
        f"({per_zone_us:.0f} µs per zone), {cpu / 1.0 * 100:.1f} % of a core at 1 s ticks"
    )
    print(f"zones one daemon keeps at 1 s ticks within half a core: {capacity:,.0f} (goal >= {GOAL:,.0f})")
    report("daemon_zones", capacity, "zones", GOAL, capacity >= GOAL)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--zones", type=int, default=1000)
    p.add_argument("--ticks", type=int, default=10, help="ticks measured")
    p.add_argument("--warmup", type=int, default=3, help="ticks before measuring")
    run(main(p.parse_args()))
