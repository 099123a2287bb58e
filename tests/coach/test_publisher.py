"""coach.publisher: the one bounded publisher's policy, against a real (embedded) Redis."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from coach.backoff import BUS
from coach.bus import Bus, BusConfig
from coach.publisher import Publisher, PublisherState
from coach.redis_server import EmbeddedRedis
from coach.tasks import TaskSet
from fakes import poll

pytestmark = pytest.mark.integration


def final(call_id: str, n: int) -> dict[str, Any]:
    return {
        "type": "final",
        "callId": call_id,
        "speaker": "agent",
        "utteranceId": f"u{n}",
        "text": f"frase {n}",
        "start": float(n),
        "end": n + 0.5,
        "confidence": 0.9,
        "lang": "es",
    }


def partial(call_id: str, n: int) -> dict[str, Any]:
    return {
        "type": "partial",
        "callId": call_id,
        "speaker": "agent",
        "utteranceId": f"u{n}",
        "text": "fra",
        "start": float(n),
        "end": n + 0.2,
    }


def tasks() -> TaskSet:
    return TaskSet("test", registry=CollectorRegistry())


def unstarted(capacity: int) -> Publisher:
    """A publisher whose task never runs: nothing drains, so the overflow policy shows."""
    return Publisher(
        Bus.connect("redis://127.0.0.1:1/0", BusConfig(prefix="x")), tasks(), capacity=capacity
    )


def queued(pub: Publisher) -> list[str]:
    return [f"{e['type']}:{e['utteranceId']}" for e in pub._queue]


async def test_events_reach_the_bus_in_order(bus):
    pub = Publisher(bus, tasks(), capacity=100)
    pub.start()
    try:
        for n in range(5):
            pub.offer(final("call-pub-1", n))
        assert await pub.drain(10)
        stored = await bus.read_call("call-pub-1")
        assert [e.data()["utteranceId"] for e in stored] == [f"u{n}" for n in range(5)]
        assert pub.published == 5
    finally:
        await pub.close()


async def test_bus_outage_holds_events_in_order_then_delivers(tmp_path):
    redis = EmbeddedRedis(data_dir=tmp_path).start()
    bus = Bus.connect(redis.url, BusConfig(prefix="pubtest"), connect_timeout=0.3, timeout=0.5)
    pub = Publisher(bus, tasks(), capacity=100, backoff=BUS.scaled(0.2))
    pub.start()
    try:
        pub.offer(final("call-pub-2", 0))
        assert await pub.drain(10)
        redis.stop(kill=True)
        for n in range(1, 4):
            pub.offer(final("call-pub-2", n))
        await poll.until(lambda: pub.state is PublisherState.DOWN, 15, what="publisher down")
        # Kept, in order, while the bus is down; nothing dropped.
        assert queued(pub) == ["final:u1", "final:u2", "final:u3"]
        assert not pub.dropped
        redis.start()
        assert await pub.drain(20)
        stored = await bus.read_call("call-pub-2")
        assert [e.data()["utteranceId"] for e in stored] == ["u0", "u1", "u2", "u3"]
        assert pub.state is PublisherState.UP
    finally:
        await pub.close()
        await bus.close()
        redis.cleanup()


async def test_full_queue_drops_partials_first():
    pub = unstarted(3)
    pub.offer(partial("c", 0))
    pub.offer(final("c", 1))
    pub.offer(partial("c", 2))
    pub.offer(final("c", 3))  # evicts partial 0, the oldest partial
    assert queued(pub) == ["final:u1", "partial:u2", "final:u3"]
    pub.offer(final("c", 4))  # evicts partial 2, although final 1 is older
    assert queued(pub) == ["final:u1", "final:u3", "final:u4"]
    assert pub.dropped == {"partial": 2}
    await pub.close(0)
    await pub.bus.close()


async def test_drops_the_oldest_non_partial_only_when_no_partial_is_left(caplog):
    pub = unstarted(3)
    for n in range(3):
        pub.offer(final(f"call-{n}", n))
    with caplog.at_level(logging.ERROR, logger="coach.publisher"):
        pub.offer(final("call-3", 3))
    # The oldest final (u0) went, not the newest, not one in the middle.
    assert queued(pub) == ["final:u1", "final:u2", "final:u3"]
    assert pub.dropped == {"final": 1}
    # A dropped final is logged with its call.
    assert [r.callId for r in caplog.records] == ["call-0"]
    # Once a partial is queued again, it is the one dropped.
    pub.offer(partial("call-4", 4))  # evicts final u1 (no partial yet), then queues
    pub.offer(final("call-5", 5))  # evicts partial u4
    assert queued(pub) == ["final:u2", "final:u3", "final:u5"]
    assert pub.dropped == {"final": 2, "partial": 1}
    await pub.close(0)
    await pub.bus.close()


async def test_invalid_event_is_dropped_and_counted_the_rest_published(bus, caplog):
    pub = Publisher(bus, tasks(), capacity=100)
    bad = {"type": "final", "callId": "call-pub-3", "text": "no speaker, no times"}
    with caplog.at_level(logging.ERROR, logger="coach.publisher"):
        pub.offer(final("call-pub-3", 0))
        pub.offer(bad)
        pub.offer(final("call-pub-3", 2))
        pub.start()
        assert await pub.drain(10)
    stored = await bus.read_call("call-pub-3")
    assert [e.data()["utteranceId"] for e in stored] == ["u0", "u2"]
    assert pub.dropped == {"invalid": 1}
    assert pub.published == 2
    assert any("refused" in r.getMessage() for r in caplog.records)
    await pub.close()


async def test_close_drains_what_is_pending(bus):
    pub = Publisher(bus, tasks(), capacity=100)
    for n in range(20):
        pub.offer(final("call-pub-4", n))
    pub.start()
    await pub.close(10)
    stored = await bus.read_call("call-pub-4")
    assert [e.data()["utteranceId"] for e in stored] == [f"u{n}" for n in range(20)]
    assert pub.state is PublisherState.CLOSED
    pub.offer(final("call-pub-4", 99))  # after close: refused and counted
    assert pub.dropped == {"closed": 1}
