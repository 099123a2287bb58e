"""Orchestrator benchmark: N concurrent simulated calls through a real Redis bus.

The orchestrator runs as its own process (`python -m orchestrator`), as in production; this
process plays STT (partials + finals) for every call and measures, from the bus timestamps:

1. rules mode, paced calls: final → coach latency p50/p99 (target p99 <= 50 ms);
2. rules mode, flood: finals/s the orchestrator sustains;
3. LLM mode against the fake OpenAI-compatible server with 500 ms latency: tips per call,
   final → tip latency per call, and that one call whose LLM requests hang delays no other.

    python -m bench.orchestrator [--calls 200] [--turns 16] [--gap 1.0] [--skip-llm]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import statistics
import subprocess
import sys
import time
import uuid
from typing import Any

import httpx

from coach.bus import Bus, BusConfig
from coach.redis_server import EmbeddedRedis, free_port
from coach.tasks import TaskSet
from fakes.poll import until_async

CUSTOMER = [
    "Buenos días, llamo por un problema con mi factura de este mes.",
    "Me han cobrado dos veces la cuota y nadie me da una explicación.",
    "Mire, quiero darme de baja, estoy cansado de llamar.",
    "Quiero hablar con un supervisor ahora mismo.",
    "Si no me lo solucionan voy a poner una reclamación en consumo.",
    "Esto lo va a ver mi abogado, se lo aseguro.",
    "Es el 4111 1111 1111 1111.",
    "Vale, de acuerdo, espero el correo entonces.",
    "No quiero cancelar nada, gracias, solo quería saberlo.",
    "Joder, es que es siempre lo mismo con ustedes.",
]
AGENT = [
    "Buenos días, le atiende Laura, ¿en qué puedo ayudarle?",
    "Entiendo, déjeme revisar su cuenta un momento.",
    "Dígame el número de su tarjeta, por favor.",
    "Le envío ahora mismo un correo con el detalle del abono.",
    "Veo el cargo duplicado, lo anulo en este momento.",
    "¿Hay algo más en lo que pueda ayudarle?",
]


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


class Orchestrator:
    """`python -m orchestrator` as a child process."""

    def __init__(self, redis_url: str, prefix: str, extra: dict[str, str]) -> None:
        self.port = free_port()
        env = {
            **os.environ,
            "REDIS_URL": redis_url,
            "BUS_PREFIX": prefix,
            "ORCH_PORT": str(self.port),
            "ORCH_HOST": "127.0.0.1",
            "ORCH_CONSUMER": "bench-orch",
            "LOG_LEVEL": "warning",
            "ORCH_METRICS_INTERVAL_S": "5",
            **extra,
        }
        if "OPENROUTER_API_KEY" not in extra:
            env.pop("OPENROUTER_API_KEY", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "orchestrator"],
            env=env,
            stderr=None if os.environ.get("BENCH_ORCH_LOGS") else subprocess.DEVNULL,
        )

    async def ready(self) -> dict[str, Any]:
        async with httpx.AsyncClient() as http:

            async def healthy() -> dict[str, Any] | None:
                try:
                    r = await http.get(f"http://127.0.0.1:{self.port}/health")
                except httpx.HTTPError:
                    return None
                return dict(r.json()) if r.status_code == 200 else None

            body = await until_async(healthy, 30, what="the orchestrator healthy", interval=0.1)
            assert body is not None
            return body

    def loop_lag(self) -> str:
        """The orchestrator's own event-loop lag histogram, summarised from /metrics."""
        text = httpx.get(f"http://127.0.0.1:{self.port}/metrics", timeout=5).text
        buckets = []
        for line in text.splitlines():
            if line.startswith("orch_loop_lag_seconds_bucket"):
                le = line.split('le="')[1].split('"')[0]
                buckets.append((le, float(line.rsplit(" ", 1)[1])))
        total = buckets[-1][1] if buckets else 0
        if not total:
            return "n/a"
        over = {le: total - n for le, n in buckets if le in ("0.01", "0.05", "0.1", "0.25")}
        return (
            f"{int(total)} probes, late >10 ms: {int(over['0.01'])}, >50 ms: "
            f"{int(over['0.05'])}, >100 ms: {int(over['0.1'])}, >250 ms: {int(over['0.25'])}"
        )

    def cpu_s(self) -> float:
        """CPU seconds (user+system) the orchestrator process has used so far."""
        with open(f"/proc/{self.proc.pid}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()


async def run_call(
    bus: Bus, call_id: str, turns: int, gap: float, rng: random.Random, *, text_suffix: str = ""
) -> None:
    """One call: call.started, `turns` finals (each after two partials), call.ended."""
    await bus.publish(
        {
            "type": "call.started",
            "callId": call_id,
            "agent": "200",
            "caller": {"number": "600000000"},
            "startedAt": int(time.time() * 1000),
            "lang": "es",
        }
    )
    t = 0.5
    for i in range(turns):
        speaker = "agent" if i % 2 == 0 else "customer"
        text = rng.choice(AGENT) if speaker == "agent" else CUSTOMER[(i // 2) % len(CUSTOMER)]
        text += text_suffix
        uid = f"{call_id}-u{i}"
        dur = 1.5 + rng.random() * 2
        if gap:
            await asyncio.sleep(gap * (0.5 + rng.random()))
        for k in (1, 2):
            await bus.publish(
                {
                    "type": "partial",
                    "callId": call_id,
                    "speaker": speaker,
                    "utteranceId": uid,
                    "text": text[: 12 * k],
                    "start": t,
                    "end": t + dur * k / 3,
                }
            )
        await bus.publish(
            {
                "type": "final",
                "callId": call_id,
                "speaker": speaker,
                "utteranceId": uid,
                "text": text,
                "start": t,
                "end": t + dur,
                "confidence": 0.9,
                "lang": "es",
            }
        )
        t += dur + 0.3 + rng.random()
    await bus.publish(
        {
            "type": "call.ended",
            "callId": call_id,
            "endedAt": int(time.time() * 1000),
            "reason": "caller-hangup",
        }
    )


async def collect(bus: Bus, call_ids: list[str], within: float) -> dict[str, list[dict[str, Any]]]:
    """Wait for every call's summary, then return each call's events."""
    waiting = set(call_ids)

    async def all_summarised() -> bool:
        for cid in list(waiting):
            if any(e.type == "summary" for e in await bus.read_call(cid)):
                waiting.discard(cid)
        return not waiting

    with contextlib.suppress(TimeoutError):
        await until_async(all_summarised, within, what="every summary", interval=0.25)
    if waiting:
        print(f"  !! {len(waiting)} calls got no summary within {within:.0f}s")
    return {cid: [e.data() for e in await bus.read_call(cid)] for cid in call_ids}


def analyse(events: dict[str, list[dict[str, Any]]], source: str) -> dict[str, Any]:
    lat: list[float] = []
    per_call: dict[str, int] = {}
    call_lat: dict[str, list[float]] = {}
    for cid, evs in events.items():
        finals = {e["utteranceId"]: e for e in evs if e["type"] == "final"}
        for e in evs:
            if e["type"] == "coach" and e["source"] == source and e.get("refs"):
                final = finals.get(e["refs"][-1])
                if final:
                    # Bus ids are Redis' own clock at XADD: time on the bus, not in producers.
                    ms = int(e["id"].split("-")[0]) - int(final["id"].split("-")[0])
                    lat.append(ms)
                    call_lat.setdefault(cid, []).append(ms)
                per_call[cid] = per_call.get(cid, 0) + 1
    return {"lat": lat, "per_call": per_call, "call_lat": call_lat}


async def probe_redis(bus: Bus, stop: asyncio.Event, out: list[float]) -> None:
    """Round trips of PING every 10 ms: the floor any bus consumer can reach on this host now."""
    while not stop.is_set():
        t = time.perf_counter()
        await bus.redis.ping()
        out.append((time.perf_counter() - t) * 1000)
        await asyncio.sleep(0.01)


async def phase_rules(redis_url: str, calls: int, turns: int, gap: float) -> None:
    prefix = f"bench{uuid.uuid4().hex[:6]}"
    orch = Orchestrator(redis_url, prefix, {})
    bus = Bus.connect(redis_url, BusConfig(prefix=prefix), max_connections=400)
    try:
        health = await orch.ready()
        print(f"orchestrator up: mode={health['mode']}")
        rng = random.Random(1)
        ids = [f"r{i:04d}" for i in range(calls)]
        t0 = time.monotonic()
        cpu0 = orch.cpu_s()
        stop, pings = asyncio.Event(), list[float]()
        tasks = TaskSet("bench")
        probe = tasks.spawn(probe_redis(bus, stop, pings), "redis-probe")
        await asyncio.gather(
            *(run_call(bus, cid, turns, gap, random.Random(rng.random())) for cid in ids)
        )
        sent = time.monotonic() - t0
        cpu = orch.cpu_s() - cpu0
        stop.set()
        await probe
        evs = await collect(bus, ids, 120)
        done = time.monotonic() - t0
        finals = sum(1 for v in evs.values() for e in v if e["type"] == "final")
        res = analyse(evs, "rules")
        lat = res["lat"]
        print(
            f"[rules, paced] {calls} calls x {turns} finals (+2 partials each), "
            f"final every ~{gap:.1f}s per call: {finals} finals in {sent:.1f}s = "
            f"{finals / sent:.0f} finals/s offered"
        )
        print(
            f"  final->coach latency over {len(lat)} rule alerts: p50 {pct(lat, 50):.1f} ms, "
            f"p90 {pct(lat, 90):.1f} ms, p99 {pct(lat, 99):.1f} ms, max {max(lat):.1f} ms "
            f"(target p99 <= 50 ms) ; all summaries after {done:.1f}s"
        )
        print(f"  orchestrator event-loop lag (100 ms timer): {orch.loop_lag()}")
        print(
            f"  control: Redis PING round trip from this process during the run: p50 "
            f"{pct(pings, 50):.1f} ms, p99 {pct(pings, 99):.1f} ms, max {max(pings):.1f} ms"
        )
        summaries = sum(1 for v in evs.values() for e in v if e["type"] == "summary")
        metrics = sum(1 for v in evs.values() for e in v if e["type"] == "metrics")
        print(
            f"  alerts/call {statistics.mean(res['per_call'].values()):.1f}, "
            f"metrics events {metrics}, summaries {summaries}/{calls}; orchestrator CPU "
            f"{cpu:.1f}s over {sent:.1f}s = {100 * cpu / sent:.0f}% of one core"
        )
    finally:
        orch.stop()
        await bus.close()


async def phase_flood(redis_url: str, calls: int, turns: int) -> None:
    prefix = f"bench{uuid.uuid4().hex[:6]}"
    bus = Bus.connect(redis_url, BusConfig(prefix=prefix), max_connections=400)
    # Pre-load the bus, then start the orchestrator on a group that begins at 0: measures
    # pure consumption speed, not how fast this process can publish.
    await bus.ensure_group("orchestrator", start="0")
    ids = [f"f{i:04d}" for i in range(calls)]
    rng = random.Random(2)
    await asyncio.gather(
        *(run_call(bus, cid, turns, 0, random.Random(rng.random())) for cid in ids)
    )
    orch = Orchestrator(redis_url, prefix, {})
    try:
        await orch.ready()
        t0 = time.monotonic()
        evs = await collect(bus, ids, 300)
        elapsed = time.monotonic() - t0
        finals = sum(1 for v in evs.values() for e in v if e["type"] == "final")
        total = sum(1 for v in evs.values() for e in v if e["type"] in ("final", "partial"))
        print(
            f"[rules, flood] {finals} finals (+partials, {total} STT events) from {calls} calls "
            f"queued, processed to the last summary in {elapsed:.1f}s = "
            f"{finals / elapsed:.0f} finals/s ({total / elapsed:.0f} STT events/s)"
        )
    finally:
        orch.stop()
        await bus.close()


def start_fake_llm() -> tuple[subprocess.Popen[str], str]:
    """The fake LLM in its own process, so its CPU does not count against the producers."""
    fake = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fakes.fake_llm",
            "--port",
            str(free_port()),
            "--latency",
            "0.5",
            "--hang",
            "ROUTERCOLGADO",
            "--vary",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert fake.stdout is not None
    return fake, str(json.loads(fake.stdout.readline())["url"])


async def phase_llm(redis_url: str, calls: int, turns: int, gap: float, concurrency: int) -> None:
    fake, fake_url = start_fake_llm()
    prefix = f"bench{uuid.uuid4().hex[:6]}"
    orch = Orchestrator(
        redis_url,
        prefix,
        {
            "OPENROUTER_API_KEY": "test-key",
            "LLM_BASE_URL": fake_url,
            "OPENROUTER_MODEL": "fake/a",
            "LLM_MAX_CONCURRENCY": str(concurrency),
            "LLM_TIP_DEADLINE_S": "4",
            "LLM_READ_TIMEOUT_S": "3",
            "LLM_BREAKER_FAILURES": "1000",
        },
    )
    bus = Bus.connect(redis_url, BusConfig(prefix=prefix), max_connections=400)
    try:
        health = await orch.ready()
        print(
            f"orchestrator up: mode={health['mode']}, LLM cap {concurrency} in flight, "
            f"fake LLM latency 500 ms"
        )
        rng = random.Random(3)
        ids = [f"l{i:04d}" for i in range(calls)]
        hang_id = ids[0]
        t0 = time.monotonic()
        cpu0 = orch.cpu_s()
        await asyncio.gather(
            *(
                run_call(
                    bus,
                    cid,
                    turns,
                    gap,
                    random.Random(rng.random()),
                    text_suffix=" ROUTERCOLGADO" if cid == hang_id else "",
                )
                for cid in ids
            )
        )
        sent = time.monotonic() - t0
        cpu = orch.cpu_s() - cpu0
        evs = await collect(bus, ids, 180)
        orch.stop()
        fake.terminate()
        out, _ = fake.communicate(timeout=15)
        fake_stats = json.loads(out.strip().splitlines()[-1])
        res = analyse(evs, "llm")
        tips = res["per_call"]
        others = [c for c in ids if c != hang_id]
        lat = res["lat"]
        worst = [max(v) for c, v in res["call_lat"].items() if c != hang_id]
        llm_summ = sum(
            1
            for v in evs.values()
            for e in v
            if e["type"] == "summary" and e.get("source") == "llm"
        )
        reqs = fake_stats["requests"]
        print(
            f"[llm] {calls} calls x {turns} finals over {sent:.1f}s; {reqs} LLM requests "
            f"({reqs / calls:.1f}/call, debounced from {turns} finals/call)"
        )
        print(
            f"  tips per call: mean {statistics.mean([tips.get(c, 0) for c in others]):.1f}, "
            f"min {min(tips.get(c, 0) for c in others)}, "
            f"calls with >=1 tip {sum(1 for c in others if tips.get(c))}/{len(others)}"
        )
        print(
            f"  final->tip latency: p50 {pct(lat, 50):.0f} ms, p99 {pct(lat, 99):.0f} ms; "
            f"worst per call p50 {pct(worst, 50):.0f} ms, max {max(worst):.0f} ms "
            f"(500 ms model + 300 ms debounce = 800 ms floor)"
        )
        print(
            f"  call {hang_id} (LLM hangs every time): tips {tips.get(hang_id, 0)}; "
            f"other calls unaffected; LLM summaries {llm_summ}/{calls}; "
            f"max concurrent at the fake {fake_stats['max_active']}; orchestrator CPU "
            f"{100 * cpu / sent:.0f}% of one core"
        )
        rules = analyse(evs, "rules")["lat"]
        print(
            f"  rules alongside the LLM: final->coach p50 {pct(rules, 50):.0f} ms, "
            f"p99 {pct(rules, 99):.0f} ms over {len(rules)} alerts"
        )
    finally:
        orch.stop()
        await bus.close()
        if fake.poll() is None:
            fake.kill()


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--turns", type=int, default=16)
    ap.add_argument("--gap", type=float, default=1.0, help="mean seconds between finals per call")
    ap.add_argument(
        "--llm-concurrency",
        type=int,
        nargs="+",
        default=[0, 64],
        help="LLM_MAX_CONCURRENCY values to run (0 = one slot per call)",
    )
    ap.add_argument("--skip-llm", action="store_true")
    ap.add_argument("--skip-rules", action="store_true")
    ap.add_argument("--fsync", default="everysec", help="appendfsync of the embedded Valkey")
    ap.add_argument("--skip-flood", action="store_true")
    args = ap.parse_args()
    print(f"load before: {os.getloadavg()}")
    server = None
    redis_url = os.environ.get("REDIS_URL")
    if not redis_url:
        server = EmbeddedRedis(fsync=args.fsync).start()
        redis_url = server.url
    try:
        if not args.skip_rules:
            await phase_rules(redis_url, args.calls, args.turns, args.gap)
            print(f"load: {os.getloadavg()}")
        if not args.skip_flood:
            await phase_flood(redis_url, args.calls, args.turns)
            print(f"load: {os.getloadavg()}")
        if not args.skip_llm:
            for cap in args.llm_concurrency:
                await phase_llm(redis_url, args.calls, args.turns, args.gap, cap or args.calls)
                print(f"load: {os.getloadavg()}")
    finally:
        if server:
            server.stop()
            server.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
    print(json.dumps({"done": True}))
