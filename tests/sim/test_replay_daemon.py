"""Done when (issue 11): a replay of what a run through the service stored reproduces the decisions made
there. The site daemon drives a water change on simulated nodes over a real broker, the service stores
telemetry and answers in PostgreSQL; `hydro-rules export` writes the zone's recording, and the replay of
it agrees with the daemon's decision log: the same transitions, commands and alerts, each within the
tolerance (two daemon ticks)."""

import asyncio
import json

import pytest

# the daemon's end-to-end fixtures (real PostgreSQL, Mosquitto, service, daemon, simulated nodes)
from daemon.conftest import _no_retained_left, load_site, plant, site_copy, site_db, test_site, ticks  # noqa: F401

from hydro_rules.cli import main
from hydro_rules.sim.recording import iso_time, read_csv
from hydro_rules.sim.replay import replay
from hydro_rules.sim.times import parse_time

pytestmark = pytest.mark.anyio


async def test_a_replay_of_a_daemon_run_reproduces_its_decision_log(plant, tmp_path, capsys):  # noqa: F811
    site = site_copy(tmp_path / "site")  # the test site, its solution due for a change 1 s after the start
    profiles = site / "profiles.hydro"
    profiles.write_text(profiles.read_text().replace("max_solution_age 5s", "max_solution_age 1s"))
    p = await plant(site_dir=site, ruleset=load_site(site))
    await p.start_service()
    start = p.clock()
    await p.start_sim(["zt-1"])
    d = await p.start_daemon()
    await p.wait_state("zt-1", "WATER_CHANGE_STABILIZE", timeout=30)  # drained and filled
    await ticks(d, 4)  # past the tolerance: the last transition is judged too
    end = p.clock()  # the window ends here; what comes later is not the replay's

    csv = tmp_path / "zt-1.csv"
    argv = ["export", str(site), "--zone", "zt-1", "--from", iso_time(start), "--to", iso_time(end)]
    argv += ["--database", p.database_url, "-o", str(csv)]
    assert await asyncio.to_thread(main, argv) == 0
    rec = read_csv(csv)
    log = [x for x in rec.decisions if x.kind in ("transition", "command", "alert_raised", "alert_resolved")]
    assert rec.samples and rec.commands and log

    r = replay(p.ruleset, rec)
    assert r.recorded_side == "decision log"
    assert r.stopped_at is None, r.stopped_at
    assert r.disagreements == [], r.disagreements
    z = r.zone_run

    # a decision this close to the end may have its match past it; the replay's JSON times are whole seconds
    edge = r.end - r.tolerance_s - 1.0

    def near(replayed: list, recorded: list) -> None:
        replayed, recorded = [x for x in replayed if x[0] <= edge], [x for x in recorded if x[0] <= edge]
        assert [k for _, k in replayed] == [k for _, k in recorded]
        assert all(abs(a - b) <= r.tolerance_s + 1.0 for (a, _), (b, _) in zip(replayed, recorded))

    steps = [(x.at, (x.details["from"], x.details["to"])) for x in log if x.kind == "transition"]
    near([(parse_time(t["at"]), (t["from"], t["to"])) for t in z.transitions], steps)
    drained_filled = ["WATER_CHANGE_DRAIN", "WATER_CHANGE_FILL", "WATER_CHANGE_STABILIZE"]
    assert [k[1] for t, k in steps if t <= edge][:3] == drained_filled
    replayed_commands = sorted((parse_time(c["at"]), (c["channel"], c["cmd"])) for c in z.commands)
    recorded_commands = sorted((x.at, (x.channel, x.details["cmd"])) for x in log if x.kind == "command")
    near(replayed_commands, recorded_commands)
    near(
        [(parse_time(a["raised_at"]), a["code"]) for a in z.alerts],
        [(x.at, x.details["code"]) for x in log if x.kind == "alert_raised"],
    )
    assert {"pump_drain", "pump_fill"} <= {c["channel"] for c in z.commands}

    # the command line says the same: agreement, exit 0
    capsys.readouterr()
    assert await asyncio.to_thread(main, ["replay", str(site), "--csv", str(csv), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["agrees"] and doc["open_loop"] and doc["zone"] == "zt-1"
