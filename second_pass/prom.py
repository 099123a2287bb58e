"""Prometheus metrics of the second pass (the process-wide registry)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

CALLS = Counter(
    "second_pass_calls_total",
    "Calls handled: done (transcript stored), failed (recording unusable), skipped (already "
    "done, or no recording)",
    ["outcome"],
)
AUDIO_SECONDS = Counter("second_pass_audio_seconds_total", "Seconds of recordings transcribed")
DECODE_SECONDS = Counter("second_pass_decode_seconds_total", "Seconds spent decoding them")
REAL_TIME_FACTOR = Histogram(
    "second_pass_real_time_factor",
    "Decoding time / recording length, per call (both channels; below 1 = faster than real time)",
    buckets=(0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 4.0),
)
QUEUE_DEPTH = Gauge("second_pass_queue_calls", "Calls waiting in the process (not the one in work)")
QUEUE_LAG = Gauge(
    "second_pass_queue_lag_seconds", "Age of the oldest call waiting or in work (since call.ended)"
)
ERRORS = Counter("second_pass_errors_total", "Bus or database failures (retried)", ["where"])
