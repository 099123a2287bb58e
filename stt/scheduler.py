"""Decode scheduler: every stream's decode requests share one model through a few workers.

Policy (written bounds):
- Two classes. FINAL-class jobs (finals and speculative finals) are served first, FIFO.
  PARTIAL jobs are served only when no FINAL-class job waits.
- Partials: at most one waiting per stream; a newer partial replaces the waiting one (the stale
  one is dropped and counted). So the partial queue is bounded by the number of streams.
- Finals are never dropped. The FINAL-class queue holds at most `max_finals` jobs; a stream
  submitting beyond that waits (`await submit`), which stops it reading its socket and pushes
  back on its sender through TCP. Overload therefore degrades partials first (they starve and
  get replaced), then slows intake; it never loses a final.
- A speculative job can be cancelled while it waits (speech resumed); it is then skipped.
- With two or more workers, one is kept for FINAL-class jobs: partials run on at most
  `workers - 1` workers at once, so a final never waits behind a partial that is mid-decode
  (a decode cannot be interrupted). On CPU the best layout is one thread per decode and one
  worker per core: a Whisper decoder step is too small to gain from a second thread (beam 5 on
  one thread: 0.26 s for a 5 s utterance, on two: 0.39-0.6 s), while two workers decode a
  partial and a final side by side.
- Batching (stt/batch.py; off with `batch_max` 1): a worker that takes a job takes up to
  `batch_max - 1` more *of the same class* that are already waiting (FINAL-class jobs in FIFO
  order; partials in the order of their streams' queue), and their decodes run as batched
  CTranslate2 calls. The priority rules hold per group: a partial group forms only when no
  FINAL-class job waits, and it takes one partial slot. With `batch_wait_s` a worker waits that
  long for more jobs of its class to join; by default (0) it never waits, so a lone job runs at
  once. Results do not depend on the grouping (stt/batch.py), so neither do transcripts.
- A worker task that fails (a bug here: a job's own exception goes to its future) is logged
  and counted by its `coach.tasks.TaskSet` (`task="decode-worker"`) and replaced at once.
"""

from __future__ import annotations

import asyncio
import collections
import enum
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from prometheus_client import CollectorRegistry

from coach.tasks import TaskFailure, TaskSet
from stt import batch

T = TypeVar("T")


class JobKind(enum.Enum):
    """Why a decode was asked for."""

    FINAL = "final"
    SPECULATIVE = "speculative"
    PARTIAL = "partial"


@dataclass(eq=False)
class Job(Generic[T]):
    """A decode request: `run` is called on a worker thread; its result resolves `future`."""

    kind: JobKind
    stream_id: str
    run: Callable[[], T]
    future: asyncio.Future[T]
    submitted: float = field(default_factory=time.monotonic)
    cancelled: bool = False
    started: float | None = None

    def cancel(self) -> None:
        """Skip this job if it has not started (its future is cancelled)."""
        self.cancelled = True
        if not self.future.done():
            self.future.cancel()


@dataclass
class SchedulerStats:
    """Counters exposed as metrics."""

    decoded: collections.Counter[str] = field(default_factory=collections.Counter)
    dropped_partials: int = 0
    cancelled: int = 0
    busy_s: float = 0.0
    groups: collections.Counter[int] = field(default_factory=collections.Counter)
    """Groups of jobs run together, by size."""


