"""Schema migrations on a real PostgreSQL: versions apply once, in order, and data written at
version 1 survives (and is searchable after) the move to version 2."""

from __future__ import annotations

import threading

import psycopg
import pytest
from psycopg.types.json import Jsonb

from coach.errors import CoachError
from coach.pg_server import EmbeddedPostgres
from coach.record import roles
from coach.record.migrate import current_version, migrate, migrations
from tests.pg import RecordDb, fresh_db

pytestmark = pytest.mark.integration


WORDS = [{"w": "Quiero", "start": 12.5, "end": 12.9, "p": 0.9}]


def test_shipped_versions_run_one_to_n() -> None:
    assert [m.version for m in migrations()][:5] == [1, 2, 3, 4, 5]


def test_data_written_at_version_1_survives_version_2(pg_server: EmbeddedPostgres) -> None:
    db = fresh_db(pg_server, migrated=False)
    assert migrate(db.url(), target=1) == [1]
    with psycopg.connect(db.url()) as conn:
        # What version 1 wrote: a call with its metrics as JSON and an utterance.
        conn.execute(
            "INSERT INTO record.calls (call_id, agent, lang, started_at, metrics) VALUES"
            " ('c1', '200', 'es', now(), %s)",
            [
                Jsonb(
                    {
                        "talkRatio": {"agent": 0.62, "customer": 0.38},
                        "longestSilence": 4.5,
                        "silenceTotal": 9.0,
                        "overtalk": {"count": 2, "seconds": 1.5},
                    }
                )
            ],
        )
        conn.execute(
            "INSERT INTO record.utterances (call_id, utterance_id, seq, speaker, start_s, end_s,"
            " text, lang, words) VALUES ('c1', 'u1', 1, 'customer', 12.5, 15.0,"
            " 'Quiero cancelar mi suscripción', 'es', %s)",
            [Jsonb(WORDS)],
        )
    assert migrate(db.url(), target=2) == [2]
    with psycopg.connect(db.url()) as conn:
        assert current_version(conn) == 2
        row = conn.execute(
            "SELECT agent, agent_talk_ratio, longest_silence, overtalk_count FROM record.calls"
        ).fetchone()
        assert row == ("200", 0.62, 4.5, 2)
        # The v2 search vector was computed for the v1 row: stemmed, accents ignored.
        hit = conn.execute(
            "SELECT start_s FROM record.utterances"
            " WHERE tsv @@ websearch_to_tsquery('record.es', 'suscripcion cancelada')"
        ).fetchone()
        assert hit == (12.5,)
    # Version 3 moves the word timings to their own table; the utterance keeps the rest.
    assert migrate(db.url(), target=3) == [3]
    with psycopg.connect(db.url()) as conn:
        assert conn.execute("SELECT words FROM record.utterance_words").fetchall() == [(WORDS,)]
        assert conn.execute("SELECT text FROM record.utterances").fetchone() == (
            "Quiero cancelar mi suscripción",
        )
    # Version 4 adds the transcript of record beside the live one: the live rows stay, the
    # new tables take a call's second pass and go with the call.
    assert migrate(db.url(), target=4) == [4]
    with psycopg.connect(db.url()) as conn:
        assert conn.execute("SELECT start_s, text FROM record.utterances").fetchall() == [
            (12.5, "Quiero cancelar mi suscripción")
        ]
        assert conn.execute("SELECT words FROM record.utterance_words").fetchall() == [(WORDS,)]
        conn.execute(
            "INSERT INTO record.record_transcripts (call_id, status, model) VALUES"
            " ('c1', 'done', 'faster-whisper-base')"
        )
        conn.execute(
            "INSERT INTO record.record_utterances (call_id, seq, speaker, start_s, end_s, text)"
            " VALUES ('c1', 0, 'customer', 12.4, 15.1, 'quiero cancelar mi suscripción')"
        )
    with psycopg.connect(db.url()) as conn, pytest.raises(psycopg.errors.CheckViolation):
        conn.execute("UPDATE record.record_transcripts SET status = 'odd'")
    # Version 5 makes each call's search document from its utterances (the version-1 row too):
    # its words, stemmed and unaccented, weighted by who said them (B: the customer).
    assert migrate(db.url()) == [5]
    with psycopg.connect(db.url()) as conn:
        found = conn.execute(
            "SELECT call_id FROM record.call_text"
            " WHERE es @@ to_tsquery('record.es', 'cancelada:B <-> mi <-> suscripcion:B')"
        ).fetchall()
        assert found == [("c1",)]
    with psycopg.connect(db.url()) as conn:
        assert conn.execute("SELECT count(*) FROM record.record_utterances").fetchone() == (1,)
        conn.execute("DELETE FROM record.calls WHERE call_id = 'c1'")
        assert conn.execute("SELECT count(*) FROM record.record_utterances").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM record.record_transcripts").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM record.call_text").fetchone() == (0,)
    assert migrate(db.url()) == []  # nothing left to do


def test_concurrent_starts_apply_each_version_once(pg_server: EmbeddedPostgres) -> None:
    db = fresh_db(pg_server, migrated=False)
    results: list[list[int]] = []
    threads = [threading.Thread(target=lambda: results.append(migrate(db.url()))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(len(r) for r in results) == [0, 0, len(migrations())]


def test_a_newer_schema_refuses_old_code(record_db: RecordDb) -> None:
    with psycopg.connect(record_db.url()) as conn:
        conn.execute("INSERT INTO record.schema_version (version, name) VALUES (99, 'future')")
    with pytest.raises(CoachError, match="version 99"):
        migrate(record_db.url())


def test_reader_role_reads_and_cannot_write(record_db: RecordDb) -> None:
    with psycopg.connect(record_db.url()) as conn:
        conn.execute("INSERT INTO record.calls (call_id) VALUES ('c1')")
    with psycopg.connect(record_db.url(roles.READER)) as conn:
        assert conn.execute("SELECT call_id FROM record.calls").fetchall() == [("c1",)]
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DELETE FROM record.calls")
    with psycopg.connect(record_db.url(roles.RETENTION), autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("UPDATE record.calls SET agent = 'x'")
        conn.execute("DELETE FROM record.calls WHERE call_id = 'c1'")
