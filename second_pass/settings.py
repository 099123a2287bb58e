"""The second pass's settings: read once from the environment, checked, frozen (ENV.md)."""

from __future__ import annotations

import socket
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

from coach.bus import BusConfig
from coach.model_path import default_model_path
from coach.redact import RedactConfig
from coach.settings import Env, SettingsError


@dataclass(frozen=True)
class Settings:
    """Everything `python -m second_pass` needs."""

    redis_url: str
    """REDIS_URL: the bus (required: the calls to transcribe come from it)."""
    database_url: str = field(repr=False)
    """DATABASE_URL: the call record, as its writer role (required; the archive migrates it)."""
    model_path: str
    """RECORD_MODEL_PATH: the model of the transcript of record; default the live STT's
    (MODEL_PATH, else models/faster-whisper-MODEL_SIZE)."""
    bus: BusConfig = field(default_factory=BusConfig)
    """BUS_*: key prefix and bounds of the bus (the same for every service)."""
    device: str = "cpu"
    """RECORD_DEVICE: cpu or cuda."""
    compute_type: str = "int8"
    """RECORD_COMPUTE_TYPE: CTranslate2 compute type (int8 on CPU, float16 on a GPU)."""
    cpu_threads: int = 1
    """RECORD_CPU_THREADS: decoder threads; small, so the live STT keeps the cores."""
    nice: int = 19
    """RECORD_NICE: the process's nice value (0-19); 19 = runs when the live path does not."""
    idle_sched: bool = True
    """RECORD_IDLE_SCHED: also run under Linux's SCHED_IDLE (only on otherwise idle CPU)."""
    beam_size: int = 5
    """RECORD_BEAM_SIZE: beam width of the decoding."""
    lang: str | None = None
    """RECORD_LANG: language when the call's call.started gave none; `auto` (default) = detect."""
    queue_max: int = 16
    """RECORD_QUEUE_MAX: calls held waiting in the process (second_pass/queue.py policy)."""
    recordings_dir: Path | None = None
    """RECORDINGS_DIR: where the recordings' volume is mounted here; unset = the paths as
    call.ended gives them."""
    raw_rate: int = 8000
    """RECORD_RAW_RATE: sample rate of MixMonitor's headerless .raw files (8000 for G.711)."""
    host: str = "127.0.0.1"
    """RECORD_HOST: listen address of GET /health and GET /metrics."""
    port: int = 7096
    """RECORD_PORT: port of GET /health and GET /metrics (nothing else is served)."""
    group: str = "second_pass"
    """RECORD_GROUP: consumer group on the all-events stream, shared by the replicas."""
    consumer: str = field(default_factory=socket.gethostname)
    """RECORD_CONSUMER: this replica's name; stable across restarts, so a restarted pass
    re-reads the calls it had taken and not finished."""
    claim_idle_ms: int = 1_800_000
    """RECORD_CLAIM_IDLE_MS: calls another replica took and left unacknowledged this long are
    taken over (that replica died); longer than any one call's decoding."""
    redact: RedactConfig = field(default_factory=RedactConfig)
    """REDACT_KINDS, REDACT_KEEP_AFTER, REDACT_PAYMENT_WINDOW_S: as the live STT's."""
    log_level: str = "info"
    """LOG_LEVEL: debug, info, warning or error."""

    def __post_init__(self) -> None:
        if not self.database_url.startswith(("postgresql://", "postgres://")):
            raise SettingsError("DATABASE_URL must start with postgresql://")

    @classmethod
    def from_env(cls, env: Env) -> Settings:
        """Build from environment variables; raises SettingsError naming a bad variable."""
        size = env.str("MODEL_SIZE", "base")
        live_model = env.str("MODEL_PATH", default_model_path(size))
        model = env.str("RECORD_MODEL_PATH", live_model)
        if not (Path(model) / "model.bin").is_file():
            raise SettingsError(
                f"RECORD_MODEL_PATH={model} holds no model.bin "
                "(python -m stt.models assemble|fetch puts one there)"
            )
        lang = env.str("RECORD_LANG", "auto")
        if lang != "auto" and not (2 <= len(lang) <= 3 and lang.isalpha()):
            raise SettingsError(f"RECORD_LANG={lang!r} must be a language code such as es, or auto")
        recordings = env.optional("RECORDINGS_DIR")
        return cls(
            redis_url=env.str("REDIS_URL"),
            database_url=env.str("DATABASE_URL"),
            model_path=model,
            bus=BusConfig.from_env(env),
            device=env.choice("RECORD_DEVICE", _d("device"), ("cpu", "cuda")),
            compute_type=env.str("RECORD_COMPUTE_TYPE", _d("compute_type")),
            cpu_threads=env.int("RECORD_CPU_THREADS", _d("cpu_threads"), min=1, max=64),
            nice=env.int("RECORD_NICE", _d("nice"), min=0, max=19),
            idle_sched=env.bool("RECORD_IDLE_SCHED", _d("idle_sched")),
            beam_size=env.int("RECORD_BEAM_SIZE", _d("beam_size"), min=1, max=10),
            lang=None if lang == "auto" else lang,
            queue_max=env.int("RECORD_QUEUE_MAX", _d("queue_max"), min=1, max=10_000),
            recordings_dir=Path(recordings) if recordings else None,
            raw_rate=env.int("RECORD_RAW_RATE", _d("raw_rate"), min=8000, max=48_000),
            host=env.str("RECORD_HOST", _d("host")),
            port=env.int("RECORD_PORT", _d("port"), min=1, max=65535),
            group=env.str("RECORD_GROUP", _d("group")),
            consumer=env.str("RECORD_CONSUMER", socket.gethostname()),
            claim_idle_ms=env.int(
                "RECORD_CLAIM_IDLE_MS", _d("claim_idle_ms"), min=60_000, max=86_400_000
            ),
            redact=RedactConfig.parse(
                env.str("REDACT_KINDS", "all"),
                env.raw("REDACT_KEEP_AFTER"),
                env.float("REDACT_PAYMENT_WINDOW_S", 90.0, min=0.0, max=3600.0),
            ),
            log_level=env.log_level(),
        )


def _d(name: str) -> Any:
    """The default of `Settings.<name>`, as its field states it (written once)."""
    value = {f.name: f.default for f in fields(Settings)}[name]
    assert value is not MISSING, f"Settings.{name} has no default"
    return value
