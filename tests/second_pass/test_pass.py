"""The second pass on a real Redis, a real PostgreSQL and the real base model: a call.ended
with a stereo recording becomes a masked transcript of record beside the live one; replaying
the call.ended changes nothing; the entry is acknowledged only once the transcript is stored."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import psycopg
import pytest

from bench.stt.wer import wer
from coach.bus import Bus
from coach.pg_server import EmbeddedPostgres
from coach.record.migrate import migrate
from coach.record.write import apply
from coach.tasks import TaskSet
from fakes.poll import until
from second_pass.transcribe import DecodeConfig, Transcriber
from second_pass.worker import PassConfig, SecondPass
from stt.models import ModelInfo
from tests.pg import RecordDb, fresh_db
from tests.stt.test_redaction_stack import CARD, CVV, spoken_digits

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def transcriber(base_model: ModelInfo) -> Transcriber:
    return Transcriber(DecodeConfig(str(base_model.path), cpu_threads=2))


def record_rows(db: RecordDb, call_id: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(db.url()) as conn:
        return [
            tuple(r)
            for r in conn.execute(
                "SELECT seq, speaker, start_s, end_s, text, words, redactions"
                " FROM record.record_utterances WHERE call_id = %s ORDER BY seq",
                [call_id],
            )
        ]


def status_row(db: RecordDb, call_id: str) -> tuple[Any, ...] | None:
    with psycopg.connect(db.url()) as conn:
        row = conn.execute(
            "SELECT status, model, lang, finished_at FROM record.record_transcripts"
            " WHERE call_id = %s",
            [call_id],
        ).fetchone()
        return tuple(row) if row else None


async def drain(second: SecondPass) -> None:
    """Read until the group is empty, then do every queued call."""
    while await second.read_once():
        pass
    while len(second.queue):
        job = await second.queue.take()
        await second.process(job)
        second.queue.done(job)


async def test_call_ended_becomes_a_masked_transcript_of_record(
    bus: Bus, record_db: RecordDb, transcriber: Transcriber, call_wav: tuple[Path, str]
) -> None:
    path, agent_ref = call_wav
    live = [
        {
            "type": "call.started",
            "callId": "r1",
            "agent": "200",
            "lang": "es",
            "caller": {"number": "600", "name": "C"},
            "startedAt": 1_764_000_000_000,
        },
        {
            "type": "final",
            "callId": "r1",
            "speaker": "agent",
            "utteranceId": "a1",
            "text": "live line",
            "start": 0.3,
            "end": 2.0,
            "confidence": 0.9,
            "lang": "es",
            "words": [],
        },
    ]
    ended = {
        "type": "call.ended",
        "callId": "r1",
        "endedAt": 1_764_000_030_000,
        "reason": "caller-hangup",
        "recording": str(path),
    }
    stored = await bus.publish_many([*live, ended])
    # The archive's rows of the same call (the live transcript), written as the archive does.
    async with await psycopg.AsyncConnection.connect(record_db.url()) as aconn:
        await apply(aconn, stored)
        await aconn.commit()
    second = SecondPass(bus, record_db.url(), transcriber, PassConfig(block_ms=50))
    await second.start()
    try:
        await drain(second)
        status = status_row(record_db, "r1")
        assert status is not None and status[:3] == ("done", "faster-whisper-base", "es")
        rows = record_rows(record_db, "r1")
        speakers = {r[1] for r in rows}
        assert speakers == {"customer", "agent"}
        agent_text = " ".join(r[4] for r in rows if r[1] == "agent")
        assert wer(agent_ref, agent_text) < 0.5, agent_text
        customer = [r for r in rows if r[1] == "customer"]
        text = " ".join(r[4] for r in customer)
        # Masked before storing: the card is "[card]", no run of its digits survives, in the
        # text or the words.
        assert "[card]" in text, text
        digits = "".join(spoken_digits(text))
        words = " ".join(w["w"] for r in customer for w in r[5])
        assert not any(CARD[i : i + 4] in digits for i in range(len(CARD) - 3)), text
        assert not re.search(r"\d{4}", words), words
        assert all(red["kind"] in ("card", "cvv") for r in customer for red in r[6] or [])
        assert CVV not in digits or "[cvv]" in text
        # Beside the live transcript, not over it.
        with psycopg.connect(record_db.url()) as conn:
            live_rows = conn.execute(
                "SELECT text FROM record.utterances WHERE call_id = 'r1'"
            ).fetchall()
        assert live_rows == [("live line",)]
        # Acknowledged: nothing left pending for the group.
        assert await bus.read_group("second_pass", "second_pass", pending=True, block_ms=None) == []
        first = (record_rows(record_db, "r1"), status_row(record_db, "r1"))
        # A replayed call.ended (another bus id) changes nothing.
        await bus.publish(ended)
        await drain(second)
        assert (record_rows(record_db, "r1"), status_row(record_db, "r1")) == first
        assert second.done == 1
    finally:
        await second.close()


async def test_a_missing_recording_is_a_stored_failure_and_acknowledged(
    bus: Bus, record_db: RecordDb, transcriber: Transcriber, tmp_path: Path
) -> None:
    await bus.publish(
        {
            "type": "call.ended",
            "callId": "r2",
            "endedAt": 1,
            "reason": "caller-hangup",
            "recording": str(tmp_path / "gone.raw"),
        }
    )
    second = SecondPass(bus, record_db.url(), transcriber, PassConfig(block_ms=50))
    await second.start()
    try:
        await drain(second)
    finally:
        await second.close()
    status = status_row(record_db, "r2")
    assert status is not None and status[0] == "failed"
    assert record_rows(record_db, "r2") == []
    assert await bus.read_group("second_pass", "second_pass", pending=True, block_ms=None) == []


class BrokenDecoder(Transcriber):
    """Injects a decoder fault (the real model loaded, its decoding replaced)."""

    def transcribe(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("decoder broke")


async def test_a_decoder_failure_is_stored_and_the_queue_goes_on(
    bus: Bus, record_db: RecordDb, base_model: ModelInfo, call_wav: tuple[Path, str]
) -> None:
    broken = BrokenDecoder(DecodeConfig(str(base_model.path)))
    await bus.publish(
        {
            "type": "call.ended",
            "callId": "r3",
            "endedAt": 1,
            "reason": "caller-hangup",
            "recording": str(call_wav[0]),
        }
    )
    second = SecondPass(bus, record_db.url(), broken, PassConfig(block_ms=50))
    await second.start()
    try:
        await drain(second)
    finally:
        await second.close()
    status = status_row(record_db, "r3")
    assert status is not None and status[0] == "failed"
    with psycopg.connect(record_db.url()) as conn:
        error = conn.execute(
            "SELECT error FROM record.record_transcripts WHERE call_id = 'r3'"
        ).fetchone()
    assert error == ("decoding failed: decoder broke",)
    assert await bus.read_group("second_pass", "second_pass", pending=True, block_ms=None) == []


async def test_calls_beyond_a_full_queue_wait_in_the_bus_and_each_is_done_once(
    bus: Bus, record_db: RecordDb, base_model: ModelInfo, call_wav: tuple[Path, str]
) -> None:
    """Queue of one, three calls ended at once: the reader takes no more than the free slot, the
    others wait unread in the group, and every call is done and acknowledged once."""
    broken = BrokenDecoder(DecodeConfig(str(base_model.path)))
    calls = ["q1", "q2", "q3"]
    for call_id in calls:
        await bus.publish(
            {
                "type": "call.ended",
                "callId": call_id,
                "endedAt": 1,
                "reason": "caller-hangup",
                "recording": str(call_wav[0]),
            }
        )
    second = SecondPass(bus, record_db.url(), broken, PassConfig(queue_max=1, block_ms=50))
    done: list[str] = []
    process = second.process

    async def counted(job: Any) -> bool:
        stored = await process(job)  # acknowledged by now
        done.append(job.call_id)
        return stored

    second.process = counted  # type: ignore[method-assign]
    await second.start()
    try:
        async with TaskSet("test") as tasks:
            tasks.spawn(second.read_loop(), "reader")
            tasks.spawn(second.work_loop(), "worker")
            await until(lambda: len(done) >= len(calls), what="three calls done")
    finally:
        await second.close()
    assert sorted(done) == calls
    assert await bus.read_group("second_pass", "second_pass", pending=True, block_ms=None) == []
    assert [status_row(record_db, c)[0] for c in calls] == ["failed"] * 3  # type: ignore[index]


async def test_it_waits_for_the_archive_to_migrate_the_record(
    bus: Bus, pg_server: EmbeddedPostgres, transcriber: Transcriber
) -> None:
    db = fresh_db(pg_server, migrated=False)
    second = SecondPass(bus, db.url(), transcriber, PassConfig(block_ms=50))
    stop = asyncio.Event()
    tasks = TaskSet("test")
    waiting = tasks.spawn(second.wait_for_schema(stop), "wait-schema")
    try:
        done, _ = await asyncio.wait({waiting}, timeout=0.5)
        assert not done  # no v4 tables yet
        migrate(db.url())
        assert await asyncio.wait_for(waiting, 30) is True
    finally:
        stop.set()
        await tasks.close()
        await second.close()
