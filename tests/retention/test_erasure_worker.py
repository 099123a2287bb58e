"""The erasure consumer on a real Redis: a request queued while no worker runs is done when
one starts; one that a store failed is retried; one a worker was stopped in the middle of is
finished by the next start (same consumer name) or taken over by another worker."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from coach.backoff import Backoff
from coach.bus import Bus
from coach.erasure import ErasureQueue
from coach.retention import DataKind, Erasure, Removal, Store
from coach.tasks import TaskSet
from fakes.poll import until_async
from retention.erasure_worker import ErasureWorker
from retention.job import Job
from retention.metrics import RetentionMetrics
from retention.recordings import RecordingsStore
from retention.redis_store import RedisStore
from tests.events import final, started

pytestmark = pytest.mark.integration

DAY_MS = 86_400_000
FAST = Backoff(initial=0.01, maximum=0.05)


class Flaky:
    """An audio store that fails until `up` is set."""

    name = "flaky"
    kind: DataKind = "audio"

    def __init__(self) -> None:
        self.up = False
        self.calls = 0

    async def purge_before(self, cutoff_ms: int) -> list[Removal]:
        return []

    async def erase(self, request: Erasure) -> list[Removal]:
        self.calls += 1
        if not self.up:
            raise OSError("disk away")
        return [Removal(self.name, "recording", request.call_id, 1, 10)]

    async def close(self) -> None:
        pass


async def a_call(bus: Bus, call_id: str) -> None:
    await bus.publish(started(call_id))
    await bus.publish(final(call_id, "hola"))
    await bus.publish(
        {"type": "call.ended", "callId": call_id, "endedAt": 9, "reason": "caller-hangup"}
    )


@asynccontextmanager
async def worker(
    bus: Bus, stores: list[Store], consumer: str = "w1", claim_idle_ms: int = 300_000
) -> AsyncIterator[ErasureWorker]:
    metrics = RetentionMetrics()
    job = Job(stores, audio_ms=30 * DAY_MS, text_ms=90 * DAY_MS, metrics=metrics)
    queue = ErasureQueue(bus.redis, bus.config.prefix)
    w = ErasureWorker(
        queue,
        job,
        consumer,
        metrics,
        claim_idle_ms=claim_idle_ms,
        store_backoff=FAST,
        reader_backoff=FAST,
    )
    stop = asyncio.Event()
    tasks = TaskSet("tests")
    tasks.spawn(w.run(stop), "erasure")
    try:
        yield w
    finally:
        stop.set()
        await tasks.close(5)


def state(
    queue: ErasureQueue, call_id: str, wanted: str
) -> Callable[[], Awaitable[dict[str, Any]]]:
    async def probe() -> dict[str, Any]:
        status = await queue.status(call_id)
        return status if status and status["state"] == wanted else {}

    return probe


async def test_a_request_queued_while_no_worker_runs_is_done_at_start(
    bus: Bus, tmp_path: Path
) -> None:
    await a_call(bus, "c1")
    await a_call(bus, "c2")
    queue = ErasureQueue(bus.redis, bus.config.prefix)
    await queue.request("c1", by="supervisor")
    (tmp_path / "20261201-101010-c1.raw").write_bytes(b"x" * 64)
    async with worker(bus, [RedisStore(bus), RecordingsStore(tmp_path)]):
        done = await until_async(state(queue, "c1", "done"), what="c1 erased")
    assert await bus.read_call("c1") == [] and len(await bus.read_call("c2")) == 3
    assert not (tmp_path / "20261201-101010-c1.raw").exists()
    removed = {(r["store"], r["what"]) for r in done["removed"]}
    assert ("redis", "call stream") in removed and ("recordings", "recording") in removed
    assert await queue.waiting() == 0


async def test_an_interrupted_erasure_is_finished_after_a_restart(bus: Bus) -> None:
    await a_call(bus, "c1")
    queue = ErasureQueue(bus.redis, bus.config.prefix)
    await queue.request("c1", by="supervisor")
    flaky = Flaky()
    async with worker(bus, [flaky, RedisStore(bus)]):
        status = await until_async(state(queue, "c1", "retrying"), what="a failed attempt")
        assert "disk away" in str(status["error"])
    # Stopped mid-request: it is still queued, and the text that names it is still there.
    assert await queue.waiting() == 1 and len(await bus.read_call("c1")) == 3
    flaky.up = True
    async with worker(bus, [flaky, RedisStore(bus)]):
        await until_async(state(queue, "c1", "done"), what="c1 erased after the restart")
    assert await bus.read_call("c1") == [] and await queue.waiting() == 0


async def test_another_worker_takes_over_what_a_dead_one_left(bus: Bus) -> None:
    await a_call(bus, "c1")
    queue = ErasureQueue(bus.redis, bus.config.prefix)
    await queue.request("c1", by="supervisor")
    await queue.ensure_group()
    assert [r.call_id for r in await queue.read("dead-worker", block_ms=None)] == ["c1"]
    async with worker(bus, [RedisStore(bus)], consumer="w2", claim_idle_ms=1):
        await until_async(state(queue, "c1", "done"), what="c1 taken over and erased")
    assert await bus.read_call("c1") == []
