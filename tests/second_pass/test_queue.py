"""The queue of calls waiting for their second pass: bounded, one job per call, FIFO, and a
full queue refuses (the reader then stops reading: the calls wait in the bus)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from coach.tasks import TaskSet
from second_pass.queue import Job, PendingCalls

pytestmark = pytest.mark.unit


def job(call_id: str, entry: str, ended_ms: int = 1000) -> Job:
    return Job(call_id, f"/rec/{call_id}.raw", "es", [entry], ended_ms)


async def test_bounded_fifo_one_job_per_call() -> None:
    q = PendingCalls(2)
    assert q.offer(job("a", "1-0")) == "queued"
    assert q.offer(job("a", "2-0")) == "joined"  # a replayed call.ended takes no slot
    assert q.offer(job("b", "3-0")) == "queued"
    assert q.free() == 0
    assert q.offer(job("c", "4-0")) == "full"
    assert len(q) == 2
    first = await q.take()
    assert (first.call_id, first.entry_ids) == ("a", ["1-0", "2-0"])
    assert q.current is first and q.free() == 1
    # The call in work joins too: its entries are acknowledged together when it is done.
    assert q.offer(job("a", "5-0")) == "joined"
    assert first.entry_ids == ["1-0", "2-0", "5-0"]
    q.done(first)
    assert q.current is None
    assert q.offer(job("c", "4-0")) == "queued"
    assert [(await q.take()).call_id, (await q.take()).call_id] == ["b", "c"]


async def settled(task: asyncio.Future[Any]) -> bool:
    """Whether `task` finishes once the loop has run everything ready (nothing is timed)."""
    done, _ = await asyncio.wait({task}, timeout=0.05)
    return bool(done)


async def test_wait_space_and_take_wake_each_other() -> None:
    q = PendingCalls(1)
    tasks = TaskSet("test")
    taker = tasks.spawn(q.take(), "take")
    assert not await settled(taker)
    q.offer(job("a", "1-0"))
    got = await asyncio.wait_for(taker, 1)
    assert got.call_id == "a"
    q.offer(job("b", "2-0"))
    waiter = tasks.spawn(q.wait_space(), "wait-space")
    assert not await settled(waiter)
    await q.take()
    await asyncio.wait_for(waiter, 1)
    await tasks.close()


def test_lag_is_the_oldest_call_waiting_or_in_work() -> None:
    q = PendingCalls(4)
    assert q.oldest_age_s(now_ms=10_000) == 0.0
    q.offer(job("a", "1-0", ended_ms=4000))
    q.offer(job("b", "2-0", ended_ms=7000))
    assert q.oldest_age_s(now_ms=10_000) == 6.0


def test_a_queue_holds_at_least_one_call() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        PendingCalls(0)
