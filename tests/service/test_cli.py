"""The service's subcommands: db migrate/status/sync, token, aggregate, and serve as installed."""

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from hydro_rules.cli import main
from hydro_rules.service.devservers import free_port
from hydro_rules.store import connect_once

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"


async def _fetch(url, sql):
    conn = await connect_once(url)
    try:
        return await conn.fetch(sql)
    finally:
        await conn.close()


def test_db_migrate_status_and_sync(fresh_database, capsys):
    url = fresh_database()
    assert main(["db", "status", "--database-url", url]) == 1  # pending
    assert main(["db", "migrate", "--database-url", url]) == 0
    assert "applied 0001_initial" in capsys.readouterr().out
    assert main(["db", "migrate", "--database-url", url]) == 0
    assert "already up to date" in capsys.readouterr().out
    assert main(["db", "status", "--database-url", url]) == 0
    assert main(["db", "sync", str(EXAMPLES), "--database-url", url]) == 0
    out = capsys.readouterr().out
    assert "2 zone(s)" in out and "nd-ph-1" in out and "not validated" in out
    zones = asyncio.run(_fetch(url, "SELECT uid FROM zones ORDER BY uid"))
    assert [z["uid"] for z in zones] == ["zn-1", "zn-2"]
    assert main(["db", "sync", str(EXAMPLES), "--validate", "--database-url", url]) == 0
    assert asyncio.run(_fetch(url, "SELECT bool_and(validated) v FROM nodes"))[0]["v"]
    assert main(["db", "migrate", "--database-url", "postgresql://postgres@127.0.0.1:1/nothing"]) == 1


def test_token_create_prints_only_the_token_on_stdout(database_url, capsys):
    assert (
        main(
            [
                "token",
                "create",
                "--scope",
                "ingest",
                "--scope",
                "read",
                "--name",
                "gateway",
                "--database-url",
                database_url,
            ]
        )
        == 0
    )
    captured = capsys.readouterr()
    token = captured.out.strip()
    assert token.startswith("hr_") and "\n" not in token
    assert "gateway" in captured.err
    assert main(["token", "list", "--database-url", database_url]) == 0
    assert "gateway" in capsys.readouterr().out
    assert main(["token", "revoke", token[3:15], "--database-url", database_url]) == 0
    with pytest.raises(SystemExit):
        main(["token", "create", "--scope", "admin", "--database-url", database_url])


def test_aggregate_once_folds_closed_minutes_into_buckets(site_database, capsys):
    """Samples of the hour before last (closed buckets): one pass makes their 1m, 1h and daily rows."""
    from hydro_rules.lang.loader import load
    from hydro_rules.service.config import Settings
    from hydro_rules.service.ingest import IngestCore, Sample
    from hydro_rules.store import Database

    t0 = (int(time.time()) // 3600) * 3600 - 3600

    async def seed():
        db = await Database.connect(site_database, max_size=2)
        try:
            core = IngestCore(db, load(EXAMPLES).ruleset, Settings(database_url=site_database, mqtt_url=None))
            values = ((t0 + 5, 6.0), (t0 + 35, 7.0), (t0 + 65, 6.5))
            r = await core.ingest([Sample("nd-ph-1", "PH", v, ts) for ts, v in values])
            assert r.counts["accepted"] == 3
            async with db.acquire() as conn:  # received a minute ago: past the pass's settling second
                await conn.execute("UPDATE telemetry_samples SET received_at = received_at - interval '1 minute'")
        finally:
            await db.close()

    asyncio.run(seed())
    assert main(["aggregate", "--site", str(EXAMPLES), "--database-url", site_database]) == 0
    assert "aggregated 2 1m, 1 1h, 1 daily bucket(s)" in capsys.readouterr().out
    rows = asyncio.run(_fetch(site_database, "SELECT min, max, count FROM telemetry_agg_1m ORDER BY bucket"))
    assert [tuple(r) for r in rows] == [(6.0, 7.0, 2), (6.5, 6.5, 1)]
    [hour] = asyncio.run(_fetch(site_database, "SELECT min, max, count FROM telemetry_agg_1h"))
    assert tuple(hour) == (6.0, 7.0, 3)


def test_aggregate_every_passes_the_configured_settings_to_the_loop(site_database, monkeypatch):
    from hydro_rules.service import aggregator

    seen = {}

    async def loop(db, rs, every_s, **kw):  # returns at once instead of running forever
        seen.update(kw, every_s=every_s)

    monkeypatch.setattr(aggregator, "loop", loop)
    monkeypatch.setenv("HYDRO_WATER_GRACE_S", "7")
    monkeypatch.setenv("HYDRO_MAX_SAMPLE_AGE_S", "86400")
    assert main(["aggregate", "--every", "5", "--database-url", site_database]) == 0
    assert seen["every_s"] == 5 and seen["water_grace_s"] == 7 and seen["max_sample_age_s"] == 86400


def test_serve_runs_the_service(site_database):
    port = free_port()
    env = {**os.environ, "HYDRO_DATABASE_URL": site_database}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from hydro_rules.cli import main; sys.exit(main())",
            "serve",
            "--site",
            str(EXAMPLES),
            "--port",
            str(port),
            "--no-mqtt",
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        health = None
        while time.monotonic() < deadline:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
                if health.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        assert health is not None and health.json()["status"] == "ok", proc.stdout.read() if proc.poll() else health
        assert httpx.post(f"http://127.0.0.1:{port}/ingest/telemetry", json={"samples": []}).status_code == 401
    finally:
        proc.terminate()
        proc.wait(10)


def test_serve_aggregates_periodically(site_database):
    """Inside `serve`, the aggregator runs every aggregate_every_s seconds."""
    from hydro_rules.lang.loader import load
    from hydro_rules.service.app import Service
    from hydro_rules.service.ingest import Sample

    from .conftest import make_settings

    async def go():
        settings = make_settings(site_database, None).model_copy(update={"aggregate_every_s": 0.2})
        svc = Service(settings, load(EXAMPLES).ruleset)
        await svc.start()
        try:
            await svc.wait_ready(10)
            await svc.core.ingest([Sample("nd-ph-1", "PH", 6.0, time.time() - 120)])
            for _ in range(50):
                rows = await _fetch(site_database, "SELECT count(*) n FROM telemetry_agg_1m")
                if rows[0]["n"]:
                    return True
                await asyncio.sleep(0.1)
            return False
        finally:
            await svc.stop()

    assert asyncio.run(go())
