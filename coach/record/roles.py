"""The database roles of the call record, and how a fresh server is provisioned.

- `coach_archive` owns the database and its schema: it runs the migrations and writes.
- `coach_reader` (the relay) may only read: SELECT on the record's tables.
- `coach_retention` (the retention/erasure job) may read and delete, nothing else.
Grants are re-applied after every migration run, so a table a new version adds is covered.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import psycopg
from psycopg import sql

DATABASE = "coach"
"""Name of the call record's database."""
ARCHIVE = "coach_archive"
READER = "coach_reader"
RETENTION = "coach_retention"
ROLES = (ARCHIVE, READER, RETENTION)
SCHEMA = "record"

PASSWORD_VARS: Mapping[str, str] = {
    ARCHIVE: "PG_ARCHIVE_PASSWORD",
    READER: "PG_RELAY_PASSWORD",
    RETENTION: "PG_RETENTION_PASSWORD",
}
"""The variable that holds each role's password in the compose stack."""


def provision(
    admin_url: str, passwords: Mapping[str, str | None] | None = None, database: str = DATABASE
) -> None:
    """Create the roles (LOGIN, with a password where given) and the database owned by the
    archive role; idempotent. `admin_url` is a superuser's."""
    passwords = passwords or {}
    with psycopg.connect(admin_url, autocommit=True) as conn:
        for role in ROLES:
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role]).fetchone()
            verb = "ALTER" if exists else "CREATE"
            password = passwords.get(role)
            if password:
                conn.execute(
                    sql.SQL("{} ROLE {} LOGIN PASSWORD {}").format(
                        sql.SQL(verb), sql.Identifier(role), sql.Literal(password)
                    )
                )
            else:
                conn.execute(
                    sql.SQL("{} ROLE {} LOGIN").format(sql.SQL(verb), sql.Identifier(role))
                )
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database]).fetchone():
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {} ENCODING 'UTF8' TEMPLATE template0").format(
                    sql.Identifier(database), sql.Identifier(ARCHIVE)
                )
            )
        conn.execute(
            sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(sql.Identifier(database))
        )
        for role in ROLES:
            conn.execute(
                sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
                    sql.Identifier(database), sql.Identifier(role)
                )
            )


def grant(conn: psycopg.Connection[Any]) -> None:
    """Give the reader and retention roles (those that exist) their rights on the schema."""
    present = {
        row[0]
        for row in conn.execute(
            "SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)", [[READER, RETENTION]]
        )
    }
    schema = sql.Identifier(SCHEMA)
    for role in sorted(present):
        ident = sql.Identifier(role)
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(schema, ident))
        rights = "SELECT" if role == READER else "SELECT, DELETE"
        conn.execute(
            sql.SQL("GRANT {} ON ALL TABLES IN SCHEMA {} TO {}").format(
                sql.SQL(rights), schema, ident
            )
        )
