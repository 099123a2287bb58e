"""Prometheus metrics of one relay instance (own registry, so tests can build many apps)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from coach.tasks import failures_counter

TASK_KINDS = ("relay-hub", "ws-writer", "ws-reader", "ws-overflow")
"""The relay's background task kinds (the `task` label of coach_task_failures_total)."""


class RelayMetrics:
    """The relay's counters and gauges."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.published = Counter(
            "relay_events_published", "Events accepted by POST /event", ["type"], registry=r
        )
        self.rejected = Counter(
            "relay_events_rejected", "POST /event requests refused", ["status"], registry=r
        )
        self.delivered = Counter(
            "relay_events_delivered", "Events queued to WebSocket clients", registry=r
        )
        self.dropped = Counter(
            "relay_events_dropped", "Events dropped by the overflow policy", ["type"], registry=r
        )
        self.clients = Gauge("relay_ws_clients", "Open WebSocket clients", ["role"], registry=r)
        self.disconnects = Counter(
            "relay_ws_closed", "WebSocket clients closed by the relay", ["code"], registry=r
        )
        self.bus_errors = Counter(
            "relay_bus_errors", "Failed reads of the bus (Redis down or unreachable)", registry=r
        )
        self.bus_up = Gauge("relay_bus_up", "1 while the bus reader is connected", registry=r)
        self.fanout_lag = Histogram(
            "relay_fanout_lag_seconds",
            "Time from bus timestamp to fan-out",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5),
            registry=r,
        )
        # The relay's TaskSets count into this registry; every kind is shown from 0.
        self.task_failures = failures_counter(r)
        for kind in TASK_KINDS:
            self.task_failures.labels("relay", kind)
