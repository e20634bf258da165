"""`db sync`: greenhouses, zones, nodes and bindings come from the rule set; nobody writes SQL."""

import dataclasses

import pytest

from hydro_rules.store.sites import SyncError, sync

pytestmark = pytest.mark.anyio


async def test_sync_stores_the_site_and_its_bindings(db, site):
    async with db.acquire() as conn:
        zones = {r["uid"]: r for r in await conn.fetch("SELECT * FROM zones")}
        assert set(zones) == {"zn-1", "zn-2"}
        assert zones["zn-1"]["ruleset_version"] == site.ruleset_version
        assert zones["zn-1"]["settings"]["reservoir_l"] == 120.0
        channel = await conn.fetchrow(
            """SELECT n.uid, zc.channel_key, zc.kind FROM zone_channels zc JOIN nodes n ON n.id = zc.node_id
               JOIN zones z ON z.id = zc.zone_id WHERE z.uid = 'zn-1' AND zc.channel = 'dose_ph_down'"""
        )
        assert tuple(channel) == ("nd-dose-1", "pump_acid", "doser")
        metric = await conn.fetchval(
            """SELECT n.uid FROM zone_metrics zm JOIN nodes n ON n.id = zm.node_id JOIN zones z ON z.id = zm.zone_id
               WHERE z.uid = 'zn-2' AND zm.metric_type = 'temp_water'"""
        )
        assert metric == "nd-ec-2"


async def test_sync_is_idempotent_and_does_not_validate_unless_asked(db, site):
    async with db.acquire() as conn:
        await conn.execute("UPDATE nodes SET validated = false")
        again = await sync(conn, site)
        assert again.nodes_created == [] and again.nodes_moved == []
        assert await conn.fetchval("SELECT count(*) FROM nodes WHERE validated") == 0
        assert await conn.fetchval("SELECT count(*) FROM zones") == 2
        report = await sync(conn, site, validate=True)
        assert len(report.nodes_validated) == 14
        assert await conn.fetchval("SELECT count(*) FROM nodes WHERE NOT validated") == 0


async def test_a_node_moved_in_the_rule_set_moves_in_the_database(db, site):
    z1, z2 = site.zones
    moved_z1 = dataclasses.replace(z1, metric_nodes={**z1.metric_nodes, "ph": "nd-ph-2"})
    moved_z2 = dataclasses.replace(z2, metric_nodes={k: v for k, v in z2.metric_nodes.items() if k != "ph"})
    gh = dataclasses.replace(site.sites[0].greenhouses[0], zones=(moved_z1, moved_z2))
    rs = dataclasses.replace(site, sites=[dataclasses.replace(site.sites[0], greenhouses=(gh,))])
    async with db.acquire() as conn:
        report = await sync(conn, rs)
        assert "nd-ph-2" in report.nodes_moved
        assert (
            await conn.fetchval("SELECT z.uid FROM nodes n JOIN zones z ON z.id = n.zone_id WHERE n.uid = 'nd-ph-2'")
            == "zn-1"
        )


async def test_a_node_bound_in_two_zones_is_refused_before_anything_is_written(db, site):
    z1, z2 = site.zones
    twice = dataclasses.replace(z2, metric_nodes={**z2.metric_nodes, "ph": "nd-ph-1"})
    gh = dataclasses.replace(site.sites[0].greenhouses[0], zones=(z1, twice))
    rs = dataclasses.replace(site, sites=[dataclasses.replace(site.sites[0], greenhouses=(gh,))])
    async with db.acquire() as conn:
        with pytest.raises(SyncError, match="nd-ph-1"):
            await sync(conn, rs)
        with pytest.raises(SyncError, match="no site"):
            await sync(conn, site, ["nowhere"])
