"""`db sync`: greenhouses, zones, nodes and their bindings from a rule set's sites.

The rule set is the source of truth for where things are: a node bound to a
zone in the rule set is moved there. Sync never validates a node unless asked
(validation is the technician's registration, §6.2) and never deletes history:
zones and nodes gone from the rule set stay, unbound.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import asyncpg

from ..lang.model import RuleSet, Zone


class SyncError(Exception):
    """The rule set's sites cannot be stored as they are (e.g. one node bound in two zones)."""


@dataclass
class SyncReport:
    greenhouses: int = 0
    zones: int = 0
    nodes_created: list[str] = field(default_factory=list)
    nodes_moved: list[str] = field(default_factory=list)
    nodes_validated: list[str] = field(default_factory=list)


def _node_zones(rs: RuleSet, site_uids: set[str]) -> dict[str, Zone]:
    owner: dict[str, Zone] = {}
    for site in rs.sites:
        if site.uid not in site_uids:
            continue
        for zone in site.zones:
            for node_uid in zone.nodes:
                if node_uid in owner and owner[node_uid].uid != zone.uid:
                    raise SyncError(f"node {node_uid} is bound in two zones: {owner[node_uid].uid} and {zone.uid}")
                owner[node_uid] = zone
    return owner


def zone_settings(rs: RuleSet, zone: Zone) -> dict:
    """What the rule set says of a zone, as JSON for readers of the zones table."""
    profile = rs.profiles.get(zone.profile)
    return {
        "profile": zone.profile,
        "recipe": zone.recipe,
        "planted": zone.planted.isoformat() if zone.planted else None,
        "reservoir_l": zone.reservoir_l,
        "profile_settings": dict(profile.settings) if profile else {},
        "zone_settings": dict(zone.settings),
    }


async def sync(
    conn: asyncpg.Connection, rs: RuleSet, site_uids: list[str] | None = None, *, validate: bool = False
) -> SyncReport:
    """Store the rule set's sites (all, or those named) in one transaction."""
    wanted = {s.uid for s in rs.sites} if site_uids is None else set(site_uids)
    unknown = wanted - {s.uid for s in rs.sites}
    if unknown:
        raise SyncError(f"the rule set has no site {', '.join(sorted(unknown))}")
    owner = _node_zones(rs, wanted)
    report = SyncReport()
    version = rs.ruleset_version
    async with conn.transaction():
        zone_ids: dict[str, int] = {}
        for site in rs.sites:
            if site.uid not in wanted:
                continue
            for gh in site.greenhouses:
                gh_id = await conn.fetchval(
                    """INSERT INTO greenhouses (uid, site_uid, title) VALUES ($1, $2, $3)
                       ON CONFLICT (uid) DO UPDATE SET site_uid = EXCLUDED.site_uid, title = EXCLUDED.title,
                           updated_at = now()
                       RETURNING id""",
                    gh.uid,
                    site.uid,
                    gh.title,
                )
                report.greenhouses += 1
                for zone in gh.zones:
                    zone_ids[zone.uid] = await conn.fetchval(
                        """INSERT INTO zones (uid, greenhouse_id, title, timezone, profile, recipe, settings,
                                              ruleset_version)
                           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                           ON CONFLICT (uid) DO UPDATE SET greenhouse_id = EXCLUDED.greenhouse_id,
                               title = EXCLUDED.title, timezone = EXCLUDED.timezone, profile = EXCLUDED.profile,
                               recipe = EXCLUDED.recipe, settings = EXCLUDED.settings,
                               ruleset_version = EXCLUDED.ruleset_version, updated_at = now()
                           RETURNING id""",
                        zone.uid,
                        gh_id,
                        zone.title,
                        zone.timezone or site.timezone or "UTC",
                        zone.profile,
                        zone.recipe,
                        zone_settings(rs, zone),
                        version,
                    )
                    report.zones += 1
        node_ids: dict[str, int] = {}
        for node_uid, zone in sorted(owner.items()):
            row = await conn.fetchrow(
                """WITH old AS (SELECT zone_id FROM nodes WHERE uid = $1)
                   INSERT INTO nodes (uid, zone_id, validated) VALUES ($1, $2, $3)
                   ON CONFLICT (uid) DO UPDATE SET zone_id = EXCLUDED.zone_id,
                       validated = nodes.validated OR EXCLUDED.validated, updated_at = now()
                   RETURNING id, (SELECT zone_id FROM old) AS old_zone, (xmax = 0) AS created,
                             validated""",
                node_uid,
                zone_ids[zone.uid],
                validate,
            )
            node_ids[node_uid] = row["id"]
            if row["created"]:
                report.nodes_created.append(node_uid)
            elif row["old_zone"] != zone_ids[zone.uid]:
                report.nodes_moved.append(node_uid)
            if validate:
                report.nodes_validated.append(node_uid)
        for zone_uid, zone_id in zone_ids.items():
            zone = rs.zone(zone_uid)
            await conn.execute("DELETE FROM zone_channels WHERE zone_id = $1", zone_id)
            await conn.execute("DELETE FROM zone_metrics WHERE zone_id = $1", zone_id)
            await conn.executemany(
                "INSERT INTO zone_channels (zone_id, channel, kind, node_id, channel_key) VALUES ($1, $2, $3, $4, $5)",
                [
                    (
                        zone_id,
                        name,
                        rs.channels[name].kind if name in rs.channels else "",
                        node_ids[b.node_uid],
                        b.channel_key,
                    )
                    for name, b in sorted(zone.channels.items())
                ],
            )
            await conn.executemany(
                "INSERT INTO zone_metrics (zone_id, metric_type, node_id) VALUES ($1, $2, $3)",
                [(zone_id, metric, node_ids[uid]) for metric, uid in sorted(zone.metric_nodes.items())],
            )
    return report
