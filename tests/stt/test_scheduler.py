import asyncio
import threading

import pytest
from prometheus_client import CollectorRegistry

from coach.tasks import TaskSet
from fakes import poll
from stt.scheduler import DecodeScheduler, JobKind

pytestmark = pytest.mark.unit


class Gate:
    """Blocks the (single) worker thread until released, so queue order can be observed."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.started = threading.Event()
        self.order: list[str] = []

    def job(self, name: str, block: bool = False):
        def run():
            if block:
                self.started.set()
                assert self.event.wait(10)
            self.order.append(name)
            return name

        return run


async def test_finals_run_before_partials_and_stale_partials_are_replaced():
    sched = DecodeScheduler(workers=1)
    sched.start()
    gate = Gate()
    try:
        blocker = await sched.submit(JobKind.FINAL, "s0", gate.job("blocker", block=True))
        assert await asyncio.to_thread(gate.started.wait, 10)
        p1 = await sched.submit(JobKind.PARTIAL, "s1", gate.job("p1-old"))
        p2 = await sched.submit(JobKind.PARTIAL, "s1", gate.job("p1-new"))
        other = await sched.submit(JobKind.PARTIAL, "s2", gate.job("p2"))
        final = await sched.submit(JobKind.FINAL, "s2", gate.job("f2"))
        spec = await sched.submit(JobKind.SPECULATIVE, "s3", gate.job("spec"))
        assert sched.depth == {"final": 2, "partial": 2, "running": 1}
        gate.event.set()
        await asyncio.wait_for(
            asyncio.gather(blocker.future, p2.future, other.future, final.future, spec.future), 10
        )
        assert p1.future.cancelled()
        assert gate.order == ["blocker", "f2", "spec", "p1-new", "p2"]
        assert sched.stats.dropped_partials == 1
    finally:
        gate.event.set()
        await sched.close()


async def test_cancelled_speculative_job_is_skipped():
    sched = DecodeScheduler(workers=1)
    sched.start()
    gate = Gate()
    try:
        blocker = await sched.submit(JobKind.FINAL, "s0", gate.job("blocker", block=True))
        spec = await sched.submit(JobKind.SPECULATIVE, "s1", gate.job("spec"))
        after = await sched.submit(JobKind.FINAL, "s1", gate.job("after"))
        spec.cancel()
        gate.event.set()
        await asyncio.wait_for(asyncio.gather(blocker.future, after.future), 10)
        assert gate.order == ["blocker", "after"]
    finally:
        gate.event.set()
        await sched.close()


async def test_full_final_queue_makes_the_submitter_wait_and_never_drops():
    tasks = TaskSet("test", registry=CollectorRegistry())
    sched = DecodeScheduler(workers=1, max_finals=2)
    sched.start()
    gate = Gate()
    try:
        jobs = [await sched.submit(JobKind.FINAL, "s", gate.job("blocker", block=True))]
        assert await asyncio.to_thread(gate.started.wait, 10)
        jobs.append(await sched.submit(JobKind.FINAL, "s", gate.job("f1")))
        jobs.append(await sched.submit(JobKind.FINAL, "s", gate.job("f2")))
        third = tasks.spawn(sched.submit(JobKind.FINAL, "s", gate.job("f3")), "submit")
        await poll.until(lambda: sched.blocked_submitters == 1, what="submitter waiting")
        assert not third.done()  # back-pressure, not a drop
        assert sched.depth["final"] == 2
        gate.event.set()
        jobs.append(await asyncio.wait_for(third, 10))
        await asyncio.wait_for(asyncio.gather(*(j.future for j in jobs)), 10)
        assert gate.order == ["blocker", "f1", "f2", "f3"]
    finally:
        gate.event.set()
        await sched.close()
        await tasks.close()


async def test_a_failing_job_reports_its_error_and_the_worker_goes_on():
    sched = DecodeScheduler(workers=1)
    sched.start()

    def boom():
        raise ValueError("bad audio")

    try:
        bad = await sched.submit(JobKind.FINAL, "s", boom)
        good = await sched.submit(JobKind.FINAL, "s", lambda: 42)
        with pytest.raises(ValueError, match="bad audio"):
            await asyncio.wait_for(bad.future, 10)
        assert await asyncio.wait_for(good.future, 10) == 42
    finally:
        await sched.close()


async def test_two_workers_keep_one_for_finals():
    sched = DecodeScheduler(workers=2)
    sched.start()
    slow, fast = Gate(), Gate()
    try:
        p1 = await sched.submit(JobKind.PARTIAL, "s1", slow.job("p1", block=True))
        assert await asyncio.to_thread(slow.started.wait, 10)
        p2 = await sched.submit(JobKind.PARTIAL, "s2", fast.job("p2"))
        final = await sched.submit(JobKind.FINAL, "s3", fast.job("f3"))
        # The final runs on the second worker while p1 is still mid-decode; p2 waits for a
        # partial slot even though that worker is free again.
        assert await asyncio.wait_for(final.future, 10) == "f3"
        assert sched.depth == {"final": 0, "partial": 1, "running": 1}
        assert not p2.future.done()
        slow.event.set()
        assert await asyncio.wait_for(p2.future, 10) == "p2"
        assert await p1.future == "p1"
        assert fast.order == ["f3", "p2"]
    finally:
        slow.event.set()
        await sched.close()


async def test_a_failed_worker_is_counted_and_replaced(caplog):
    registry = CollectorRegistry()
    sched = DecodeScheduler(workers=1, registry=registry)
    broken = True
    real_next = sched._next

    def next_job():
        nonlocal broken
        if broken:
            broken = False
            raise RuntimeError("injected scheduler bug")
        return real_next()

    sched._next = next_job  # type: ignore[method-assign]
    sched.start()
    try:
        job = await sched.submit(JobKind.FINAL, "s", lambda: 7)
        # The first worker dies on the bug; its replacement runs the job.
        assert await asyncio.wait_for(job.future, 10) == 7
        labels = {"service": "stt", "task": "decode-worker"}
        assert registry.get_sample_value("coach_task_failures_total", labels) == 1
        assert any("injected scheduler bug" in r.getMessage() for r in caplog.records)
        assert len(sched._tasks) == 1
    finally:
        await sched.close()
