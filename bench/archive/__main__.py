"""`python -m bench.archive`: the call record's ingest rate and search latency on generated calls.

Calls are made of the Asterisk prompt transcripts (Spanish `core-sounds-es`, English
`core-sounds-en`; 1 call in 5 English), `--utterances` finals each with word timings, plus
coaching, metrics and summary events, written through the archive's own write path
(`coach.record.write.apply`, transactions of `--batch` events) into an embedded PostgreSQL 18.
Then search (`coach.record.search.search`, ranking and snippets included, first page of 50) is
timed for word, phrase and filtered queries whose words are drawn at corpus frequency ranks
10–1,000, as the relay's reader role.

    python -m bench.archive --calls 10000
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import itertools
import json
import os
import random
import re
import statistics
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from coach.events import DISPOSITIONS, SENTIMENTS
from coach.pg_server import EmbeddedPostgres
from coach.record import roles
from coach.record.migrate import migrate
from coach.record.search import Filters, search
from coach.record.write import CALL_TEXT, apply, seq

SOURCES = {
    "es": Path("/usr/share/doc/asterisk-core-sounds-es/core-sounds-es.txt.gz"),
    "en": Path("/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz"),
}
T0 = 1_760_000_000_000
WORD = re.compile(r"[^\W\d_]+", re.UNICODE)


def sentences(lang: str) -> list[str]:
    """The prompts' texts (`name: text` lines)."""
    out = []
    with gzip.open(SOURCES[lang], "rt", encoding="utf-8", errors="replace") as f:
        for line in f:
            if ":" in line and not line.startswith(";"):
                text = line.split(":", 1)[1].strip()
                if len(text.split()) >= 3:
                    out.append(text)
    return out


def make_call(
    n: int, corpus: dict[str, list[str]], rng: random.Random, utterances: int
) -> list[dict[str, Any]]:
    """Every event of generated call `n`, with bus-like ids."""
    lang = "en" if n % 5 == 4 else "es"
    call_id = f"bench-{n:07d}"
    started = T0 + n * 60_000
    agent = f"{200 + n % 50}"
    events: list[dict[str, Any]] = [
        {
            "type": "call.started",
            "callId": call_id,
            "agent": agent,
            "lang": lang,
            "caller": {"number": f"+3460{n:07d}", "name": "Cliente"},
            "startedAt": started,
        },
        {"type": "call.answered", "callId": call_id, "agent": agent, "answeredAt": started + 3000},
    ]
    t = 0.0
    for i in range(utterances):
        text = rng.choice(corpus[lang])
        tokens = text.split()
        dur = 0.35 * len(tokens) + 0.3
        step = dur / len(tokens)
        events.append(
            {
                "type": "final",
                "callId": call_id,
                "speaker": "agent" if i % 2 else "customer",
                "utteranceId": f"u{i}",
                "text": text,
                "start": round(t, 2),
                "end": round(t + dur, 2),
                "confidence": 0.9,
                "lang": lang,
                "words": [
                    {
                        "w": w,
                        "start": round(t + k * step, 2),
                        "end": round(t + (k + 1) * step, 2),
                        "p": 0.9,
                    }
                    for k, w in enumerate(tokens)
                ],
            }
        )
        if i == 7:
            events.append(
                {
                    "type": "coach",
                    "callId": call_id,
                    "kind": "alert",
                    "severity": "warning",
                    "text": "Intención de baja",
                    "source": "rules",
                    "ruleId": rng.choice(["cancel-intent", "angry-customer", "payment"]),
                    "refs": [f"u{i}"],
                }
            )
        t += dur + rng.uniform(0.2, 2.0)
    events.append(
        {
            "type": "metrics",
            "callId": call_id,
            "callTime": round(t, 1),
            "talkRatio": {"agent": round(rng.uniform(0.3, 0.7), 2)},
            "longestSilence": round(rng.uniform(0.5, 8), 1),
            "silenceTotal": 10.0,
            "overtalk": {"count": 1, "seconds": 0.5},
            "speakers": {},
        }
    )
    events.append(
        {
            "type": "summary",
            "callId": call_id,
            "text": "Resumen.",
            "disposition": rng.choice(DISPOSITIONS),
            "actionItems": [],
            "sentiment": rng.choice(SENTIMENTS),
        }
    )
    events.append(
        {
            "type": "call.ended",
            "callId": call_id,
            "endedAt": started + int(t * 1000),
            "reason": "caller-hangup",
        }
    )
    for k, ev in enumerate(events):
        ev["id"] = f"{started + k}-0"
    return events


