"""End to end (issue 9, item 12): a rule set with an error pushed during a run is refused while the old one
keeps running; a clean one then replaces it between ticks."""

import time

import pytest

from .conftest import load_site, site_copy, ticks

pytestmark = pytest.mark.anyio


BROKEN = """hydro 1.1
alert biz_site_extra {
  source biz
  severity warning
  text "an alert on a metric nobody defined"
  when no_such_metric > 3 for 1m
}
"""

CLEAN = """hydro 1.1
alert biz_site_extra {
  source biz
  severity warning
  text "warm solution"
  when temp_water > 40 °C for 1m
}
"""


async def test_a_broken_rule_set_is_refused_and_the_old_one_keeps_running(plant, tmp_path):
    site = site_copy(tmp_path / "site")
    p = await plant(site_dir=site, ruleset=load_site(site))
    await p.start_service()
    sim = await p.start_sim(["zt-2"])
    d = await p.start_daemon()
    await ticks(d, 2)
    old = d.ruleset.ruleset_version

    (site / "extra.hydro").write_text(BROKEN)  # the daemon polls its rule files
    rejected = await p.wait_event("zt-2", "RULESET_REJECTED", timeout=15)
    assert "no_such_metric" in str(rejected["details"])
    await p.wait_alert(None, "infra_ruleset_rejected", timeout=10)
    assert d.ruleset.ruleset_version == old
    ok, problems = await d.reload()  # SIGHUP does the same
    assert not ok and problems

    # the old rules still control the zone: a dry reservoir still stops its pump
    since = time.time()
    sim.inject("dry_reservoir@0:rate=120L/min", "zt-2")
    await p.spy.wait_command("zt-2", "pump_recirc", state=False, since=since, timeout=20)
    await p.wait_alert("zt-2", "biz_dry_run", "pump_recirc")

    # a clean one replaces it between ticks, keeping the zone's state and its lock
    (site / "extra.hydro").write_text(CLEAN)

    async def reloaded():
        return [x for x in await p.decisions("zt-2", kind="ruleset") if f"{old} →" in x["summary"]]

    from .conftest import eventually

    change = (await eventually(reloaded, timeout=15))[-1]
    assert d.ruleset.ruleset_version != old and d.ruleset.ruleset_version in change["summary"]
    assert "biz_site_extra" in d.ruleset.alerts
    await ticks(d, 2)
    still = await p.alerts("zt-2", "biz_dry_run", "ACTIVE")
    assert still, "the lock survives the reload"
    await p.wait_alert(None, "infra_ruleset_rejected", status="RESOLVED", timeout=10)
