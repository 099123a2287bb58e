"""The call record's store for the retention and erasure job (`coach/retention.py`'s `Store`),
connected as the `coach_retention` role (SELECT and DELETE only).

A call older than the text retention period goes with everything about it (utterances,
coaching, metrics: `ON DELETE CASCADE`); its age is its `started_at` (or, for a call whose
`call.started` was never archived, the time it was archived).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

import psycopg

from coach.retention import DataKind, Erasure, Removal

_PURGE = """
DELETE FROM record.calls WHERE coalesce(started_at, archived_at) < %s
RETURNING call_id, recording_path"""


class RecordStore:
    """`Store` of the call record's PostgreSQL tables (kind `text`)."""

    def __init__(self, conn: psycopg.AsyncConnection[Any]) -> None:
        self._conn = conn

    @classmethod
    async def connect(cls, database_url: str) -> RecordStore:
        """A store on the database at `database_url` (the retention role's URL)."""
        return cls(await psycopg.AsyncConnection.connect(database_url, autocommit=True))

    @property
    def name(self) -> str:
        """Short name, in logs and metrics."""
        return "record"

    @property
    def kind(self) -> DataKind:
        """The text retention period applies (recordings are the recordings store's)."""
        return "text"

    async def purge_before(self, cutoff_ms: int) -> list[Removal]:
        """Delete every call that started before `cutoff_ms`, with its rows."""
        cutoff = datetime.fromtimestamp(cutoff_ms / 1000, tz=UTC)
        async with self._conn.cursor() as cur:
            await cur.execute(_PURGE, [cutoff])
            gone = await cur.fetchall()
        return [Removal(self.name, "call record", call_id=row[0], rows=1) for row in gone]

    async def erase(self, request: Erasure) -> list[Removal]:
        """Delete one call with everything about it."""
        async with self._conn.cursor() as cur:
            await cur.execute("DELETE FROM record.calls WHERE call_id = %s", [request.call_id])
            rows = cur.rowcount
        return [Removal(self.name, "call record", call_id=request.call_id, rows=max(0, rows))]

    async def recordings(self, call_id: str) -> set[str]:
        """Base name of the call's recording, as `call.ended` / `call.recording` gave it."""
        async with self._conn.cursor() as cur:
            await cur.execute(
                "SELECT recording_path FROM record.calls WHERE call_id = %s", [call_id]
            )
            row = await cur.fetchone()
        return {os.path.basename(row[0])} if row and row[0] else set()

    async def close(self) -> None:
        """Close the connection."""
        await self._conn.close()
