"""The daemon's fast path on a real broker: readings of a zone as the ingest reads them, safety flags, comebacks."""

import asyncio
import time
import uuid
from types import SimpleNamespace

import pytest
from service.conftest import Node, eventually

from hydro_rules.daemon.live import LiveFeed, safety_metrics
from hydro_rules.service.devservers import ThrowawayMosquitto

pytestmark = pytest.mark.anyio


class Clock:
    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


class Seen:
    def __init__(self) -> None:
        self.readings: list = []  # (zone, [Reading], safety)
        self.back: list = []  # (node, why)

    async def on_readings(self, zone, readings, safety):
        self.readings.append((zone, readings, safety))

    def on_node_back(self, node, why):  # a plain function works too
        self.back.append((node, why))


def settings(url: str, **kw):
    return SimpleNamespace(mqtt_url=url, mqtt_client_id=f"daemon-{uuid.uuid4().hex[:8]}", node_silent_after_s=120, **kw)


@pytest.fixture
async def feed(mqtt_url, site):
    seen, clock = Seen(), Clock()
    f = LiveFeed(settings(mqtt_url), site, on_readings=seen.on_readings, on_node_back=seen.on_node_back, clock=clock)
    await f.start()
    f.seen, f.test_clock = seen, clock
    yield f
    await f.stop()


async def subscribed(feed, node: Node) -> None:
    """Wait until the feed hears `node` (its subscriptions are made when the broker answers)."""

    async def heard():
        await node.send("heartbeat", {"uptime": 1000})
        await asyncio.sleep(0.02)
        return node.uid in feed.last_seen

    await eventually(heard)


def test_safety_metrics_come_from_the_rule_set(site):
    s = safety_metrics(site)
    # guards read the water level; channels carry current, flow and the flow flag
    assert {"water_level", "pump_current", "flow_rate", "flow_present"} <= s
    assert "ph" not in s and "ec" not in s and "temp_air" not in s


async def test_readings_are_resolved_converted_and_flagged(feed, mqtt_url):
    seen = feed.seen
    async with (
        Node(mqtt_url, "nd-level-1") as level,
        Node(mqtt_url, "nd-ph-1") as ph,
        Node(mqtt_url, "nd-pump-1") as pump,
    ):
        await subscribed(feed, level)
        now = time.time()
        await level.telemetry("WATER_LEVEL", 0.05, now, channel="level", unit="ratio")
        await ph.telemetry("PH", 6.1, now, channel="ph_sensor")
        await pump.telemetry("FLOW_RATE", 1, now, channel="flow_present")
        await pump.telemetry("PUMP_CURRENT", 850, now, channel="pump_bus_current")
        await eventually(lambda: _n(seen.readings, 4))
    by_metric = {r.metric: (zone, r, safety) for zone, rs, safety in seen.readings for r in rs}
    zone, r, safety = by_metric["water_level"]
    assert zone == "zn-1" and safety and r.value == pytest.approx(5.0) and r.node_uid == "nd-level-1"
    assert r.channel == "level" and r.ts == pytest.approx(now)
    assert by_metric["ph"][2] is False and by_metric["ph"][1].value == 6.1
    assert by_metric["flow_present"][2] and by_metric["flow_present"][1].value == 1.0  # the channel decides
    assert by_metric["pump_current"][2]
    assert feed.counts["readings"] == 4


async def handled(feed, sending) -> None:
    """Send, and wait until the feed has handled it (the feed reads its clock then)."""
    before = feed.counts["messages"]
    await sending
    await eventually(lambda: _true(feed.counts["messages"] > before))


async def _n(items, n):
    return len(items) >= n


async def test_bad_input_is_counted_never_fatal(feed, mqtt_url):
    seen = feed.seen
    async with Node(mqtt_url, "nd-level-1") as level, Node(mqtt_url, "nd-ph-2", zone="zn-1") as stranger:
        await subscribed(feed, level)
        now = time.time()
        await level.send("telemetry", b"{not json", channel="level")
        await level.send("telemetry", {"metric_type": "WATER_LEVEL", "value": "full", "ts": now}, channel="level")
        await level.telemetry("WATER_LEVEL", 250, now, channel="level")  # outside 0..100 %
        await level.telemetry("WATER_LEVEL", 50, now + 3600, channel="level")  # an hour in the future
        await level.telemetry("WATER_LEVEL", 50, now, channel="level", stub=True)
        await level.telemetry("SOMETHING_ELSE", 1, now, channel="misc")
        await level.send("heartbeat", b"[]")
        await stranger.telemetry("PH", 6.0, now, channel="ph_sensor")  # nd-ph-2 is zn-2's node
        await level.telemetry("WATER_LEVEL", 42, now, channel="level")  # and the feed goes on
        await eventually(lambda: _n(seen.readings, 1))
    assert [(z, r.metric, r.value) for z, rs, _ in seen.readings for r in rs] == [("zn-1", "water_level", 42)]
    c = feed.counts
    assert c["malformed"] == 3 and c["invalid_value"] == 2 and c["stub"] == 1 and c["unknown_metric"] == 1
    assert c["refused"] == 1  # the stranger's reading
    assert c["errors"] == 0


async def test_a_node_error_is_safety_relevant(feed, mqtt_url):
    async with Node(mqtt_url, "nd-drain-1") as drain:
        await subscribed(feed, drain)
        await drain.send("error", {"level": "ERROR", "component": "pump", "error_code": "overcurrent"})
        await eventually(lambda: _n(feed.seen.readings, 1))
    assert feed.seen.readings == [("zn-1", [], True)]


