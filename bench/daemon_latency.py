"""Site daemon latency: a dry-reservoir sample published on MQTT -> the pump-off command seen on MQTT.

A throwaway Mosquitto (the kit's sizing and TCP_NODELAY), a fresh database, `hydro-rules serve` and `hydro-rules run`
each in a process of their own, on a one-zone site built from the daemon test site (tests/daemon/site,
zone zt-2: the standard rules, the recirculation pump running). Each trial publishes a water level
below the dry-run minimum as the level node would and times until the daemon's signed
`set_relay state=false` for the recirculation pump arrives at a subscriber; then the level comes back,
an operator resets the lock (POST /zones/zt-2/safety/reset) and the pump is started again. A responder
answers every command ACK then DONE as a node does. In the same run, the baseline: a bare MQTT round
trip (publish -> a client that republishes -> the same subscriber), the two broker hops without the daemon.

    .venv/bin/python bench/daemon_latency.py [--trials 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
from ingest_common import ROOT, bench_database, report, run, token

from hydro_rules.lang.loader import load
from hydro_rules.service.devservers import ThrowawayMosquitto, broker_sizing, free_port
from hydro_rules.store import connect_once
from hydro_rules.store import nodes as node_store
from hydro_rules.transport.mqtt import MqttClient

GOAL_MS = 20.0
TEST_SITE = ROOT / "tests" / "daemon" / "site"
ZONE = "zt-2"


# ---- a site, servers and processes (daemon_zones.py uses these too) ---------------------------------
def make_site(dest: Path, zones: int = 1, profile: str = "steady") -> Path:
    """A rule-set directory on the standard rules with the test site's profiles and recipe: `zones`
    zones like the test site's zt-2 (one node per output and sensor, as field nodes are)."""
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "ruleset.hydro").write_text(
        f'hydro 1\nruleset bench_site version "2026.11.1"\nuse "{ROOT / "rules"}"\n', encoding="utf-8"
    )
    for name in ("profiles.hydro", "recipes.hydro"):
        shutil.copy(TEST_SITE / name, dest / name)
    lines = ['hydro 1\n\nsite bench-farm "Bench farm" {\n  timezone "UTC"\n\n  greenhouse gh-t "Bench" {\n']
    for i in range(zones):
        uid = ZONE if zones == 1 else f"zb-{i + 1}"
        n = f"nd-b{i + 1}" if zones > 1 else "nd-t2"
        lines.append(
            f'    zone {uid} "Zone {i + 1}" {{\n'
            f"      profile {profile}\n      recipe lettuce\n      planted 2026-01-01\n      reservoir 6 L\n"
            f"      pump_recirc on {n}-pump\n      pump_drain on {n}-drain\n      pump_fill on {n}-fill\n"
            f"      dose_ph_down on {n}-dose channel pump_acid\n"
            f"      dose_nutrient on {n}-dose channel pump_nutrient\n"
            f"      level_sensor on {n}-level\n      ph from {n}-ph\n      ec from {n}-ec\n"
            f"      temp_water from {n}-ec\n      water_level from {n}-level\n    }}\n"
        )
    lines.append("  }\n}\n")
    (dest / "site.hydro").write_text("".join(lines), encoding="utf-8")
    return dest


def load_site(path: Path):
    loaded = load(path)
    assert loaded.ok, [d.message for d in loaded.diags.items][:5]
    return loaded.ruleset


async def register_nodes(url: str, rs) -> None:
    conn = await connect_once(url)
    try:
        for zone in rs.zones:
            for uid in zone.nodes:
                await node_store.register(conn, uid, zone_uid=zone.uid)
    finally:
        await conn.close()


@contextlib.contextmanager
def process(args: list[str], env: dict, name: str):
    """A `hydro-rules` subcommand in a process of its own (its log in $TMPDIR)."""
    log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"hydro-bench-{name}-{os.getpid()}.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-c", "import sys; from hydro_rules.cli import main; sys.exit(main())", *args],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    if proc.returncode not in (0, -15):
        print(f"({name} ended with {proc.returncode}; log: {log_path})", file=sys.stderr)


