"""The orchestrator's settings: read once from the environment, checked, frozen."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

from coach.bus import BusConfig
from coach.knowledge.settings import KBSettings
from coach.settings import Env, SettingsError

OPENROUTER_URL = "https://openrouter.ai/api/v1"
DEFAULT_MODEL = "openai/gpt-4o-mini"
PLAYBOOK_DIR = Path(__file__).parent / "playbooks"


@dataclass(frozen=True)
class LLMSettings:
    """How to reach an OpenAI-compatible chat completions endpoint."""

    base_url: str = OPENROUTER_URL
    """LLM_BASE_URL: endpoint root (OpenRouter, vLLM, Ollama, llama.cpp server...)."""
    api_key: str | None = field(default=None, repr=False)
    """OPENROUTER_API_KEY: bearer key; unset = rules-only mode."""
    model: str = DEFAULT_MODEL
    """OPENROUTER_MODEL: primary model."""
    fallback_models: tuple[str, ...] = ()
    """LLM_FALLBACK_MODELS: comma-separated models tried after the primary fails."""
    connect_timeout_s: float = 3.0
    """LLM_CONNECT_TIMEOUT_S: TCP/TLS connect timeout."""
    read_timeout_s: float = 6.0
    """LLM_READ_TIMEOUT_S: longest wait between two bytes of the response (keep-alives count)."""
    tip_deadline_s: float = 8.0
    """LLM_TIP_DEADLINE_S: whole budget of one live tip, retries included."""
    summary_deadline_s: float = 45.0
    """LLM_SUMMARY_DEADLINE_S: overall budget of the post-call summary, retries included."""
    max_attempts: int = 3
    """LLM_MAX_ATTEMPTS: attempts per model on retryable errors (429/5xx/timeouts)."""
    max_concurrency: int = 64
    """LLM_MAX_CONCURRENCY: requests in flight across all calls of this replica."""
    max_tokens: int = 200
    """LLM_MAX_TOKENS: completion budget of a live tip (summaries get 3x)."""
    breaker_failures: int = 5
    """LLM_BREAKER_FAILURES: consecutive failures that open the circuit breaker."""
    breaker_cooldown_s: float = 20.0
    """LLM_BREAKER_COOLDOWN_S: how long an open breaker fails fast before one probe."""
    debounce_ms: int = 300
    """LLM_DEBOUNCE_MS: wait after a final before asking for a tip (batches bursts)."""
    min_interval_s: float = 4.0
    """LLM_MIN_INTERVAL_S: least time between two tip requests of one call (cost and CPU bound)."""
    structured: str = "json_schema"
    """LLM_STRUCTURED: json_schema, json_object (llama.cpp) or off (plain text)."""
    system_prompt: str = ""
    """LLM_SYSTEM_PROMPT / LLM_SYSTEM_PROMPT_FILE: company instructions prepended to the prompt."""
    context_utterances: int = 16
    """LLM_CONTEXT_UTTERANCES: last utterances sent with a tip request."""
    answer_interval_ms: int = 150
    """LLM_ANSWER_INTERVAL_MS: least time between two events of a streamed knowledge answer."""

    @property
    def enabled(self) -> bool:
        """Whether LLM coaching is on (a key is set, or the endpoint is local and needs none)."""
        return self.api_key is not None

    @property
    def models(self) -> tuple[str, ...]:
        """Primary model then fallbacks, without duplicates."""
        return tuple(dict.fromkeys((self.model, *self.fallback_models)))


@dataclass(frozen=True)
class Settings:
    """Everything `python -m orchestrator` needs."""

    redis_url: str | None = None
    """REDIS_URL: the bus; unset = an embedded server is started (native/dev mode)."""
    bus: BusConfig = field(default_factory=BusConfig)
    """BUS_*: key prefix and bounds of the bus (the same for every service)."""
    port: int = 7080
    """ORCH_PORT: port of GET /health and GET /metrics."""
    host: str = "127.0.0.1"
    """ORCH_HOST: listen address of the health/metrics server."""
    group: str = "orchestrator"
    """ORCH_GROUP: consumer group name on the global stream (shared by replicas)."""
    consumer: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    """ORCH_CONSUMER: this replica's name; keep it stable across restarts."""
    playbook_dir: Path = PLAYBOOK_DIR
    """ORCH_PLAYBOOK_DIR: folder of `<lang>.yaml` playbooks (re-read when a file changes)."""
    default_lang: str = "es"
    """ORCH_DEFAULT_LANG: playbook used when a call's language has none."""
    metrics_interval_s: float = 5.0
    """ORCH_METRICS_INTERVAL_S: period of live `metrics` events per call."""
    lease_ttl_ms: int = 15_000
    """ORCH_LEASE_TTL_MS: a call's lease lapses this long after its owner stops renewing it."""
    max_calls: int = 2000
    """ORCH_MAX_CALLS: calls one replica owns; beyond it, left to other replicas."""
    context_utterances: int = 200
    """ORCH_MAX_UTTERANCES: utterances kept per call for the summary (oldest dropped)."""
    redis_connections: int = 64
    """ORCH_REDIS_CONNECTIONS: Redis connections of this replica; more commands wait for one."""
    log_level: str = "info"
    """LOG_LEVEL: debug, info, warning or error."""
    health_token: str | None = field(default=None, repr=False)
    """ORCH_HEALTH_TOKEN: bearer token that shows /health's details (LLM address, errors);
    anonymous callers see states and counts only."""
    llm: LLMSettings = field(default_factory=LLMSettings)
    kb: KBSettings = field(default_factory=KBSettings)
    """KB_*: the knowledge base behind knowledge cards (coach/knowledge/settings.py)."""

    @classmethod
    def from_env(cls, env: Env) -> Settings:
        """Build from environment variables; raises SettingsError naming a bad variable.

        Every default is the dataclass field's, read here from an instance: each is written once."""
        defaults, ld = cls(), LLMSettings()
        prompt = env.optional("LLM_SYSTEM_PROMPT") or ""
        prompt_file = env.optional("LLM_SYSTEM_PROMPT_FILE")
        if prompt_file:
            try:
                prompt = Path(prompt_file).read_text(encoding="utf-8")
            except OSError as exc:
                raise SettingsError(f"LLM_SYSTEM_PROMPT_FILE={prompt_file!r}: {exc}") from None
        base_url = env.str("LLM_BASE_URL", ld.base_url).rstrip("/")
        if not base_url.startswith(("http://", "https://")):
            raise SettingsError(f"LLM_BASE_URL={base_url!r} must start with http:// or https://")
        fallbacks = tuple(
            m.strip() for m in (env.optional("LLM_FALLBACK_MODELS") or "").split(",") if m.strip()
        )
        llm = LLMSettings(
            base_url=base_url,
            api_key=env.optional("OPENROUTER_API_KEY"),
            model=env.str("OPENROUTER_MODEL", ld.model),
            fallback_models=fallbacks,
            connect_timeout_s=env.float(
                "LLM_CONNECT_TIMEOUT_S", ld.connect_timeout_s, min=0.1, max=60
            ),
            read_timeout_s=env.float("LLM_READ_TIMEOUT_S", ld.read_timeout_s, min=0.1, max=300),
            tip_deadline_s=env.float("LLM_TIP_DEADLINE_S", ld.tip_deadline_s, min=0.5, max=120),
            summary_deadline_s=env.float(
                "LLM_SUMMARY_DEADLINE_S", ld.summary_deadline_s, min=1, max=600
            ),
            max_attempts=env.int("LLM_MAX_ATTEMPTS", ld.max_attempts, min=1, max=10),
            max_concurrency=env.int("LLM_MAX_CONCURRENCY", ld.max_concurrency, min=1, max=1000),
            max_tokens=env.int("LLM_MAX_TOKENS", ld.max_tokens, min=16, max=8192),
            breaker_failures=env.int("LLM_BREAKER_FAILURES", ld.breaker_failures, min=1, max=1000),
            breaker_cooldown_s=env.float(
                "LLM_BREAKER_COOLDOWN_S", ld.breaker_cooldown_s, min=0.1, max=3600
            ),
            debounce_ms=env.int("LLM_DEBOUNCE_MS", ld.debounce_ms, min=0, max=10_000),
            min_interval_s=env.float("LLM_MIN_INTERVAL_S", ld.min_interval_s, min=0, max=600),
            structured=env.choice(
                "LLM_STRUCTURED", ld.structured, ("json_schema", "json_object", "off")
            ),
            system_prompt=prompt,
            context_utterances=env.int(
                "LLM_CONTEXT_UTTERANCES", ld.context_utterances, min=1, max=200
            ),
            answer_interval_ms=env.int(
                "LLM_ANSWER_INTERVAL_MS", ld.answer_interval_ms, min=0, max=10_000
            ),
        )
        playbook_dir = Path(env.str("ORCH_PLAYBOOK_DIR", str(defaults.playbook_dir)))
        if not playbook_dir.is_dir():
            raise SettingsError(f"ORCH_PLAYBOOK_DIR={str(playbook_dir)!r} is not a directory")
        return cls(
            redis_url=env.optional("REDIS_URL"),
            bus=BusConfig.from_env(env),
            port=env.int("ORCH_PORT", defaults.port, min=1, max=65535),
            host=env.str("ORCH_HOST", defaults.host),
            group=env.str("ORCH_GROUP", defaults.group),
            consumer=env.str("ORCH_CONSUMER", defaults.consumer),
            playbook_dir=playbook_dir,
            default_lang=env.str("ORCH_DEFAULT_LANG", defaults.default_lang),
            metrics_interval_s=env.float(
                "ORCH_METRICS_INTERVAL_S", defaults.metrics_interval_s, min=0.2, max=600
            ),
            lease_ttl_ms=env.int("ORCH_LEASE_TTL_MS", defaults.lease_ttl_ms, min=1000, max=600_000),
            max_calls=env.int("ORCH_MAX_CALLS", defaults.max_calls, min=1, max=100_000),
            context_utterances=env.int(
                "ORCH_MAX_UTTERANCES", defaults.context_utterances, min=10, max=10_000
            ),
            redis_connections=env.int(
                "ORCH_REDIS_CONNECTIONS", defaults.redis_connections, min=4, max=1000
            ),
            log_level=env.log_level(),
            health_token=_health_token(env.optional("ORCH_HEALTH_TOKEN")),
            llm=llm,
            kb=KBSettings.from_env(env),
        )


def _health_token(value: str | None) -> str | None:
    if value is not None and len(value) < 16:
        raise SettingsError("ORCH_HEALTH_TOKEN must be at least 16 characters")
    return value
