"""The fake nodes' own signature check agrees with the protocol's vectors, not merely with the service."""

import json
from pathlib import Path

import pytest

from .node_signature import _canonical, node_verify

VECTORS = json.loads((Path(__file__).parents[1] / "transport" / "hmac-vectors.json").read_text())


@pytest.mark.parametrize("vector", VECTORS, ids=[v["command"]["cmd_id"] for v in VECTORS])
def test_the_fake_nodes_check_accepts_the_protocols_vectors_and_nothing_else(vector):
    secret, cmd = vector["node_secret"], vector["command"]
    assert _canonical(cmd) == vector["canonical_json"]
    assert node_verify(secret, {**cmd, "sig": vector["sig"]})
    assert not node_verify(secret, {**cmd, "sig": vector["sig"].upper()})
    assert not node_verify(secret, {**cmd, "ts": cmd["ts"] + 1, "sig": vector["sig"]})
    assert not node_verify("another-secret-of-at-least-32-characters", {**cmd, "sig": vector["sig"]})
    assert not node_verify(secret, dict(cmd))


def test_canonical_form_details_the_protocol_names():
    assert _canonical({"b": [2.0, 0.5, True, None], "a": "A/B °C"}) == '{"a":"A/B °C","b":[2,0.5,true,null]}'
