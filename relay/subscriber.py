"""One WebSocket client's queue: bounded, with a written overflow policy.

Overflow policy (per client, `limit` queued events):
1. When the queue is full, queued `partial` events are dropped (oldest first). A partial is
   superseded by the next partial or the final of its utterance, so nothing a reader keeps is
   lost; the drop is counted.
2. If the queue is still full (no partials left to drop), the client is disconnected with
   close code 4008 and a reason that carries the last id it was sent, so it can reconnect with
   `since=<id>` and get the rest from the bus without gaps. Other clients are never waited on:
   `push` never blocks.
"""

from __future__ import annotations

import asyncio
import enum
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from relay.auth import Principal


class SubState(enum.Enum):
    """Life cycle of a subscription."""

    REPLAYING = "replaying"  # history being sent; live events wait in the queue
    LIVE = "live"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class Message:
    """An event ready to send: its id (parsed for ordering), call, type, agent and JSON text."""

    key: tuple[int, int]
    id: str
    call_id: str
    type: str
    text: str


class Subscriber:
    """Queue between the hub (producer) and one socket's writer task (consumer)."""

    def __init__(
        self,
        principal: Principal,
        call_id: str,
        limit: int,
        on_drop: Callable[[str], None] | None = None,
    ) -> None:
        self.principal = principal
        self.call_id = call_id  # "*" for every call (filtered by the principal)
        self.limit = limit
        self.state = SubState.REPLAYING
        self.queue: deque[Message] = deque()
        self.wakeup = asyncio.Event()
        self.cut_off = asyncio.Event()  # set on overflow: the socket is closed, even mid-send
        self.last_sent: str | None = None
        self.overflowed = False
        self.dropped = 0
        # Events at or below these ids were sent by the replay; live copies are skipped.
        self.floor: tuple[int, int] = (0, 0)
        self.call_floor: dict[str, tuple[int, int]] = {}
        self._on_drop = on_drop

    def push(self, msg: Message) -> None:
        """Queue a live event (never blocks); applies the overflow policy."""
        if self.state is SubState.CLOSED or self.overflowed:
            return
        if msg.key <= self.floor or msg.key <= self.call_floor.get(msg.call_id, (0, 0)):
            return
        if len(self.queue) >= self.limit:
            self._drop_partials()
            if len(self.queue) >= self.limit:
                self.overflowed = True
                self.cut_off.set()
                return
        self.queue.append(msg)
        if self.state is SubState.LIVE:
            self.wakeup.set()

    def _drop_partials(self) -> None:
        kept = deque(m for m in self.queue if m.type != "partial")
        dropped = len(self.queue) - len(kept)
        if dropped:
            self.dropped += dropped
            self.queue = kept
            if self._on_drop:
                for _ in range(dropped):
                    self._on_drop("partial")

    def go_live(self) -> None:
        """Replay is done: drop queued events the replay already covered, start sending."""
        self.queue = deque(
            m
            for m in self.queue
            if m.key > self.floor and m.key > self.call_floor.get(m.call_id, (0, 0))
        )
        self.state = SubState.LIVE
        self.wakeup.set()

    def take(self, max_items: int) -> list[Message]:
        """Up to `max_items` queued events, oldest first."""
        out: list[Message] = []
        while self.queue and len(out) < max_items:
            out.append(self.queue.popleft())
        if not self.queue:
            self.wakeup.clear()
        return out

    def close(self) -> None:
        """No more events will be queued."""
        self.state = SubState.CLOSED
        self.queue.clear()
        self.wakeup.set()
