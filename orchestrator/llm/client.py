"""A streaming client for OpenAI-compatible `/chat/completions` (OpenRouter, vLLM, Ollama...).

One `complete()` call = the whole policy, in one place: global concurrency cap, circuit
breaker, overall deadline, retries with backoff on retryable errors (honouring Retry-After),
model fallback, and the structured-output downgrade (json_schema → json_object → plain) for
servers that reject it. Each attempt is one request of `transport.Transport` (HTTP, SSE,
tokens and cost from `usage`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import httpx

from coach.backoff import LLM, Backoff
from orchestrator.llm.breaker import BreakerState, CircuitBreaker
from orchestrator.llm.errors import Failure, LLMError
from orchestrator.llm.transport import TextSink, Transport, Usage
from orchestrator.settings import LLMSettings

log = logging.getLogger(__name__)

STRUCTURED_MODES: Final = ("json_schema", "json_object", "off")
KEY_FAILURE_COOLDOWN_S: Final = 300.0
"""After 401/402 the breaker stays open this long: the key will not fix itself in seconds."""
# Failures that say nothing about the endpoint's health (our request was wrong).
_NOT_ENDPOINT_FAULTS: Final = (Failure.BAD_REQUEST, Failure.UNSUPPORTED, Failure.CIRCUIT_OPEN)


@dataclass
class Completion:
    """A finished completion."""

    text: str
    model: str
    usage: Usage
    structured: str
    attempts: int
    latency_s: float


class Completer(Protocol):
    """What the orchestrator needs from an LLM client (`LLMClient` or `LLMThread`)."""

    settings: LLMSettings

    async def complete(
        self,
        messages: Sequence[dict[str, str]],
        *,
        schema: dict[str, Any] | None = None,
        schema_name: str = "reply",
        max_tokens: int | None = None,
        deadline_s: float | None = None,
        on_text: TextSink | None = None,
    ) -> Completion:
        """One completion under the client's policy; raises LLMError. `on_text` hears the
        reply's text as it streams (cumulative per attempt; a retry starts it again)."""
        ...

    def health(self) -> dict[str, Any]:
        """State for GET /health."""
        ...


@dataclass
class ClientStats:
    """Counters read by /health and /metrics."""

    outcomes: dict[str, int] = field(default_factory=dict)
    usage: Usage = field(default_factory=Usage)
    last_failure: str = ""
    key_problem: str = ""