class DecodeScheduler:
    """Runs jobs on `workers` threads, finals first; see the module docstring for the policy."""

    def __init__(
        self,
        workers: int = 1,
        max_finals: int = 64,
        observer: Callable[[JobKind, float], None] | None = None,
        *,
        registry: CollectorRegistry | None = None,
        test_delay_s: float = 0.0,
        batch_max: int = 1,
        batch_wait_s: float = 0.0,
        batch_observer: Callable[[int], None] | None = None,
    ) -> None:
        self.workers = workers
        self.batch_max = max(1, batch_max)
        self._batch_wait_s = batch_wait_s
        # Told the size of every batched encode + generate call (1 for a decode alone).
        self._batch_observer = batch_observer
        # Tests only (not a setting): every decode holds its worker this much longer, as on a
        # loaded machine; transcripts must not change with it (tests/stt/test_determinism.py).
        self._test_delay_s = test_delay_s
        self._observer = observer
        self.max_finals = max_finals
        self._finals: collections.deque[Job[object]] = collections.deque()
        self._partials: collections.OrderedDict[str, Job[object]] = collections.OrderedDict()
        self._wakeup = asyncio.Condition()
        self._space = asyncio.Condition()
        # A group's jobs each need a thread of their own: they meet in their decodes.
        self._pool = ThreadPoolExecutor(
            max_workers=workers * self.batch_max, thread_name_prefix="decode"
        )
        self._tasks = TaskSet("stt", registry=registry, on_failure=self._worker_failed)
        self._blocked = 0
        self._running = 0
        self._running_partials = 0
        self._partial_slots = max(1, workers - 1)
        self._closed = False
        self.stats = SchedulerStats()

    @property
    def depth(self) -> dict[str, int]:
        """Jobs waiting per class."""
        return {
            "final": len(self._finals),
            "partial": len(self._partials),
            "running": self._running,
        }

    @property
    def blocked_submitters(self) -> int:
        """Submitters waiting for room in the full FINAL-class queue (back-pressure)."""
        return self._blocked

    def start(self) -> None:
        """Start the worker tasks (call from the event loop)."""
        for _ in range(self.workers):
            self._tasks.spawn(self._worker(), "decode-worker")

    def _worker_failed(self, failure: TaskFailure) -> None:
        # Logged and counted by the task set; keep the worker count.
        if not self._closed:
            self._tasks.spawn(self._worker(), "decode-worker")

    async def close(self) -> None:
        """Cancel waiting jobs and workers; wait for running decodes to finish."""
        self._closed = True
        for job in [*self._finals, *self._partials.values()]:
            job.cancel()
        self._finals.clear()
        self._partials.clear()
        await self._tasks.close()
        self._pool.shutdown(wait=True, cancel_futures=True)

    async def submit(self, kind: JobKind, stream_id: str, run: Callable[[], T]) -> Job[T]:
        """Queue a job; returns it at once (await `job.future` for the result)."""
        if self._closed:
            raise RuntimeError("scheduler closed")
        loop = asyncio.get_running_loop()
        job: Job[T] = Job(kind, stream_id, run, loop.create_future())
        if kind is JobKind.PARTIAL:
            stale = self._partials.pop(stream_id, None)
            if stale is not None:
                stale.cancel()
                self.stats.dropped_partials += 1
            self._partials[stream_id] = job  # type: ignore[assignment]
        else:
            async with self._space:
                self._blocked += 1
                try:
                    await self._space.wait_for(lambda: len(self._finals) < self.max_finals)
                finally:
                    self._blocked -= 1
            self._finals.append(job)  # type: ignore[arg-type]
        async with self._wakeup:
            # All: a worker gathering a group of the other class must not swallow the wake-up.
            self._wakeup.notify_all()
        return job

    def drop_stream(self, stream_id: str) -> None:
        """Forget the waiting partial of a closed stream."""
        job = self._partials.pop(stream_id, None)
        if job is not None:
            job.cancel()

    def _next(self) -> Job[object] | None:
        while self._finals:
            job = self._finals.popleft()
            if not job.cancelled:
                return job
            self.stats.cancelled += 1
        if self._partials and self._running_partials < self._partial_slots:
            _, job = self._partials.popitem(last=False)
            self._running_partials += 1  # taken under the lock: two workers cannot both pass
            return job
        return None

    def _more(self, first: Job[object], room: int) -> list[Job[object]]:
        """Up to `room` more waiting jobs of `first`'s class, in the order `_next` takes them
        (call with the wake-up lock held)."""
        more: list[Job[object]] = []
        if first.kind is JobKind.PARTIAL:
            while self._partials and len(more) < room:
                more.append(self._partials.popitem(last=False)[1])
            return more
        while self._finals and len(more) < room:
            job = self._finals.popleft()
            if job.cancelled:
                self.stats.cancelled += 1
            else:
                more.append(job)
        return more

    async def _group(self, first: Job[object]) -> list[Job[object]]:
        """`first` and the jobs of its class that run with it (module docstring)."""
        group = [first]
        if self.batch_max == 1:
            return group
        async with self._wakeup:
            group += self._more(first, self.batch_max - 1)
            if not self._batch_wait_s:
                return group
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self._batch_wait_s
            while len(group) < self.batch_max and (left := deadline - loop.time()) > 0:
                try:
                    await asyncio.wait_for(self._wakeup.wait(), left)
                except TimeoutError:
                    break
                group += self._more(first, self.batch_max - len(group))
            if self._finals and first.kind is JobKind.PARTIAL:
                self._wakeup.notify_all()  # a final came meanwhile: another worker takes it
        return group

    async def _release_partial(self) -> None:
        self._running_partials -= 1
        if self._partials:
            # A partial slot came free: a waiting partial may run now.
            async with self._wakeup:
                self._wakeup.notify()

    def _timed(self, run: Callable[[], T]) -> Callable[[], T]:
        if not self._test_delay_s:
            return run
        delay = self._test_delay_s

        def slowed() -> T:
            time.sleep(delay)
            return run()

        return slowed

    async def _worker(self) -> None:
        while True:
            async with self._wakeup:
                job = self._next()
                while job is None:
                    await self._wakeup.wait()
                    job = self._next()
            async with self._space:
                self._space.notify_all()
            partial = job.kind is JobKind.PARTIAL
            try:
                group = await self._group(job)
                if len(group) > 1:
                    async with self._space:
                        self._space.notify_all()
                await self._run([j for j in group if not j.future.done()])
            finally:
                if partial:
                    await self._release_partial()

    async def _run(self, group: list[Job[object]]) -> None:
        """Run a group's jobs, each on its own thread, their decodes batched (stt/batch.py)."""
        if not group:
            return
        loop = asyncio.get_running_loop()
        rendezvous: batch.Rendezvous[Any, Any] = batch.Rendezvous(len(group), self._batch_observer)
        self.stats.groups[len(group)] += 1
        started = time.monotonic()
        for job in group:
            job.started = started
        self._running += len(group)

        async def one(job: Job[object]) -> None:
            # Each job's result is handed over as soon as its own thread is done: a short
            # final does not wait for a longer window of its group.
            error: Exception | None = None
            result: object = None
            try:
                result = await loop.run_in_executor(
                    self._pool, batch.member(rendezvous, self._timed(job.run))
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - handed to the stream that asked, which logs it
                error = exc
            finally:
                self._running -= 1
                if self._observer is not None:
                    self._observer(job.kind, time.monotonic() - started)
                self.stats.decoded[job.kind.value] += 1
            if job.future.done():
                return
            if error is not None:
                job.future.set_exception(error)
            else:
                job.future.set_result(result)

        try:
            await asyncio.gather(*(one(job) for job in group))
        finally:
            self.stats.busy_s += time.monotonic() - started
