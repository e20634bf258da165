"""The database goes away under a running daemon: control goes on from memory, commands are still
published (with the node secrets it kept), every write waits in the journal, and appears in the
database, in order and once, when it is back."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from hydro_rules.service.devservers import ThrowawayPostgres, postgres_available
from hydro_rules.store import connect_once
from hydro_rules.store import telemetry as telemetry_store
from hydro_rules.store.migrate import migrate
from hydro_rules.store.sites import sync

from .conftest import SITE, Plant, eventually, register_nodes, ticks

pytestmark = pytest.mark.anyio


async def _prepared(dsn: str, ruleset) -> None:
    conn = await connect_once(dsn)
    try:
        await migrate(conn)
        await sync(conn, ruleset)
        await register_nodes(conn, ruleset)  # as a technician does: each node gets its command secret
        # zt-2 is full and its pumps are heard from: its recirculation pump runs, nothing to say
        nodes = {r["uid"]: r["id"] for r in await conn.fetch("SELECT uid, id FROM nodes")}
        zone_id = await conn.fetchval("SELECT id FROM zones WHERE uid = 'zt-2'")
        at = datetime.fromtimestamp(time.time(), UTC)
        z = ruleset.zone("zt-2")
        rows = [(at, zone_id, nodes[z.metric_nodes["water_level"]], "water_level", 60.0, None, None, False)]
        rows += [
            (at, zone_id, nodes[b.node_uid], m, 0.0, None, None, False)
            for name, b in z.channels.items()
            if ruleset.channels[name].kind == "pump"
            for m in ("pump_current", "flow_rate")
        ]
        await telemetry_store.upsert_last(conn, rows)
    finally:
        await conn.close()


@pytest.mark.skipif(not postgres_available(), reason="needs the PostgreSQL server binaries")
async def test_while_the_database_is_down_commands_go_out_and_their_records_wait_in_the_journal(
    mqtt_url, test_site, tmp_path
):
    with ThrowawayPostgres() as pg:
        await _prepared(pg.dsn, test_site)
        p = await Plant(pg.dsn, mqtt_url, test_site, SITE, tmp_path).open()
        try:
            d = await p.start_daemon(db_down_alert_s=1)
            await ticks(d, 2)
            assert d.db_ok and "zt-2" in d.zones
            assert d.zones["zt-2"].st.channels["pump_recirc"].is_on

            await p.db.close()
            pg.stop()
            since = time.time()
            # minutes pass without news: zt-2's level is no longer known, so its guard stops the pump
            p.clock.jump(200)
            off = await p.spy.wait_command("zt-2", "pump_recirc", state=False, since=since, timeout=15)
            assert not d.db_ok
            assert d.journal.pending() > 0, "the command's record waits on local disk"
            pending = d.journal.pending()
            await ticks(d, 2)
            assert d.ticks > 0 and d.journal.pending() >= pending

            pg.start()

            async def written():
                return d.db_ok and d.journal.pending() == 0

            await eventually(written, 20)
            from hydro_rules.store import Database

            p.db = await Database.connect(pg.dsn, max_size=2)
            rows = {c["cmd_id"]: c for c in await p.commands("zt-2")}
            row = rows[off.doc["cmd_id"]]
            assert row["status"] == "sent" and row["sent_at"] is not None and row["source"] == "engine"
            refusals = await p.decisions("zt-2", "refusal")
            assert any(r["channel"] == "pump_recirc" and "unknown" in r["summary"] for r in refusals)
            commands = await p.decisions("zt-2", "command")
            assert [c["details"]["cmd_id"] for c in commands].count(off.doc["cmd_id"]) == 1

            # the database-down alert was raised and resolved through the same path
            async def db_alert():
                return [a["status"] for a in await p.alerts(None, "infra_db_unreachable") if a["zone_uid"] is None]

            async def resolved():
                return await db_alert() == ["RESOLVED"]

            await eventually(resolved, 10)
            async with p.db.acquire() as conn:
                state = await conn.fetchval("SELECT engine_state FROM zones WHERE uid = 'zt-2'")
            assert state["channels"]["pump_recirc"]["is_on"] is False
        finally:
            await p.close()
