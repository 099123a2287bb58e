"""The archive's settings: read once from the environment, checked, frozen (ENV.md)."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path

from coach.bus import BusConfig
from coach.settings import Env, SettingsError

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Settings:
    """Everything `python -m archive` needs."""

    redis_url: str | None = None
    """REDIS_URL: the bus; unset = an embedded server is started (native/dev mode)."""
    database_url: str | None = field(default=None, repr=False)
    """DATABASE_URL: the call record, as its owner role; unset = an embedded PostgreSQL."""
    bus: BusConfig = field(default_factory=BusConfig)
    """BUS_*: key prefix and bounds of the bus (the same for every service)."""
    host: str = "127.0.0.1"
    """ARCHIVE_HOST: listen address of GET /health and GET /metrics."""
    port: int = 7090
    """ARCHIVE_PORT: port of GET /health and GET /metrics (nothing else is served)."""
    group: str = "archive"
    """ARCHIVE_GROUP: consumer group on the global stream, shared by the archive's replicas."""
    consumer: str = field(default_factory=socket.gethostname)
    """ARCHIVE_CONSUMER: this replica's name; stable across restarts, so a restarted archive
    re-reads what it had read but not yet written."""
    batch: int = 500
    """ARCHIVE_BATCH: most events read and written in one transaction."""
    block_ms: int = 1000
    """ARCHIVE_BLOCK_MS: how long one read waits for new events."""
    claim_idle_ms: int = 30_000
    """ARCHIVE_CLAIM_IDLE_MS: events another replica read and left unacknowledged this long
    are taken over (that replica died)."""
    pg_data_dir: Path = ROOT / "var" / "postgres"
    """PG_DATA_DIR: where the embedded PostgreSQL keeps its data (DATABASE_URL unset)."""
    pg_port: int = 5432
    """PG_PORT: port of the embedded PostgreSQL (DATABASE_URL unset)."""
    log_level: str = "info"
    """LOG_LEVEL: debug, info, warning or error."""

    def __post_init__(self) -> None:
        if self.database_url is not None and not self.database_url.startswith(
            ("postgresql://", "postgres://")
        ):
            raise SettingsError("DATABASE_URL must start with postgresql://")

    @classmethod
    def from_env(cls, env: Env) -> Settings:
        """Build from environment variables; raises SettingsError naming a bad variable."""
        d = cls()
        return cls(
            redis_url=env.optional("REDIS_URL"),
            database_url=env.optional("DATABASE_URL"),
            bus=BusConfig.from_env(env),
            host=env.str("ARCHIVE_HOST", d.host),
            port=env.int("ARCHIVE_PORT", d.port, min=1, max=65535),
            group=env.str("ARCHIVE_GROUP", d.group),
            consumer=env.str("ARCHIVE_CONSUMER", d.consumer),
            batch=env.int("ARCHIVE_BATCH", d.batch, min=1, max=10_000),
            block_ms=env.int("ARCHIVE_BLOCK_MS", d.block_ms, min=10, max=60_000),
            claim_idle_ms=env.int("ARCHIVE_CLAIM_IDLE_MS", d.claim_idle_ms, min=1000),
            pg_data_dir=Path(env.str("PG_DATA_DIR", str(d.pg_data_dir))),
            pg_port=env.int("PG_PORT", d.pg_port, min=1, max=65535),
            log_level=env.log_level(),
        )
