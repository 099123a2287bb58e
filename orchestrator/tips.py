"""Live LLM tips: per-call debouncing (one request in flight per call, newest context wins).

Per call there is at most one worker task. A new final replaces the pending context; the
worker waits `debounce` for the conversation to settle (and `min_interval` since the call's
previous request), sends the newest context, publishes the tip, and loops while something
newer arrived meanwhile. Calls never queue behind each
other here: the only shared limit is the client's global concurrency cap. Workers are
supervised (`coach.tasks`): one that dies is logged with its call and counted in
`coach_task_failures_total{task="tip-worker"}`, and the call's next final starts a new one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from coach.errors import BusError
from coach.tasks import TaskFailure, TaskSet
from orchestrator.llm.client import Completer
from orchestrator.llm.errors import Failure, LLMError
from orchestrator.llm.transport import Usage
from orchestrator.prompts import TIP_SCHEMA, InvalidOutput, parse_tip

log = logging.getLogger(__name__)

Publish = Callable[[dict[str, Any]], Awaitable[Any]]
TIP_KIND = "tip-worker"
"""The `task` label of tip workers in `coach_task_failures_total`."""


@dataclass
class TipRequest:
    """The newest context of a call: chat messages and the utterances that prompted it."""

    messages: list[dict[str, str]]
    refs: list[str]


@dataclass
class _Slot:
    pending: TipRequest | None = None
    task: asyncio.Task[None] | None = None
    last_sent: float = float("-inf")
    last_text: str = ""
    usage: Usage = field(default_factory=Usage)
    given: list[str] = field(default_factory=list)


class TipScheduler:
    """Asks the LLM for tips, one call at a time per call, all calls in parallel."""

    def __init__(
        self,
        client: Completer,
        publish: Publish,
        debounce_s: float,
        min_interval_s: float = 0.0,
        *,
        tasks: TaskSet | None = None,
        clock: Callable[[], float] | None = None,
        pause: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.client = client
        self._publish = publish
        self.debounce_s = debounce_s
        self.min_interval_s = min_interval_s
        self._own_tasks = tasks is None
        self.tasks = tasks if tasks is not None else TaskSet("orchestrator")
        self._clock = clock
        """Monotonic seconds (default: the running loop's clock)."""
        self._pause = pause
        """How the worker waits for debounce and min interval (tests record the waits)."""
        self._slots: dict[str, _Slot] = {}
        self.outcomes: dict[str, int] = {}
        self.superseded = 0

    def usage(self, call_id: str) -> Usage:
        """Tokens and cost spent on this call so far."""
        return self._slot(call_id).usage

    def given(self, call_id: str) -> list[str]:
        """Tips already given by the LLM on this call (to avoid repeats)."""
        return self._slot(call_id).given

    def _slot(self, call_id: str) -> _Slot:
        return self._slots.setdefault(call_id, _Slot())

    def request(self, call_id: str, req: TipRequest) -> None:
        """Ask for a tip on the newest context; replaces a pending, not yet sent, one."""
        slot = self._slot(call_id)
        if slot.pending is not None:
            self.superseded += 1
            req.refs = list(dict.fromkeys([*slot.pending.refs, *req.refs]))[-10:]
        slot.pending = req
        if slot.task is None or slot.task.done():
            slot.task = self.tasks.spawn(
                self._run(call_id, slot), TIP_KIND, call_id=call_id, on_failure=self._failed
            )

    def _failed(self, failure: TaskFailure) -> None:
        # Logged and counted by the task set; the slot keeps its pending context, and the
        # next request of the call starts a new worker.
        self.outcomes["failed"] = self.outcomes.get("failed", 0) + 1

    def in_flight(self) -> int:
        """Calls with a tip worker running."""
        return sum(1 for s in self._slots.values() if s.task and not s.task.done())

    async def _run(self, call_id: str, slot: _Slot) -> None:
        clock = self._clock or asyncio.get_running_loop().time
        while slot.pending is not None:
            # Wait for the conversation to settle, and at least min_interval since the last
            # request of this call; finals arriving meanwhile replace the pending context.
            wait = max(self.debounce_s, slot.last_sent + self.min_interval_s - clock())
            if wait > 0:
                await self._pause(wait)
            slot.last_sent = clock()
            req, slot.pending = slot.pending, None
            if req is None:
                break
            try:
                outcome = await self._ask(call_id, slot, req)
            except BusError as exc:
                # The tip is lost (it would be stale after a bus outage anyway); keep the worker.
                log.warning("tip not published", extra={"callId": call_id, "error": str(exc)})
                outcome = "bus_error"
            self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1

    async def _ask(self, call_id: str, slot: _Slot, req: TipRequest) -> str:
        try:
            done = await self.client.complete(
                req.messages, schema=TIP_SCHEMA, schema_name="coach_tip"
            )
        except LLMError as exc:
            if exc.failure is not Failure.CIRCUIT_OPEN:
                log.info("no LLM tip", extra={"callId": call_id, "failure": exc.failure.value})
            return exc.failure.value
        slot.usage.add(done.usage)
        try:
            tip = parse_tip(done.text)
        except InvalidOutput as exc:
            log.warning("LLM tip unusable", extra={"callId": call_id, "error": str(exc)[:200]})
            return "invalid_output"
        if tip is None:
            return "nothing"
        if tip.text == slot.last_text:
            return "repeat"
        slot.last_text = tip.text
        slot.given.append(tip.text)
        del slot.given[:-10]
        await self._publish(
            {
                "type": "coach",
                "callId": call_id,
                "kind": tip.kind,
                "severity": tip.severity,
                "text": tip.text,
                "source": "llm",
                "model": done.model,
                "refs": req.refs,
            }
        )
        return "tip"

    async def finish(self, call_id: str) -> Usage:
        """Stop a call's tips (the call ended); return its usage and forget it."""
        slot = self._slots.pop(call_id, None)
        if slot is None:
            return Usage()
        slot.pending = None
        if slot.task and not slot.task.done():
            await self.tasks.cancel(slot.task)
        return slot.usage

    async def close(self) -> None:
        """Cancel every worker and wait for them."""
        tasks = [s.task for s in self._slots.values() if s.task and not s.task.done()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._slots.clear()
        if self._own_tasks:
            await self.tasks.close()
