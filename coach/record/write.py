"""Writing bus events into the call record (the archive's side of the schema).

Idempotence: every row is keyed by what it is (a call, an utterance id, a coaching or
metrics event's bus id), and every column group of `record.calls` remembers the bus id it
came from and is only overwritten by a newer one. Replaying any event, in any order, any
number of times, leaves the record as one in-order pass would.

Events of types the record does not keep (partials) are skipped; `apply()` says how many it
kept.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from coach.events import parse_id

KEPT_TYPES = frozenset(
    {
        "call.started",
        "call.answered",
        "call.recording",
        "call.ended",
        "final",
        "coach",
        "summary",
        "metrics",
    }
)
"""Event types the record stores; the others (partials) are replaced by finals."""


def seq(event_id: str) -> int:
    """A bus id ("<ms>-<n>") as one sortable integer."""
    ms, n = parse_id(event_id)
    return ms * 1_000_000 + n


def _ts(ms: Any) -> datetime | None:
    return datetime.fromtimestamp(ms / 1000, tz=UTC) if isinstance(ms, int | float) else None


@dataclass
class _Batch:
    calls: set[str] = field(default_factory=set)
    started: list[dict[str, Any]] = field(default_factory=list)
    answered: list[dict[str, Any]] = field(default_factory=list)
    recording: list[dict[str, Any]] = field(default_factory=list)
    ended: list[dict[str, Any]] = field(default_factory=list)
    finals: list[dict[str, Any]] = field(default_factory=list)
    coaching: list[dict[str, Any]] = field(default_factory=list)
    metrics: list[dict[str, Any]] = field(default_factory=list)
    summaries: list[dict[str, Any]] = field(default_factory=list)


def _sort(events: Iterable[dict[str, Any]]) -> tuple[_Batch, int]:
    batch = _Batch()
    kept = 0
    for ev in events:
        kind = ev.get("type")
        if kind not in KEPT_TYPES:
            continue
        kept += 1
        call_id = ev["callId"]
        batch.calls.add(call_id)
        row: dict[str, Any] = {"call_id": call_id, "seq": seq(ev["id"])}
        if kind == "call.started":
            caller = ev.get("caller") or {}
            row |= {
                "agent": ev.get("agent"),
                "number": caller.get("number"),
                "name": caller.get("name"),
                "lang": ev.get("lang"),
                "coached": ev.get("coached"),
                "at": _ts(ev.get("startedAt")),
            }
            batch.started.append(row)
        elif kind == "call.answered":
            row |= {"agent": ev.get("agent"), "at": _ts(ev.get("answeredAt"))}
            batch.answered.append(row)
        elif kind == "call.recording":
            if ev.get("path"):
                row |= {"path": ev["path"]}
                batch.recording.append(row)
        elif kind == "call.ended":
            row |= {
                "at": _ts(ev.get("endedAt")),
                "reason": ev.get("reason"),
                "path": ev.get("recording"),
            }
            batch.ended.append(row)
        elif kind == "final":
            row |= {
                "utt": ev["utteranceId"],
                "speaker": ev["speaker"],
                "start": float(ev["start"]),
                "end": float(ev["end"]),
                "text": ev["text"],
                "lang": ev.get("lang"),
                "confidence": ev.get("confidence"),
                "words": Jsonb(ev["words"]) if ev.get("words") is not None else None,
                "redactions": Jsonb(ev["redactions"]) if ev.get("redactions") else None,
            }
            batch.finals.append(row)
        elif kind == "coach":
            row |= {
                "ts": _ts(ev.get("ts")),
                "kind": ev["kind"],
                "severity": ev["severity"],
                "source": ev.get("source"),
                "rule": ev.get("ruleId"),
                "text": ev["text"],
                "body": Jsonb(ev),
            }
            batch.coaching.append(row)
        elif kind == "metrics":
            talk = ev.get("talkRatio") or {}
            over = ev.get("overtalk") or {}
            row |= {
                "call_time": ev.get("callTime"),
                "body": Jsonb(ev),
                "ratio": talk.get("agent"),
                "longest": ev.get("longestSilence"),
                "silence": ev.get("silenceTotal"),
                "over_s": over.get("seconds"),
                "over_n": over.get("count"),
            }
            batch.metrics.append(row)
        elif kind == "summary":
            row |= {
                "text": ev.get("text"),
                "disposition": ev.get("disposition"),
                "sentiment": ev.get("sentiment"),
                "items": Jsonb(ev.get("actionItems") or []),
            }
            batch.summaries.append(row)
    return batch, kept


_ENSURE = "INSERT INTO record.calls (call_id) VALUES (%s) ON CONFLICT (call_id) DO NOTHING"
_STARTED = """
UPDATE record.calls SET dialled_agent = %(agent)s,
  agent = CASE WHEN answered_seq IS NULL THEN %(agent)s ELSE agent END,
  caller_number = %(number)s, caller_name = %(name)s, lang = %(lang)s, coached = %(coached)s,
  started_at = %(at)s, started_seq = %(seq)s
WHERE call_id = %(call_id)s AND (started_seq IS NULL OR started_seq < %(seq)s)"""
_ANSWERED = """
UPDATE record.calls SET agent = %(agent)s, answered_at = %(at)s, answered_seq = %(seq)s
WHERE call_id = %(call_id)s AND (answered_seq IS NULL OR answered_seq < %(seq)s)"""
_RECORDING = """
UPDATE record.calls SET recording_path = %(path)s, recording_seq = %(seq)s
WHERE call_id = %(call_id)s AND (recording_seq IS NULL OR recording_seq < %(seq)s)"""
_ENDED = """
UPDATE record.calls SET ended_at = %(at)s, reason = %(reason)s, ended_seq = %(seq)s,
  recording_path = coalesce(%(path)s, recording_path)