async def test_nodes_coming_back(feed, mqtt_url):
    back = feed.seen.back
    async with Node(mqtt_url, "nd-pump-1") as pump, Node(mqtt_url, "nd-drain-1") as drain:
        await subscribed(feed, pump)
        await subscribed(feed, drain)
        assert back == []  # heard for the first time: nothing to say yet
        # a reboot between two heartbeats
        await pump.send("heartbeat", {"uptime": 1200})
        await pump.send("heartbeat", {"uptime": 3})
        await eventually(lambda: _n(back, 1))
        assert back[-1] == ("nd-pump-1", "rebooted: uptime 3 s after 1200 s")
        # its lwt, then ONLINE
        await drain.send("lwt", b"offline")
        await drain.send("status", {"status": "ONLINE", "ts": time.time()})
        await eventually(lambda: _n(back, 2))
        assert back[-1] == ("nd-drain-1", "status ONLINE after its lwt")
        # then its first heartbeat (a low uptime after the reboot) is no second comeback
        await handled(feed, drain.send("heartbeat", {"uptime": 2}))
        # silence: exactly node_silent_after_s is not yet a silence; longer is
        feed.test_clock.offset += 120 - 0.5
        await handled(feed, pump.send("heartbeat", {"uptime": 4000}))
        feed.test_clock.offset += 1.0
        await handled(feed, drain.send("heartbeat", {"uptime": 4000}))
        await eventually(lambda: _n(back, 3))
        await handled(feed, pump.send("heartbeat", {"uptime": 4001}))
        await pump.send("status", {"status": "ONLINE"})  # a new session, without an lwt before it
        await eventually(lambda: _n(back, 4))
    assert back[2][0] == "nd-drain-1" and back[2][1].startswith("heard again after 12")
    seen_at = feed.last_seen_of(["zn-1"])
    assert seen_at["nd-pump-1"] == feed.last_seen["nd-pump-1"] and "nd-ph-1" in seen_at  # not heard: since start
    assert "nd-pump-2" not in seen_at and "nd-pump-2" in feed.node_last_seen
    assert back[3] == ("nd-pump-1", "status ONLINE: a new MQTT session")
    assert len(back) == 4 and feed.counts["node_back"] == 4


async def test_retained_messages_are_old_news(mqtt_url, site):
    async with Node(mqtt_url, "nd-fill-1") as fill:
        await fill.send("lwt", b"offline", retain=True)
        await fill.send("status", {"status": "ONLINE"}, retain=True)
        try:
            seen = Seen()
            f = LiveFeed(settings(mqtt_url), site, on_readings=seen.on_readings, on_node_back=seen.on_node_back)
            await f.start()
            try:
                await subscribed(f, fill)  # the retained ones came first, at the subscription
                await fill.send("status", {"status": "ONLINE"})  # a live one after them: a new session
                await eventually(lambda: _n(seen.back, 1))
                assert seen.back == [("nd-fill-1", "status ONLINE: a new MQTT session")]  # not "after its lwt"
            finally:
                await f.stop()
        finally:
            await fill.send("lwt", b"", retain=True)
            await fill.send("status", b"", retain=True)


async def test_connected_and_down_since_follow_the_broker(site, broker_sizing):
    seen, clock = Seen(), Clock()
    broker = ThrowawayMosquitto(extra=broker_sizing)
    f = LiveFeed(settings(broker.url), site, on_readings=seen.on_readings, on_node_back=seen.on_node_back, clock=clock)
    t0 = time.time()
    await f.start(timeout=0.3)  # no broker yet: start returns, connecting goes on
    assert not f.connected and f.down_since == pytest.approx(t0, abs=1)
    try:
        broker.start()
        await eventually(lambda: _true(f.connected), timeout=15)
        assert f.down_since is None and f.up_since is not None
        broker.stop()
        await eventually(lambda: _true(not f.connected), timeout=15)
        assert f.down_since is not None and f.down_since >= t0
        broker.start()
        await eventually(lambda: _true(f.connected), timeout=15)
        assert f.down_since is None
    finally:
        await f.stop()
        broker.remove()


async def _true(v):
    return v


async def test_a_new_rule_set_places_nodes_anew(feed, mqtt_url):
    from .conftest import load_site

    seen = feed.seen
    async with Node(mqtt_url, "nd-level-1") as old, Node(mqtt_url, "nd-t1-level", gh="gh-t", zone="zt-1") as new:
        await subscribed(feed, old)
        feed.set_ruleset(load_site())  # the test site: zt-1's nodes, no zn-1 any more
        await subscribed(feed, new)
        await handled(feed, old.telemetry("WATER_LEVEL", 40, time.time(), channel="level"))
        await new.telemetry("WATER_LEVEL", 41, time.time(), channel="level")
        await eventually(lambda: _n(seen.readings, 1))
    assert [(z, r.node_uid, r.value) for z, rs, _ in seen.readings for r in rs] == [("zt-1", "nd-t1-level", 41)]


async def test_slow_callbacks_keep_their_order_and_hold_the_feed_at_max_inflight(mqtt_url, site):
    order, running, most = [], [0], [0]

    async def slow(zone, readings, safety):
        running[0] += 1
        most[0] = max(most[0], running[0])
        await asyncio.sleep(0.01)
        order.append(readings[0].value)
        running[0] -= 1

    f = LiveFeed(settings(mqtt_url), site, on_readings=slow, on_node_back=lambda n, w: None, max_inflight=3)
    await f.start()
    try:
        async with Node(mqtt_url, "nd-ph-1") as ph:
            await subscribed(f, ph)
            now = time.time()
            for i in range(30):
                await ph.telemetry("PH", 5.0 + i / 100, now, channel="ph_sensor")
            await eventually(lambda: _n(order, 30))
    finally:
        await f.stop()
    assert most[0] <= 3
    assert order == sorted(order)  # one sleep each: they end in the order they began, the order they came
