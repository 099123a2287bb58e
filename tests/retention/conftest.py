"""The retention tests use the session's embedded Redis (tests/conftest.py) and, for the call
record's store, an embedded PostgreSQL with a fresh record database per test."""

from tests.pg import pg_server, record_db

__all__ = ["pg_server", "record_db"]
