"""Consumes the erasure queue (coach/erasure.py): one request at a time, in order.

Nothing queued is lost: a request is acknowledged only after every store erased the call. At
start the worker re-reads the requests it had read and not finished (same RETENTION_CONSUMER),
and every `CLAIM_EVERY_S` it takes over those another worker left for RETENTION_CLAIM_IDLE_MS.
A store that fails keeps the request pending: its status says `retrying` with the error, and
it is tried again after a backoff delay (coach.backoff.STORE), while later requests wait (so
erasures finish in the order they were asked for).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from typing import Any, Final

from redis.exceptions import RedisError

from coach.backoff import BUS_READER, STORE, Backoff
from coach.erasure import ErasureQueue, ErasureState, Request
from coach.errors import BusError
from coach.retention import Erasure, Removal
from retention.job import ErasureFailed, Job
from retention.metrics import RetentionMetrics

log = logging.getLogger("retention.erasure")

READ_BLOCK_MS: Final = 1000
CLAIM_EVERY_S: Final = 30.0


class WorkerState(enum.StrEnum):
    """Where the erasure consumer is."""

    STARTING = "starting"
    CONSUMING = "consuming"
    BUS_DOWN = "bus-down"
    STOPPED = "stopped"


def summary(removed: list[Removal]) -> list[dict[str, Any]]:
    """Removals as the status shows them (counts, never content or file names)."""
    return [{"store": r.store, "what": r.what, "rows": r.rows, "bytes": r.bytes} for r in removed]


class ErasureWorker:
    """The erasure consumer of one retention worker."""

    def __init__(
        self,
        queue: ErasureQueue,
        job: Job,
        consumer: str,
        metrics: RetentionMetrics,
        *,
        claim_idle_ms: int = 300_000,
        store_backoff: Backoff = STORE,
        reader_backoff: Backoff = BUS_READER,
    ) -> None:
        self.queue = queue
        self.job = job
        self.consumer = consumer
        self.metrics = metrics
        self.claim_idle_ms = claim_idle_ms
        self.store_backoff = store_backoff
        self.reader_backoff = reader_backoff
        self.state = WorkerState.STARTING
        self.done = 0
        self.last_error = ""

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until `stop` is set (run it as a tracked task)."""
        retry = self.reader_backoff.retry()
        pending = True  # first what this consumer had read and not finished
        next_claim = 0.0
        while not stop.is_set():
            try:
                if pending:
                    await self.queue.ensure_group()
                    batch = await self.queue.read(self.consumer, pending=True)
                    pending = bool(batch)
                elif time.monotonic() >= next_claim:
                    next_claim = time.monotonic() + CLAIM_EVERY_S
                    batch = await self.queue.claim_stale(self.consumer, self.claim_idle_ms)
                else:
                    batch = await self.queue.read(self.consumer, block_ms=READ_BLOCK_MS)
                self.state = WorkerState.CONSUMING
                retry.reset()
                for request in batch:
                    if not await self.handle(request, stop):
                        return  # stopping: the request stays pending for the next start
                self.metrics.waiting.set(await self.queue.waiting())
            except (RedisError, BusError, OSError) as exc:
                if self.state is not WorkerState.BUS_DOWN:
                    log.warning("erasure queue unavailable; retrying", extra={"error": str(exc)})
                self.state = WorkerState.BUS_DOWN
                self.last_error = str(exc)
                pending = True
                await wait_or_stop(stop, retry.next())
        self.state = WorkerState.STOPPED

    async def handle(self, request: Request, stop: asyncio.Event) -> bool:
        """Erase one call, retrying while stores fail; False if stopped before it was done."""
        status: dict[str, Any] = {
            "callId": request.call_id,
            "requestedAt": request.at,
            "by": request.by,
        }
        names = await self.job.recordings_of(request.call_id)
        retry = self.store_backoff.retry()
        while True:
            try:
                removed = await self.job.erase(Erasure(request.call_id, names))
            except ErasureFailed as exc:
                self.metrics.erasures.labels("retrying").inc()
                status.update(state=ErasureState.RETRYING.value, error=str(exc))
                await self.queue.set_status(status)
                if await wait_or_stop(stop, retry.next()):
                    return False
                # A store may have come back knowing more (e.g. the record's recording path).
                names |= await self.job.recordings_of(request.call_id)
                continue
            break
        status.update(
            state=ErasureState.DONE.value,
            doneAt=int(time.time() * 1000),
            removed=summary(removed),
        )
        status.pop("error", None)
        await self.queue.complete(request.id, status)
        self.done += 1
        self.metrics.erasures.labels("done").inc()
        log.info(
            "call erased",
            extra={
                "callId": request.call_id,
                "by": request.by,
                "rows": sum(r.rows for r in removed),
                "bytes": sum(r.bytes or 0 for r in removed),
                "stores": sorted({r.store for r in removed}),
            },
        )
        return True

    def health(self) -> dict[str, Any]:
        """State for GET /health."""
        return {"state": self.state.value, "done": self.done}


async def wait_or_stop(stop: asyncio.Event, seconds: float) -> bool:
    """Wait `seconds` or until `stop`; True if stopped."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
    return stop.is_set()
