"""One consumer's reads from a consumer group on the all-events stream, in the order that loses
nothing: its own unacknowledged entries first, then entries a dead consumer left behind, then
new ones.

Every group worker (the orchestrator, the archive, the second pass) acknowledges an entry only
once its work is done, so a crash leaves the entry pending for that consumer name: a restart
(or a failed batch, after `rewind()`) pages through its pending entries from the start, by
cursor, exactly once, before it reads anything new. With `claim_idle_ms` set, entries another
consumer read and did not acknowledge within that time are taken over every
`claim_interval_s` (a replica died).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from coach.bus import Bus, BusEvent

log = logging.getLogger("coach.group")

CLAIM_INTERVAL_S = 5.0
"""How often entries abandoned by a dead replica are looked for."""


class GroupReader:
    """`read()` the next batch for `consumer` in `group`; `rewind()` after a failed batch."""

    def __init__(
        self,
        bus: Bus,
        group: str,
        consumer: str,
        *,
        count: int,
        block_ms: int,
        claim_idle_ms: int | None = None,
        claim_interval_s: float = CLAIM_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.bus = bus
        self.group = group
        self.consumer = consumer
        self.count = count
        """Most entries one read returns."""
        self.block_ms = block_ms
        """How long a read of new entries waits for one."""
        self.claim_idle_ms = claim_idle_ms
        """Take over entries idle this long in another consumer; None: never."""
        self.claim_interval_s = claim_interval_s
        self._clock = clock
        self._pending_after: str | None = "0"  # a (re)start reads its own pending first
        self._next_claim = 0.0

    @property
    def rereading(self) -> bool:
        """Whether the next read pages through this consumer's pending entries."""
        return self._pending_after is not None

    def rewind(self) -> None:
        """Read this consumer's pending entries again from the start (what a failed batch
        read and did not acknowledge is among them)."""
        self._pending_after = "0"

    async def read(self, count: int | None = None) -> list[BusEvent]:
        """The next batch (at most `count`, default `self.count`); empty when nothing came
        within `block_ms`."""
        n = count or self.count
        if self._pending_after is not None:
            batch = await self.bus.read_group(
                self.group,
                self.consumer,
                count=n,
                block_ms=None,
                pending=True,
                after=self._pending_after,
            )
            if batch:
                self._pending_after = batch[-1].id
                return batch
            self._pending_after = None
        if self.claim_idle_ms is not None:
            now = self._clock()
            if now >= self._next_claim:
                self._next_claim = now + self.claim_interval_s
                claimed = await self.bus.claim_stale(
                    self.group, self.consumer, self.claim_idle_ms, count=n
                )
                if claimed:
                    log.info(
                        "took over entries a dead consumer left",
                        extra={"group": self.group, "count": len(claimed)},
                    )
                    return claimed
        return await self.bus.read_group(self.group, self.consumer, count=n, block_ms=self.block_ms)
