"""Prometheus metrics of one STT process (own registry, so tests can build several apps)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_DECODE_BUCKETS = (0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.6, 0.8, 1.0, 1.5, 2.0, 3.0, 5.0)


class SttMetrics:
    """The STT metrics; gauges that mirror live state are read at scrape time."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.open_streams = Gauge("stt_open_streams", "Open WS /stream connections", registry=r)
        self.queue_depth = Gauge(
            "stt_queue_depth", "Decode jobs waiting or running", ["cls"], registry=r
        )
        self.decode_seconds = Histogram(
            "stt_decode_seconds",
            "Wall time of one decode",
            ["kind"],
            buckets=_DECODE_BUCKETS,
            registry=r,
        )
        self.final_lag = Histogram(
            "stt_final_lag_seconds",
            "End of speech arriving -> its final emitted, by how the utterance ended",
            ["ended_by"],
            buckets=_DECODE_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "stt_batch_size",
            "Windows decoded by one CTranslate2 encode + generate call (1 = alone)",
            buckets=(1, 2, 3, 4, 6, 8, 12, 16),
            registry=r,
        )
        self.audio_seconds = Counter("stt_audio_seconds", "Audio received", registry=r)
        self.rtf = Gauge(
            "stt_real_time_factor", "Decoder busy time / audio time received", registry=r
        )
        self.dropped_partials = Gauge(
            "stt_dropped_partials", "Stale partial decodes replaced", registry=r
        )
        self.events = Counter("stt_events", "Events emitted", ["type"], registry=r)
        self.closes = Counter(
            "stt_stream_closes", "Streams closed, by close code", ["code"], registry=r
        )
        self.bus_buffered = Gauge("stt_bus_buffered", "Events waiting for the bus", registry=r)
        self.bus_dropped = Gauge(
            "stt_bus_dropped",
            "Events not published: the bus buffer was full (by type), refused, or after close",
            ["type"],
            registry=r,
        )

    def bind(
        self,
        depth: Callable[[], dict[str, int]],
        rtf: Callable[[], float],
        dropped_partials: Callable[[], int],
        bus_buffered: Callable[[], int],
        bus_dropped: Callable[[], Mapping[str, int]],
    ) -> None:
        """Have live gauges read their value from the running service at scrape time."""
        for cls in ("final", "partial", "running"):
            self.queue_depth.labels(cls).set_function(lambda c=cls: float(depth()[c]))  # type: ignore[misc]
        self.rtf.set_function(rtf)
        self.dropped_partials.set_function(lambda: float(dropped_partials()))
        self.bus_buffered.set_function(lambda: float(bus_buffered()))
        # The publisher counts drops by event type (and `invalid`, `closed`).
        for kind in ("partial", "final", "invalid", "closed"):
            self.bus_dropped.labels(kind).set_function(
                lambda k=kind: float(bus_dropped().get(k, 0))  # type: ignore[misc]
            )
