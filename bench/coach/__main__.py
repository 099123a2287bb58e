"""Bus benchmark: how fast events are validated, and published to a real Redis.

Runs an embedded Redis (append-only, fsync always, as `bench.relay` does) and, in this process,
publishes STT-like events (three partials to one final) back to back:
- `validate`: the contract check alone (coach/events.py), events/s on one core;
- `publish`: one `Bus.publish` per event, `--concurrency` producers at once;
- `publish_many`: batches of `--batch` events in one transaction.

    python -m bench.coach [--seconds 5] [--batch 50] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from typing import Any

from coach.bus import Bus
from coach.events import validate
from coach.redis_server import EmbeddedRedis


def bench_event(call_id: str, n: int) -> dict[str, Any]:
    """An STT event (three partials, then the final), as `bench.relay` publishes."""
    event: dict[str, Any] = {
        "sentAt": time.time(),
        "type": "partial" if n % 4 else "final",
        "callId": call_id,
        "speaker": "customer" if n % 2 else "agent",
        "utteranceId": f"u{n // 4}",
        "text": "quiero darme de baja del servicio porque es muy caro",
        "start": n * 0.1,
        "end": n * 0.1 + 0.5,
    }
    if event["type"] == "final":
        event |= {"confidence": 0.9, "lang": "es"}
    return event


def validate_rate(seconds: float) -> float:
    events = [bench_event(f"v-{i % 50}", i) for i in range(1000)]
    done = 0
    t0 = time.perf_counter()
    while (elapsed := time.perf_counter() - t0) < seconds:
        for event in events:
            validate(event)
        done += len(events)
    return done / elapsed


async def publish_rate(bus: Bus, seconds: float, concurrency: int, batch: int) -> float:
    counts = [0] * concurrency

    async def producer(k: int) -> None:
        t_end = time.perf_counter() + seconds
        n = 0
        while time.perf_counter() < t_end:
            events = [bench_event(f"p{batch}-{k}", n + i) for i in range(batch)]
            if batch == 1:
                await bus.publish(events[0])
            else:
                await bus.publish_many(events)
            n += batch
        counts[k] = n

    t0 = time.perf_counter()
    await asyncio.gather(*(producer(k) for k in range(concurrency)))
    return sum(counts) / (time.perf_counter() - t0)


async def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.coach")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    redis = EmbeddedRedis().start()
    bus = Bus.connect(redis.url)
    try:
        results: dict[str, Any] = {"validate": validate_rate(args.seconds)}
        results["publish"] = await publish_rate(bus, args.seconds, args.concurrency, 1)
        results[f"publish_many x{args.batch}"] = await publish_rate(
            bus, args.seconds, args.concurrency, args.batch
        )
    finally:
        await bus.close()
        redis.cleanup()
    print(
        f"bus bench: {args.seconds:g} s each, {args.concurrency} producers, "
        f"cpu={os.cpu_count()}, load={os.getloadavg()[0]:.1f}"
    )
    for name, rate in results.items():
        print(f"{name:>18} {rate:>10.0f} events/s", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
