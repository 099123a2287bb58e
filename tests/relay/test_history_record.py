"""`GET /history/{callId}` carries the transcript of record (second_pass/) beside the live
one, under the same authorisation: pending, then done with its utterances; an agent gets 404
for another agent's call as on every history route."""

from __future__ import annotations

import httpx
import psycopg
import pytest

from coach.record import record_write
from coach.record.record_write import RecordUtterance
from tests.pg import RecordDb
from tests.relay.conftest import RelayServer
from tests.relay.test_history import archived, auth, pg_server, record_db, relay_h

pytestmark = pytest.mark.integration

__all__ = ["archived", "pg_server", "record_db", "relay_h"]  # fixtures used by this module

UTTERANCES = [
    RecordUtterance(
        "customer",
        5.1,
        8.8,
        "Hola, quiero cancelar mi suscripción",
        [{"w": " Hola,", "start": 5.1, "end": 5.5, "p": 0.9}],
        0.9,
    ),
    RecordUtterance("agent", 1.0, 4.2, "Buenos días, le atiende Marta", [], 0.8),
]


async def test_the_record_transcript_is_beside_the_live_one(
    relay_h: RelayServer, archived: RecordDb
) -> None:
    sup = auth(relay_h, "supervisor")
    async with httpx.AsyncClient(base_url=relay_h.http) as client:
        before = (await client.get("/history/c200a", headers=sup)).json()
        assert before["recordTranscript"] is None
        async with await psycopg.AsyncConnection.connect(archived.url(), autocommit=True) as c:
            await record_write.mark_pending(c, "c200a", "/var/spool/rec/c200a.wav", "es")
        pending = (await client.get("/history/c200a", headers=sup)).json()["recordTranscript"]
        assert pending["status"] == "pending" and pending["utterances"] == []
        async with await psycopg.AsyncConnection.connect(archived.url(), autocommit=True) as c:
            await record_write.store(
                c,
                "c200a",
                UTTERANCES,
                model="faster-whisper-small",
                lang="es",
                audio_s=30.0,
                decode_s=6.0,
            )
        call = (await client.get("/history/c200a", headers=sup)).json()
        record = call["recordTranscript"]
        assert (record["status"], record["model"], record["lang"]) == (
            "done",
            "faster-whisper-small",
            "es",
        )
        assert record["finishedAt"]
        # In spoken order, each with speaker, times, words; the live transcript unchanged.
        assert [(u["speaker"], u["start"]) for u in record["utterances"]] == [
            ("agent", 1.0),
            ("customer", 5.1),
        ]
        assert record["utterances"][1]["words"][0]["w"] == " Hola,"
        assert call["transcript"] == before["transcript"]
        # The agent of c201 sees neither c200a nor its record transcript.
        r = await client.get("/history/c200a", headers=auth(relay_h, "agent", "201"))
        assert r.status_code == 404
        mine = await client.get("/history/c200a", headers=auth(relay_h, "agent", "200"))
        assert mine.json()["recordTranscript"]["status"] == "done"