def ranked_words(corpus: dict[str, list[str]], lo: int, hi: int) -> dict[str, list[str]]:
    """Per language, the words at frequency ranks lo..hi (1 = most frequent)."""
    out = {}
    for lang, texts in corpus.items():
        counts = Counter(w.lower() for t in texts for w in WORD.findall(t) if len(w) > 2)
        out[lang] = [w for w, _ in counts.most_common(hi)[lo - 1 :]]
    return out


def phrases(
    corpus: dict[str, list[str]], words: dict[str, list[str]], rng: random.Random, n: int
) -> list[str]:
    """Quoted two-word phrases as said in the corpus, the first word in the rank window."""
    out = []
    for _ in range(n * 20):
        lang = rng.choice(["es", "es", "es", "es", "en"])
        tokens = [w.lower() for w in WORD.findall(rng.choice(corpus[lang]))]
        pairs = [(a, b) for a, b in itertools.pairwise(tokens) if a in set(words[lang])]
        if pairs:
            a, b = rng.choice(pairs)
            out.append(f'"{a} {b}"')
        if len(out) == n:
            break
    return out


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


async def ingest(
    url: str,
    first: int,
    calls: int,
    utterances: int,
    batch: int,
    corpus: dict[str, list[str]],
    fast: bool,
) -> tuple[int, float]:
    """Write calls `first`..`calls - 1` (each call's events from its own seed, so a load can
    be resumed); return the events written and the seconds it took."""
    events_total = 0
    pending: list[dict[str, Any]] = []
    started = time.perf_counter()
    write = _fast_chunk if fast else _apply_chunk
    async with await psycopg.AsyncConnection.connect(url) as conn:
        for n in range(first, calls):
            pending += make_call(n, corpus, random.Random(n), utterances)
            if fast:
                if (n + 1 - first) % FAST_CALLS and n + 1 < calls:
                    continue
                chunk, pending = pending, []
                events_total += await write(conn, chunk)
            else:
                while len(pending) >= batch:
                    chunk, pending = pending[:batch], pending[batch:]
                    events_total += await write(conn, chunk)
            done = n + 1 - first
            if done % 1000 == 0:
                rate = events_total / (time.perf_counter() - started)
                print(
                    f"  {n + 1} calls, {events_total} events, {rate:.0f} events/s,"
                    f" {done / (time.perf_counter() - started):.0f} calls/s",
                    flush=True,
                )
        if pending:
            events_total += await write(conn, pending)
    return events_total, time.perf_counter() - started


FAST_CALLS = 250
"""Calls per transaction in the fast-load mode."""


async def _apply_chunk(conn: psycopg.AsyncConnection[Any], events: list[dict[str, Any]]) -> int:
    """The archive's own path: `apply`, one transaction."""
    async with conn.transaction():
        await apply(conn, events)
    return len(events)


async def _fast_chunk(conn: psycopg.AsyncConnection[Any], events: list[dict[str, Any]]) -> int:
    """Fast-load mode (bench only): the same rows in the same tables, but the finals (90 % of
    the events) go in with COPY instead of one statement each, and each call's search
    document is made once, by the writer's own statement, after its finals; every other event
    goes through `apply`. Fresh calls only: nothing here is idempotent."""
    finals = [e for e in events if e["type"] == "final"]
    async with conn.transaction():
        await apply(conn, [e for e in events if e["type"] != "final"])
        async with conn.cursor() as cur:
            async with cur.copy(
                "COPY record.utterances (call_id, utterance_id, seq, speaker, start_s, end_s,"
                " text, lang, confidence) FROM STDIN"
            ) as copy:
                for e in finals:
                    await copy.write_row(
                        (
                            e["callId"],
                            e["utteranceId"],
                            seq(e["id"]),
                            e["speaker"],
                            e["start"],
                            e["end"],
                            e["text"],
                            e.get("lang"),
                            e.get("confidence"),
                        )
                    )
            async with cur.copy(
                "COPY record.utterance_words (call_id, utterance_id, words) FROM STDIN"
            ) as copy:
                for e in finals:
                    await copy.write_row(
                        (e["callId"], e["utteranceId"], json.dumps(e["words"], ensure_ascii=False))
                    )
            await cur.execute(CALL_TEXT, [sorted({e["callId"] for e in finals})])
    return len(events)


