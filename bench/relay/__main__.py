"""Relay benchmark: N WebSocket subscribers across M calls, events published at a fixed rate.

Runs a real embedded Redis (append-only, fsync always) and the real relay (`python -m relay`)
in their own processes; this process publishes through the bus (as STT and the orchestrator
do) and runs the subscribers. Prints, per offered rate: events/s published, deliveries/s,
delivery latency p50/p99 (publish call -> frame received), drops and disconnects.

    python -m bench.relay [--calls 50] [--subscribers 200] [--rates 1000,2500,5000] [--seconds 8]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import subprocess
import sys
import time
from typing import Any

import httpx
import websockets

from coach.bus import Bus
from coach.redis_server import EmbeddedRedis, free_port
from coach.tasks import TaskSet

TOKEN = "bench-service-token-0123456789"


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


async def subscriber(
    url: str, latencies: list[float], counts: list[int], stop: asyncio.Event
) -> None:
    async with websockets.connect(
        url, max_size=2**22, additional_headers={"Authorization": f"Bearer {TOKEN}"}
    ) as ws:
        while not stop.is_set():
            try:
                raw = await asyncio.wait_for(ws.recv(), 0.5)
            except TimeoutError:
                continue
            now = time.time()
            frame = raw if isinstance(raw, str) else raw.decode()
            for line in frame.split("\n"):  # a frame holds one or more events
                # Cheaper than json.loads: the bench client must not be the bottleneck.
                at = line.find('"sentAt":')
                if at >= 0:
                    end = line.find(",", at)
                    latencies.append(now - float(line[at + 9 : end if end > 0 else -1]))
                    counts[0] += 1


def bench_event(call_id: str, n: int) -> dict[str, Any]:
    return {
        "sentAt": time.time(),
        "type": "partial" if n % 4 else "final",
        "callId": call_id,
        "speaker": "customer" if n % 2 else "agent",
        "utteranceId": f"u{n // 4}",
        "text": "quiero darme de baja del servicio porque es muy caro",
        "start": n * 0.1,
        "end": n * 0.1 + 0.5,
        "confidence": 0.9,
        "lang": "es",
    }


async def call_producer(
    bus: Bus, call_id: str, rate: float, seconds: float, sent: list[int]
) -> None:
    """One producer per call, one publish per event (like an STT stream)."""
    interval = 1.0 / rate
    start = time.monotonic()
    n = 0
    while (due := start + n * interval) < start + seconds:
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        await bus.publish(bench_event(call_id, n))
        n += 1
        sent[0] += 1


async def batch_producer(
    bus: Bus, call_ids: list[str], rate: float, seconds: float, sent: list[int], tick: float
) -> None:
    """Every `tick` seconds, publish all events due across calls in one atomic batch."""
    start = time.monotonic()
    n = 0
    while (now := time.monotonic()) < start + seconds:
        due = int((now - start) * rate)
        if due > n:
            await bus.publish_many(
                [bench_event(call_ids[i % len(call_ids)], i) for i in range(n, due)]
            )
            sent[0] += due - n
            n = due
        await asyncio.sleep(tick)


def publisher_process(
    redis_url: str, call_ids: list[str], rate: int, seconds: float, batch_ms: float, out: Any
) -> None:
    """Publish from a process of its own, as STT and the orchestrator would."""

    async def go() -> None:
        bus = Bus.connect(redis_url)
        sent = [0]
        t0 = time.monotonic()
        if batch_ms > 0:
            await batch_producer(bus, call_ids, rate, seconds, sent, batch_ms / 1000)
        else:
            await asyncio.gather(
                *(call_producer(bus, c, rate / len(call_ids), seconds, sent) for c in call_ids)
            )
        out.put((sent[0], time.monotonic() - t0))
        await bus.close()

    asyncio.run(go())


def cpu_seconds(pid: int) -> float:
    """User+system CPU time of a process (Linux /proc)."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def subscriber_process(urls: list[str], ready: Any, go_home: Any, out: Any) -> None:
    """A share of the WebSocket clients, in a process of its own (the clients must not be the
    bottleneck being measured)."""

    async def go() -> None:
        latencies: list[float] = []
        counts = [0]
        stop = asyncio.Event()
        async with TaskSet("bench") as tasks:
            for u in urls:
                tasks.spawn(subscriber(u, latencies, counts, stop), "bench-subscriber")
            await asyncio.sleep(1.0)  # replays done
            ready.set()
            while not go_home.is_set():
                await asyncio.sleep(0.05)
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
        out.put((counts[0], latencies))

    asyncio.run(go())


