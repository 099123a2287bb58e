"""The hub: one task tails the bus and fans each event out to the subscribed WebSocket clients.

One Redis reader per relay process, whatever the number of clients: an event is read and
serialised once, then queued (never awaited) on each subscriber. When Redis goes away the
reader backs off (`coach.backoff.BUS_READER`) and resumes from the last id it saw, so clients
get every event afterwards. Any other failure of the reader is logged and counted by the
relay's task set (`coach_task_failures_total{service="relay",task="relay-hub"}`), `/health`
says `busReader: failed`, and the reader starts again after the next backoff delay, from the
same cursor (events of the failed batch may reach a client twice, never not at all).
"""

from __future__ import annotations

import asyncio
import enum
import json
import logging
import time
from collections import OrderedDict

from coach.backoff import BUS_READER, Backoff
from coach.bus import Bus, BusEvent
from coach.errors import BusUnavailable
from coach.events import parse_id
from coach.tasks import TaskFailure, TaskSet
from relay.metrics import RelayMetrics
from relay.subscriber import Message, Subscriber

log = logging.getLogger("relay.hub")

READ_COUNT = 1000
"""Most events taken from Redis per read."""
BLOCK_MS = 1000
"""How long one read waits for new events."""
KNOWN_CALLS = 100_000
"""Calls whose agent the hub remembers (LRU), to route events without asking Redis."""
AGENT_SCAN = 50
"""Events read from the start of an unknown call to find its agent (call.started/answered)."""


class HubState(enum.Enum):
    """Connection state of the bus reader."""

    STARTING = "starting"
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    FAILED = "failed"  # the reader raised something other than BusUnavailable; it restarts
    STOPPED = "stopped"


