"""The daemon's heartbeat row, its metrics and a clean stop, as others see them."""

from __future__ import annotations

import pytest

from hydro_rules.store import daemons as daemon_store

from .conftest import eventually, ticks
from .test_daemon_core import put_pump_readings, put_readings

pytestmark = pytest.mark.anyio


async def test_the_daemon_beats_with_its_zones_counts_its_work_and_says_when_it_stopped(plant):
    p = await plant()
    await put_readings(p, "zt-2", water_level=10.0, ph=6.0, ec=1.5, temp_water=21.0)
    await put_pump_readings(p, "zt-2")
    d = await p.start_daemon()
    await ticks(d, 3)

    async def beating():
        async with p.db.acquire() as conn:
            rows = await conn.fetch("SELECT * FROM daemons WHERE daemon_id = $1", d.daemon_id)
        return rows and rows[0]["stopped_at"] is None and sorted(rows[0]["zones"]) == sorted(d.zones) and rows[0]

    row = await eventually(beating, 5)
    assert row["ruleset_version"] == d.ruleset.ruleset_version and row["pid"]
    first = row["beat_at"]

    async def beat_again():
        async with p.db.acquire() as conn:
            return await conn.fetchval("SELECT beat_at FROM daemons WHERE daemon_id = $1", d.daemon_id) > first

    await eventually(beat_again, 5)

    text = d.metrics.render().decode()

    def value(name: str, **labels) -> float:
        want = name + ("{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}" if labels else "")
        line = next(x for x in text.splitlines() if x.startswith(want + " "))
        return float(line.split()[-1])

    assert value("hydro_daemon_ticks_total") >= 3
    assert value("hydro_daemon_zones_owned") == len(d.zones)
    assert value("hydro_daemon_decisions_total", kind="alert_raised") >= 1  # zt-2 runs dry
    assert value("hydro_daemon_decisions_total", kind="command") >= 1
    assert value("hydro_daemon_commands_total", status="sent") >= 1
    assert value("hydro_daemon_active_alerts") >= 1
    assert value("hydro_daemon_mqtt_connected") == 1

    await p.stop_daemon(d)
    async with p.db.acquire() as conn:
        row = await conn.fetchrow("SELECT * FROM daemons WHERE daemon_id = $1", d.daemon_id)
        assert row["stopped_at"] is not None
        assert d.daemon_id not in {x["daemon_id"] for x in await daemon_store.alive(conn, row["beat_at"], 60)}
        assert not await daemon_store.locked_zones(conn, [z.uid for z in p.ruleset.zones]), "its zones are free"
