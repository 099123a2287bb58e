"""Prometheus metrics of the archive (the process-wide registry)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS = Counter("archive_events_total", "Bus events written to the call record", ["type"])
SKIPPED = Counter("archive_skipped_total", "Bus events of types the record does not keep")
REJECTED = Counter(
    "archive_rejected_total", "Events the database refused (logged, acknowledged, not retried)"
)
BATCHES = Counter("archive_batches_total", "Transactions committed")
BATCH_SECONDS = Histogram(
    "archive_batch_seconds",
    "Time to write one batch (one transaction)",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
LAG = Gauge(
    "archive_lag_events",
    "Events in the bus not yet delivered to the archive's group (-1: unknown, entries trimmed)",
)
PENDING = Gauge("archive_pending_events", "Events delivered to the group but not yet written")
BEHIND = Gauge(
    "archive_behind_seconds", "Age of the newest event written (bus time), at its writing"
)
ERRORS = Counter("archive_errors_total", "Bus or database failures (retried)", ["where"])
