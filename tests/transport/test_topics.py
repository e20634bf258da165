"""Topic parsing accepts exactly the node-to-backend topics of the protocol."""

import pytest

from hydro_rules.transport import topics


def test_channel_level_topic():
    t = topics.parse("hydro/gh-1/zn-3/nd-ph-1/ph_sensor/telemetry")
    assert t == topics.Topic("telemetry", "gh-1", "zn-3", "nd-ph-1", "ph_sensor")


def test_node_level_topic():
    assert topics.parse("hydro/gh-1/zn-3/nd-ph-1/heartbeat") == topics.Topic("heartbeat", "gh-1", "zn-3", "nd-ph-1")


def test_hello_and_time_topics():
    assert topics.parse("hydro/node_hello").type == "node_hello"
    assert topics.parse("hydro/time/request").type == "time_request"


@pytest.mark.parametrize(
    "topic",
    [
        "hydro/gh-1/zn-3/nd-ph-1/ph_sensor/command",  # what we send, not what we read
        "hydro/gh-1/zn-3/nd-ph-1/telemetry",  # telemetry is channel-level
        "hydro/gh-1/zn-3/nd-ph-1/ph_sensor/heartbeat",
        "other/gh-1/zn-3/nd-ph-1/ph_sensor/telemetry",
        "hydro/gh-1//nd-ph-1/ph_sensor/telemetry",
        "hydro/time/response",
    ],
)
def test_other_topics_are_not_parsed(topic):
    assert topics.parse(topic) is None


def test_subscriptions_are_targeted_never_everything():
    assert "hydro/#" not in topics.SUBSCRIPTIONS
    for t in ("telemetry", "command_response", "event"):
        assert f"hydro/+/+/+/+/{t}" in topics.SUBSCRIPTIONS
    for t in ("status", "lwt", "heartbeat", "node_hello", "config_report", "error", "diagnostics"):
        assert f"hydro/+/+/+/{t}" in topics.SUBSCRIPTIONS
    assert topics.HELLO in topics.SUBSCRIPTIONS and topics.TIME_REQUEST in topics.SUBSCRIPTIONS


def test_command_topic():
    assert topics.command("gh-1", "zn-1", "nd-pump-1", "pump_recirc") == "hydro/gh-1/zn-1/nd-pump-1/pump_recirc/command"
