"""STT settings, read once from the environment (see stt/ENV.md)."""

from __future__ import annotations

import os
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

import ctranslate2

from coach.bus import BusConfig
from coach.model_path import default_model_path
from coach.redact import RedactConfig
from coach.settings import Env, SettingsError
from stt.segmenter import SegmenterConfig
from stt.stream import StreamConfig

DEFAULT_MODEL_DIR = "models"
GPU_COMPUTE_TYPE = "float16"
"""COMPUTE_TYPE's default on a GPU (the field's default, int8, is the CPU one)."""
GPU_MIN_WINDOW_S = 30.0
"""STT_MIN_WINDOW_S's default on a GPU: every decode in Whisper's 30 s window, as offline; on
the 2-core CPU that costs ~1 s a final, so the CPU default (the field's) cuts the window to the
audio (bench/stt/README.md, "The encoder window")."""


@dataclass(frozen=True)
class SttSettings:
    """Everything `python -m stt` needs; a bad value stops start-up naming the variable."""

    relay_token: str = field(repr=False)
    """Bearer token clients of WS /stream must present (RELAY_TOKEN)."""
    model_path: str
    """CTranslate2 Whisper model dir (MODEL_PATH; default models/faster-whisper-MODEL_SIZE)."""
    model_size: str = "base"
    """Model name, used for the default MODEL_PATH and reported in /health (MODEL_SIZE)."""
    device: str = "cpu"
    """cpu, cuda or auto (DEVICE)."""
    compute_type: str = "int8"
    """CTranslate2 compute type; default int8 on CPU, float16 on GPU (COMPUTE_TYPE)."""
    lang: str | None = "es"
    """Spoken language, or None for per-utterance detection (LANG=auto)."""
    host: str = "127.0.0.1"
    """Listen address (STT_HOST): loopback unless STT serves ari on another host."""
    service_tokens_file: str | None = None
    """Scoped service tokens (SERVICE_TOKENS_FILE): only `stream` holders may stream; unset,
    RELAY_TOKEN does."""
    port: int = 8080
    """Listen port (STT_PORT)."""
    redis_url: str | None = None
    """Bus Redis (REDIS_URL); unset = events go only back on the socket."""
    bus: BusConfig = field(default_factory=BusConfig)
    """Bus key prefix and bounds (BUS_PREFIX, ...), shared with the other services."""
    decode_workers: int = 1
    """Decodes run in parallel (STT_DECODE_WORKERS; this default on GPU, one per core on CPU,
    max 4)."""
    cpu_threads: int = 1
    """Threads per decode (STT_CPU_THREADS; 1 is fastest on CPU for base, see scheduler.py)."""
    max_streams: int = 32
    """Open streams beyond this are refused with close code 1013 (STT_MAX_STREAMS)."""
    max_pending_finals: int = 64
    """FINAL-class decode jobs queued before submitters wait (STT_MAX_PENDING_FINALS)."""
    batch_max: int = 1
    """Most decodes of several streams run as one batched CTranslate2 call (STT_BATCH_MAX;
    1 = off, the CPU default: bench/stt/batch.py; stt/batch.py)."""
    batch_wait_ms: int = 0
    """How long a decode waits for others to batch with (STT_BATCH_WAIT_MS; 0 = only those
    already queued, so a lone stream never waits)."""
    bus_buffer: int = 10_000
    """Events held while the bus is down before the oldest partials, then finals, are dropped
    (STT_BUS_BUFFER; the capacity of coach.publisher.Publisher)."""
    max_frame_bytes: int = 64_000
    """Largest binary frame (2 s at 16 kHz); bigger closes the socket with 1009."""
    beam_size: int = 5
    """Beam size of final decodes (STT_BEAM_SIZE); 5 = faster-whisper's default, 1 = greedy."""
    min_window_s: float = 0.0
    """Shortest encoder window in seconds (STT_MIN_WINDOW_S; default 0 on CPU, a window cut to
    the audio, and 30 on GPU, Whisper's padded window)."""
    stream: StreamConfig = field(default_factory=StreamConfig)
    """Streaming tunables (STT_HANGOVER_S, STT_EARLY_HANGOVER_S, STT_TAIL_S, STT_PARTIALS, ...) and what is
    redacted (REDACT_KINDS, REDACT_KEEP_AFTER, REDACT_PAYMENT_WINDOW_S)."""

    @classmethod
    def from_env(cls, env: Env) -> SttSettings:
        """Build from environment variables; a missing or bad one raises SettingsError.

        Every default is the dataclass field's (or StreamConfig's / SegmenterConfig's), read
        here through `_default`: each is written once. Three depend on the device: the compute
        type (`GPU_COMPUTE_TYPE` on a GPU), the window (`GPU_MIN_WINDOW_S`) and the decode
        workers (one per core on CPU).
        """
        size = env.str("MODEL_SIZE", _default("model_size"))
        device = env.choice("DEVICE", _default("device"), ("cpu", "cuda", "auto"))
        gpu = device == "cuda" or (device == "auto" and _has_cuda())
        default_lang = _default("lang")
        lang = env.str("STT_LANG", "") or env.str("LANG", default_lang)
        if "." in lang or "_" in lang:
            # A POSIX locale such as C.UTF-8 in LANG is not a speech language: use the default.
            lang = default_lang
        if lang != "auto" and not (2 <= len(lang) <= 3 and lang.isalpha()):
            raise SettingsError(f"LANG={lang!r} must be a language code such as es, or auto")
        token = env.str("RELAY_TOKEN")
        if len(token) < 16:
            raise SettingsError("RELAY_TOKEN must be at least 16 characters")
        sd, gd = StreamConfig(), SegmenterConfig()
        seg = SegmenterConfig(
            hangover_s=env.float("STT_HANGOVER_S", gd.hangover_s, min=0.1, max=5.0),
            split_after_s=env.float("STT_SPLIT_AFTER_S", gd.split_after_s, min=2.0, max=25.0),
            max_s=env.float("STT_MAX_UTTERANCE_S", gd.max_s, min=3.0, max=28.0),
        )
        stream = StreamConfig(
            segmenter=seg,
            early_hangover_s=env.float(
                "STT_EARLY_HANGOVER_S", sd.early_hangover_s, min=0.05, max=5.0
            ),
            tail_s=env.float("STT_TAIL_S", sd.tail_s, min=0.0, max=1.0),
            partials=env.bool("STT_PARTIALS", sd.partials),
            partial_interval_s=env.float(
                "STT_PARTIAL_INTERVAL_S", sd.partial_interval_s, min=0.1, max=10.0
            ),
            prompt_context=env.bool("STT_PROMPT_CONTEXT", sd.prompt_context),
            context_gap_s=env.float("STT_CONTEXT_GAP_S", sd.context_gap_s, min=0.0, max=30.0),
            speculate=env.bool("STT_SPECULATE", sd.speculate),
            words=env.bool("STT_WORDS", sd.words),
            redact=RedactConfig.parse(
                env.str("REDACT_KINDS", "all"),
                env.raw("REDACT_KEEP_AFTER"),
                env.float(
                    "REDACT_PAYMENT_WINDOW_S", sd.redact.payment_window_s, min=0.0, max=3600.0
                ),
            ),
        )
        workers = _default("decode_workers") if gpu else min(4, os.cpu_count() or 1)
        return cls(
            relay_token=token,
            model_path=env.str("MODEL_PATH", default_model_path(size)),
            model_size=size,
            device="cuda" if gpu else "cpu",
            compute_type=env.str(
                "COMPUTE_TYPE", GPU_COMPUTE_TYPE if gpu else _default("compute_type")
            ),
            lang=None if lang == "auto" else lang,
            host=env.str("STT_HOST", _default("host")),
            service_tokens_file=env.optional("SERVICE_TOKENS_FILE"),
            port=env.int("STT_PORT", _default("port"), min=1, max=65535),
            redis_url=env.optional("REDIS_URL"),
            bus=BusConfig.from_env(env),
            decode_workers=env.int("STT_DECODE_WORKERS", workers, min=1, max=16),
            cpu_threads=env.int("STT_CPU_THREADS", _default("cpu_threads"), min=1, max=64),
            max_streams=env.int("STT_MAX_STREAMS", _default("max_streams"), min=1, max=10_000),
            max_pending_finals=env.int(
                "STT_MAX_PENDING_FINALS", _default("max_pending_finals"), min=1, max=10_000
            ),
            batch_max=env.int("STT_BATCH_MAX", _default("batch_max"), min=1, max=64),
            batch_wait_ms=env.int("STT_BATCH_WAIT_MS", _default("batch_wait_ms"), min=0, max=1000),
            bus_buffer=env.int("STT_BUS_BUFFER", _default("bus_buffer"), min=10, max=1_000_000),
            beam_size=env.int("STT_BEAM_SIZE", _default("beam_size"), min=1, max=10),
            min_window_s=env.float(
                "STT_MIN_WINDOW_S",
                GPU_MIN_WINDOW_S if gpu else _default("min_window_s"),
                min=0.0,
                max=30.0,
            ),
            stream=stream,
        )


def _default(name: str) -> Any:
    """The default of `SttSettings.<name>`, as its field states it."""
    value = {f.name: f.default for f in fields(SttSettings)}[name]
    assert value is not MISSING, f"SttSettings.{name} has no default"
    return value


def _has_cuda() -> bool:
    try:
        return int(ctranslate2.get_cuda_device_count()) > 0
    except (RuntimeError, OSError):  # no CUDA runtime at all
        return False
