"""Commands are signed exactly as nodes check them (node-mqtt-protocol.md, hmac-vectors.json)."""

import json
from pathlib import Path

import pytest

from hydro_rules.transport import payloads, signing

VECTORS = json.loads((Path(__file__).parent / "hmac-vectors.json").read_text())


@pytest.mark.parametrize("vector", VECTORS, ids=[v["command"]["cmd_id"] for v in VECTORS])
def test_protocol_vectors_reproduce_exactly(vector):
    assert signing.canonical_json(vector["command"]).decode() == vector["canonical_json"]
    assert signing.sign(vector["node_secret"], vector["command"]) == vector["sig"]


@pytest.mark.parametrize("vector", VECTORS[:1])
def test_a_signed_command_verifies_and_a_tampered_one_does_not(vector):
    cmd = signing.signed(vector["node_secret"], vector["command"])
    assert cmd["sig"] == vector["sig"]
    assert signing.verify(vector["node_secret"], cmd)
    assert not signing.verify(vector["node_secret"], {**cmd, "params": {"duration_ms": 250000}})
    assert not signing.verify("another-secret-of-at-least-32-characters", cmd)
    assert not signing.verify(vector["node_secret"], {**cmd, "sig": cmd["sig"].upper()})


def test_canonical_json_rules():
    # keys sorted at every depth, integral floats as integers, booleans untouched, UTF-8, "/" not escaped
    doc = {"b": 1.0, "a": {"z": [2.0, 0.5, True], "y": "A/B °C"}, "c": False}
    assert signing.canonical_json(doc) == '{"a":{"y":"A/B °C","z":[2,0.5,true]},"b":1,"c":false}'.encode()


def test_nan_cannot_be_signed():
    with pytest.raises(ValueError):
        signing.canonical_json({"ml": float("nan")})


def test_command_payload_carries_integer_seconds_and_signature():
    v = VECTORS[0]
    body = json.loads(payloads.command(v["node_secret"], "cmd-591", "run_pump", {"duration_ms": 2500}, 1737355112.9))
    assert body["ts"] == 1737355112 and body["sig"] == v["sig"]


def test_command_ids_outside_the_protocol_pattern_are_refused():
    with pytest.raises(ValueError):
        payloads.command("s" * 32, "bad id!", "restart", {}, 1)
