import asyncio

import pytest

from coach.bus import Bus, BusConfig
from coach.redis_server import EmbeddedRedis
from stt.publisher import BusPublisher, PublisherState

pytestmark = pytest.mark.integration


def final(call_id: str, n: int) -> dict[str, object]:
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


def partial(call_id: str, n: int) -> dict[str, object]:
    return {
        "type": "partial",
        "callId": call_id,
        "speaker": "agent",
        "utteranceId": f"u{n}",
        "text": "fra",
        "start": float(n),
        "end": n + 0.2,
    }


async def wait_for(predicate, wait_s: float = 15.0) -> None:
    async def loop():
        # The publisher's state has no event to wait on: poll it, bounded by wait_s.
        while not predicate():  # noqa: ASYNC110
            await asyncio.sleep(0.05)

    await asyncio.wait_for(loop(), wait_s)


async def test_events_reach_the_bus_in_order(bus):
    pub = BusPublisher(bus, capacity=100)
    pub.start()
    try:
        for n in range(5):
            pub.offer(final("call-pub-1", n))
        assert await pub.drain(10)
        stored = await bus.read_call("call-pub-1")
        assert [e.data()["utteranceId"] for e in stored] == [f"u{n}" for n in range(5)]
    finally:
        await pub.close()


async def test_bus_outage_buffers_then_delivers(tmp_path):
    redis = (
        EmbeddedRedis(data_dir=tmp_path)
        if "data_dir" in EmbeddedRedis.__init__.__code__.co_varnames
        else EmbeddedRedis()
    )
    redis.start()
    bus = Bus.connect(redis.url, BusConfig(prefix="pubtest"), connect_timeout=0.3, timeout=0.5)
    pub = BusPublisher(bus, capacity=100)
    pub.start()
    try:
        pub.offer(final("call-pub-2", 0))
        assert await pub.drain(10)
        redis.stop(kill=True)
        for n in range(1, 4):
            pub.offer(final("call-pub-2", n))
        await wait_for(lambda: pub.state is PublisherState.DOWN)
        assert pub.depth == 3  # kept, in order, while the bus is down
        redis.start()
        assert await pub.drain(20)
        stored = await bus.read_call("call-pub-2")
        assert [e.data()["utteranceId"] for e in stored][-3:] == ["u1", "u2", "u3"]
        assert pub.state is PublisherState.UP
    finally:
        await pub.close()
        await bus.close()
        redis.cleanup()


async def test_full_buffer_drops_partials_before_finals():
    # No task started: nothing drains, so the overflow policy is observable.
    pub = BusPublisher(Bus.connect("redis://127.0.0.1:1/0", BusConfig(prefix="x")), capacity=3)
    try:
        pub.offer(partial("c", 0))
        pub.offer(final("c", 1))
        pub.offer(partial("c", 2))
        pub.offer(final("c", 3))  # evicts partial 0
        pub.offer(final("c", 4))  # evicts partial 2
        assert pub.dropped["partial"] == 2 and pub.dropped["final"] == 0
        pub.offer(final("c", 5))  # only finals left: the oldest final goes
        assert pub.dropped["final"] == 1
        assert pub.depth == 3
    finally:
        await pub.close()
        assert pub.bus is not None
        await pub.bus.close()
