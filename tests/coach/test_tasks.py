"""Supervised tasks: a failure is logged with its call, counted, and reported to the owner."""

from __future__ import annotations

import asyncio
import logging

import pytest
from prometheus_client import CollectorRegistry

from coach.tasks import TaskFailure, TaskSet, first_completed

pytestmark = pytest.mark.unit


class Boom(RuntimeError):
    pass


async def _fail() -> None:
    raise Boom("bus said no")


async def _ok() -> None:
    return None


async def test_a_failure_is_logged_counted_and_reported(caplog: pytest.LogCaptureFixture) -> None:
    registry = CollectorRegistry()
    told: list[TaskFailure] = []
    tasks = TaskSet("svc", registry=registry, on_failure=told.append)
    with caplog.at_level(logging.ERROR, logger="coach.tasks"):
        task = tasks.spawn(_fail(), "call-worker", call_id="c-1")
        await asyncio.gather(task, return_exceptions=True)
    assert [(f.kind, f.call_id, type(f.error)) for f in told] == [("call-worker", "c-1", Boom)]
    record = next(r for r in caplog.records if "call-worker" in r.getMessage())
    assert getattr(record, "callId", None) == "c-1" and "bus said no" in record.getMessage()
    value = registry.get_sample_value(
        "coach_task_failures_total", {"service": "svc", "task": "call-worker"}
    )
    assert value == 1
    assert len(tasks) == 0


async def test_a_per_task_handler_is_told_instead_of_the_sets() -> None:
    set_told: list[TaskFailure] = []
    own: list[TaskFailure] = []
    tasks = TaskSet("svc", registry=CollectorRegistry(), on_failure=set_told.append)
    await asyncio.gather(tasks.spawn(_fail(), "x", on_failure=own.append), return_exceptions=True)
    assert len(own) == 1 and set_told == []


async def test_cancelled_and_finished_tasks_are_not_failures() -> None:
    registry = CollectorRegistry()
    told: list[TaskFailure] = []
    tasks = TaskSet("svc", registry=registry, on_failure=told.append)
    gate = asyncio.Event()
    waiting = tasks.spawn(gate.wait(), "waiter")
    done = tasks.spawn(_ok(), "quick")
    await done
    await tasks.cancel(waiting)
    assert told == [] and len(tasks) == 0
    assert (
        registry.get_sample_value("coach_task_failures_total", {"service": "svc", "task": "waiter"})
        is None
    )


async def test_close_cancels_what_runs_and_refuses_new_tasks() -> None:
    tasks = TaskSet("svc", registry=CollectorRegistry())
    gate = asyncio.Event()
    running = tasks.spawn(gate.wait(), "waiter")
    await tasks.close(wait=5)
    assert running.cancelled() and len(tasks) == 0
    coro = gate.wait()
    with pytest.raises(RuntimeError, match="closed"):
        tasks.spawn(coro, "late")


async def test_a_failing_handler_does_not_hide_the_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def handler(_: TaskFailure) -> None:
        raise ValueError("owner bug")

    registry = CollectorRegistry()
    tasks = TaskSet("svc", registry=registry, on_failure=handler)
    with caplog.at_level(logging.ERROR, logger="coach.tasks"):
        await asyncio.gather(tasks.spawn(_fail(), "x"), return_exceptions=True)
    assert registry.get_sample_value("coach_task_failures_total", {"service": "svc", "task": "x"})
    assert any("on_failure handler" in r.getMessage() for r in caplog.records)


async def test_first_completed_cancels_the_losers() -> None:
    gate = asyncio.Event()
    loser: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
    gate.set()
    done = await first_completed(gate.wait(), loser)
    assert len(done) == 1 and loser.cancelled()
