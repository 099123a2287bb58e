"""Prometheus metrics of the ari service (one registry per service instance, for tests)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    """The service's counters and gauges."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.events = Counter("ari_events_total", "ARI events received", ["type"], registry=r)
        self.events_dropped = Counter(
            "ari_events_dropped_total",
            "ARI events refused by the full event queue (the events socket is then dropped and "
            "reconciliation repairs state)",
            ["type"],
            registry=r,
        )
        self.calls = Counter("ari_calls_total", "Call outcomes", ["outcome"], registry=r)
        self.active_calls = Gauge("ari_active_calls", "Calls in progress", registry=r)
        self.taps = Gauge("ari_media_taps", "Open media taps (UDP ports)", registry=r)
        self.tap_failures = Counter(
            "ari_tap_failures_total", "Taps that failed to open", registry=r
        )
        self.reconciles = Counter("ari_reconciliations_total", "Reconciliations run", registry=r)
        self.orphans_removed = Counter(
            "ari_orphans_removed_total", "Orphaned channels/bridges deleted", registry=r
        )
        self.rtp_packets = Counter(
            "ari_rtp_packets_total",
            "RTP packets of closed taps by outcome",
            ["outcome"],
            registry=r,
        )
        self.stt_dropped_bytes = Counter(
            "ari_stt_dropped_bytes_total",
            "Audio dropped (oldest first) while STT was down/slow",
            registry=r,
        )
        self.setup_seconds = Histogram(
            "ari_setup_seconds",
            "StasisStart to first audio forwarded to STT",
            buckets=(0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10),
            registry=r,
        )