class Hub:
    """Routes bus events to subscribers; `start()` / `stop()` own the reader task."""

    def __init__(
        self, bus: Bus, metrics: RelayMetrics, tasks: TaskSet, backoff: Backoff = BUS_READER
    ) -> None:
        self.bus = bus
        self.metrics = metrics
        self.tasks = tasks
        self.retry = backoff.retry()
        self.state = HubState.STARTING
        self.cursor: str | None = None
        self.by_call: dict[str, set[Subscriber]] = {}
        self.wildcard: set[Subscriber] = set()
        self.call_agents: OrderedDict[str, str | None] = OrderedDict()
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._stopping = False

    async def start(self) -> None:
        """Start the reader task (it waits for Redis if Redis is not there yet)."""
        self._spawn_reader(0.0)

    def _spawn_reader(self, delay: float) -> None:
        self._task = self.tasks.spawn(self._run(delay), "relay-hub", on_failure=self._reader_failed)

    def _reader_failed(self, failure: TaskFailure) -> None:
        """The task set has logged and counted it: say so in /health, start again later."""
        if self._stopping:
            return
        self.state = HubState.FAILED
        self.metrics.bus_up.set(0)
        self._spawn_reader(self.retry.next())

    async def stop(self) -> None:
        """Stop reading and close every subscriber."""
        self._stopping = True
        self.state = HubState.STOPPED
        if self._task:
            await self.tasks.cancel(self._task)
        for sub in [*self.wildcard, *(s for subs in self.by_call.values() for s in subs)]:
            sub.close()

    async def wait_connected(self) -> None:
        """Wait until the reader has a cursor (used by start-up and tests)."""
        await self._connected.wait()

    # -- subscribers --------------------------------------------------------------------------

    def subscribe(self, sub: Subscriber) -> None:
        """Start routing live events to `sub` (it queues them until its replay is done)."""
        if sub.call_id == "*":
            self.wildcard.add(sub)
        else:
            self.by_call.setdefault(sub.call_id, set()).add(sub)
        self._update_gauge(sub, +1)

    def unsubscribe(self, sub: Subscriber) -> None:
        """Stop routing to `sub`."""
        if sub.call_id == "*":
            if sub in self.wildcard:
                self.wildcard.discard(sub)
                self._update_gauge(sub, -1)
            return
        subs = self.by_call.get(sub.call_id)
        if subs and sub in subs:
            subs.discard(sub)
            self._update_gauge(sub, -1)
            if not subs:
                del self.by_call[sub.call_id]

    def _update_gauge(self, sub: Subscriber, delta: int) -> None:
        self.metrics.clients.labels(sub.principal.role).inc(delta)

    @property
    def client_count(self) -> int:
        """Open subscriptions."""
        return len(self.wildcard) + sum(len(s) for s in self.by_call.values())

    async def agent_of(self, call_id: str) -> str | None:
        """The agent of a call (who answered it, else its dial target), from memory or from
        the call's first events in Redis."""
        if call_id in self.call_agents and self.call_agents[call_id] is not None:
            return self.call_agents[call_id]
        agent: str | None = None
        # call.answered follows call.started within the call's first events (before the
        # conversation); a bounded read, not the whole call.
        for event in await self.bus.read_call(call_id, count=AGENT_SCAN):
            if event.type in ("call.started", "call.answered"):
                value = event.data().get("agent")
                agent = str(value) if value is not None else agent
        if agent is not None:
            self._remember(call_id, agent)
        return agent

    def _remember(self, call_id: str, agent: str | None) -> None:
        self.call_agents[call_id] = agent
        self.call_agents.move_to_end(call_id)
        while len(self.call_agents) > KNOWN_CALLS:
            self.call_agents.popitem(last=False)

    # -- the reader ---------------------------------------------------------------------------

    async def _run(self, delay: float = 0.0) -> None:
        if delay:
            await asyncio.sleep(delay)
        while not self._stopping:
            try:
                if self.cursor is None:
                    # Start from "now": earlier history reaches clients through replay.
                    self.cursor = await self.bus.last_id()
                    for call_id, started in (await self.bus.active_calls()).items():
                        self._remember(call_id, started.get("agent"))
                    self._mark_connected()
                events = await self.bus.read_all(self.cursor, READ_COUNT, BLOCK_MS)
                self._mark_connected()
                if events:
                    await self._learn_agents(events)
                    self.dispatch(events)
                    self.cursor = events[-1].id
                # Reset only after a whole round: a batch that keeps failing backs off too.
                self.retry.reset()
            except BusUnavailable as exc:
                if self._stopping:
                    # redis-py may turn our cancellation into a connection error.
                    return
                if self.state is HubState.CONNECTED:
                    log.warning("bus reader lost redis; retrying", extra={"error": str(exc)})
                self.state = HubState.DISCONNECTED
                self.metrics.bus_up.set(0)
                self.metrics.bus_errors.inc()
                await asyncio.sleep(self.retry.next())

    async def _learn_agents(self, events: list[BusEvent]) -> None:
        """Look up the agent of calls this relay has not seen start (it started later, or the
        call ended before it started and a summary follows), once per call, before routing:
        agents following `*` must get those events too."""
        unknown = {
            e.call_id
            for e in events
            if e.type != "call.started" and e.call_id not in self.call_agents
        }
        for call_id in unknown:
            if await self.agent_of(call_id) is None:
                self._remember(call_id, None)

    def _mark_connected(self) -> None:
        if self.state is not HubState.CONNECTED:
            log.info("bus reader connected", extra={"cursor": self.cursor})
            self.state = HubState.CONNECTED
            self.metrics.bus_up.set(1)
            self._connected.set()

    def dispatch(self, events: list[BusEvent]) -> None:
        """Queue each event on every subscriber allowed to see it."""
        now_ms = time.time() * 1000
        delivered = 0
        for event in events:
            key = parse_id(event.id)
            if event.type in ("call.started", "call.answered"):
                agent = json.loads(event.body).get("agent")
                self._remember(event.call_id, agent if isinstance(agent, str) else None)
            msg = Message(key, event.id, event.call_id, event.type, event.json())
            for sub in self.by_call.get(event.call_id, ()):
                sub.push(msg)
                delivered += 1
            if self.wildcard:
                agent = self.call_agents.get(event.call_id)
                for sub in self.wildcard:
                    if sub.principal.may_see(agent):
                        sub.push(msg)
                        delivered += 1
        self.metrics.delivered.inc(delivered)
        self.metrics.fanout_lag.observe(max(0.0, (now_ms - parse_id(events[-1].id)[0]) / 1000))
