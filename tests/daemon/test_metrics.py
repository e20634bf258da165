"""The daemon's /metrics: scraped over real HTTP, names and values as Prometheus reads them."""

import httpx
from prometheus_client.parser import text_string_to_metric_families

from hydro_rules.daemon.metrics import DaemonMetrics


def scrape(port: int) -> dict:
    r = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


def test_metrics_are_served_and_change():
    m = DaemonMetrics()
    port = m.serve("127.0.0.1", 0)
    try:
        before = scrape(port)
        assert before[("hydro_daemon_ticks_total", ())] == 0
        assert before[("hydro_daemon_mqtt_connected", ())] == 0
        for name in ("zones_owned", "journal_pending", "active_alerts"):
            assert before[(f"hydro_daemon_{name}", ())] == 0
        assert before[("hydro_daemon_eval_seconds_count", ())] == 0
        assert before[("hydro_daemon_db_latency_seconds_count", ())] == 0

        m.ticks.inc()
        m.ticks.inc()
        m.eval_seconds.observe(0.0003)
        m.decisions.labels(kind="command").inc(3)
        m.decisions.labels(kind="transition").inc()
        m.commands.labels(status="DONE").inc()
        m.active_alerts.set(2)
        m.mqtt_connected.set(1)
        m.db_latency_seconds.observe(0.004)
        m.zones_owned.set(3)
        m.journal_pending.set(7)

        after = scrape(port)
        assert after[("hydro_daemon_ticks_total", ())] == 2
        assert after[("hydro_daemon_eval_seconds_count", ())] == 1
        assert after[("hydro_daemon_eval_seconds_bucket", (("le", "0.0005"),))] == 1
        assert after[("hydro_daemon_eval_seconds_bucket", (("le", "0.00025"),))] == 0
        assert after[("hydro_daemon_decisions_total", (("kind", "command"),))] == 3
        assert after[("hydro_daemon_decisions_total", (("kind", "transition"),))] == 1
        assert after[("hydro_daemon_commands_total", (("status", "DONE"),))] == 1
        assert after[("hydro_daemon_active_alerts", ())] == 2
        assert after[("hydro_daemon_mqtt_connected", ())] == 1
        assert after[("hydro_daemon_db_latency_seconds_sum", ())] == 0.004
        assert after[("hydro_daemon_zones_owned", ())] == 3
        assert after[("hydro_daemon_journal_pending", ())] == 7
        assert not any(k[0].startswith("python_") or k[0].startswith("process_") for k in after)  # own registry
        assert m.render() == httpx.get(f"http://127.0.0.1:{port}/metrics").content
    finally:
        m.close()
    try:
        httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2)
        raise AssertionError("the server still answers after close")
    except httpx.ConnectError:
        pass
    # the port is free again, and two daemons in one process count apart
    other = DaemonMetrics()
    assert other.serve("127.0.0.1", port) == port
    try:
        assert scrape(port)[("hydro_daemon_ticks_total", ())] == 0
    finally:
        other.close()
    m.close()  # closing twice is harmless
