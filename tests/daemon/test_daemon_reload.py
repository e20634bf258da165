"""Hot reload: a changed rule set is checked first; with errors the running one stays and an infra
alert, an event and the decision log say why; a clean one replaces it between ticks, zones keep their state."""

from __future__ import annotations

import pytest

from .conftest import eventually, site_copy, ticks

pytestmark = pytest.mark.anyio


async def test_a_broken_rule_file_is_refused_and_a_clean_change_swaps_the_version_keeping_states(plant, tmp_path):
    site = site_copy(tmp_path / "site")
    p = await plant(site_dir=site)
    d = await p.start_daemon()
    await ticks(d, 2)
    old = d.ruleset.ruleset_version
    before = {uid: (z.st.created_at, dict(z.st.machines), z.st.seq) for uid, z in d.zones.items()}
    assert before, "the daemon owns the zones"

    good = (site / "site.hydro").read_text()
    (site / "site.hydro").write_text(good + "\nguard bad { nonsense }\n")

    async def rejected():
        return [a for a in await p.alerts(None, "infra_ruleset_rejected", "ACTIVE") if a["zone_uid"] is None]

    alert = (await eventually(rejected, 10))[0]
    assert alert["source"] == "infra"
    assert any("site.hydro" in line for line in alert["details"]["diagnostics"])
    assert d.ruleset.ruleset_version == old, "the running rule set stays"
    event = await p.wait_event("zt-1", "RULESET_REJECTED")
    assert event["details"]["running"] == old
    rows = await p.decisions("zt-1", "ruleset")
    assert rows and rows[-1]["summary"].startswith(f"rule set change refused, {old} keeps running")
    n = d.ticks
    await ticks(d, 2)
    assert d.ticks >= n + 2, "control goes on"

    ok, problems = await d.reload()  # asked again (SIGHUP): refused again, with the diagnostics
    assert not ok and problems

    # a clean change: the fast zone's water changes wait a little longer
    profiles = (site / "profiles.hydro").read_text()
    assert "max_solution_age 5s" in profiles
    (site / "profiles.hydro").write_text(profiles.replace("max_solution_age 5s", "max_solution_age 6s"))
    (site / "site.hydro").write_text(good)

    async def swapped():
        return d.ruleset.ruleset_version != old

    await eventually(swapped, 10)
    new = d.ruleset.ruleset_version
    for uid, (created, machines, seq) in before.items():
        z = d.zones[uid]
        assert z.st.created_at == created and z.st.seq >= seq
        assert z.prog.version == new
        assert set(z.st.machines) == set(machines)
    assert d.zones["zt-1"].prog.S["water_cycle.water_change.max_solution_age"] == 6.0

    async def logged():
        rows = await p.decisions("zt-2", "ruleset")
        return [r for r in rows if r["summary"] == f"rule set {old} → {new}"]

    row = (await eventually(logged, 10))[0]
    assert row["ruleset_version"] == new and row["details"] == {"from": old, "to": new}

    async def resolved():
        return not await rejected()

    await eventually(resolved, 10)
    await ticks(d, 2)
    async with p.db.acquire() as conn:
        versions = {r["ruleset_version"] for r in await conn.fetch("SELECT ruleset_version FROM decisions")}
    assert new in versions