class LLMClient:
    """Chat completions with the policy described in the module docstring."""

    def __init__(
        self,
        settings: LLMSettings,
        http: httpx.AsyncClient | None = None,
        breaker: CircuitBreaker | None = None,
        *,
        backoff: Backoff = LLM,
        pause: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.settings = settings
        self.backoff = backoff
        """Delays between retries of one model (a Retry-After from the server wins)."""
        self._pause = pause
        """How the client waits between attempts (tests record the waits)."""
        self.transport = Transport(settings, http)
        self._slots = asyncio.Semaphore(settings.max_concurrency)
        self.breaker = breaker or CircuitBreaker(
            settings.breaker_failures, settings.breaker_cooldown_s
        )
        self._structured: dict[str, str] = {}
        self.stats = ClientStats()
        self.in_flight = 0

    async def aclose(self) -> None:
        """Close the HTTP client if we created it."""
        await self.transport.aclose()

    def health(self) -> dict[str, Any]:
        """State for GET /health."""
        state = self.breaker.state.value
        if self.stats.key_problem and self.breaker.state is BreakerState.OPEN:
            state = "key_rejected"
        return {
            "mode": "llm",
            "baseUrl": self.settings.base_url,
            "models": list(self.settings.models),
            "state": state,
            "lastFailure": self.stats.last_failure,
            "keyProblem": self.stats.key_problem,
            "inFlight": self.in_flight,
            "usage": self.stats.usage.as_dict(),
        }

    def _count(self, outcome: str) -> None:
        self.stats.outcomes[outcome] = self.stats.outcomes.get(outcome, 0) + 1

    async def complete(
        self,
        messages: Sequence[dict[str, str]],
        *,
        schema: dict[str, Any] | None = None,
        schema_name: str = "reply",
        max_tokens: int | None = None,
        deadline_s: float | None = None,
        on_text: TextSink | None = None,
    ) -> Completion:
        """One completion under the full policy; raises LLMError (never hangs past the deadline)."""
        deadline_s = deadline_s or self.settings.tip_deadline_s
        try:
            async with asyncio.timeout(deadline_s):
                return await self._complete(
                    messages, schema, schema_name, max_tokens, deadline_s, on_text=on_text
                )
        except TimeoutError:
            self._count(Failure.TIMEOUT.value)
            self.stats.last_failure = f"overall deadline of {deadline_s:.1f}s passed"
            self.breaker.failure(self.stats.last_failure)
            raise LLMError(self.stats.last_failure, Failure.TIMEOUT, retryable=True) from None

    async def _complete(
        self,
        messages: Sequence[dict[str, str]],
        schema: dict[str, Any] | None,
        schema_name: str,
        max_tokens: int | None,
        deadline_s: float,
        *,
        on_text: TextSink | None = None,
    ) -> Completion:
        loop = asyncio.get_running_loop()
        ends_at = loop.time() + deadline_s
        max_tokens = max_tokens or self.settings.max_tokens
        last: LLMError | None = None
        attempts = 0
        for model in self.settings.models:
            tries = 0
            budget_retry_done = False
            while tries < self.settings.max_attempts:
                if not self.breaker.allow():
                    if last is not None:
                        raise last  # the breaker opened during this request: report the cause
                    self._count(Failure.CIRCUIT_OPEN.value)
                    raise LLMError(
                        f"LLM circuit open after repeated failures ({self.breaker.last_error})",
                        Failure.CIRCUIT_OPEN,
                    )
                mode = self._mode(model, schema)
                tries += 1
                attempts += 1
                started = time.monotonic()
                try:
                    # The slot is held per attempt, not across backoff sleeps.
                    async with self._slots:
                        self.in_flight += 1
                        try:
                            text, used_model, usage = await self.transport.send(
                                model, messages, mode, schema, schema_name, max_tokens, on_text
                            )
                        finally:
                            self.in_flight -= 1
                except LLMError as exc:
                    last = exc
                    self._on_failure(exc, model)
                    if exc.failure is Failure.UNSUPPORTED and mode != "off":
                        self._structured[model] = STRUCTURED_MODES[STRUCTURED_MODES.index(mode) + 1]
                        tries -= 1  # a downgrade is not a failed attempt
                        continue
                    if (
                        exc.failure is Failure.CREDITS
                        and not budget_retry_done
                        and ("afford" in str(exc) or "max_tokens" in str(exc))
                    ):
                        # OpenRouter's "can only afford N tokens": the in-flight budget case.
                        budget_retry_done = True
                        max_tokens = max(16, max_tokens // 2)
                        tries -= 1
                        continue
                    if exc.failure in (Failure.AUTH, Failure.CREDITS):
                        raise  # the key is wrong or empty: no model or retry will help
                    if not exc.retryable:
                        break  # try the next model
                    wait = self._delay(tries, exc.retry_after)
                    if loop.time() + wait >= ends_at:
                        break  # waiting would blow the deadline: next model, or give up
                    if tries < self.settings.max_attempts:
                        await self._pause(wait)
                    continue
                except BaseException:
                    self.breaker.release()
                    raise
                self.breaker.success()
                self._count("ok")
                self.stats.usage.add(usage)
                return Completion(
                    text, used_model, usage, mode, attempts, time.monotonic() - started
                )
        assert last is not None
        raise last

    def _mode(self, model: str, schema: dict[str, Any] | None) -> str:
        if schema is None:
            return "off"
        return self._structured.get(model, self.settings.structured)

    def _delay(self, tries: int, retry_after: float | None) -> float:
        """The wait after failed attempt number `tries` of a model."""
        if retry_after is not None:
            return float(retry_after)
        return self.backoff.delay(tries - 1)

    def _on_failure(self, exc: LLMError, model: str) -> None:
        self._count(exc.failure.value)
        self.stats.last_failure = f"{model}: {exc}"
        budget = exc.failure is Failure.CREDITS and (
            "afford" in str(exc) or "max_tokens" in str(exc)
        )
        if budget:
            log.warning(
                "LLM request over the credit budget; retrying smaller",
                extra={"model": model, "error": str(exc)[:300]},
            )
        elif exc.failure in (Failure.AUTH, Failure.CREDITS):
            if self.stats.key_problem != str(exc):
                log.error(
                    "LLM key problem: coaching falls back to rules only",
                    extra={"failure": exc.failure.value, "status": exc.status, "error": str(exc)},
                )
            self.stats.key_problem = str(exc)
            self.breaker.failure(str(exc), cooldown_s=KEY_FAILURE_COOLDOWN_S)
        elif exc.failure not in _NOT_ENDPOINT_FAULTS:
            log.warning(
                "LLM attempt failed",
                extra={
                    "failure": exc.failure.value,
                    "status": exc.status,
                    "model": model,
                    "error": str(exc)[:300],
                },
            )
            self.breaker.failure(str(exc))
        else:
            self.breaker.release()
