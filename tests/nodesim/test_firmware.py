"""The firmware's checks of a command, against the protocol's HMAC vectors (no broker)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hydro_rules.nodesim import check_command

VECTORS = json.loads(
    (Path(__file__).resolve().parents[1] / "transport" / "hmac-vectors.json").read_text()
)  # the protocol's


@pytest.mark.parametrize("v", VECTORS, ids=[v["command"]["cmd_id"] for v in VECTORS])
def test_the_protocols_vectors_are_accepted_and_a_changed_one_is_not(v):
    sent = json.dumps({**v["command"], "sig": v["sig"]}).encode()
    ts = v["command"]["ts"]
    ok = check_command(sent, v["node_secret"], ts + 9.9, 10)
    assert ok.refusal is None and ok.command["cmd"] == v["command"]["cmd"]
    assert check_command(sent, v["node_secret"], ts + 10, 10).refusal == "timestamp_expired"
    assert check_command(sent, v["node_secret"], ts - 10, 10).refusal == "timestamp_expired"
    assert check_command(sent, v["node_secret"] + "x", ts, 10).refusal == "invalid_signature"
    assert check_command(sent, None, ts, 10).refusal == "invalid_signature"
    changed = json.dumps({**v["command"], "cmd_id": "other", "sig": v["sig"]}).encode()
    assert check_command(changed, v["node_secret"], ts, 10).refusal == "invalid_signature"


@pytest.mark.parametrize(
    ("doc", "code"),
    [
        ({"cmd": "x", "params": {}, "ts": 1, "sig": "0" * 64}, "invalid_command_format"),
        ({"cmd_id": "a", "params": {}, "ts": 1, "sig": "0" * 64}, "invalid_command_format"),
        ({"cmd_id": "a", "cmd": "x", "params": [], "ts": 1, "sig": "0" * 64}, "invalid_command_format"),
        ({"cmd_id": "a", "cmd": "x", "params": {}, "sig": "0" * 64}, "invalid_hmac_format"),
        ({"cmd_id": "a", "cmd": "x", "params": {}, "ts": 1.5, "sig": "0" * 64}, "invalid_hmac_format"),
        ({"cmd_id": "a", "cmd": "x", "params": {}, "ts": "1", "sig": "0" * 64}, "invalid_hmac_format"),
        ({"cmd_id": "a", "cmd": "x", "params": {}, "ts": 1}, "invalid_hmac_format"),
        ({"cmd_id": "a", "cmd": "x", "params": {}, "ts": 1, "sig": "0" * 63}, "invalid_hmac_format"),
        ({"cmd_id": "a", "cmd": "x", "params": {}, "ts": 1, "sig": "A" * 64}, "invalid_hmac_format"),
    ],
)
def test_malformed_commands_are_refused_with_the_firmwares_code(doc, code):
    got = check_command(json.dumps(doc).encode(), "secret", 1, 10)
    assert got.refusal == code and got.cmd_id == doc.get("cmd_id", "unknown")


def test_a_payload_that_is_not_an_object_is_answered_under_unknown():
    for raw in (b"nope", b"[1]", b"\xff"):
        got = check_command(raw, "secret", 1, 10)
        assert (got.cmd_id, got.refusal) == ("unknown", "invalid_command_format")
