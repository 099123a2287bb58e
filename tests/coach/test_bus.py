"""The bus on a real Redis: ids, replay, index, expiry, consumer groups, atomic batches."""

from __future__ import annotations

import asyncio
import itertools

import pytest
from prometheus_client import CollectorRegistry
from redis.exceptions import ConnectionError as RedisConnectionError

from coach.bus import Bus, id_after
from coach.errors import BusUnavailable
from coach.events import EventError
from coach.tasks import TaskSet
from fakes.tcp_proxy import TcpProxy
from tests.events import partial, started

pytestmark = pytest.mark.integration


async def test_ids_are_monotonic_within_and_across_calls(bus: Bus) -> None:
    ids = [(await bus.publish(partial(f"c{i % 3}", f"t{i}")))["id"] for i in range(30)]
    assert all(id_after(b, a) for a, b in itertools.pairwise(ids))
    replay = await bus.read_call("c1")
    assert [e.id for e in replay] == ids[1::3]
    assert [e.data()["text"] for e in replay] == [f"t{i}" for i in range(1, 30, 3)]


async def test_replay_after_an_id_has_no_gap_and_no_duplicate(bus: Bus) -> None:
    ids = [(await bus.publish(partial("c", str(i))))["id"] for i in range(10)]
    rest = await bus.read_call("c", after=ids[4])
    assert [e.id for e in rest] == ids[5:]
    assert [e.id for e in await bus.read_all(ids[7])] == ids[8:]


async def test_active_index_and_expiry_after_call_ended(bus: Bus) -> None:
    await bus.publish(started("a"))
    await bus.publish(started("b", agent="201"))
    calls = await bus.active_calls()
    assert set(calls) == {"a", "b"} and calls["b"]["agent"] == "201" and "id" in calls["a"]
    await bus.publish(
        {"type": "call.ended", "callId": "a", "endedAt": 5, "reason": "caller-hangup"}
    )
    assert set(await bus.active_calls()) == {"b"}
    ttl = await bus.redis.ttl(bus.call_key("a"))
    assert 0 < ttl <= bus.config.ended_ttl
    # A summary after the end must not lengthen the expiry back to the idle TTL.
    await bus.publish(
        {
            "type": "summary",
            "callId": "a",
            "text": "x",
            "disposition": "completed",
            "actionItems": [],
            "sentiment": "neutral",
        }
    )
    assert await bus.redis.ttl(bus.call_key("a")) <= bus.config.ended_ttl


async def test_batch_with_one_bad_event_stores_nothing(bus: Bus) -> None:
    bad = partial("c", "x")
    del bad["speaker"]
    with pytest.raises(EventError) as err:
        await bus.publish_many([partial("c", "ok"), bad])
    assert err.value.field == "speaker"
    assert await bus.read_call("c") == []
    assert await bus.read_all("0-0") == []


async def test_call_streams_are_bounded(redis_server, bus_config) -> None:
    from dataclasses import replace

    small = Bus.connect(redis_server.url, replace(bus_config, call_maxlen=10, global_maxlen=10))
    try:
        for i in range(500):
            await small.publish(partial("c", str(i)))
        assert await small.redis.xlen(small.call_key("c")) < 200
        assert await small.redis.xlen(small.events_key) < 200
        first = await small.first_id("c")
        assert first is not None and id_after(first, "0-1")
    finally:
        await small.close()


async def test_consumer_group_shares_events_and_redelivers_unacked(bus: Bus) -> None:
    await bus.ensure_group("workers")
    await bus.ensure_group("workers")  # idempotent
    ids = [(await bus.publish(partial("c", str(i))))["id"] for i in range(6)]
    first = await bus.read_group("workers", "w1", count=3, block_ms=None)
    second = await bus.read_group("workers", "w2", count=10, block_ms=None)
    assert sorted(e.id for e in first + second) == ids
    await bus.ack("workers", [e.id for e in second])
    # w1 died without acking: its events are claimable by another consumer.
    claimed = await bus.claim_stale("workers", "w2", min_idle_ms=0)
    assert [e.id for e in claimed] == [e.id for e in first]
    # and a restarted w1 would see its own pending ones
    assert [e.id for e in await bus.read_group("workers", "w2", pending=True, block_ms=None)] == [
        e.id for e in first
    ]


async def test_connections_that_died_silently_cost_no_read_and_one_write(
    redis_server, bus_config
) -> None:
    """Pooled connections whose server went away without a close (sever): a read goes again on
    a new connection, a write fails once as retryable, and no other idle one is used again."""
    proxy = await TcpProxy("127.0.0.1", redis_server.port).start()
    bus = Bus.connect(f"redis://127.0.0.1:{proxy.port}/0", bus_config)
    try:
        await bus.publish(started("c"))
        # Three connections busy at once, then idle in the pool.
        await asyncio.gather(*(bus.publish(partial("c", f"p{i}")) for i in range(3)))
        assert proxy.open_links == 3
        proxy.sever()

        assert [e.type for e in await bus.read_call("c")] == ["call.started"] + ["partial"] * 3
        assert proxy.severed_sends == 1

        # Three connections busy at once again, idle, then severed: a write fails once.
        await asyncio.gather(*(bus.publish(partial("c", f"q{i}")) for i in range(3)))
        assert proxy.open_links == 3
        proxy.sever()
        with pytest.raises(BusUnavailable):
            await bus.publish(partial("c", "lost"))
        assert proxy.severed_sends == 2
        # That failure dropped the other idle connections: three writes at once all pass.
        await asyncio.gather(*(bus.publish(partial("c", f"r{i}")) for i in range(3)))
        assert proxy.severed_sends == 2
        texts = [e.data()["text"] for e in (await bus.read_call("c"))[1:]]
        assert sorted(texts) == sorted(f"{x}{i}" for x in "pqr" for i in range(3))
    finally:
        await bus.close()
        await proxy.stop()


async def test_a_read_cancelled_mid_command_is_not_tried_again(bus: Bus, monkeypatch) -> None:
    """redis-py may report a cancelled command as a closed connection (relay/hub.py): the read
    must end cancelled, not go again on a new connection."""
    waiting = asyncio.Event()
    calls = 0

    async def xread(*args: object, **kwargs: object) -> list[object]:
        nonlocal calls
        calls += 1
        if calls > 1:
            return []  # a retry would return at once, as a read on a fresh connection
        waiting.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            raise RedisConnectionError("Connection closed by server.") from None
        return []

    monkeypatch.setattr(bus.redis, "xread", xread)
    async with TaskSet("test", registry=CollectorRegistry()) as tasks:
        reader = tasks.spawn(bus.read_all("0-0", block_ms=1000), "reader")
        await waiting.wait()
        reader.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reader
    assert calls == 1