async def run_rate(
    port: int,
    relay_pid: int,
    redis_url: str,
    bus: Bus,
    calls: int,
    subs: int,
    rate: int,
    seconds: float,
    batch_ms: float,
    sub_procs: int,
) -> dict[str, float]:
    prefix = f"r{rate}-{int(time.time())}"
    call_ids = [f"{prefix}-{i}" for i in range(calls)]
    for i, call_id in enumerate(call_ids):
        await bus.publish(
            {
                "type": "call.started",
                "callId": call_id,
                "agent": str(200 + i),
                "caller": {"number": "600"},
                "startedAt": 0,
                "lang": "es",
            }
        )
    urls = [f"ws://127.0.0.1:{port}/ws?callId={call_ids[i % calls]}" for i in range(subs)]
    results: Any = multiprocessing.Queue()
    go_home = multiprocessing.Event()
    readies = []
    procs = []
    for k in range(sub_procs):
        ready = multiprocessing.Event()
        p = multiprocessing.Process(
            target=subscriber_process, args=(urls[k::sub_procs], ready, go_home, results)
        )
        p.start()
        readies.append(ready)
        procs.append(p)
    for ready in readies:
        while not ready.is_set():
            await asyncio.sleep(0.05)
    queue: Any = multiprocessing.Queue()
    proc = multiprocessing.Process(
        target=publisher_process, args=(redis_url, call_ids, rate, seconds, batch_ms, queue)
    )
    cpu0 = cpu_seconds(relay_pid)
    t0 = time.monotonic()
    proc.start()
    while proc.is_alive():
        await asyncio.sleep(0.05)
    sent, elapsed = queue.get()
    await asyncio.sleep(2.0)  # let the tail drain
    drain = time.monotonic() - t0
    relay_cpu = (cpu_seconds(relay_pid) - cpu0) / drain
    go_home.set()
    count = 0
    latencies: list[float] = []
    for _ in procs:
        n, lat = results.get()
        count += n
        latencies += lat
    for p in procs:
        p.join()
    expected = sent * subs // calls
    return {
        "offered": rate,
        "published_per_s": sent / elapsed,
        "relay_cpu": relay_cpu,
        "delivered_per_s": count / elapsed,
        "delivered_ratio": count / max(1, expected),
        "p50_ms": pct(latencies, 0.50) * 1000,
        "p99_ms": pct(latencies, 0.99) * 1000,
        "max_ms": max(latencies, default=float("nan")) * 1000,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.relay")
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--subscribers", type=int, default=200)
    parser.add_argument("--rates", default="1000,2500,5000")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--subscriber-processes", type=int, default=2)
    parser.add_argument(
        "--batch-ms",
        type=float,
        default=0,
        help="publish due events in one batch every N ms (0: one publish per event)",
    )
    args = parser.parse_args()

    redis = EmbeddedRedis().start()
    port = free_port()
    env = {
        **os.environ,
        "RELAY_TOKEN": TOKEN,
        "AUTH_SECRET": "b" * 48,
        "REDIS_URL": redis.url,
        "RELAY_PORT": str(port),
        "RELAY_HOST": "127.0.0.1",
        "LOG_LEVEL": os.environ.get("BENCH_RELAY_LOG", "warning"),
    }
    relay = subprocess.Popen([sys.executable, "-m", "relay"], env=env)
    bus = Bus.connect(redis.url)
    try:
        async with httpx.AsyncClient() as client:
            for _ in range(100):
                try:
                    if (await client.get(f"http://127.0.0.1:{port}/health")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
        mode = f"batches every {args.batch_ms:g} ms" if args.batch_ms else "one publish per event"
        print(
            f"relay bench: {args.subscribers} subscribers over {args.calls} calls, {args.seconds:.0f} s per rate, "
            f"{mode}, cpu={os.cpu_count()}, load={os.getloadavg()[0]:.1f}"
        )
        print(
            f"{'offered/s':>10} {'published/s':>12} {'delivered/s':>12} {'delivered':>10} "
            f"{'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'relay cpu':>10}"
        )
        for rate in (int(r) for r in args.rates.split(",")):
            r = await run_rate(
                port,
                relay.pid,
                redis.url,
                bus,
                args.calls,
                args.subscribers,
                rate,
                args.seconds,
                args.batch_ms,
                args.subscriber_processes,
            )
            print(
                f"{r['offered']:>10.0f} {r['published_per_s']:>12.0f} {r['delivered_per_s']:>12.0f} "
                f"{r['delivered_ratio']:>10.1%} {r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f} {r['max_ms']:>8.1f} "
                f"{r['relay_cpu']:>10.0%}",
                flush=True,
            )
        async with httpx.AsyncClient() as client:
            metrics = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
        for line in metrics.splitlines():
            if line.startswith(
                (
                    "relay_events_dropped_total",
                    "relay_ws_closed_total",
                    "relay_fanout_lag_seconds_bucket",
                )
            ):
                print(line)
    finally:
        await bus.close()
        relay.terminate()
        relay.wait(10)
        redis.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
