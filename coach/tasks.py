"""Supervised background tasks: the only place the services create asyncio tasks.

A `TaskSet` keeps a strong reference to each task (asyncio only keeps weak ones), and when a task
ends with an exception it logs it with the task's kind and call id, counts it in
`coach_task_failures_total{service,task}` and tells the owner through `on_failure`, so a failure
inside one call's worker is never silent. `close()` cancels what is left and waits for it: every
service closes its sets on shutdown. A test (tests/coach/test_tasks.py) checks that nothing
outside this module calls `asyncio.create_task` or `ensure_future`.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from prometheus_client import REGISTRY, CollectorRegistry, Counter

log = logging.getLogger("coach.tasks")

T = TypeVar("T")

_COUNTERS: weakref.WeakKeyDictionary[CollectorRegistry, Counter] = weakref.WeakKeyDictionary()


def failures_counter(registry: CollectorRegistry) -> Counter:
    """`coach_task_failures_total{service,task}` in `registry` (one per registry)."""
    counter = _COUNTERS.get(registry)
    if counter is None:
        counter = Counter(
            "coach_task_failures_total",
            "Background tasks that ended with an exception",
            ["service", "task"],
            registry=registry,
        )
        _COUNTERS[registry] = counter
    return counter


@dataclass(frozen=True)
class TaskFailure:
    """What an owner is told when one of its tasks fails."""

    kind: str
    """The task's kind (the metric's `task` label), e.g. `call-worker`."""
    call_id: str | None
    """The call the task served, if any."""
    error: BaseException
    """The exception it ended with."""


FailureHandler = Callable[[TaskFailure], None]


class TaskSet:
    """Tracked tasks of one owner; failures are logged, counted and reported (module doc)."""

    def __init__(
        self,
        service: str,
        *,
        registry: CollectorRegistry | None = None,
        on_failure: FailureHandler | None = None,
    ) -> None:
        self.service = service
        self.on_failure = on_failure
        self.failures = failures_counter(registry if registry is not None else REGISTRY)
        self._tasks: dict[asyncio.Task[Any], tuple[str, str | None, FailureHandler | None]] = {}
        self._closed = False

    def spawn(
        self,
        coro: Coroutine[Any, Any, T],
        kind: str,
        *,
        call_id: str | None = None,
        name: str | None = None,
        on_failure: FailureHandler | None = None,
    ) -> asyncio.Task[T]:
        """Run `coro` as a tracked task; `on_failure` (else the set's) hears of its exception."""
        if self._closed:
            coro.close()
            raise RuntimeError(f"{self.service}: task set is closed (spawning {kind})")
        label = name or (f"{kind}:{call_id}" if call_id else kind)
        task = asyncio.get_running_loop().create_task(coro, name=label)
        self._tasks[task] = (kind, call_id, on_failure)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        kind, call_id, handler = self._tasks.pop(task, ("?", None, None))
        if task.cancelled():
            return
        error = task.exception()
        if error is None:
            return
        self.failures.labels(self.service, kind).inc()
        log.error(
            "task %s failed: %s: %s",
            kind,
            type(error).__name__,
            error,
            exc_info=error,
            extra={"callId": call_id, "task": kind, "service": self.service},
        )
        report = handler or self.on_failure
        if report is not None:
            try:
                report(TaskFailure(kind, call_id, error))
            except Exception:  # the owner's handler must not take the loop's callback down
                log.exception("on_failure handler of task %s raised", kind)

    def __len__(self) -> int:
        return len(self._tasks)

    def __iter__(self) -> Iterator[asyncio.Task[Any]]:
        return iter(list(self._tasks))

    async def cancel(self, task: asyncio.Task[Any]) -> None:
        """Cancel one task and wait until it has ended (its exception, if any, is reported)."""
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    async def close(self, wait: float | None = None) -> None:
        """Refuse new tasks, cancel the running ones and wait (at most `wait` s) for them."""
        self._closed = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=wait)
            if pending:
                log.error(
                    "%d %s tasks did not stop within %ss",
                    len(pending),
                    self.service,
                    wait,
                    extra={"service": self.service},
                )

    async def __aenter__(self) -> TaskSet:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()


async def first_completed(
    *aws: asyncio.Future[Any] | Coroutine[Any, Any, Any], wait: float | None = None
) -> set[asyncio.Future[Any]]:
    """Wait for the first of `aws` to finish and cancel the rest; return the finished ones.

    The race helper for "read or stop", "message or timeout": coroutines become tasks here,
    so no caller creates one of its own.
    """
    loop = asyncio.get_running_loop()
    futures = [a if isinstance(a, asyncio.Future) else loop.create_task(a) for a in aws]
    try:
        done, pending = await asyncio.wait(
            futures, timeout=wait, return_when=asyncio.FIRST_COMPLETED
        )
    except BaseException:
        for f in futures:
            f.cancel()
        await asyncio.gather(*futures, return_exceptions=True)
        raise
    for f in pending:
        f.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    return done
