"""The calls waiting for their second pass, in this process: a bounded FIFO, one call each.

Policy (STYLE.md 6):
- Bound: `limit` calls (RECORD_QUEUE_MAX). The reader asks for at most `free()` new bus
  entries, so the queue never overflows by reading; once it is full the reader stops reading
  (back-pressure). The calls beyond the bound are not dropped: their `call.ended` entries stay
  in the bus's stream, unread by the group, and are read when a call is done. That wait is
  bounded by the bus's time bound (BUS_EVENTS_RETENTION_S): the group's lag is measured
  (`coach.lag`, alarm in /health and `coach_bus_group_lag_alarm`) well before an unread entry
  could be trimmed; a call whose entry was trimmed unread keeps its live transcript only.
- Durable: an entry is acknowledged only after its transcript is committed (or its recording
  found unusable and the failure stored), so what is queued here when the process dies is
  pending in the group and is read again at the restart.
- One job per call: a second `call.ended` of a call already waiting (a replay, or the pending
  entries read again after a bus outage) joins that job (its entry id is acknowledged with it)
  and takes no slot.
"""

from __future__ import annotations

import asyncio
import collections
import time
from dataclasses import dataclass, field
from typing import Literal

Offer = Literal["queued", "joined", "full"]


@dataclass
class Job:
    """One call to transcribe, and the bus entries that asked for it."""

    call_id: str
    recording: str
    lang: str | None
    entry_ids: list[str] = field(default_factory=list)
    ended_ms: int = 0
    """Bus time of its first `call.ended` (the queue's lag is measured from it)."""


class PendingCalls:
    """Bounded FIFO of `Job`s keyed by call id (module docstring)."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.limit = limit
        self._jobs: collections.OrderedDict[str, Job] = collections.OrderedDict()
        self._current: Job | None = None
        self._changed = asyncio.Event()

    def __len__(self) -> int:
        return len(self._jobs)

    def free(self) -> int:
        """Slots left (the call in work holds none: it was taken)."""
        return self.limit - len(self._jobs)

    @property
    def current(self) -> Job | None:
        """The call being transcribed, if any."""
        return self._current

    def offer(self, job: Job) -> Offer:
        """Queue `job`, or join the waiting (or in-work) job of the same call; `full` when no
        slot is left (the caller leaves the entry unacknowledged)."""
        same = self._jobs.get(job.call_id)
        if same is None and self._current is not None and self._current.call_id == job.call_id:
            same = self._current
        if same is not None:
            same.entry_ids.extend(i for i in job.entry_ids if i not in same.entry_ids)
            return "joined"
        if len(self._jobs) >= self.limit:
            return "full"
        self._jobs[job.call_id] = job
        self._wake()
        return "queued"

    async def take(self) -> Job:
        """The oldest waiting call, once there is one; it is `current` until `done`."""
        while not self._jobs:
            self._changed.clear()
            await self._changed.wait()
        _, job = self._jobs.popitem(last=False)
        self._current = job
        self._wake()
        return job

    def done(self, job: Job) -> None:
        """The call in work is finished (or given back to the bus)."""
        if self._current is job:
            self._current = None
        self._wake()

    async def wait_space(self) -> None:
        """Return once a slot is free."""
        while self.free() <= 0:
            self._changed.clear()
            await self._changed.wait()

    def oldest_age_s(self, now_ms: int | None = None) -> float:
        """Seconds since the oldest waiting or in-work call ended (0 when none)."""
        jobs = [*self._jobs.values(), *([self._current] if self._current else [])]
        if not jobs:
            return 0.0
        now = int(time.time() * 1000) if now_ms is None else now_ms
        return max(0.0, (now - min(j.ended_ms for j in jobs)) / 1000)

    def _wake(self) -> None:
        self._changed.set()
