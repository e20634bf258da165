"""HTTP ingest speed: samples/s through `POST /ingest/telemetry` against a raw asyncpg COPY.

Runs `hydro-rules serve` (HTTP only) on a fresh database and posts batches of
1,000 samples (bodies encoded beforehand) from a few concurrent clients. The
baseline, in the same run, is `copy_records_to_table` of the same rows into the
same table, 1,000 rows a transaction. Phases alternate (COPY, HTTP, COPY,
HTTP, ...) with the table emptied before each; the figure is the median of the
per-pair ratios. The service does more than COPY: it resolves nodes, checks
every value, upserts telemetry_last and node liveness.

    .venv/bin/python bench/ingest_http.py [--samples 100000] [--batch 1000] [--clients 4] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time

import httpx
from ingest_common import bench_database, clear, count_samples, raw_copy, report, rows_for, run, samples, service, site
from ingest_common import token as make_token

GOAL = 0.5


async def post_all(base: str, token: str, bodies: list[bytes], clients: int) -> float:
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for b in bodies:
        queue.put_nowait(b)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    async def worker(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            body = queue.get_nowait()
            r = await client.post(f"{base}/ingest/telemetry", content=body, headers=headers)
            r.raise_for_status()
            counts = r.json()["counts"]
            assert counts["accepted"] == r.json()["count"], counts

    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        await client.get(f"{base}/health")  # warm the connection pool
        t = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(clients)))
        return time.perf_counter() - t


async def main(args) -> None:
    rs = site()
    data = samples(rs, args.samples)
    bodies = [json.dumps({"samples": data[i : i + args.batch]}).encode() for i in range(0, len(data), args.batch)]
    async with bench_database(rs) as url:
        rows = await rows_for(url, rs, data)
        token = await make_token(url, "ingest")
        ratios, copies, https = [], [], []
        with service(url) as base:
            for i in range(args.repeat):
                await clear(url)
                copy_rate = await raw_copy(url, rows, args.batch)
                await clear(url)
                elapsed = await post_all(base, token, bodies, args.clients)
                stored = await count_samples(url)
                assert stored == len(data), f"stored {stored} of {len(data)}"
                http_rate = len(data) / elapsed
                copies.append(copy_rate)
                https.append(http_rate)
                ratios.append(http_rate / copy_rate)
                print(
                    f"run {i + 1}: raw COPY {copy_rate:,.0f} rows/s, HTTP {http_rate:,.0f} samples/s "
                    f"({len(data):,} samples, {args.clients} clients, batches of {args.batch}), "
                    f"ratio {http_rate / copy_rate:.2f}"
                )
    value = statistics.median(ratios)
    print(
        f"median: raw COPY {statistics.median(copies):,.0f} rows/s, HTTP {statistics.median(https):,.0f} samples/s, "
        f"ratio {value:.2f} (goal >= {GOAL})"
    )
    report("ingest_http", value, "ratio to raw COPY", GOAL, value >= GOAL)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--samples", type=int, default=100_000)
    p.add_argument("--batch", type=int, default=1000)
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--repeat", type=int, default=3)
    run(main(p.parse_args()))