async def serve(url: str, mqtt_url: str, site: Path):
    """The service for the site; returns (context, base URL) once it is ready."""
    port = free_port()
    env = {"HYDRO_DATABASE_URL": url, "HYDRO_MQTT_URL": mqtt_url, "HYDRO_AGGREGATE_EVERY_S": "0",
           "HYDRO_MQTT_CLIENT_ID": "bench-ingest"}  # fmt: skip
    ctx = process(["serve", "--site", str(site), "--port", str(port)], env, "serve")
    proc = ctx.__enter__()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    async with httpx.AsyncClient() as http:
        while True:
            with contextlib.suppress(httpx.TransportError, json.JSONDecodeError):
                h = (await http.get(f"{base}/health", timeout=1)).json()
                if h.get("ready") and h.get("mqtt"):
                    return ctx, base
            if proc.poll() is not None or time.monotonic() > deadline:
                ctx.__exit__(None, None, None)
                raise RuntimeError("the service did not become ready")
            await asyncio.sleep(0.1)


def daemon_env(url: str, mqtt_url: str, queue: str, **extra) -> dict:
    env = {
        "HYDRO_DATABASE_URL": url,
        "HYDRO_MQTT_URL": mqtt_url,
        "HYDRO_MQTT_CLIENT_ID": "bench-daemon",
        "HYDRO_DAEMON_ID": "bench-daemon",
        "HYDRO_QUEUE_DIR": queue,
        "HYDRO_METRICS_PORT": "0",
    }
    env.update({f"HYDRO_{k.upper()}": str(v) for k, v in extra.items()})
    return env


async def wait_owned(url: str, zones: int, timeout: float = 60.0) -> None:
    """Until the daemon's heartbeat row says it owns `zones` zones."""
    conn = await connect_once(url)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            owned = await conn.fetchval("SELECT max(cardinality(zones)) FROM daemons WHERE stopped_at IS NULL")
            if owned and owned >= zones:
                return
            await asyncio.sleep(0.1)
    finally:
        await conn.close()
    raise RuntimeError(f"the daemon did not take its {zones} zone(s) within {timeout} s")


def kit_broker() -> str:
    """The kit's broker settings that matter here: its queue sizes and its TCP_NODELAY (a command
    the broker forwards goes out at once, not after the previous packet's delayed ACK)."""
    conf = ROOT / "runtime" / "mosquitto" / "hydro.conf"
    nodelay = [line for line in conf.read_text().splitlines() if line.startswith("set_tcp_nodelay")]
    return "\n".join([broker_sizing(conf), *nodelay])


# ---- MQTT helpers ---------------------------------------------------------------------------------------
class Watch:
    """A subscriber: each message (topic, payload) with the perf_counter of its arrival."""

    def __init__(self, url: str, topics: tuple[str, ...]) -> None:
        self.items: asyncio.Queue = asyncio.Queue()
        self.client = MqttClient(url, client_id=f"bench-watch-{uuid.uuid4().hex[:8]}", handler=self._on,
                                 subscriptions=topics)  # fmt: skip

    async def _on(self, topic, payload, retained) -> int:
        if not retained:
            self.items.put_nowait((time.perf_counter(), topic, bytes(payload)))
        return 0

    async def start(self) -> Watch:
        await self.client.connect(10)
        await asyncio.wait_for(self.client.connected.wait(), 10)
        await asyncio.sleep(0.2)  # the SUBACK
        return self

    async def next(self, match, timeout: float = 10.0):
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no such message")
            t, topic, payload = await asyncio.wait_for(self.items.get(), left)
            if match(topic, payload):
                return t, topic, payload


