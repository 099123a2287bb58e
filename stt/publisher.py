"""Publishes STT events to the bus without ever blocking transcription.

input (`offer`, never blocks) -> bounded deque -> one publisher task -> `Bus.publish_many`.
Bound and overflow policy: at most `capacity` events wait. When full, the oldest *partial* is
dropped first (a later partial or the final supersedes it); only if none is left is the oldest
final dropped (counted in `dropped`, logged). While Redis is down the task retries with
exponential backoff (0.1 s .. 5 s) and keeps the events in order; transcription goes on.
"""

from __future__ import annotations

import asyncio
import collections
import enum
import logging
from typing import Any

from coach.bus import Bus
from coach.errors import BusError, BusUnavailable
from coach.events import EventError

log = logging.getLogger("stt.publisher")

BATCH = 100
"""Most events per publish call."""


class PublisherState(enum.Enum):
    """Connection state as seen by the publisher."""

    DISABLED = "disabled"
    UP = "up"
    DOWN = "down"
    CLOSED = "closed"


class BusPublisher:
    """Ordered, bounded, retrying event publisher (see module docstring)."""

    def __init__(self, bus: Bus | None, capacity: int = 10_000) -> None:
        self.bus = bus
        self.capacity = capacity
        self.state = PublisherState.UP if bus is not None else PublisherState.DISABLED
        self.published = 0
        self.dropped: collections.Counter[str] = collections.Counter()
        self._queue: collections.deque[dict[str, Any]] = collections.deque()
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None

    @property
    def depth(self) -> int:
        """Events waiting."""
        return len(self._queue)

    def start(self) -> None:
        """Start the publisher task."""
        if self.bus is not None and self._task is None:
            self._task = asyncio.create_task(self._run(), name="bus-publisher")

    def offer(self, event: dict[str, Any]) -> None:
        """Queue an event for the bus (drops by the overflow policy when full)."""
        if self.bus is None or self.state is PublisherState.CLOSED:
            return
        if len(self._queue) >= self.capacity:
            self._evict()
        self._queue.append(event)
        self._idle.clear()
        self._wakeup.set()

    def _evict(self) -> None:
        for i, queued in enumerate(self._queue):
            if queued.get("type") == "partial":
                del self._queue[i]
                self.dropped["partial"] += 1
                return
        dropped = self._queue.popleft()
        self.dropped[str(dropped.get("type"))] += 1
        log.error("bus buffer full: dropped a final", extra={"callId": dropped.get("callId")})

    async def drain(self, wait_s: float) -> bool:
        """Wait until everything queued is published (or `wait_s`); True if drained."""
        try:
            await asyncio.wait_for(self._idle.wait(), wait_s)
        except TimeoutError:
            return False
        return True

    async def close(self, wait_s: float = 2.0) -> None:
        """Try to flush for `wait_s` seconds, then stop."""
        if self._task is not None:
            await self.drain(wait_s)
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self.state = PublisherState.CLOSED

    async def _run(self) -> None:
        assert self.bus is not None
        delay = 0.1
        while True:
            if not self._queue:
                self._idle.set()
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            batch = [self._queue[i] for i in range(min(BATCH, len(self._queue)))]
            try:
                await self.bus.publish_many(batch)
            except BusUnavailable as exc:
                if self.state is not PublisherState.DOWN:
                    log.warning("bus unavailable, buffering events: %s", exc)
                self.state = PublisherState.DOWN
                await asyncio.sleep(delay)
                delay = min(5.0, delay * 2)
                continue
            except (EventError, BusError) as exc:
                # Not retryable (a malformed event is a bug here): publish the rest one by one.
                log.error("bus refused a batch: %s", exc)
                await self._one_by_one(batch)
            else:
                # Eviction may have removed some of the batch meanwhile: pop by identity.
                sent = {id(e) for e in batch}
                while self._queue and id(self._queue[0]) in sent:
                    self._queue.popleft()
                self.published += len(batch)
            if self.state is PublisherState.DOWN:
                log.info("bus back, %d events waiting", len(self._queue))
            self.state = PublisherState.UP
            delay = 0.1

    async def _one_by_one(self, batch: list[dict[str, Any]]) -> None:
        assert self.bus is not None
        for event in batch:
            try:
                await self.bus.publish(event)
                self.published += 1
            except (EventError, BusError) as exc:
                if getattr(exc, "retryable", False):
                    return  # keep it queued; the main loop retries
                self.dropped["invalid"] += 1
                log.error("dropped an event the bus refused: %s", exc)
            if self._queue and self._queue[0] is event:
                self._queue.popleft()
