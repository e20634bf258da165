"""MQTT ingest speed: telemetry messages/s from nodes to the database, acknowledged after the commit.

A throwaway Mosquitto with the deployment kit's sizing (runtime/mosquitto/hydro.conf)
and `hydro-rules serve` on a fresh database; simulated nodes (one MQTT
connection each) publish QoS 1 telemetry as fast as the broker takes it. The
clock runs from the first publish until every message is in telemetry_samples;
nothing may be lost (the count must match exactly). In the same run, the
raw asyncpg COPY of the same rows into the same table is timed for the ratio.

    .venv/bin/python bench/ingest_mqtt.py [--messages 50000] [--nodes 8] [--repeat 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time

from ingest_common import (
    ROOT,
    bench_database,
    clear,
    count_samples,
    raw_copy,
    report,
    rows_for,
    run,
    samples,
    service,
    site,
)

from hydro_rules.service.devservers import ThrowawayMosquitto, broker_sizing
from hydro_rules.transport.mqtt import MqttClient

GOAL = 5000.0


async def publish_all(broker_url: str, data: list[dict], nodes: int, window: int) -> float:
    """Publish every sample from `nodes` connections; seconds from the first publish to the last PUBACK."""
    by_node: dict[str, list[dict]] = {}
    for s in data:
        by_node.setdefault(s["node_uid"], []).append(s)
    groups = [[] for _ in range(nodes)]
    for i, (uid, items) in enumerate(sorted(by_node.items())):
        groups[i % nodes].append((uid, items))
    clients = []
    for i in range(nodes):
        c = MqttClient(broker_url, client_id=f"bench-node-{i}", window=window)
        await c.connect(10)
        clients.append(c)

    async def node(client: MqttClient, work) -> None:
        streams = [(uid, iter(items)) for uid, items in work]
        while streams:
            for uid, it in list(streams):
                s = next(it, None)
                if s is None:
                    streams.remove((uid, it))
                    continue
                topic = f"hydro/gh-1/{s['zone_uid']}/{uid}/sensor/telemetry"
                payload = {"metric_type": s["metric_type"], "value": s["value"], "ts": s["ts"], "node_id": uid}
                await client.publish(topic, json.dumps(payload).encode())
        await client.drain(60)

    t = time.perf_counter()
    await asyncio.gather(*(node(c, g) for c, g in zip(clients, groups)))
    elapsed = time.perf_counter() - t
    for c in clients:
        await c.disconnect()
    return elapsed


async def main(args) -> None:
    rs = site()
    data = samples(rs, args.messages)
    rates, copies, lost = [], [], 0
    with ThrowawayMosquitto(extra=broker_sizing(ROOT / "runtime" / "mosquitto" / "hydro.conf")) as broker:
        async with bench_database(rs) as url:
            rows = await rows_for(url, rs, data)
            with service(url, mqtt_url=broker.url):
                for i in range(args.repeat):
                    await clear(url)
                    copies.append(await raw_copy(url, rows, 1000))
                    await clear(url)
                    t = time.perf_counter()
                    published = await publish_all(broker.url, data, args.nodes, args.window)
                    deadline = time.monotonic() + 120
                    stored = 0
                    while time.monotonic() < deadline:
                        stored = await count_samples(url)
                        if stored >= len(data):
                            break
                        await asyncio.sleep(0.05)
                    elapsed = time.perf_counter() - t
                    lost += len(data) - stored
                    rate = stored / elapsed
                    rates.append(rate)
                    print(
                        f"run {i + 1}: {len(data):,} messages from {args.nodes} nodes published in {published:.2f} s, "
                        f"all stored after {elapsed:.2f} s: {rate:,.0f} messages/s "
                        f"(raw COPY of the same rows {copies[-1]:,.0f} rows/s, ratio {rate / copies[-1]:.2f}); "
                        f"lost {len(data) - stored}"
                    )
    value = statistics.median(rates)
    print(
        f"median: {value:,.0f} messages/s stored and acknowledged, ratio to raw COPY "
        f"{value / statistics.median(copies):.2f}; lost {lost} (goal >= {GOAL:,.0f} messages/s, none lost)"
    )
    report("ingest_mqtt", value, "messages/s", GOAL, value >= GOAL and lost == 0)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--messages", type=int, default=50_000)
    p.add_argument("--nodes", type=int, default=8, help="publishing connections")
    p.add_argument("--window", type=int, default=50, help="unacknowledged QoS 1 publishes per node connection")
    p.add_argument("--repeat", type=int, default=2)
    run(main(p.parse_args()))
