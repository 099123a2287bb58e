"""The streamed knowledge answer through the real engine, a real (embedded) Redis and the fake
LLM server speaking SSE a token at a time: for each labelled question that gets a card,

- card -> first answer event (time to first token as the agent sees it: the request, the
  fake's first-byte latency, the stream, the partial JSON read, the publish),
- card -> final `done` event (the whole answer and its cites),
- events per answer (the rate bound, LLM_ANSWER_INTERVAL_MS, against tokens streamed),

all from the bus's own timestamps (ms). The fake's latency and token pace are arguments, so
the figures isolate what this code adds to a provider's: subtract `--latency` from the first
and `--latency + tokens * --token-ms` from the done figure. Lexical ranking (BM25) on the demo
KB keeps it quick; retrieval latency is bench.kb's business.

    python -m bench.kb.answer [--questions 40] [--latency 0.3] [--token-ms 25] [--interval-ms 150]

Measured on this 2-core machine (shared lock, defaults: first byte 300 ms, 25 ms per token,
answers of ~24 tokens): card -> first answer event p50 332 ms / p95 338 ms (the first word is
the fake's second token, 325 ms in: ~7 ms of our own); card -> done p50 864 / p95 1104 ms;
5.4 events per answer at LLM_ANSWER_INTERVAL_MS 150 against 22.2 at 0 (one per token), with
the same first-event and done figures (333 / 864 ms p50).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.kb.corpus import demo_kb
from bench.kb.evaluate import load
from coach.bus import Bus, BusConfig
from coach.knowledge import KnowledgeBase
from coach.knowledge.settings import KBSettings
from coach.redis_server import EmbeddedRedis
from fakes.poll import until_async


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


async def _events(bus: Bus, call_id: str) -> list[dict[str, Any]]:
    return [
        e.data()
        for e in await bus.read_call(call_id)
        if e.type == "coach" and e.data().get("source") == "kb"
    ]


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Ask the questions; the per-answer figures."""
    from fakes.fake_llm import API_KEY, TOKEN, FakeLLM
    from orchestrator.engine import Orchestrator
    from orchestrator.llm.thread import LLMThread
    from orchestrator.playbook_store import PlaybookStore
    from orchestrator.settings import PLAYBOOK_DIR, LLMSettings, Settings

    data = load()
    questions = [q["q"] for q in data["es"] + data["en"]][: args.questions]
    redis = EmbeddedRedis().start()
    fake = FakeLLM(latency_s=args.latency, token_delay_s=args.token_ms / 1000).start()
    bus = Bus.connect(redis.url, BusConfig(prefix="benchkbanswer"))
    llm = LLMThread(
        LLMSettings(base_url=fake.url, api_key=API_KEY, model="fake/m", debounce_ms=0,
                    answer_interval_ms=args.interval_ms, tip_deadline_s=30)
    )  # fmt: skip
    first: list[float] = []
    done: list[float] = []
    events: list[int] = []
    tokens: list[int] = []
    with tempfile.TemporaryDirectory() as tmp:
        kb = KnowledgeBase(demo_kb(Path(tmp) / "demo"))
        kb.refresh()
        store = PlaybookStore(PLAYBOOK_DIR)
        store.load()
        settings = Settings(consumer="bench-kb-answer", kb=KBSettings(cooldown_s=0.0))
        engine = Orchestrator(bus, settings, store, llm, kb=kb, tick_s=0.5)
        await engine.start()
        try:
            for i, text in enumerate(questions):
                call_id = f"bench-answer-{i}"
                now = int(time.time() * 1000)
                await bus.publish(
                    {"type": "call.started", "callId": call_id, "agent": "200",
                     "caller": {"number": "600"}, "startedAt": now, "lang": "es"}
                )  # fmt: skip
                await bus.publish(
                    {"type": "final", "callId": call_id, "speaker": "customer",
                     "utteranceId": "u1", "text": text, "start": 1.0, "end": 3.0,
                     "confidence": 0.9, "lang": "es"}
                )  # fmt: skip

                async def finished(cid: str = call_id) -> list[dict[str, Any]]:
                    evs = await _events(bus, cid)
                    last = evs[-1].get("answer") if evs else None
                    return evs if isinstance(last, dict) and last.get("done") else []

                async def carded(cid: str = call_id) -> list[dict[str, Any]]:
                    return await _events(bus, cid)

                try:
                    await until_async(carded, 2.0)
                    evs = await until_async(finished, 30.0)
                except TimeoutError:
                    continue  # no card (below the threshold), or no answer: nothing to time
                card, answers = evs[0], evs[1:]
                partial = [e for e in answers if not e["answer"]["done"]]
                if answers[-1]["answer"].get("dropped") or not partial:
                    continue
                first.append(float(partial[0]["ts"]) - float(card["ts"]))
                done.append(float(answers[-1]["ts"]) - float(card["ts"]))
                events.append(len(answers))
                final = answers[-1]["answer"]
                reply = json.dumps(
                    {"answer": final["text"], "cites": final["cites"]}, ensure_ascii=False
                )
                tokens.append(len(TOKEN.findall(reply)))  # as the fake streamed it
                await bus.publish(
                    {"type": "call.ended", "callId": call_id, "endedAt": int(time.time() * 1000),
                     "reason": "caller-hangup"}
                )  # fmt: skip
        finally:
            await engine.stop()
            await llm.aclose()
            await bus.close()
            fake.stop()
            redis.stop()
    return {"questions": len(questions), "first": first, "done": done, "events": events,
            "tokens": tokens}  # fmt: skip


def main() -> None:
    """Run and print the figures (and a JSON line for notes)."""
    parser = argparse.ArgumentParser(prog="python -m bench.kb.answer", description=__doc__)
    parser.add_argument("--questions", type=int, default=40)
    parser.add_argument("--latency", type=float, default=0.3, help="fake's first-byte latency (s)")
    parser.add_argument("--token-ms", type=float, default=25.0, help="fake's pause between tokens")
    parser.add_argument("--interval-ms", type=int, default=150, help="LLM_ANSWER_INTERVAL_MS")
    args = parser.parse_args()
    r = asyncio.run(run(args))
    n = len(r["first"])
    if not n:
        print(f"no answers timed ({r['questions']} questions)")
        return
    print(
        f"fake LLM: first byte {args.latency * 1000:.0f} ms, a token every {args.token_ms:.0f} ms; "
        f"LLM_ANSWER_INTERVAL_MS {args.interval_ms}; {n} answers of {r['questions']} questions"
    )
    print(
        f"card -> first answer event: p50 {pct(r['first'], 50):.0f} ms  "
        f"p95 {pct(r['first'], 95):.0f} ms"
    )
    print(f"card -> done: p50 {pct(r['done'], 50):.0f} ms  p95 {pct(r['done'], 95):.0f} ms")
    print(
        f"events per answer: mean {statistics.mean(r['events']):.1f} (max {max(r['events'])}) "
        f"for {statistics.mean(r['tokens']):.1f} tokens streamed"
    )
    summary = {
        "firstP50": pct(r["first"], 50), "firstP95": pct(r["first"], 95),
        "doneP50": pct(r["done"], 50), "doneP95": pct(r["done"], 95),
        "eventsMean": statistics.mean(r["events"]), "tokensMean": statistics.mean(r["tokens"]),
    }  # fmt: skip
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
