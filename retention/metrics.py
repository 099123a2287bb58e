"""Prometheus metrics of the retention worker (its own registry, served on /metrics)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class RetentionMetrics:
    """The worker's counters and gauges."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.removed = Counter(
            "retention_removed_total",
            "Entries, rows or files removed",
            ["store", "what", "reason"],
            registry=r,
        )
        self.removed_bytes = Counter(
            "retention_removed_bytes_total",
            "Bytes freed (where a store knows them)",
            ["store", "reason"],
            registry=r,
        )
        self.sweeps = Counter(
            "retention_sweeps_total", "Retention sweeps by outcome", ["outcome"], registry=r
        )
        self.erasures = Counter(
            "retention_erasures_total", "Erasure requests by outcome", ["outcome"], registry=r
        )
        self.store_errors = Counter(
            "retention_store_errors_total", "Store operations that failed", ["store"], registry=r
        )
        self.waiting = Gauge(
            "retention_erasures_waiting", "Erasure requests not finished yet", registry=r
        )
        self.last_sweep = Gauge(
            "retention_last_sweep_timestamp_seconds",
            "When the last complete sweep finished",
            registry=r,
        )
