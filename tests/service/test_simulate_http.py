"""POST /zones/{uid}/simulate: a dry run through the engine and the twin, answered as JSON (§4)."""

import pytest

from .conftest import auth

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
