"""`python -m retention`: settings, stores, the sweep loop, the erasure consumer, and the
health/metrics server (127.0.0.1 by default: nothing here faces the network)."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
from typing import Any

from coach import service as shell
from coach.bus import Bus
from coach.erasure import ErasureQueue
from coach.retention import Store
from coach.service import redis_or_embedded, stop_event, stop_http
from coach.tasks import TaskSet
from coach.web import embedded_server, health_app
from retention.erasure_worker import ErasureWorker, wait_or_stop
from retention.job import Job
from retention.metrics import RetentionMetrics
from retention.recordings import RecordingsStore
from retention.redis_store import RedisStore
from retention.settings import Settings

log = logging.getLogger("retention")

RECORD_STORE = "coach.record.retention"
"""Module of the call record's store (`RecordStore.connect(DATABASE_URL)`), when present."""


async def record_store(database_url: str) -> Store | None:
    """The call record's store, or None (logged) when the record's code does not provide one."""
    try:
        module = importlib.import_module(RECORD_STORE)
    except ImportError:
        log.warning(
            "DATABASE_URL is set but the call record has no retention store: its rows are kept",
            extra={"module": RECORD_STORE},
        )
        return None
    store: Store = await module.RecordStore.connect(database_url)
    return store


async def build_stores(settings: Settings, bus: Bus) -> list[Store]:
    """The stores this deployment has: Redis always, recordings and the record when set."""
    stores: list[Store] = [RedisStore(bus)]
    if settings.recordings_dir is not None:
        stores.append(RecordingsStore(settings.recordings_dir, settings.audio_suffixes))
    else:
        log.warning("RECORDINGS_DIR not set: recordings are not managed by retention")
    if settings.database_url:
        found = await record_store(settings.database_url)
        if found is not None:
            stores.append(found)
    return stores


class Service:
    """The running worker: what /health reports and what shutdown closes."""

    def __init__(self, settings: Settings, bus: Bus, stores: list[Store]) -> None:
        self.settings = settings
        self.bus = bus
        self.stores = stores
        self.metrics = RetentionMetrics()
        self.tasks = TaskSet("retention", registry=self.metrics.registry)
        self.job = Job(
            stores, audio_ms=settings.audio_ms, text_ms=settings.text_ms, metrics=self.metrics
        )
        self.queue = ErasureQueue(bus.redis, settings.bus.prefix)
        self.worker = ErasureWorker(
            self.queue,
            self.job,
            settings.consumer,
            self.metrics,
            claim_idle_ms=settings.claim_idle_ms,
        )
        self.stop = asyncio.Event()

    def start(self) -> None:
        """Start the sweep loop and the erasure consumer."""
        self.tasks.spawn(self.sweep_loop(), "sweep")
        self.tasks.spawn(self.worker.run(self.stop), "erasure")

    async def sweep_loop(self) -> None:
        """A sweep at start, then every RETENTION_INTERVAL_S."""
        while not self.stop.is_set():
            await self.job.sweep()
            if await wait_or_stop(self.stop, self.settings.interval_s):
                return

    async def health(self) -> dict[str, Any]:
        """GET /health: ok while Redis answers and the consumer runs."""
        up = await self.bus.ping()
        sweep = self.job.last_sweep
        body: dict[str, Any] = {
            "status": "ok" if up and self.worker.state.value == "consuming" else "degraded",
            "bus": "up" if up else "down",
            "stores": [s.name for s in self.stores],
            "retentionDays": {"audio": self.settings.days_audio, "text": self.settings.days_text},
            "erasure": self.worker.health(),
            "lastSweep": None
            if sweep is None
            else {
                "at": sweep.at_ms,
                "removed": sum(r.rows for r in sweep.removed),
                "failedStores": sorted(sweep.failed),
            },
        }
        return body

    async def close(self) -> None:
        """Stop the loops (an erasure in progress stays pending), then close the stores."""
        self.stop.set()
        await self.tasks.close(5.0)
        for store in self.stores:
            with contextlib.suppress(Exception):
                await store.close()


async def run(settings: Settings) -> None:
    """Run until SIGTERM/SIGINT, then shut down in order."""
    url, embedded = redis_or_embedded(settings.redis_url, log)
    bus = Bus.connect(url, settings.bus)
    service = Service(settings, bus, await build_stores(settings, bus))
    server = embedded_server(
        health_app(service.health, service.metrics.registry), settings.host, settings.port
    )
    stopping = stop_event()
    service.start()
    http = service.tasks.spawn(server.serve(), "http")
    log.info(
        "retention running",
        extra={
            "stores": [s.name for s in service.stores],
            "daysAudio": settings.days_audio,
            "daysText": settings.days_text,
            "intervalS": settings.interval_s,
        },
    )
    try:
        await stopping.wait()
    finally:
        log.info("shutting down")
        await stop_http(server, http)
        await service.close()
        await bus.close()
        if embedded:
            embedded.stop()


def main(environ: dict[str, Any] | None = None) -> int:
    """Entry point: 2 = bad configuration (the message names the variable)."""
    return shell.main("retention", Settings.from_env, run, environ)