WHERE call_id = %(call_id)s AND (ended_seq IS NULL OR ended_seq < %(seq)s)"""
_FINAL = """
WITH u AS (
  INSERT INTO record.utterances
    (call_id, utterance_id, seq, speaker, start_s, end_s, text, lang, confidence, redactions)
  VALUES (%(call_id)s, %(utt)s, %(seq)s, %(speaker)s, %(start)s, %(end)s, %(text)s, %(lang)s,
    %(confidence)s, %(redactions)s)
  ON CONFLICT (call_id, utterance_id) DO UPDATE SET seq = excluded.seq,
    speaker = excluded.speaker, start_s = excluded.start_s, end_s = excluded.end_s,
    text = excluded.text, lang = excluded.lang, confidence = excluded.confidence,
    redactions = excluded.redactions
  WHERE record.utterances.seq < excluded.seq
  RETURNING call_id, utterance_id
), gone AS (
  DELETE FROM record.utterance_words w USING u
  WHERE w.call_id = u.call_id AND w.utterance_id = u.utterance_id AND %(words)s::jsonb IS NULL
)
INSERT INTO record.utterance_words (call_id, utterance_id, words)
SELECT call_id, utterance_id, %(words)s FROM u WHERE %(words)s::jsonb IS NOT NULL
ON CONFLICT (call_id, utterance_id) DO UPDATE SET words = excluded.words"""
"""One statement per final: the utterance, and its words only when this event is the
utterance's current version (RETURNING is empty when an older or the same final is replayed),
so a replay neither rewrites nor removes the newer version's words."""
CALL_TEXT = """
INSERT INTO record.call_text (call_id, es, en)
SELECT call_id,
  coalesce(record.tsv_agg(setweight(tsv, record.speaker_weight(speaker)) || record.gap()
    ORDER BY start_s, utterance_id) FILTER (WHERE lang IS NULL OR lang NOT LIKE 'en%%'), ''),
  coalesce(record.tsv_agg(setweight(tsv, record.speaker_weight(speaker)) || record.gap()
    ORDER BY start_s, utterance_id) FILTER (WHERE lang LIKE 'en%%'), '')
FROM record.utterances WHERE call_id = ANY(%s) GROUP BY call_id
ON CONFLICT (call_id) DO UPDATE SET es = excluded.es, en = excluded.en
WHERE (record.call_text.es, record.call_text.en) IS DISTINCT FROM (excluded.es, excluded.en)"""
"""The search document of each given call, made again from its utterances (migrations/0005):
rebuilt rather than appended to, so a final that replaces an utterance's earlier version
replaces its words too; unchanged (a replay) it is not written."""
_COACH = """
INSERT INTO record.coaching (call_id, seq, ts, kind, severity, source, rule_id, text, body)
VALUES (%(call_id)s, %(seq)s, %(ts)s, %(kind)s, %(severity)s, %(source)s, %(rule)s, %(text)s,
  %(body)s)
ON CONFLICT (call_id, seq) DO NOTHING"""
_METRICS = """
INSERT INTO record.metrics (call_id, seq, call_time, body)
VALUES (%(call_id)s, %(seq)s, %(call_time)s, %(body)s)
ON CONFLICT (call_id, seq) DO NOTHING"""
_METRICS_LATEST = """
UPDATE record.calls SET metrics = %(body)s, metrics_seq = %(seq)s, agent_talk_ratio = %(ratio)s,
  longest_silence = %(longest)s, silence_total = %(silence)s, overtalk_s = %(over_s)s,
  overtalk_count = %(over_n)s
WHERE call_id = %(call_id)s AND (metrics_seq IS NULL OR metrics_seq < %(seq)s)"""
_SUMMARY = """
UPDATE record.calls SET summary_text = %(text)s, disposition = %(disposition)s,
  sentiment = %(sentiment)s, action_items = %(items)s, summary_seq = %(seq)s
WHERE call_id = %(call_id)s AND (summary_seq IS NULL OR summary_seq < %(seq)s)"""
_DURATION = """
UPDATE record.calls SET duration_s = extract(epoch FROM ended_at - started_at)
WHERE call_id = ANY(%s) AND ended_at IS NOT NULL AND started_at IS NOT NULL"""


async def apply(conn: psycopg.AsyncConnection[Any], events: Sequence[dict[str, Any]]) -> int:
    """Write `events` (bus events with their `id`) in the caller's transaction; return how
    many were of a kept type. Safe to repeat (module docstring)."""
    batch, kept = _sort(events)
    if not kept:
        return 0
    async with conn.cursor() as cur:
        # Sorted: two writers creating the same calls take the row locks in one order.
        await cur.executemany(_ENSURE, [(c,) for c in sorted(batch.calls)])
        for query, rows in (
            (_STARTED, batch.started),
            (_ANSWERED, batch.answered),
            (_RECORDING, batch.recording),
            (_ENDED, batch.ended),
            (_FINAL, batch.finals),
            (_COACH, batch.coaching),
            (_METRICS, batch.metrics),
            (_METRICS_LATEST, batch.metrics),
            (_SUMMARY, batch.summaries),
        ):
            if rows:
                await cur.executemany(query, rows)
        if batch.ended or batch.started:
            await cur.execute(_DURATION, [sorted(batch.calls)])
        if batch.finals:
            await cur.execute(CALL_TEXT, [sorted({r["call_id"] for r in batch.finals})])
    return kept


def event_of(body: str, event_id: str) -> dict[str, Any]:
    """A stored bus event (its JSON text and id) as the dict `apply` takes."""
    event: dict[str, Any] = json.loads(body)
    event["id"] = event_id
    return event
