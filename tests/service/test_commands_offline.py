"""Without a broker a command is not left in an unknown state: it is refused with 503 and recorded failed."""

import pytest

from .conftest import auth

pytestmark = pytest.mark.anyio


async def test_no_broker_means_503_and_a_failed_command(http, tokens, db):
    await http.post("/nodes/register", headers=auth(tokens["operator"]), json={"node_uid": "nd-pump-1"})
    r = await http.post(
        "/commands",
        headers=auth(tokens["operator"]),
        json={"zone_uid": "zn-1", "channel": "pump_recirc", "cmd": "set_relay", "params": {"state": False}},
    )
    assert r.status_code == 503 and r.json()["error"] == "mqtt_unavailable"
    cmd = (await http.get(f"/commands/{r.json()['cmd_id']}", headers=auth(tokens["read"]))).json()
    assert cmd["status"] == "failed" and cmd["error_code"] == "mqtt_unavailable"
