"""The retention worker's settings: read once from the environment, checked, frozen."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

from coach.bus import BusConfig
from coach.settings import Env, SettingsError

DAY_MS = 86_400_000


@dataclass(frozen=True)
class Settings:
    """Everything `python -m retention` needs."""

    redis_url: str | None = None
    """REDIS_URL: the bus, as the `retention` Redis user; unset = an embedded server (native)."""
    bus: BusConfig = field(default_factory=BusConfig)
    """BUS_*: key prefix and bounds of the bus (the same for every service)."""
    days_audio: int = 30
    """RETENTION_DAYS_AUDIO: days a call recording is kept (by the file's modification time)."""
    days_text: int = 90
    """RETENTION_DAYS_TEXT: days call text (transcripts, coaching, summary) is kept."""
    recordings_dir: Path | None = None
    """RECORDINGS_DIR: folder of call recordings (searched recursively); unset = none managed."""
    audio_suffixes: tuple[str, ...] = (".raw", ".wav")
    """RETENTION_AUDIO_SUFFIXES: comma-separated file endings that are recordings."""
    interval_s: float = 3600.0
    """RETENTION_INTERVAL_S: seconds between two retention sweeps (the first runs at start)."""
    database_url: str | None = field(default=None, repr=False)
    """DATABASE_URL: the call record's PostgreSQL as the retention role; unset = no record."""
    host: str = "127.0.0.1"
    """RETENTION_HOST: listen address of GET /health and GET /metrics."""
    port: int = 7095
    """RETENTION_PORT: port of GET /health and GET /metrics."""
    consumer: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    """RETENTION_CONSUMER: this worker's name in the erasure group; keep it stable across
    restarts (its unfinished requests are re-read under it)."""
    claim_idle_ms: int = 300_000
    """RETENTION_CLAIM_IDLE_MS: an erasure another worker read and left this long is taken over."""
    log_level: str = "info"
    """LOG_LEVEL: debug, info, warning or error."""

    @property
    def audio_ms(self) -> int:
        """Retention of recordings in milliseconds."""
        return self.days_audio * DAY_MS

    @property
    def text_ms(self) -> int:
        """Retention of call text in milliseconds."""
        return self.days_text * DAY_MS

    @classmethod
    def from_env(cls, env: Env) -> Settings:
        """Build from environment variables; raises SettingsError naming a bad variable."""
        recordings = env.optional("RECORDINGS_DIR")
        recordings_dir = Path(recordings) if recordings else None
        if recordings_dir is not None and not recordings_dir.is_dir():
            raise SettingsError(f"RECORDINGS_DIR={recordings!r} is not a directory")
        suffixes = tuple(
            s.strip().lower()
            for s in env.str("RETENTION_AUDIO_SUFFIXES", ".raw,.wav").split(",")
            if s.strip()
        )
        if not suffixes or not all(s.startswith(".") and len(s) > 1 for s in suffixes):
            raise SettingsError(
                "RETENTION_AUDIO_SUFFIXES must be comma-separated endings such as .raw,.wav"
            )
        defaults = cls()
        return cls(
            redis_url=env.optional("REDIS_URL"),
            bus=BusConfig.from_env(env),
            days_audio=env.int("RETENTION_DAYS_AUDIO", defaults.days_audio, min=1, max=36_500),
            days_text=env.int("RETENTION_DAYS_TEXT", defaults.days_text, min=1, max=36_500),
            recordings_dir=recordings_dir,
            audio_suffixes=suffixes,
            interval_s=env.float("RETENTION_INTERVAL_S", defaults.interval_s, min=10, max=86_400),
            database_url=env.optional("DATABASE_URL"),
            host=env.str("RETENTION_HOST", defaults.host),
            port=env.int("RETENTION_PORT", defaults.port, min=1, max=65535),
            consumer=env.str("RETENTION_CONSUMER", defaults.consumer),
            claim_idle_ms=env.int("RETENTION_CLAIM_IDLE_MS", 300_000, min=1000, max=86_400_000),
            log_level=env.log_level(),
        )
