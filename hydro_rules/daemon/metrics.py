"""The daemon's Prometheus metrics, on a registry of its own, and the /metrics HTTP server.

A registry of its own (not prometheus_client's global one): two daemons in one
process (tests, the demo) each count their own, and nothing else leaks in.
The server is prometheus_client's (a thread); `close` stops it and frees the port.
"""

from __future__ import annotations

import logging
import threading

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, start_http_server

log = logging.getLogger(__name__)

PREFIX = "hydro_daemon"
#: an evaluation takes microseconds to milliseconds; the fast path's goal is 20 ms end to end
EVAL_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
DB_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


class DaemonMetrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.ticks = Counter(f"{PREFIX}_ticks", "Ticks evaluated (every owned zone once per tick)", registry=r)
        self.eval_seconds = Histogram(
            f"{PREFIX}_eval_seconds",
            "Time to evaluate a zone's rules (a tick's or a fast-path evaluation)",
            buckets=EVAL_BUCKETS,
            registry=r,
        )
        self.decisions = Counter(
            f"{PREFIX}_decisions", "Decisions written to the decision log, by kind", ["kind"], registry=r
        )
        self.commands = Counter(
            f"{PREFIX}_commands",
            "Commands of the daemon by status they reached (sent, ACK, DONE, ...)",
            ["status"],
            registry=r,
        )
        self.active_alerts = Gauge(f"{PREFIX}_active_alerts", "Active alerts of the zones owned", registry=r)
        self.mqtt_connected = Gauge(f"{PREFIX}_mqtt_connected", "1 while the broker connection is up", registry=r)
        self.db_latency_seconds = Histogram(
            f"{PREFIX}_db_latency_seconds",
            "Round trips to the database (a tick's reads, its write transaction)",
            buckets=DB_BUCKETS,
            registry=r,
        )
        self.zones_owned = Gauge(f"{PREFIX}_zones_owned", "Zones this daemon owns (holds the lock of)", registry=r)
        self.journal_pending = Gauge(
            f"{PREFIX}_journal_pending", "Writes queued on local disk while the database is down", registry=r
        )
        self._server = None
        self._thread: threading.Thread | None = None

    def render(self) -> bytes:
        """The metrics in the Prometheus text format."""
        return generate_latest(self.registry)

    # ---- the HTTP server ----------------------------------------------------------------------
    def serve(self, host: str, port: int) -> int:
        """Serve /metrics on host:port (port 0: any free port); the port bound."""
        if self._server is not None:
            raise RuntimeError("the metrics server is already running")
        self._server, self._thread = start_http_server(port, addr=host, registry=self.registry)
        bound = self._server.server_address[1]
        log.info("metrics on http://%s:%d/metrics", host, bound)
        return bound

    @property
    def port(self) -> int | None:
        return self._server.server_address[1] if self._server is not None else None

    def close(self) -> None:
        """Stop the server and free its port (no-op when not serving)."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(5)
