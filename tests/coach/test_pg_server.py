"""The embedded PostgreSQL: starts on 127.0.0.1, keeps its data across restarts, and takes over
from a server its previous owner left running (the owner was SIGKILLed)."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from coach.pg_server import EmbeddedPostgres

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_restart_keeps_data_and_an_orphan_is_stopped(tmp_path: Path) -> None:
    first = EmbeddedPostgres(data_dir=tmp_path / "pg", fsync=False).start()
    orphan = first.process
    try:
        with psycopg.connect(first.url, autocommit=True) as conn:
            conn.execute("CREATE TABLE kept (n int)")
            conn.execute("INSERT INTO kept VALUES (42)")
            assert conn.execute("SHOW listen_addresses").fetchone() == ("127.0.0.1",)
        # Its owner dies without stopping it; a new owner on the same folder and port starts.
        second = EmbeddedPostgres(port=first.port, data_dir=tmp_path / "pg", fsync=False).start()
        try:
            assert orphan is not None and orphan.wait(30) == 0  # the old server shut down
            with psycopg.connect(second.url) as conn:
                assert conn.execute("SELECT n FROM kept").fetchone() == (42,)
        finally:
            second.stop()
    finally:
        first.process = None  # already stopped by the second owner
        if orphan is not None and orphan.poll() is None:
            orphan.kill()