async def timed(url: str, queries: list[Filters]) -> tuple[list[float], Counter[str]]:
    """Milliseconds of each search, and how many were served in each order."""
    out = []
    orders: Counter[str] = Counter()
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        for f in queries[:3]:
            await search(conn, f)  # warm the cache and the plans
        for f in queries:
            t = time.perf_counter()
            page = await search(conn, f, limit=50)
            out.append((time.perf_counter() - t) * 1000)
            orders[page.order] += 1
    return out, orders


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--utterances", type=int, default=50)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument(
        "--data", type=Path, default=None, help="keep the database here (and reuse it)"
    )
    parser.add_argument(
        "--fast",
        action="store_true",
        help="fast-load mode: finals by COPY (see _fast_chunk); not the archive's ingest rate",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--load-only", action="store_true", help="load, do not time searches")
    mode.add_argument(
        "--search-only", action="store_true", help="time the searches on the database in --data"
    )
    args = parser.parse_args()
    corpus = {lang: sentences(lang) for lang in SOURCES}
    print(f"corpus: {len(corpus['es'])} es, {len(corpus['en'])} en sentences")
    with EmbeddedPostgres(data_dir=args.data) as pg:
        roles.provision(pg.url)
        url = pg.url_for(roles.ARCHIVE, roles.DATABASE)
        migrate(url)
        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT count(*) FROM record.calls").fetchone()
        present = int(row[0]) if row else 0
        if not args.search_only and present < args.calls:
            how = "fast-load mode (COPY)" if args.fast else "the archive's write path"
            print(f"loading calls {present}..{args.calls - 1} through {how}", flush=True)
            events, seconds = await ingest(
                url, present, args.calls, args.utterances, args.batch, corpus, args.fast
            )
            added = args.calls - present
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("VACUUM ANALYZE")
            print(
                f"ingest ({'fast-load mode' if args.fast else 'archive write path'}): {added}"
                f" calls, {events} events in {seconds:.1f} s = {events / seconds:.0f} events/s,"
                f" {added / seconds:.1f} calls/s"
            )
        with psycopg.connect(url, autocommit=True) as conn:
            counts = conn.execute(
                "SELECT (SELECT count(*) FROM record.calls), (SELECT count(*) FROM"
                " record.utterances), pg_size_pretty(pg_database_size('coach'))"
            ).fetchone()
        assert counts is not None
        calls = int(counts[0])
        print(f"database: {calls} calls, {counts[1]} utterances, {counts[2]}", flush=True)
        if args.load_only:
            return
        rng = random.Random(2)
        words = ranked_words(corpus, 10, 1000)
        word_q = [
            Filters(q=rng.choice(words[rng.choice(["es", "es", "es", "es", "en"])]))
            for _ in range(args.queries)
        ]
        phrase_q = [Filters(q=p) for p in phrases(corpus, words, rng, args.queries)]
        span = calls * 60
        filtered_q = [
            Filters(
                q=f.q,
                dispositions=(rng.choice(DISPOSITIONS),),
                since=datetime.fromtimestamp(T0 / 1000, tz=UTC)
                + timedelta(seconds=rng.uniform(0, span / 2)),
                speaker="customer",
            )
            for f in word_q
        ]
        agent_q = [Filters(q=f.q, agent=f"{200 + rng.randrange(50)}") for f in word_q]
        reader = pg.url_for(roles.READER, roles.DATABASE)
        print(f"load average before: {os.getloadavg()}")
        for name, qs in (
            ("word", word_q),
            ("phrase", phrase_q),
            ("filtered", filtered_q),
            ("agent", agent_q),
            ("list", [Filters()] * args.queries),
        ):
            ms, orders = await timed(reader, qs)
            print(
                f"search {name:8s}: n={len(ms)} p50 {statistics.median(ms):.1f} ms, "
                f"p95 {pct(ms, 95):.1f} ms, max {max(ms):.1f} ms, order {dict(orders)}",
                flush=True,
            )
        print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    asyncio.run(main())
