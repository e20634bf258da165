"""POST /zones/{uid}/simulate: a dry run through the engine and the twin, answered as JSON (§4)."""

import pytest

from .conftest import auth, client_for, make_settings, start_service

pytestmark = pytest.mark.anyio


async def test_simulate_checks_the_request(http, tokens):
    h = auth(tokens["read"])
    assert (await http.post("/zones/zn-9/simulate", json={"days": 1}, headers=h)).status_code == 404
    r = await http.post("/zones/zn-1/simulate", json={"days": 10_000}, headers=h)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["days"]
    r = await http.post("/zones/zn-1/simulate", json={"days": -1}, headers=h)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["days"]


async def test_simulate_runs_a_dry_run_with_faults(http, tokens, site):
    h = auth(tokens["read"])
    body = {"days": 1, "tick_s": 60, "seed": 1, "faults": ["overcurrent@2h:pump_recirc"]}
    r = await http.post("/zones/zn-1/simulate", json=body, headers=h)
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["ruleset_version"] == site.ruleset_version and doc["faults"] == body["faults"]
    [zone] = doc["zones"]
    assert zone["zone"] == "zn-1" and zone["summary"]["alerts_by_code"] == {"biz_overcurrent": 1}
    r = await http.post("/zones/zn-1/simulate", json={"days": 1, "faults": ["nonsense@1d"]}, headers=h)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["faults"]
    r = await http.post("/zones/zn-1/simulate", json={"days": 1, "start": "yesterday"}, headers=h)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["start"]


async def test_simulate_is_capped_in_engine_ticks(http, tokens, database_url, site):
    """days x 86400 / tick_s at most `simulate_max_ticks`: the default refuses 100 days at 60 s ticks;
    at a cap of 1440 one day at 60 s runs and one tick more is refused, naming the field and the limit."""
    h = auth(tokens["read"])
    r = await http.post("/zones/zn-1/simulate", json={"days": 100, "tick_s": 60}, headers=h)
    assert r.status_code == 422, r.text
    [problem] = r.json()["detail"]
    assert problem["loc"] == ["days"] and "at most 100000 engine ticks" in problem["msg"]
    assert "144000" in r.json()["message"]

    svc = await start_service(make_settings(database_url, None, simulate_max_ticks=1440), site)
    try:
        async with client_for(svc) as capped:
            at_cap = await capped.post("/zones/zn-1/simulate", json={"days": 1, "tick_s": 60}, headers=h)
            assert at_cap.status_code == 200, at_cap.text
            [zone] = at_cap.json()["zones"]
            assert zone["zone"] == "zn-1"
            over = await capped.post("/zones/zn-1/simulate", json={"days": 1441 * 60 / 86400, "tick_s": 60}, headers=h)
            assert over.status_code == 422
            assert over.json()["detail"][0]["loc"] == ["days"] and "at most 1440 engine ticks" in over.json()["message"]
            assert "this asks for 1441" in over.json()["message"] and "days 1 at most" in over.json()["message"]
    finally:
        await svc.stop()