class Responder:
    """Answers every command ACK then DONE, as a node's firmware does."""

    def __init__(self, url: str) -> None:
        self.client = MqttClient(url, client_id=f"bench-nodes-{os.getpid()}", handler=self._on,
                                 subscriptions=("hydro/+/+/+/+/command",), window=200)  # fmt: skip

    async def _on(self, topic, payload, retained) -> int:
        if retained:
            return 0
        try:
            cmd_id = json.loads(payload)["cmd_id"]
        except (ValueError, KeyError, TypeError):
            return 0
        base = topic.rsplit("/", 1)[0]
        for status in ("ACK", "DONE"):
            doc = {"cmd_id": cmd_id, "status": status, "ts": int(time.time() * 1000)}
            self.client.publish_now(f"{base}/command_response", json.dumps(doc).encode())
        return 0

    async def start(self) -> Responder:
        await self.client.connect(10)
        await asyncio.wait_for(self.client.connected.wait(), 10)
        await asyncio.sleep(0.2)
        return self


def _pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


# ---- the bench ----------------------------------------------------------------------------------------
async def baseline(url: str, trials: int) -> list[float]:
    """Bare MQTT round trips in ms: publish -> a client republishes -> the subscriber sees it."""
    echo = MqttClient(url, client_id=f"bench-echo-{os.getpid()}", subscriptions=("bench/in",))

    async def republish(topic, payload, retained) -> int:
        echo.publish_now("bench/out", payload)
        return 0

    echo.handler = republish
    await echo.connect(10)
    await asyncio.wait_for(echo.connected.wait(), 10)
    watch = await Watch(url, ("bench/out",)).start()
    pub = MqttClient(url, client_id=f"bench-pub-{os.getpid()}")
    await pub.connect(10)
    await asyncio.wait_for(pub.connected.wait(), 10)
    await asyncio.sleep(0.2)
    out = []
    for i in range(trials):
        body = str(i).encode()
        t0 = time.perf_counter()
        await pub.publish("bench/in", body)
        t1, _, _ = await watch.next(lambda topic, payload, body=body: payload == body)
        out.append((t1 - t0) * 1000)
    for c in (echo, watch.client, pub):
        await c.disconnect()
    return out


async def trials(url: str, mqtt_url: str, base: str, n: int) -> list[float]:
    level_topic = f"hydro/gh-t/{ZONE}/nd-t2-level/level_sensor/telemetry"
    pump_topic = f"hydro/gh-t/{ZONE}/nd-t2-pump/pump_recirc/command"
    watch = await Watch(mqtt_url, (pump_topic,)).start()
    pub = MqttClient(mqtt_url, client_id=f"nd-t2-level-bench-{os.getpid()}")
    await pub.connect(10)
    await asyncio.wait_for(pub.connected.wait(), 10)
    operator = await token(url, "operator")
    last_ts = [time.time()]

    async def level(value: float) -> None:
        ts = max(time.time(), last_ts[0] + 0.001)
        last_ts[0] = ts
        doc = {"metric_type": "WATER_LEVEL", "value": value, "ts": round(ts, 3), "unit": "%"}
        await pub.publish(level_topic, json.dumps(doc).encode())

    def state(want: bool):
        def match(topic, payload):
            d = json.loads(payload)
            return d.get("cmd") == "set_relay" and bool(d.get("params", {}).get("state")) is want

        return match

    out: list[float] = []
    db = await connect_once(url)
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {operator}"}) as http:
        await level(60.0)
        await asyncio.sleep(1.0)  # a tick with the level known: the pump runs
        for i in range(n):
            while not watch.items.empty():
                watch.items.get_nowait()
            t0 = time.perf_counter()
            await level(10.0)  # below levels.min (25 %): dry run
            t1, _, _ = await watch.next(state(False), timeout=10)
            out.append((t1 - t0) * 1000)
            # the level back, stored, then the operator's reset: the next tick starts the pump again
            for attempt in range(5):
                await level(60.0)
                await stored_level(db, last_ts[0])
                r = await http.post(f"/zones/{ZONE}/safety/reset", json={"reason": f"bench trial {i}"})
                r.raise_for_status()
                try:
                    await watch.next(state(True), timeout=2)
                    break
                except TimeoutError:
                    if attempt == 4:
                        raise
            if (i + 1) % 200 == 0:
                print(f"  {i + 1} trials, p50 {statistics.median(out):.2f} ms", flush=True)
    await db.close()
    await pub.disconnect()
    await watch.client.disconnect()
    return out


