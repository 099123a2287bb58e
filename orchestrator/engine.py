"""The orchestrator's engine: consumer group in, per-call workers, coach/metrics/summary out.

Sharing calls between replicas (DESIGN.md "Bus and relay"): the global stream interleaves all
calls and the consumer group hands each entry to *one* replica, so a call's events are spread
over replicas. Splitting a call's state that way would break timing rules, cooldowns, LLM
debouncing and the summary. So the group is used as a reliable *doorbell*, and the call's own
stream as the source of truth:

- each call is owned by one replica (a Redis lease, see `leases.py`);
- the owner processes the call in order from the call's stream (`bus.read_call(after=cursor)`),
  whichever replica the group gave the entry to; a non-owner that receives an entry pokes the
  owner over pub/sub and acks (the owner also catches up every tick, so a lost poke only delays);
- the owner acks its group entries once its cursor has passed them and saves the cursor, so a
  restarted or new owner replays silently up to the cursor and continues live: nothing is lost,
  nothing fires twice (rule cooldowns are rebuilt from our own `coach` events in the stream).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

from redis.exceptions import RedisError

from coach.backoff import BUS, BUS_READER, Backoff, Retry
from coach.bus import Bus, BusEvent, id_after
from coach.errors import BusError, BusUnavailable
from coach.group_reader import GroupReader
from coach.knowledge import KnowledgeBase
from coach.knowledge.report import KBReport
from coach.knowledge.shown import ShownLog
from coach.knowledge.watch import keep_indexed
from coach.lag import LagMonitor
from coach.tasks import TaskFailure, TaskSet
from orchestrator import prom
from orchestrator.callstate import CallState
from orchestrator.knowledge import KnowledgeAssist
from orchestrator.leases import DONE, Leases
from orchestrator.llm.client import Completer
from orchestrator.llm.transport import Usage
from orchestrator.playbook_store import PlaybookStore
from orchestrator.prompts import tip_messages
from orchestrator.settings import Settings
from orchestrator.summary import build_summary
from orchestrator.tips import TipRequest, TipScheduler

log = logging.getLogger(__name__)

CALL_TYPES: Final = ("call.started", "final", "call.ended")
READ_COUNT: Final = 500
"""Group entries read per round trip (bounds the memory of one batch)."""
READ_BLOCK_MS: Final = 1000
TICK_S: Final = 1.0
SWEEP_EVERY_TICKS: Final = 5
LAG_PROBE_S: Final = 0.1
TICK_PUBLISH_CHUNK: Final = 25
"""Timer output (metrics, silence) is published in small transactions between finals."""
SAFETY_CATCH_UP_MS: Final = 4000
"""A call with no catch-up for this long is re-read at the next sweep (lost pokes)."""
STOP_GRACE_S: Final = 5.0
"""Time given to workers and summaries to finish on SIGTERM (below Compose's 10 s)."""
WORKER_RESTARTS: Final = 3
"""Restarts of a failed call worker (each after a backoff delay, from the call's saved cursor)
before the call is given up and counted in /health as `degradedCalls`."""
WORKER_KIND: Final = "call-worker"
"""The `task` label of call workers in `coach_task_failures_total`."""


class ConsumerState(StrEnum):
    """The engine's connection to the bus."""

    STARTING = "starting"
    CONSUMING = "consuming"
    BUS_DOWN = "bus_down"
    STOPPING = "stopping"
    STOPPED = "stopped"


class WorkerPhase(StrEnum):
    """Where a call worker is (one value instead of four flags)."""

    LOADING = "loading"
    """Its state is empty: the next wake reads the saved cursor and replays up to it. Nothing
    unsaved is held, so stopping may cancel it at once."""
    IDLE = "idle"
    """Caught up, waiting for a wake."""
    BUSY = "busy"
    """Processing the call's stream (publishing, saving the cursor): stopping waits for it."""
    ENDING = "ending"
    """The summary is published (never again); marking the call done. The lease is no longer
    renewed; stopping waits for it."""
    DEGRADED = "degraded"
    """The worker failed more than WORKER_RESTARTS times in a row: the call is no longer
    coached by this replica (its entries are acknowledged; /health counts it)."""


@dataclass
class CallWorker:
    """The owner side of one call: its state, a wake-up flag, group entries awaiting ack."""

    state: CallState
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    to_ack: list[str] = field(default_factory=list)
    live_after: str | None = None
    phase: WorkerPhase = WorkerPhase.LOADING
    task: asyncio.Task[None] | None = None
    last_metrics_ms: int = 0
    caught_up_ms: int = 0
    restarts: Retry | None = None
    """Failures in a row (and the delay before the next restart); reset by progress."""


class Orchestrator:
    """Consumes the bus and coaches every call this replica owns."""

    def __init__(
        self,
        bus: Bus,
        settings: Settings,
        store: PlaybookStore,
        llm: Completer | None = None,
        *,
        kb: KnowledgeBase | None = None,
        kb_report: KBReport | None = None,
        clock: Callable[[], float] = time.time,
        tick_s: float = TICK_S,
        backoff: Backoff = BUS,
        reader_backoff: Backoff = BUS_READER,
    ) -> None:
        self.bus = bus
        self.tick_s = tick_s
        self.backoff = backoff
        """Delays of a call worker's retries and restarts."""
        self.reader_backoff = reader_backoff
        """Delays of the group reader and the poke subscriber while the bus is away."""
        self.tasks = TaskSet("orchestrator")
        self.settings = settings
        self.store = store
        self.llm = llm
        self.clock = clock
        self.me = settings.consumer
        self.group = settings.group
        self.leases = Leases(
            bus, self.me, settings.lease_ttl_ms, bus.config.idle_ttl, bus.config.ended_ttl
        )
        self.lag = LagMonitor(bus, self.group)
        """The group's lag behind the bus (trimming ignores groups): gauges and /health."""
        self.tips = (
            TipScheduler(
                llm,
                self._publish_one,
                settings.llm.debounce_ms / 1000,
                settings.llm.min_interval_s,
            )
            if llm
            else None
        )
        self.kb = kb
        self.knowledge = (
            KnowledgeAssist(
                kb,
                settings.kb,
                self._publish_one,
                llm,
                kb_report,
                tasks=self.tasks,
                shown=ShownLog(bus.redis, bus.config.prefix) if kb_report else None,
            )
            if kb is not None
            else None
        )
        self.calls: dict[str, CallWorker] = {}
        self.state = ConsumerState.STARTING
        self._stopping = asyncio.Event()
        self.last_error = ""
        self.stats: dict[str, int] = {"finals": 0, "coach": 0, "summaries": 0, "metrics": 0}

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Create the group (new groups start at the stream's end) and start the loops."""
        await self.bus.ensure_group(self.group, start="$")
        for name in self._loops():
            self._spawn_loop(name)
        log.info(
            "orchestrator consuming",
            extra={
                "group": self.group,
                "consumer": self.me,
                "mode": "llm" if self.llm else "rules-only",
            },
        )

    def _loops(self) -> dict[str, Callable[[], Coroutine[Any, Any, None]]]:
        return {
            "read": self._read_loop,
            "tick": self._tick_loop,
            "poke": self._poke_loop,
            "lag": self._lag_loop,
            "group-lag": lambda: self.lag.run(self._stopping),
            **({"kb-index": self._kb_loop} if self.kb is not None else {}),
        }

    def _spawn_loop(self, name: str, delay: float = 0.0, retry: Retry | None = None) -> None:
        """Run one of the engine's loops; if it dies (a bug, an unexpected error) it is logged
        and counted by the task set and started again after a backoff delay."""
        retry = retry or self.backoff.retry()
        loop = self._loops()[name]

        async def run() -> None:
            if delay:
                await asyncio.sleep(delay)
            await loop()

        def failed(_: TaskFailure) -> None:
            if not self._stopping.is_set():
                self._spawn_loop(name, retry.next(), retry)

        self.tasks.spawn(run(), name, on_failure=failed)

    async def stop(self) -> None:
        """Stop reading, let workers finish what they hold, release leases, cancel the rest."""
        self.state = ConsumerState.STOPPING
        self._stopping.set()
        workers = [
            w.task
            for w in self.calls.values()
            if w.task and w.phase in (WorkerPhase.BUSY, WorkerPhase.ENDING)
        ]
        # Idle workers hold nothing unsaved: cancel them with the loops at once.
        idle = [t for t in self.tasks if t not in workers]
        for t in idle:
            t.cancel()
        await asyncio.gather(*idle, return_exceptions=True)
        if workers:
            _, pending = await asyncio.wait(workers, timeout=STOP_GRACE_S)
            for t in pending:
                t.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
        if self.tips:
            await self.tips.close()
        if self.knowledge:
            await self.knowledge.close()
        await self.tasks.close(STOP_GRACE_S)
        for call_id in list(self.calls):
            with contextlib.suppress(RedisError, BusError, OSError):
                await self.leases.release(call_id)
        self.calls.clear()
        prom.CALLS.set(0)
        self.state = ConsumerState.STOPPED

    def health(self) -> dict[str, Any]:
        """State for GET /health."""
        ok = self.state is ConsumerState.CONSUMING
        return {
            "status": "ok" if ok else "degraded",
            "consumer": self.state.value,
            "name": self.me,
            "group": self.group,
            "mode": "llm" if self.llm else "rules-only",
            "llm": self.llm.health()
            if self.llm
            else {"mode": "rules-only", "reason": "OPENROUTER_API_KEY is not set"},
            "calls": len(self.calls),
            "degradedCalls": self.degraded_calls(),
            "playbooks": self.store.languages,
            "playbookErrors": dict(self.store.errors),
            "knowledge": self.knowledge.health() if self.knowledge else None,
            "lastError": self.last_error,
            "stats": dict(self.stats),
            "busLag": self.lag.health(),
        }

    def public_health(self) -> dict[str, Any]:
        """What anyone may see of GET /health: states and counts, no addresses or errors."""
        full = self.health()
        llm = full["llm"]
        return {
            "status": full["status"],
            "consumer": full["consumer"],
            "mode": full["mode"],
            # The rules-only reason is a fixed sentence; an LLM's failure texts are not shown.
            "llm": {k: llm[k] for k in ("mode", "state", "reason") if k in llm},
            "calls": full["calls"],
            "degradedCalls": full["degradedCalls"],
            "playbooks": full["playbooks"],
            "busLag": {k: v for k, v in full["busLag"].items() if k != "error"},
        }

    def degraded_calls(self) -> int:
        """Calls given up after repeated worker failures (not coached by this replica)."""
        return sum(1 for w in self.calls.values() if w.phase is WorkerPhase.DEGRADED)

    # -- reading the group -------------------------------------------------------------------

    async def _read_loop(self) -> None:
        retry = self.reader_backoff.retry()
        # After a restart with the same name, our unacknowledged entries come first.
        reader = GroupReader(
            self.bus, self.group, self.me, count=READ_COUNT, block_ms=READ_BLOCK_MS
        )
        while not self._stopping.is_set():
            try:
                batch = await reader.read()
                self.state = ConsumerState.CONSUMING
                retry.reset()
                await self._dispatch(batch)
            except (BusUnavailable, RedisError, OSError) as exc:
                self._bus_down(exc)
                reader.rewind()  # entries of a half-dispatched batch are pending: re-read
                await asyncio.sleep(retry.next())
            except BusError as exc:
                if "NOGROUP" in str(exc):
                    # The stream was deleted (e.g. FLUSHALL): recreate the group and go on.
                    await self.bus.ensure_group(self.group, start="0")
                else:
                    self._bus_down(exc)
                    await asyncio.sleep(retry.next())

    def _bus_down(self, exc: BaseException) -> None:
        if self.state is not ConsumerState.BUS_DOWN:
            log.warning("bus unavailable; retrying", extra={"error": str(exc)})
        self.state = ConsumerState.BUS_DOWN
        self.last_error = str(exc)
        prom.BUS_ERRORS.inc()

    async def _dispatch(self, batch: list[BusEvent]) -> None:
        ack_now: list[str] = []
        for ev in batch:
            prom.EVENTS.labels(ev.type).inc()
            worker = self.calls.get(ev.call_id)
            if ev.type == "partial":
                if worker is not None:
                    # Someone is speaking: keeps the live silence timer quiet until the final.
                    worker.state.last_activity_ms = int(self.clock() * 1000)
                ack_now.append(ev.id)
                continue
            if ev.type not in CALL_TYPES:
                ack_now.append(ev.id)  # our own coach/metrics/summary output
                continue
            if worker is None:
                worker = await self._adopt(ev.call_id)
            if worker is None:
                ack_now.append(ev.id)  # another replica owns it and has been poked
                continue
            if worker.phase is WorkerPhase.DEGRADED:
                ack_now.append(ev.id)  # given up: nobody will process it
                if ev.type == "call.ended":
                    await self._give_up(worker)
                continue
            worker.to_ack.append(ev.id)
            worker.wake.set()
        await self.bus.ack(self.group, ack_now)

    async def _adopt(self, call_id: str) -> CallWorker | None:
        """Own the call (start its worker) or poke its owner; None if another replica owns it."""
        if len(self.calls) >= self.settings.max_calls:
            prom.CALLS_REFUSED.inc()
            log.warning(
                "ORCH_MAX_CALLS reached; call left to other replicas", extra={"callId": call_id}
            )
            return None
        owner = await self.leases.acquire(call_id)
        if owner != self.me:
            heard = await self.leases.poke(owner, call_id)
            prom.POKES.labels("sent").inc()
            if not heard:
                log.info(
                    "owner not listening; its lease will lapse",
                    extra={"callId": call_id, "owner": owner},
                )
            return None
        worker = CallWorker(CallState(call_id, self.store, self.settings.context_utterances))
        # Random phase: calls that start together must not all publish metrics on one tick.
        interval_ms = int(self.settings.metrics_interval_s * 1000)
        worker.last_metrics_ms = int(self.clock() * 1000) - random.randint(0, interval_ms)
        self.calls[call_id] = worker
        prom.CALLS.set(len(self.calls))
        self._spawn_worker(worker)
        return worker

    def _spawn_worker(self, worker: CallWorker, delay: float = 0.0) -> None:
        worker.task = self.tasks.spawn(
            self._work(worker, delay),
            WORKER_KIND,
            call_id=worker.state.call_id,
            on_failure=lambda failure: self._worker_failed(worker, failure),
        )
        worker.wake.set()

    def _worker_failed(self, worker: CallWorker, failure: TaskFailure) -> None:
        """A call worker died (already logged with the call id and counted by the task set):
        restart it from the call's saved cursor after a backoff delay, or give the call up."""
        call_id = worker.state.call_id
        if self._stopping.is_set() or self.calls.get(call_id) is not worker:
            return  # stopping, or the call was let go meanwhile
        self.last_error = f"{call_id}: {type(failure.error).__name__}: {failure.error}"
        if worker.phase is not WorkerPhase.ENDING:
            # The in-memory state may be ahead of what was published and saved: rebuild it
            # from the stream at the saved cursor, so no alert is skipped or repeated.
            worker.state = CallState(call_id, self.store, self.settings.context_utterances)
            worker.phase = WorkerPhase.LOADING
        worker.restarts = worker.restarts or self.backoff.retry()
        if worker.restarts.attempt >= WORKER_RESTARTS:
            worker.phase = WorkerPhase.DEGRADED
            worker.task = None
            log.error(
                "call worker keeps failing; the call is no longer coached",
                extra={"callId": call_id, "restarts": worker.restarts.attempt},
            )
            return
        delay = worker.restarts.next()
        log.warning(
            "restarting the call worker from the saved cursor",
            extra={"callId": call_id, "restart": worker.restarts.attempt, "delayS": delay},
        )
        self._spawn_worker(worker, delay)

    async def _give_up(self, worker: CallWorker) -> None:
        """A degraded call ended: mark it done (no summary) so no replica retries it."""
        call_id = worker.state.call_id
        await self.bus.ack(self.group, worker.to_ack)
        worker.to_ack = []
        await self.leases.done(call_id)
        if self.calls.get(call_id) is worker:
            del self.calls[call_id]
            prom.CALLS.set(len(self.calls))
        log.error("degraded call ended without a summary", extra={"callId": call_id})

    # -- per-call worker ---------------------------------------------------------------------

    async def _work(self, worker: CallWorker, delay: float = 0.0) -> None:
        """Process the call whenever woken, until it is finished. Bus outages are retried here;
        anything else ends the task and `_worker_failed` restarts it."""
        if delay:
            await asyncio.sleep(delay)
        retry = self.backoff.retry()
        while True:
            await worker.wake.wait()
            worker.wake.clear()
            try:
                finished = await self._wake(worker)
            except (BusUnavailable, RedisError, OSError) as exc:
                self._bus_down(exc)
                if worker.phase is not WorkerPhase.ENDING:
                    # As in `_worker_failed`: rebuild from the saved cursor.
                    worker.state = CallState(
                        worker.state.call_id, self.store, self.settings.context_utterances
                    )
                    worker.phase = WorkerPhase.LOADING
                await asyncio.sleep(retry.next())
                worker.wake.set()
                continue
            retry.reset()
            if finished:
                self._let_go(worker)
                return

    async def _wake(self, worker: CallWorker) -> bool:
        """One round of a worker: load if needed, catch up; True when the call is finished."""
        call_id = worker.state.call_id
        if worker.phase is WorkerPhase.ENDING:
            await self._finish(worker)  # the summary is out: only the release is left
            await self.bus.ack(self.group, worker.to_ack)
            worker.to_ack = []
            return True
        if worker.phase is WorkerPhase.LOADING:
            cursor = await self.leases.cursor(call_id)
            if cursor == DONE:
                await self.bus.ack(self.group, worker.to_ack)
                await self.leases.release(call_id)
                return True
            if cursor is None:
                await self.leases.open(call_id)
            worker.live_after = cursor
        worker.phase = WorkerPhase.BUSY
        finished = await self._catch_up(worker)
        if worker.restarts is not None:
            worker.restarts.reset()  # it made progress: a later failure starts counting anew
        if not finished:
            worker.phase = WorkerPhase.IDLE
        return finished

    def _let_go(self, worker: CallWorker) -> None:
        call_id = worker.state.call_id
        if self.calls.get(call_id) is worker:
            del self.calls[call_id]
            prom.CALLS.set(len(self.calls))

    async def _catch_up(self, worker: CallWorker) -> bool:
        """Process the call's stream past the cursor; True when the call is finished."""
        acks, worker.to_ack = worker.to_ack, []
        try:
            return await self._process(worker, acks)
        except BaseException:
            worker.to_ack = acks + worker.to_ack  # not acknowledged: keep them for the retry
            raise

    async def _process(self, worker: CallWorker, acks: list[str]) -> bool:
        state = worker.state
        call_id = state.call_id
        events = await self.bus.read_call(call_id, after=state.cursor)
        out: list[dict[str, Any]] = []
        new_finals: list[dict[str, Any]] = []
        for ev in events:
            data = ev.data()
            live = worker.live_after is None or id_after(ev.id, worker.live_after)
            hits = state.apply(data, live=live)
            if self.knowledge:
                self.knowledge.observe(call_id, data)
            if live and ev.type == "final":
                self.stats["finals"] += 1
                if str(data.get("text") or "").strip():
                    new_finals.append(data)
            out.extend(h.event(call_id) for h in hits)
        cards = (
            await self.knowledge.cards(call_id, new_finals, list(state.transcript), state.lang)
            if self.knowledge and new_finals and not state.ended
            else []
        )
        out.extend(c.event for c in cards)
        if out:
            await self._publish(out, new_finals)
        for card in cards:
            self.knowledge.answer(card)  # type: ignore[union-attr]  # cards imply knowledge
        if new_finals and self.tips and not state.ended:
            self._ask_llm(worker, new_finals)
        if state.ended:
            await self._finish(worker)
            await self.bus.ack(self.group, acks)
            return True
        worker.caught_up_ms = int(self.clock() * 1000)
        # Cursor and acks in one round trip: this runs once per final.
        await self.leases.progress(
            call_id, state.cursor if events else None, self.bus.events_key, self.group, acks
        )
        return False

    async def _publish(
        self, events: list[dict[str, Any]], finals: list[dict[str, Any]] | None = None
    ) -> None:
        stored = await self.bus.publish_many(events)
        now = time.time()
        by_uid = {f.get("utteranceId"): f for f in finals or []}
        for ev in stored:
            self.stats["coach"] += 1
            source = ev.get("source", "rules")
            kb_label = "answer" if ev.get("answer") else "card"
            rule = ev.get("ruleId") or (kb_label if source == "kb" else "llm")
            prom.COACH.labels(source, rule).inc()
            refs = ev.get("refs") or []
            final = by_uid.get(refs[0]) if refs else None
            if final and final.get("ts"):
                prom.FINAL_TO_COACH.observe(max(0.0, now - int(final["ts"]) / 1000))

    async def _publish_one(self, event: dict[str, Any]) -> None:
        await self._publish([event])

    def _ask_llm(self, worker: CallWorker, finals: list[dict[str, Any]]) -> None:
        assert self.tips is not None
        state = worker.state
        n = self.settings.llm.context_utterances
        context = list(state.transcript)[-n:]
        shown = {r.id: r.text for r in state.playbook.rules}
        given = [shown[h] for h in dict.fromkeys(state.hits) if h in shown]
        messages = tip_messages(
            context,
            state.lang,
            [*given, *self.tips.given(state.call_id)],
            self.settings.llm.system_prompt,
        )
        refs = [str(f["utteranceId"]) for f in finals][-10:]
        self.tips.request(state.call_id, TipRequest(messages, refs))

    async def _finish(self, worker: CallWorker) -> None:
        state = worker.state
        if worker.phase is not WorkerPhase.ENDING:
            usage = await self.tips.finish(state.call_id) if self.tips else Usage()
            if self.knowledge:
                await self.knowledge.forget(state.call_id)
            final_metrics = [state.metrics(int(self.clock() * 1000))] if state.started_ms else []
            summary = await build_summary(
                state, self.llm, self.settings.llm.system_prompt, usage if self.llm else None
            )
            await self.bus.publish_many([*final_metrics, summary])
            # Remembered so that a bus error below, retried by the worker, does not publish
            # twice; from here the lease is being released: it is not renewed.
            worker.phase = WorkerPhase.ENDING
            self.stats["summaries"] += 1
            self.stats["metrics"] += len(final_metrics)
            _account(usage)
            log.info(
                "call summarised", extra={"callId": state.call_id, "source": summary["source"]}
            )
        await self.leases.done(state.call_id)

    # -- timers, sweep, pokes ----------------------------------------------------------------

    async def _tick_loop(self) -> None:
        ticks = 0
        while not self._stopping.is_set():
            await asyncio.sleep(self.tick_s)
            ticks += 1
            try:
                await self._tick(sweep=ticks % SWEEP_EVERY_TICKS == 0)
            except (BusUnavailable, RedisError, OSError) as exc:
                self._bus_down(exc)
            except BusError as exc:
                log.warning("tick failed", extra={"error": str(exc)})

    async def _tick(self, sweep: bool) -> None:
        now_ms = int(self.clock() * 1000)
        self.store.reload()
        out: list[dict[str, Any]] = []
        interval_ms = int(self.settings.metrics_interval_s * 1000)
        for worker in list(self.calls.values()):
            if worker.phase not in (WorkerPhase.IDLE, WorkerPhase.BUSY) or worker.state.ended:
                continue
            state = worker.state
            out.extend(h.event(state.call_id) for h in state.tick(now_ms))
            if state.finals_since_metrics and now_ms - worker.last_metrics_ms >= interval_ms:
                worker.last_metrics_ms = now_ms
                out.append(state.metrics(now_ms))
                self.stats["metrics"] += 1
            if sweep and now_ms - worker.caught_up_ms > SAFETY_CATCH_UP_MS:
                worker.wake.set()  # a quiet call: catch up in case a poke was lost
        for i in range(0, len(out), TICK_PUBLISH_CHUNK):
            await self._publish(out[i : i + TICK_PUBLISH_CHUNK])
            await asyncio.sleep(0)  # let finals that arrived meanwhile go first
        lost = await self.leases.renew(
            [c for c, w in self.calls.items() if w.phase is not WorkerPhase.ENDING]
        )
        for call_id in lost:
            gone = self.calls.pop(call_id, None)
            if gone and gone.task:
                log.warning("lease lost; another replica took the call", extra={"callId": call_id})
                gone.task.cancel()
        prom.CALLS.set(len(self.calls))
        if sweep:
            await self._sweep()

    async def _sweep(self) -> None:
        """Adopt calls nobody owns (their owner died) and take over its stale group entries."""
        candidates = set(await self.leases.open_calls()) | set(await self.bus.active_calls())
        candidates -= set(self.calls)
        ids = sorted(candidates)
        for call_id, owner in zip(ids, await self.leases.owners(ids), strict=True):
            if owner is not None or len(self.calls) >= self.settings.max_calls:
                continue
            if not await self.bus.read_call(call_id, count=1):
                await self.leases.forget(call_id)  # stream expired: nothing left to do
                continue
            log.info("adopting an orphaned call", extra={"callId": call_id})
            await self._adopt(call_id)
        stale = await self.bus.claim_stale(self.group, self.me, self.settings.lease_ttl_ms)
        if stale:
            await self._dispatch(stale)

    async def _kb_loop(self) -> None:
        assert self.kb is not None
        await keep_indexed(self.kb, self.settings.kb.poll_s)

    async def _lag_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._stopping.is_set():
            t = loop.time()
            await asyncio.sleep(LAG_PROBE_S)
            prom.LOOP_LAG.observe(max(0.0, loop.time() - t - LAG_PROBE_S))

    async def _poke_loop(self) -> None:
        retry = self.reader_backoff.retry()
        while not self._stopping.is_set():
            pubsub = self.bus.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.leases.poke_channel(self.me))
                retry.reset()
                while not self._stopping.is_set():
                    msg = await pubsub.get_message(timeout=1.0)
                    if msg is None:
                        continue
                    prom.POKES.labels("received").inc()
                    call_id = str(msg["data"])
                    worker = self.calls.get(call_id)
                    if worker is None:
                        await self._adopt(call_id)
                    else:
                        worker.wake.set()
            except (BusUnavailable, RedisError, OSError) as exc:
                self._bus_down(exc)
                await asyncio.sleep(retry.next())
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]


def _account(usage: Usage) -> None:
    if usage.requests:
        prom.LLM_TOKENS.labels("prompt").inc(usage.prompt_tokens)
        prom.LLM_TOKENS.labels("completion").inc(usage.completion_tokens)
        prom.LLM_COST.inc(usage.cost)
