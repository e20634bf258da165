"""Payload parsing: what real nodes send is accepted; what breaks the protocol is refused with a reason."""

import json
import math

import pytest

from hydro_rules.transport import payloads
from hydro_rules.transport.payloads import Malformed


def j(doc) -> bytes:
    return json.dumps(doc).encode()


def test_telemetry_as_the_protocol_writes_it():
    t = payloads.telemetry(j({"metric_type": "PH", "value": 5.86, "ts": 1710001234}))
    assert (t.metric_type, t.value, t.ts, t.extra) == ("PH", 5.86, 1710001234.0, {})


def test_telemetry_as_field_nodes_send_it_float_ts_and_extra_keys():
    t = payloads.telemetry(
        j(
            {
                "metric_type": "EC",
                "value": 1.6,
                "ts": 1710001234.75,
                "channel": "ec_sensor",
                "node_id": "nd-ec-1",
                "raw": 2213,
                "stable": True,
                "unit": "mS/cm",
            }
        )
    )
    assert t.ts == 1710001234.75
    assert t.extra == {"channel": "ec_sensor", "node_id": "nd-ec-1", "raw": 2213, "stable": True, "unit": "mS/cm"}


def test_telemetry_ts_in_milliseconds_is_read_as_such():
    assert payloads.telemetry(j({"metric_type": "PH", "value": 6, "ts": 1710001234567})).ts == 1710001234.567


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"not json",
        b"[1, 2]",
        j({"value": 5.8, "ts": 1}),
        j({"metric_type": "PH", "ts": 1}),
        j({"metric_type": "PH", "value": "5.8", "ts": 1}),
        j({"metric_type": "PH", "value": True, "ts": 1}),
        j({"metric_type": "PH", "value": 5.8}),
        j({"metric_type": "", "value": 5.8, "ts": 1}),
        b"\xff\xfe",
    ],
)
def test_malformed_telemetry_is_refused(payload):
    with pytest.raises(Malformed):
        payloads.telemetry(payload)


def test_command_response_ms_ts_and_details():
    r = payloads.command_response(
        j(
            {
                "cmd_id": "cmd-591",
                "status": "ERROR",
                "ts": 1710003399123,
                "error_code": "overcurrent",
                "details": {"channel": "pump_recirc", "current_ma": 2300, "threshold_ma": 1500},
            }
        )
    )
    assert (r.cmd_id, r.status, r.ts, r.error_code) == ("cmd-591", "ERROR", 1710003399.123, "overcurrent")
    assert r.details["current_ma"] == 2300


@pytest.mark.parametrize(
    "doc",
    [
        {"status": "DONE", "ts": 1},
        {"cmd_id": "cmd 1", "status": "DONE", "ts": 1},
        {"cmd_id": "c1", "status": "FINISHED", "ts": 1},
        {"cmd_id": "c1", "status": "DONE"},
        {"cmd_id": "c1", "status": "DONE", "ts": 1, "details": "ok"},
    ],
)
def test_malformed_command_responses(doc):
    with pytest.raises(Malformed):
        payloads.command_response(j(doc))


def test_a_ts_that_is_no_time_is_malformed_in_every_payload():
    # 1e400 is JSON for infinity: refused as malformed, not left to fail later as a time
    with pytest.raises(Malformed, match="not a time"):
        payloads.command_response(b'{"cmd_id": "c1", "status": "DONE", "ts": 1e400}')
    with pytest.raises(Malformed, match="not a time"):
        payloads.node_error(b'{"level": "ERROR", "ts": -1e400}')
    with pytest.raises(Malformed, match="not a time"):
        payloads.telemetry(b'{"metric_type": "PH", "value": 6, "ts": 1e400}')
    assert payloads.node_error(b'{"ts": 1710003399123}').ts == 1710003399.123


def test_heartbeat_without_ts():
    hb = payloads.heartbeat(j({"uptime": 3600, "free_heap": 102000, "rssi": -62, "fw_version": "1.0.0"}))
    assert (hb.uptime, hb.free_heap, hb.rssi, hb.fw_version) == (3600, 102000, -62, "1.0.0")
    with pytest.raises(Malformed):
        payloads.heartbeat(j({"uptime": -1}))
    with pytest.raises(Malformed):
        payloads.heartbeat(j({"fw_version": "1.0.0"}))


def test_lwt_is_the_plain_string_offline():
    assert payloads.lwt(b"offline").online is False
    with pytest.raises(Malformed):
        payloads.lwt(b"gone fishing")


def test_status_and_hello():
    assert payloads.status(j({"status": "ONLINE", "ts": 1710001555})).online
    h = payloads.hello(
        j(
            {
                "message_type": "node_hello",
                "hardware_id": "esp32-ABCD1234",
                "node_type": "ph",
                "fw_version": "2.0.1",
                "hardware_revision": "v1.0",
                "capabilities": ["ph", "temperature"],
            }
        )
    )
    assert (h.hardware_id, h.node_type, h.capabilities) == ("esp32-ABCD1234", "ph", ["ph", "temperature"])
    with pytest.raises(Malformed):
        payloads.hello(j({"node_type": "ph"}))


def test_time_response():
    assert json.loads(payloads.time_response(1710001234.9)) == {
        "message_type": "time_response",
        "unix_ts": 1710001234,
        "server_time": 1710001234,
    }


def test_nan_survives_in_telemetry_values_but_never_in_documents():
    assert math.isnan(payloads.telemetry(b'{"metric_type": "PH", "value": NaN, "ts": 1}').value)  # refused later
    r = payloads.command_response(b'{"cmd_id": "c1", "status": "DONE", "ts": 1, "details": {"current_ma": NaN}}')
    assert r.details == {"current_ma": None}
    assert payloads.document(b'{"x": Infinity}') == {"x": None}


def test_telemetry_unit_and_stub_are_read_and_typed():
    t = payloads.telemetry(j({"metric_type": "WATER_LEVEL", "value": 0.8, "ts": 1, "unit": " ratio ", "stub": True}))
    assert (t.unit, t.stub) == ("ratio", True)
    assert payloads.telemetry(j({"metric_type": "PH", "value": 6, "ts": 1})).stub is False
    for bad in ({"unit": 100}, {"unit": "u" * 40}, {"stub": 1}, {"stub": "true"}):
        with pytest.raises(Malformed):
            payloads.telemetry(j({"metric_type": "PH", "value": 6, "ts": 1, **bad}))


def test_documents_hold_only_text_the_database_can_store_and_nest_boundedly():
    doc = payloads.document(b'{"a\\u0000": ["x\\u0000y", "\\ud800"], "ok": "\\u00e9"}')
    assert doc == {"a\ufffd": ["x\ufffdy", "\ufffd"], "ok": "\u00e9"}
    assert payloads.document(json.dumps({"a": "\x00"}).encode("utf-16")) == {"a": "\ufffd"}
    nested = 1
    for _ in range(payloads.MAX_DEPTH - 1):
        nested = [nested]
    assert payloads.document(j({"n": nested}))  # MAX_DEPTH levels with the object itself
    with pytest.raises(Malformed, match="nested deeper than"):
        payloads.document(j({"n": [nested]}))
    with pytest.raises(Malformed, match="nested too deep"):
        payloads.document(b'{"n": ' + b"[" * 100_000 + b"]" * 100_000 + b"}")