async def stored_level(db, ts: float, timeout: float = 5.0) -> None:
    """Until the service has stored the level sample of `ts` as the zone's latest."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        at = await db.fetchval(
            "SELECT max(extract(epoch FROM ts)) FROM telemetry_last WHERE metric_type = 'water_level'"
        )
        if at is not None and float(at) >= ts - 0.0005:
            return
        await asyncio.sleep(0.005)


async def daemon_means(port: int) -> dict:
    """Mean evaluation time and mean database time of the daemon, from its /metrics."""
    try:
        async with httpx.AsyncClient() as http:
            text = (await http.get(f"http://127.0.0.1:{port}/metrics", timeout=5)).text
    except httpx.HTTPError:
        return {}
    values = {}
    for line in text.splitlines():
        if line.startswith("hydro_daemon_") and " " in line and "{" not in line:
            name, _, value = line.partition(" ")
            values[name] = float(value)
    out = {}
    for label, metric in (("evaluation", "hydro_daemon_eval_seconds"), ("database", "hydro_daemon_db_latency_seconds")):
        n = values.get(f"{metric}_count")
        if n:
            out[label] = values[f"{metric}_sum"] / n
    return out


async def explain(url: str) -> None:
    """What the daemon decided last, when a trial waited in vain."""
    conn = await connect_once(url)
    try:
        rows = await conn.fetch("SELECT at, kind, summary FROM decisions ORDER BY id DESC LIMIT 15")
        for r in reversed(rows):
            print(f"  {r['at']:%H:%M:%S.%f} {r['kind']}: {r['summary']}", file=sys.stderr)
        rows = await conn.fetch("SELECT cmd_id, cmd, params, status FROM commands ORDER BY id DESC LIMIT 5")
        for r in reversed(rows):
            print(f"  {r['cmd_id']} {r['cmd']} {r['params']} {r['status']}", file=sys.stderr)
    finally:
        await conn.close()


async def main(args) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="hydro-bench-daemon-"))
    try:
        site = make_site(tmp / "site")
        rs = load_site(site)
        with ThrowawayMosquitto(extra=kit_broker()) as broker:
            base_ms = await baseline(broker.url, args.trials)
            async with bench_database(rs) as url:
                await register_nodes(url, rs)
                ctx, base = await serve(url, broker.url, site)
                try:
                    responder = await Responder(broker.url).start()
                    metrics_port = free_port()
                    env = daemon_env(url, broker.url, str(tmp / "queue"), tick_s=args.tick, metrics_port=metrics_port)
                    with process(["run", str(site)], env, "run"):
                        await wait_owned(url, 1)
                        try:
                            got = await trials(url, broker.url, base, args.trials)
                        except TimeoutError:
                            await explain(url)
                            raise
                        inside = await daemon_means(metrics_port)
                    await responder.client.disconnect()
                finally:
                    ctx.__exit__(None, None, None)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    p50, p99 = statistics.median(got), _pct(got, 0.99)
    b50, b99 = statistics.median(base_ms), _pct(base_ms, 0.99)
    print(f"bare MQTT round trip ({len(base_ms)}): p50 {b50:.2f} ms, p99 {b99:.2f} ms")
    if inside:
        print(
            "inside the daemon (its /metrics, means over every tick and fast-path evaluation): "
            + ", ".join(f"{k} {v * 1000:.2f} ms" for k, v in inside.items())
        )
    print(
        f"dry-reservoir sample -> pump-off command ({len(got)} trials): p50 {p50:.2f} ms, p99 {p99:.2f} ms, "
        f"max {max(got):.2f} ms; over the bare round trip: p50 +{p50 - b50:.2f} ms, p99 +{p99 - b99:.2f} ms "
        f"(goal p99 <= {GOAL_MS:g} ms)"
    )
    report("daemon_latency", p99, "ms", GOAL_MS, p99 <= GOAL_MS)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=1000)
    p.add_argument("--tick", type=float, default=0.05, help="the daemon's tick (s): how soon a reset is seen")
    run(main(p.parse_args()))
