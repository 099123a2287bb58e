"""Schema migrations, run at start by the archive (the schema's owner).

Versions are the SQL files in `migrations/` (`NNNN_name.sql`), applied in order, each once,
forward only; `record.schema_version` lists those applied. One run is one transaction under
an advisory lock: two archive replicas starting together apply each version once, and a
version that fails leaves the database as it was. A database at a version newer than this
code refuses to start (an old image must not write into a schema it does not know).

Why not a library: Alembic needs SQLAlchemy models we do not have, yoyo-migrations adds a
dependency for what is 60 lines here; plain SQL files keep the schema readable in one place.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from coach.errors import CoachError
from coach.record.roles import grant

MIGRATIONS = Path(__file__).parent / "migrations"
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_LOCK = 0x636F6163  # "coac": the advisory lock id of migration runs


@dataclass(frozen=True)
class Migration:
    """One schema version."""

    version: int
    name: str
    sql: str


def migrations(folder: Path = MIGRATIONS) -> list[Migration]:
    """Every migration shipped, in version order (a gap or a duplicate is a packaging bug)."""
    found: list[Migration] = []
    for path in sorted(folder.glob("*.sql")):
        match = _NAME.match(path.name)
        if not match:
            raise CoachError(f"migration file {path.name}: expected NNNN_name.sql")
        found.append(Migration(int(match[1]), match[2], path.read_text(encoding="utf-8")))
    for index, m in enumerate(found, start=1):
        if m.version != index:
            raise CoachError(f"migration versions must run 1..N without gaps: {m.version}")
    return found


def current_version(conn: psycopg.Connection[Any]) -> int:
    """The schema's version (0 when the record was never created)."""
    table = conn.execute("SELECT to_regclass('record.schema_version')").fetchone()
    if table is None or table[0] is None:
        return 0
    row = conn.execute("SELECT coalesce(max(version), 0) FROM record.schema_version").fetchone()
    return int(row[0]) if row else 0


def migrate(url: str, target: int | None = None) -> list[int]:
    """Bring the schema at `url` to `target` (default: the newest); return the versions applied."""
    known = migrations()
    newest = known[-1].version if known else 0
    target = newest if target is None else target
    applied: list[int] = []
    with psycopg.connect(url) as conn, conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK])
        conn.execute("CREATE SCHEMA IF NOT EXISTS record")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS record.schema_version ("
            " version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        current = current_version(conn)
        if current > newest:
            raise CoachError(
                f"the call record's schema is at version {current}, newer than this code "
                f"knows ({newest}): run the newer release"
            )
        for m in known:
            if current < m.version <= target:
                conn.execute(m.sql.encode())
                conn.execute(
                    "INSERT INTO record.schema_version (version, name) VALUES (%s, %s)",
                    [m.version, m.name],
                )
                applied.append(m.version)
        grant(conn)
    return applied
