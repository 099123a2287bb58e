"""Publishes call.started / call.ended to the bus without ever blocking call control.

Queue bound: 1000 events; on overflow the oldest is dropped and logged (Redis has been down
for a long time by then). One worker publishes in order, retrying retryable bus errors with
backoff, so call.started always precedes call.ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from typing import Any

from coach.bus import Bus
from coach.errors import CoachError
from coach.events import EventError

log = logging.getLogger("ari.publisher")

MAX_PENDING = 1000


class Publisher:
    """Ordered, retrying, bounded event publisher."""

    def __init__(self, bus: Bus, *, backoff_max: float = 5.0) -> None:
        self.bus = bus
        self.backoff_max = backoff_max
        self.published = 0
        self.dropped = 0
        self._pending: deque[dict[str, Any]] = deque()
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task = asyncio.create_task(self._run(), name="ari-publisher")

    def publish(self, event: dict[str, Any]) -> None:
        """Queue an event (never blocks)."""
        if len(self._pending) >= MAX_PENDING:
            old = self._pending.popleft()
            self.dropped += 1
            log.error("event queue full; dropped %s", old.get("type"),
                      extra={"callId": old.get("callId")})
        self._pending.append(event)
        self._idle.clear()
        self._wakeup.set()

    async def drain(self, wait: float) -> bool:
        """Wait until everything queued is published (or timeout); True if drained."""
        try:
            await asyncio.wait_for(self._idle.wait(), wait)
        except TimeoutError:
            return False
        return True

    async def close(self, wait: float = 3.0) -> None:
        """Try to publish what is pending, then stop."""
        await self.drain(wait)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _run(self) -> None:
        delay = 0.1
        while True:
            if not self._pending:
                self._idle.set()
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            event = self._pending[0]
            try:
                await self.bus.publish(event)
            except EventError as exc:  # a bug on our side: retrying cannot help
                log.error("invalid event not published: %s", exc,
                          extra={"callId": event.get("callId")})
            except CoachError as exc:
                if not exc.retryable:
                    log.error("bus refused event: %s", exc, extra={"callId": event.get("callId")})
                else:
                    log.warning("bus unavailable, retrying in %.1fs: %s", delay, exc)
                    await asyncio.sleep(delay)
                    delay = min(self.backoff_max, delay * 2)
                    continue
            else:
                self.published += 1
            delay = 0.1
            if self._pending and self._pending[0] is event:
                self._pending.popleft()
