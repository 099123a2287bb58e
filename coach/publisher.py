"""The one bounded, ordered, retrying publisher to the bus: producers never block on Redis.

input (`offer`, never blocks) -> bounded deque -> one task -> `Bus.publish_many` (batches of
`BATCH`, in order, so `call.started` always precedes `call.ended`).

The policy, written once for every producer:
- Bound: at most `capacity` events wait (ari 1,000, stt 10,000).
- While Redis is away the task holds every event, in order, and retries with `coach.backoff.BUS`
  (0.1 s .. 5 s); it holds for as long as the bound allows (minutes at normal load), and the
  producer goes on working.
- Full: the oldest *supersedable* event (a `partial`: a later partial or the final replaces it)
  is dropped first; only when none is left is the oldest event of any type dropped. Every drop
  is counted by type in `dropped`, and drops of anything but a partial are logged with the call.
- An event the bus refuses as invalid (a bug on the producer's side: retrying cannot help) is
  dropped, counted as `invalid` and logged; the rest of its batch is still published.
- `close(wait)` tries to publish what is pending for `wait` seconds, then stops.
"""

from __future__ import annotations

import asyncio
import collections
import enum
import logging
from typing import Any

from coach.backoff import BUS, Backoff
from coach.bus import Bus
from coach.errors import CoachError
from coach.events import EventError
from coach.tasks import TaskSet

log = logging.getLogger("coach.publisher")

BATCH = 100
"""Most events per publish call."""
SUPERSEDABLE = frozenset({"partial"})
"""Event types a later event makes redundant: dropped first when the queue is full."""


class PublisherState(enum.Enum):
    """Connection state as the publisher sees it."""

    IDLE = "idle"
    """Not started yet."""
    UP = "up"
    DOWN = "down"
    """The last publish failed retryably; events are held."""
    CLOSED = "closed"


class Publisher:
    """Ordered, bounded, retrying event publisher (policy in the module docstring)."""

    def __init__(
        self,
        bus: Bus,
        tasks: TaskSet,
        *,
        capacity: int,
        backoff: Backoff = BUS,
    ) -> None:
        self.bus = bus
        self.tasks = tasks
        self.capacity = capacity
        self.backoff = backoff
        self.state = PublisherState.IDLE
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
        """Start the publishing task (idempotent)."""
        if self._task is None and self.state is not PublisherState.CLOSED:
            self.state = PublisherState.UP
            self._task = self.tasks.spawn(self._run(), "bus-publisher")

    def offer(self, event: dict[str, Any]) -> None:
        """Queue an event (never blocks; drops by the overflow policy when full)."""
        if self.state is PublisherState.CLOSED:
            self.dropped["closed"] += 1
            return
        if len(self._queue) >= self.capacity:
            self._evict()
        self._queue.append(event)
        self._idle.clear()
        self._wakeup.set()

    def _evict(self) -> None:
        for i, queued in enumerate(self._queue):
            if queued.get("type") in SUPERSEDABLE:
                del self._queue[i]
                self.dropped[str(queued.get("type"))] += 1
                return
        dropped = self._queue.popleft()
        self.dropped[str(dropped.get("type"))] += 1
        log.error(
            "publish queue full (%d): dropped %s",
            self.capacity,
            dropped.get("type"),
            extra={"callId": dropped.get("callId")},
        )

    async def drain(self, wait: float) -> bool:
        """Wait until everything queued is published (at most `wait` s); True if drained."""
        try:
            await asyncio.wait_for(self._idle.wait(), wait)
        except TimeoutError:
            return False
        return True

    async def close(self, wait: float = 3.0) -> None:
        """Publish what is pending for at most `wait` seconds, then stop."""
        if self._task is not None:
            await self.drain(wait)
            await self.tasks.cancel(self._task)
        if self._queue:
            log.error("publisher closed with %d events unpublished", len(self._queue))
        self.state = PublisherState.CLOSED

    async def _run(self) -> None:
        retry = self.backoff.retry()
        while True:
            if not self._queue:
                self._idle.set()
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            batch = [self._queue[i] for i in range(min(BATCH, len(self._queue)))]
            try:
                await self.bus.publish_many(batch)
            except (CoachError, EventError) as exc:
                if getattr(exc, "retryable", False):
                    if self.state is not PublisherState.DOWN:
                        log.warning("bus unavailable, holding %d events: %s", len(self._queue), exc)
                    self.state = PublisherState.DOWN
                    await asyncio.sleep(retry.next())
                    continue
                # Refused, not unavailable: find the bad event(s), publish the rest.
                if not await self._one_by_one(batch):
                    continue
            else:
                self._pop_sent(batch)
                self.published += len(batch)
            if self.state is PublisherState.DOWN:
                log.info("bus back, %d events waiting", len(self._queue))
            self.state = PublisherState.UP
            retry.reset()

    def _pop_sent(self, batch: list[dict[str, Any]]) -> None:
        # Eviction may have removed part of the batch meanwhile: pop by identity.
        sent = {id(e) for e in batch}
        while self._queue and id(self._queue[0]) in sent:
            self._queue.popleft()

    async def _one_by_one(self, batch: list[dict[str, Any]]) -> bool:
        """Publish `batch` singly, dropping refused events; False if the bus went away."""
        for event in batch:
            try:
                await self.bus.publish(event)
                self.published += 1
            except (CoachError, EventError) as exc:
                if getattr(exc, "retryable", False):
                    return False  # still queued; the main loop backs off and retries
                self.dropped["invalid"] += 1
                log.error(
                    "bus refused %s, dropped: %s",
                    event.get("type"),
                    exc,
                    extra={"callId": event.get("callId")},
                )
            if self._queue and self._queue[0] is event:
                self._queue.popleft()
        return True
