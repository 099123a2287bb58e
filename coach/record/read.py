"""Reading one call of the record (the relay's side): the call, its transcript, coaching,
summary and metrics timeline, as the JSON `GET /history/{callId}` returns."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


async def call_agent(conn: psycopg.AsyncConnection[Any], call_id: str) -> tuple[bool, str | None]:
    """(whether the call is in the record, its agent): what authorisation looks at."""
    async with conn.cursor() as cur:
        await cur.execute("SELECT agent FROM record.calls WHERE call_id = %s", [call_id])
        row = await cur.fetchone()
    return (row is not None, row[0] if row else None)


async def load_call(conn: psycopg.AsyncConnection[Any], call_id: str) -> dict[str, Any] | None:
    """Everything the record holds about one call, or None."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute("SELECT * FROM record.calls WHERE call_id = %s", [call_id])
        c = await cur.fetchone()
        if c is None:
            return None
        await cur.execute(
            "SELECT u.utterance_id, u.speaker, u.start_s, u.end_s, u.text, u.lang, u.confidence,"
            " w.words, u.redactions FROM record.utterances u LEFT JOIN record.utterance_words w"
            " ON w.call_id = u.call_id AND w.utterance_id = u.utterance_id"
            " WHERE u.call_id = %s ORDER BY u.start_s, u.utterance_id",
            [call_id],
        )
        utterances = await cur.fetchall()
        await cur.execute(
            "SELECT body FROM record.coaching WHERE call_id = %s ORDER BY seq", [call_id]
        )
        coaching = [r["body"] for r in await cur.fetchall()]
        await cur.execute(
            "SELECT body FROM record.metrics WHERE call_id = %s ORDER BY seq", [call_id]
        )
        metrics = [r["body"] for r in await cur.fetchall()]
        record = await _record_transcript(cur, call_id)
    summary = (
        {
            "text": c["summary_text"],
            "disposition": c["disposition"],
            "sentiment": c["sentiment"],
            "actionItems": c["action_items"] or [],
        }
        if c["summary_seq"] is not None
        else None
    )
    return {
        "callId": c["call_id"],
        "agent": c["agent"],
        "dialledAgent": c["dialled_agent"],
        "caller": {"number": c["caller_number"], "name": c["caller_name"]},
        "lang": c["lang"],
        "coached": c["coached"],
        "startedAt": _iso(c["started_at"]),
        "answeredAt": _iso(c["answered_at"]),
        "endedAt": _iso(c["ended_at"]),
        "duration": c["duration_s"],
        "reason": c["reason"],
        "hasRecording": c["recording_path"] is not None,
        "summary": summary,
        "metrics": c["metrics"],
        "metricsTimeline": metrics,
        "coaching": coaching,
        "transcript": [
            {
                "utteranceId": u["utterance_id"],
                "speaker": u["speaker"],
                "start": u["start_s"],
                "end": u["end_s"],
                "text": u["text"],
                "lang": u["lang"],
                "confidence": u["confidence"],
                "words": u["words"] or [],
                "redactions": u["redactions"] or [],
            }
            for u in utterances
        ],
        "recordTranscript": record,
    }


async def _record_transcript(
    cur: psycopg.AsyncCursor[dict[str, Any]], call_id: str
) -> dict[str, Any] | None:
    """The second pass's transcript of the recording (second_pass/), or None if never queued:
    {status: pending|done|failed, model, lang, finishedAt, utterances (when done)}."""
    await cur.execute(
        "SELECT status, model, lang, finished_at FROM record.record_transcripts WHERE call_id = %s",
        [call_id],
    )
    head = await cur.fetchone()
    if head is None:
        return None
    await cur.execute(
        "SELECT seq, speaker, start_s, end_s, text, words, confidence, redactions"
        " FROM record.record_utterances WHERE call_id = %s ORDER BY seq",
        [call_id],
    )
    rows = await cur.fetchall()
    return {
        "status": head["status"],
        "model": head["model"],
        "lang": head["lang"],
        "finishedAt": _iso(head["finished_at"]),
        "utterances": [
            {
                "utteranceId": f"record-{r['seq']}",
                "speaker": r["speaker"],
                "start": r["start_s"],
                "end": r["end_s"],
                "text": r["text"],
                "confidence": r["confidence"],
                "words": r["words"] or [],
                "redactions": r["redactions"] or [],
            }
            for r in rows
        ],
    }


async def recording_path(conn: psycopg.AsyncConnection[Any], call_id: str) -> str | None:
    """Where the call's recording is (as ari reported it), if any."""
    async with conn.cursor() as cur:
        await cur.execute("SELECT recording_path FROM record.calls WHERE call_id = %s", [call_id])
        row = await cur.fetchone()
    return row[0] if row else None
