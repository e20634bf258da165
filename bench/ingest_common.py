"""What the ingest benchmarks share: a bench database, sample rows, the raw COPY baseline, the service.

The database lives on the server of HYDRO_DATABASE_URL (default: the local one
at 127.0.0.1:5432, else a throwaway cluster) and is dropped at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hydro_rules.lang.loader import load  # noqa: E402
from hydro_rules.service.devservers import ThrowawayPostgres, free_port  # noqa: E402
from hydro_rules.store import connect_once  # noqa: E402
from hydro_rules.store.migrate import migrate  # noqa: E402
from hydro_rules.store.partitions import Partitions, day_of  # noqa: E402
from hydro_rules.store.sites import sync  # noqa: E402
from hydro_rules.store.telemetry import COLUMNS  # noqa: E402

EXAMPLES = ROOT / "examples"
ALIASES = {"ph": "PH", "ec": "EC", "water_level": "WATER_LEVEL", "temp_water": "WATER_TEMPERATURE"}
VALUES = {"ph": 6.0, "ec": 1.6, "water_level": 80.0, "temp_water": 21.0}


def site():
    loaded = load(EXAMPLES)
    assert loaded.ok
    return loaded.ruleset


async def _reachable(dsn: str) -> bool:
    try:
        conn = await asyncpg.connect(dsn, timeout=3)
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False
    await conn.close()
    return True


@contextlib.asynccontextmanager
async def bench_database(rs):
    """A fresh database with the schema and the demo site (nodes validated); its URL."""
    server = os.environ.get("HYDRO_DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/postgres"
    throwaway = None
    if not await _reachable(server):
        throwaway = ThrowawayPostgres().start()
        server = throwaway.dsn
    name = f"hydro_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    url = urlunsplit(urlsplit(server)._replace(path=f"/{name}"))
    admin = await asyncpg.connect(server)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        conn = await connect_once(url)
        await migrate(conn)
        await sync(conn, rs, validate=True)
        await conn.close()
        yield url
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
        if throwaway:
            throwaway.remove()


def samples(rs, n: int, *, start: float | None = None) -> list[dict]:
    """n distinct samples of the demo site's sensors, as nodes send them, spread over the last hours."""
    zones = rs.zones
    pairs = [(z.uid, node, metric) for z in zones for metric, node in sorted(z.metric_nodes.items())]
    start = start if start is not None else time.time() - 6 * 3600
    out = []
    for i in range(n):
        zone, node, metric = pairs[i % len(pairs)]
        out.append(
            {
                "node_uid": node,
                "zone_uid": zone,
                "metric_type": ALIASES[metric],
                "value": VALUES[metric] + (i % 7) * 0.01,
                "ts": round(start + (i // len(pairs)) * 0.01, 3),
            }
        )
    return out


async def rows_for(url: str, rs, batch: list[dict]) -> list[tuple]:
    """The rows the ingest stores for these samples (ids resolved, metric canonical)."""
    from datetime import UTC, datetime

    conn = await connect_once(url)
    ids = {r["uid"]: r["id"] for r in await conn.fetch("SELECT uid, id FROM zones UNION ALL SELECT uid, id FROM nodes")}
    await conn.close()
    return [
        (
            datetime.fromtimestamp(s["ts"], UTC),
            ids[s["zone_uid"]],
            ids[s["node_uid"]],
            rs.normalize_metric(s["metric_type"]),
            s["value"],
            None,  # channel
            None,  # raw
            False,  # stub
        )
        for s in batch
    ]


async def clear(url: str) -> None:
    conn = await connect_once(url)
    await conn.execute("TRUNCATE telemetry_samples, telemetry_last, alerts")
    await conn.execute("VACUUM ANALYZE telemetry_samples")
    await conn.close()


async def raw_copy(url: str, rows: list[tuple], batch: int) -> float:
    """rows/s of asyncpg copy_records_to_table into telemetry_samples, `batch` rows a transaction."""
    conn = await connect_once(url)
    await Partitions().ensure(conn, {day_of(r[0].timestamp()) for r in rows})
    t = time.perf_counter()
    for i in range(0, len(rows), batch):
        async with conn.transaction():
            await conn.copy_records_to_table("telemetry_samples", records=rows[i : i + batch], columns=COLUMNS)
    elapsed = time.perf_counter() - t
    await conn.close()
    return len(rows) / elapsed


async def count_samples(url: str) -> int:
    conn = await connect_once(url)
    try:
        return await conn.fetchval("SELECT count(*) FROM telemetry_samples")
    finally:
        await conn.close()


@contextlib.contextmanager
def service(url: str, *, mqtt_url: str | None = None, extra_env: dict | None = None):
    """`hydro-rules serve` for the demo site in a process of its own; yields its base URL."""
    port = free_port()
    env = {**os.environ, "HYDRO_DATABASE_URL": url, "HYDRO_AGGREGATE_EVERY_S": "0", **(extra_env or {})}
    args = ["serve", "--site", str(EXAMPLES), "--port", str(port)]
    args += ["--mqtt-url", mqtt_url] if mqtt_url else ["--no-mqtt"]
    log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"hydro-bench-serve-{port}.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-c", "import sys; from hydro_rules.cli import main; sys.exit(main())", *args],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    h = httpx.get(f"{base}/health", timeout=1).json()
                    if h.get("ready") and (mqtt_url is None or h.get("mqtt")):
                        break
                except (httpx.TransportError, json.JSONDecodeError):
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the service did not start; see {log_path}")
                time.sleep(0.1)
            yield base
        finally:
            proc.terminate()
            proc.wait(15)


async def token(url: str, scope: str) -> str:
    from hydro_rules.store import tokens

    conn = await connect_once(url)
    try:
        t, _ = await tokens.create(conn, f"bench-{scope}", [scope])
        return t
    finally:
        await conn.close()


def report(name: str, value: float, unit: str, goal: float, ok: bool) -> None:
    print(json.dumps({"bench": name, "value": round(value, 3), "unit": unit, "goal": goal, "ok": ok}))


def run(coro):
    return asyncio.run(coro)
