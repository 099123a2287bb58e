"""Relay settings, read once from the environment (see .env.example)."""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

from coach.bus import BusConfig
from coach.knowledge.settings import KBSettings
from coach.settings import Env, SettingsError

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class RelaySettings:
    """Everything the relay needs; built by `from_env`, checked in `__post_init__`."""

    relay_token: str = field(repr=False)
    """Bearer token that service producers (POST /event) and tools must present."""
    auth_secret: str = field(repr=False)
    """Key that signs browser tokens (`python -m relay token`)."""
    redis_url: str | None = None
    """Redis for the bus; None starts an embedded server (native mode)."""
    host: str = "0.0.0.0"
    """Address to listen on."""
    port: int = 7070
    """Port to listen on (RELAY_PORT)."""
    bus: BusConfig = field(default_factory=BusConfig)
    """Stream bounds and key prefix shared with the other services."""
    client_buffer: int = 2000
    """Events queued per WebSocket client before the overflow policy applies."""
    max_body_bytes: int = 1024 * 1024
    """Largest POST /event body (one event or a batch)."""
    max_batch: int = 1000
    """Most events in one POST /event batch."""
    ws_max_message_bytes: int = 16 * 1024
    """Largest frame a browser may send; bigger ones close the socket (1009)."""
    ws_close_timeout: float = 10.0
    """Seconds a stalled client has to take its close frame (with the resume id) before the
    relay gives up and the client sees an abnormal close instead."""
    web_dir: Path = ROOT / "web"
    """Static files served at /."""
    redis_data_dir: Path = ROOT / "var" / "redis"
    """Where the embedded Redis keeps its append-only file (native mode)."""
    redis_port: int = 6379
    """Port of the embedded Redis (native mode)."""
    service_tokens_file: Path | None = None
    """Scoped service tokens (SERVICE_TOKENS_FILE, coach/tokens.py); unset: RELAY_TOKEN holds
    every scope."""
    tls_cert: Path | None = None
    """PEM certificate (chain) for HTTPS/WSS (RELAY_TLS_CERT); with RELAY_TLS_KEY."""
    tls_key: Path | None = field(default=None, repr=False)
    """PEM private key of `tls_cert` (RELAY_TLS_KEY)."""
    database_url: str | None = field(default=None, repr=False)
    """The call record's PostgreSQL as the read-only role (DATABASE_URL); unset: the history
    routes answer 503 (scripts/stack.py sets it in native mode)."""
    recordings_dir: Path | None = None
    """Folder of call recordings the history's audio route may serve (RECORDINGS_DIR)."""
    ari_control_url: str = "http://127.0.0.1:7071"
    """ari's HTTP port, where recording pause/resume is asked (ARI_CONTROL_URL)."""
    kb: KBSettings = field(default_factory=KBSettings)
    """KB_*: the knowledge base of the console's search box (coach/knowledge/settings.py)."""

    @property
    def tls(self) -> bool:
        """Whether the relay serves HTTPS/WSS."""
        return self.tls_cert is not None

    def __post_init__(self) -> None:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise SettingsError("RELAY_TLS_CERT and RELAY_TLS_KEY go together: set both or none")
        for name, path in (
            ("RELAY_TLS_CERT", self.tls_cert),
            ("RELAY_TLS_KEY", self.tls_key),
            ("SERVICE_TOKENS_FILE", self.service_tokens_file),
        ):
            if path is not None and not path.is_file():
                raise SettingsError(f"{name}={path}: no such file")
        if not self.ari_control_url.startswith(("http://", "https://")):
            raise SettingsError(
                f"ARI_CONTROL_URL={self.ari_control_url!r}: want http(s)://host:port"
            )
        if len(self.relay_token) < 16:
            raise SettingsError("RELAY_TOKEN must be at least 16 characters")
        if len(self.auth_secret) < 32:
            raise SettingsError("AUTH_SECRET must be at least 32 characters")

    @classmethod
    def from_env(cls, env: Env) -> RelaySettings:
        """Build from environment variables; a missing or bad one raises SettingsError. An
        unset variable takes the field's default above (each default is written once)."""
        d = _default
        return cls(
            relay_token=env.str("RELAY_TOKEN"),
            auth_secret=env.str("AUTH_SECRET"),
            redis_url=env.optional("REDIS_URL"),
            host=env.str("RELAY_HOST", d("host")),
            port=env.int("RELAY_PORT", d("port"), min=1, max=65535),
            bus=BusConfig.from_env(env),
            client_buffer=env.int("RELAY_CLIENT_BUFFER", d("client_buffer"), min=10, max=1_000_000),
            max_body_bytes=env.int("RELAY_MAX_BODY_BYTES", d("max_body_bytes"), min=1024),
            max_batch=env.int("RELAY_MAX_BATCH", d("max_batch"), min=1, max=100_000),
            ws_close_timeout=env.float("RELAY_WS_CLOSE_TIMEOUT", d("ws_close_timeout"), min=0.1),
            web_dir=Path(env.str("RELAY_WEB_DIR", str(d("web_dir")))),
            redis_data_dir=Path(env.str("REDIS_DATA_DIR", str(d("redis_data_dir")))),
            redis_port=env.int("REDIS_PORT", d("redis_port"), min=1, max=65535),
            service_tokens_file=_path(env.optional("SERVICE_TOKENS_FILE")),
            tls_cert=_path(env.optional("RELAY_TLS_CERT")),
            tls_key=_path(env.optional("RELAY_TLS_KEY")),
            database_url=env.optional("DATABASE_URL"),
            recordings_dir=_path(env.optional("RECORDINGS_DIR")),
            ari_control_url=env.str("ARI_CONTROL_URL", d("ari_control_url")),
            kb=KBSettings.from_env(env),
        )


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None


def _default(name: str) -> Any:
    """The default a `RelaySettings` field declares."""
    spec = _FIELDS[name]
    if spec.default is not MISSING:
        return spec.default
    if spec.default_factory is not MISSING:
        return spec.default_factory()
    raise KeyError(f"RelaySettings.{name} has no default")


_FIELDS = {spec.name: spec for spec in fields(RelaySettings)}
