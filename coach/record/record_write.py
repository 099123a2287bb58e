"""Writing the transcript of record (second_pass/'s side of schema version 4).

A call's second pass is one status row (`record.record_transcripts`: pending, done, failed)
and its utterances (`record.record_utterances`). `store` replaces the call's utterances and
marks it done in the caller's transaction, so a pass that is repeated (a crash before the bus
entry was acknowledged, a replayed `call.ended`) leaves one transcript, never two. The call's
own row is created if the archive has not written it yet (both read `call.ended` at once);
the archive fills it in later, as it does for any event that arrives first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import psycopg
from psycopg.types.json import Jsonb

Status = Literal["pending", "done", "failed"]


@dataclass(frozen=True)
class RecordUtterance:
    """One utterance of the transcript of record (already redacted)."""

    speaker: str
    start: float
    end: float
    text: str
    words: list[dict[str, Any]] = field(default_factory=list)
    confidence: float | None = None
    redactions: list[dict[str, Any]] = field(default_factory=list)


_ENSURE_CALL = "INSERT INTO record.calls (call_id) VALUES (%s) ON CONFLICT (call_id) DO NOTHING"
_PENDING = """
INSERT INTO record.record_transcripts (call_id, status, recording_path, lang)
VALUES (%s, 'pending', %s, %s)
ON CONFLICT (call_id) DO UPDATE SET status = 'pending', recording_path = excluded.recording_path,
  lang = excluded.lang, error = NULL, finished_at = NULL
WHERE record.record_transcripts.status <> 'done'"""
_DONE = """
UPDATE record.record_transcripts SET status = 'done', model = %s, lang = %s, audio_s = %s,
  decode_s = %s, error = NULL, finished_at = now()
WHERE call_id = %s"""
_FAILED = """
UPDATE record.record_transcripts SET status = 'failed', model = %s, error = %s,
  finished_at = now()
WHERE call_id = %s AND status <> 'done'"""
_UTTERANCE = """
INSERT INTO record.record_utterances
  (call_id, seq, speaker, start_s, end_s, text, words, confidence, redactions)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"""


async def status(conn: psycopg.AsyncConnection[Any], call_id: str) -> Status | None:
    """The call's second-pass status, or None if it was never queued."""
    async with conn.cursor() as cur:
        await cur.execute(
            "SELECT status FROM record.record_transcripts WHERE call_id = %s", [call_id]
        )
        row = await cur.fetchone()
    return row[0] if row else None


async def mark_pending(
    conn: psycopg.AsyncConnection[Any], call_id: str, recording_path: str, lang: str | None
) -> bool:
    """Queue the call (creating its row if needed); False if it is already done."""
    async with conn.transaction(), conn.cursor() as cur:
        await cur.execute(_ENSURE_CALL, [call_id])
        await cur.execute(_PENDING, [call_id, recording_path, lang])
        return cur.rowcount > 0


async def store(
    conn: psycopg.AsyncConnection[Any],
    call_id: str,
    utterances: Sequence[RecordUtterance],
    *,
    model: str,
    lang: str | None,
    audio_s: float,
    decode_s: float,
) -> None:
    """Replace the call's transcript of record with `utterances` and mark it done (one
    transaction; the call must have been queued by `mark_pending`)."""
    async with conn.transaction(), conn.cursor() as cur:
        await cur.execute("DELETE FROM record.record_utterances WHERE call_id = %s", [call_id])
        ordered = sorted(utterances, key=lambda u: (u.start, u.speaker))
        await cur.executemany(
            _UTTERANCE,
            [
                (
                    call_id,
                    n,
                    u.speaker,
                    u.start,
                    u.end,
                    u.text,
                    Jsonb(u.words),
                    u.confidence,
                    Jsonb(u.redactions) if u.redactions else None,
                )
                for n, u in enumerate(ordered)
            ],
        )
        await cur.execute(_DONE, [model, lang, audio_s, decode_s, call_id])
        if cur.rowcount != 1:
            raise psycopg.errors.NoDataFound(f"call {call_id} was not queued for a second pass")


async def mark_failed(
    conn: psycopg.AsyncConnection[Any], call_id: str, model: str, error: str
) -> None:
    """The call's recording cannot be transcribed (missing, unreadable): say why."""
    async with conn.transaction(), conn.cursor() as cur:
        await cur.execute(_FAILED, [model, error[:500], call_id])
