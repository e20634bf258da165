"""GET /zones/{uid}/decisions: the daemon's decision log through the API, oldest first, narrowed by the query."""

from datetime import UTC, datetime, timedelta

import pytest

from hydro_rules.store import decisions as D

from .conftest import auth

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)
RULE = "state WATER_CHANGE_FILL (rules/water_cycle.hydro:41)"


async def _seed(db):
    async with db.acquire() as conn:
        zid = {r["uid"]: r["id"] for r in await conn.fetch("SELECT uid, id FROM zones")}

        def row(zone, minute, kind, summary, channel=None, **kw):
            return D.DecisionRow(
                zid[zone], T0 + timedelta(minutes=minute), kind, "rs@7", summary, channel=channel, **kw
            )

        await D.add_many(
            conn,
            [
                row(
                    "zn-1",
                    12.07,
                    "command",
                    "pump_drain set_relay state=false",
                    "pump_drain",
                    rule=RULE,
                    details={"values": {"water_level": 0.12}},
                    daemon_id="host-1",
                ),
                row("zn-1", 12, "transition", "WATER_CHANGE_DRAIN -> WATER_CHANGE_FILL", rule=RULE),
                row("zn-1", 1, "command", "pump_recirc set_relay state=false", "pump_recirc"),
                row("zn-1", 30, "alert_raised", "biz_dry_run on pump_drain", "pump_drain"),
                row("zn-2", 12, "command", "pump_drain of zn-2", "pump_drain"),
            ],
        )


async def test_the_log_in_the_contract_shape_oldest_first(db, http, tokens):
    await _seed(db)
    r = await http.get("/zones/zn-1/decisions", headers=auth(tokens["read"]))
    assert r.status_code == 200
    body = r.json()
    assert body["zone_uid"] == "zn-1"
    assert [d["summary"] for d in body["decisions"]] == [
        "pump_recirc set_relay state=false",
        "WATER_CHANGE_DRAIN -> WATER_CHANGE_FILL",
        "pump_drain set_relay state=false",
        "biz_dry_run on pump_drain",
    ]
    assert body["decisions"][2] == {
        "at": (T0 + timedelta(minutes=12.07)).isoformat(),
        "kind": "command",
        "ruleset_version": "rs@7",
        "rule": RULE,
        "channel": "pump_drain",
        "summary": "pump_drain set_relay state=false",
        "details": {"values": {"water_level": 0.12}},
        "daemon_id": "host-1",
    }


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("since=2026-11-27T03:10:00Z&until=2026-11-27T03:20:00Z", ["WATER_CHANGE_DRAIN", "pump_drain set_relay"]),
        (f"since={(T0 + timedelta(minutes=12)).timestamp()}", ["WATER_CHANGE_DRAIN", "pump_drain set_relay", "biz"]),
        ("kind=transition", ["WATER_CHANGE_DRAIN"]),
        ("channel=pump_drain", ["pump_drain set_relay", "biz"]),
        ("channel=pump_drain&kind=command", ["pump_drain set_relay"]),
        ("limit=2", ["pump_drain set_relay", "biz"]),  # without since: the newest two
        ("since=2026-11-27T03:00:00Z&limit=2", ["pump_recirc", "WATER_CHANGE_DRAIN"]),
    ],
)
async def test_filters(db, http, tokens, query, expected):
    await _seed(db)
    r = await http.get(f"/zones/zn-1/decisions?{query}", headers=auth(tokens["read"]))
    assert r.status_code == 200, r.text
    summaries = [d["summary"] for d in r.json()["decisions"]]
    assert len(summaries) == len(expected) and all(s.startswith(e) for s, e in zip(summaries, expected, strict=True))


async def test_refusals(db, http, tokens):
    h = auth(tokens["read"])
    r = await http.get("/zones/zn-9/decisions", headers=h)
    assert r.status_code == 404 and r.json()["error"] == "unknown_zone"
    assert (await http.get("/zones/zn-1/decisions")).status_code == 401
    for bad in ("kind=nonsense", "since=yesterday-ish", "limit=0"):
        r = await http.get(f"/zones/zn-1/decisions?{bad}", headers=h)
        assert r.status_code == 422, bad
        assert r.json()["detail"][0]["loc"][0] == "query"


async def test_listed_in_openapi(http):
    spec = (await http.get("/openapi.json")).json()
    op = spec["paths"]["/zones/{uid}/decisions"]["get"]
    assert op["security"] == [{"bearer": ["read"]}]
    assert {p["name"] for p in op["parameters"]} == {"uid", "since", "until", "kind", "channel", "limit"}
    assert {"200", "401", "404"} <= set(op["responses"])
