"""The compose image's entrypoint (images/postgres/entrypoint.sh), run on the embedded wheel's
PostgreSQL binaries: it makes the cluster, the record's roles with their passwords (scram over
TCP) and the database; the archive migrates it; the reader cannot write; a restart keeps the
data and takes changed passwords."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from coach.pg_server import binaries
from coach.record import roles
from coach.record.migrate import migrate
from coach.redis_server import free_port
from fakes.poll import until_sync

pytestmark = pytest.mark.integration

SCRIPT = Path(__file__).resolve().parents[2] / "images" / "postgres" / "entrypoint.sh"
USER = "nobody" if os.geteuid() == 0 else None


@pytest.fixture
def place(tmp_path: Path) -> Iterator[Path]:
    base = tmp_path / "pg"
    base.mkdir()
    if USER:
        # The server's user must reach its data: open the path down to it (as coach.pg_server).
        for parent in base.parents:
            mode = parent.stat().st_mode
            if mode & 0o005 != 0o005:
                parent.chmod(mode | 0o005)
        entry = pwd.getpwnam(USER)
        os.chown(base, entry.pw_uid, entry.pw_gid)
    yield base


def start(base: Path, port: int, passwords: dict[str, str]) -> subprocess.Popen[bytes]:
    env = {
        "PATH": os.environ["PATH"],
        "PGDATA": str(base / "data"),
        "PG_SOCKETS": str(base),
        "PG_BIN": str(binaries()),
        "PG_PORT": str(port),
        **passwords,
    }
    drop: dict[str, Any] = (
        {"user": USER, "group": pwd.getpwnam(USER).pw_gid, "extra_groups": []} if USER else {}
    )
    # The server's user may not reach the repository (a CI clone in a 0700 folder): run a copy.
    script = base / SCRIPT.name
    shutil.copyfile(SCRIPT, script)
    script.chmod(0o644)
    with (base / "server.log").open("ab") as log:
        return subprocess.Popen(["sh", str(script)], env=env, stdout=log, stderr=log, **drop)


def url(role: str, password: str, port: int) -> str:
    return f"postgresql://{role}:{password}@127.0.0.1:{port}/{roles.DATABASE}"


def accepts(dsn: str) -> bool:
    try:
        with psycopg.connect(dsn, connect_timeout=2):
            return True
    except psycopg.OperationalError:
        return False


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGINT)
    assert proc.wait(30) == 0


def test_entrypoint_provisions_the_record(place: Path) -> None:
    port = free_port()
    pw = {var: f"{var.lower()}-0123456789abcdef" for var in roles.PASSWORD_VARS.values()}
    archive = url(roles.ARCHIVE, pw["PG_ARCHIVE_PASSWORD"], port)
    proc = start(place, port, pw)
    try:
        until_sync(lambda: accepts(archive) or proc.poll() is not None, wait=120, what="the server")
        assert proc.poll() is None, (place / "server.log").read_text()
        assert not accepts(url(roles.ARCHIVE, "wrong-password-123456", port))
        assert migrate(archive)
        with psycopg.connect(archive) as conn:
            conn.execute("INSERT INTO record.calls (call_id) VALUES ('c1')")
        reader = url(roles.READER, pw["PG_RELAY_PASSWORD"], port)
        with psycopg.connect(reader) as conn:
            assert conn.execute("SELECT call_id FROM record.calls").fetchall() == [("c1",)]
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("INSERT INTO record.calls (call_id) VALUES ('c2')")
    finally:
        stop(proc)
    # A restart with a rotated password: the data stays, the new password is the one.
    pw["PG_RELAY_PASSWORD"] = "rotated-0123456789abcdef"
    proc = start(place, port, pw)
    try:
        reader = url(roles.READER, pw["PG_RELAY_PASSWORD"], port)
        until_sync(lambda: accepts(reader), wait=120, what="the restarted server")
        with psycopg.connect(reader) as conn:
            assert conn.execute("SELECT count(*) FROM record.calls").fetchone() == (1,)
    finally:
        stop(proc)


def test_short_passwords_stop_the_start(place: Path) -> None:
    pw = {var: "x" * 20 for var in roles.PASSWORD_VARS.values()}
    pw["PG_RELAY_PASSWORD"] = "short"
    proc = start(place, free_port(), pw)
    assert proc.wait(30) == 2
    assert "PG_RELAY_PASSWORD" in (place / "server.log").read_text()
