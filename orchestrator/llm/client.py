"""A streaming client for OpenAI-compatible `/chat/completions` (OpenRouter, vLLM, Ollama...).

One `complete()` call = the whole policy, in one place: global concurrency cap, circuit
breaker, overall deadline, retries with backoff on retryable errors (honouring Retry-After),
model fallback, and the structured-output downgrade (json_schema → json_object → plain) for
servers that reject it. Each attempt streams SSE and accounts tokens/cost from `usage`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import httpx

from coach.backoff import LLM, Backoff
from orchestrator.llm.breaker import BreakerState, CircuitBreaker
from orchestrator.llm.errors import Failure, LLMError, from_status
from orchestrator.llm.sse import DONE, data_lines
from orchestrator.settings import LLMSettings

log = logging.getLogger(__name__)

STRUCTURED_MODES: Final = ("json_schema", "json_object", "off")
KEY_FAILURE_COOLDOWN_S: Final = 300.0
"""After 401/402 the breaker stays open this long: the key will not fix itself in seconds."""
KEEPALIVE_CONNECTIONS: Final = 16
"""Idle connections kept for reuse. httpcore's pool scans every pooled connection for every
request; with 200 idle ones that cost 25 ms of CPU per request (measured), with 16 it is noise."""
MAX_RESPONSE_CHARS: Final = 20_000
"""A reply longer than this is cut off: a tip is a sentence, a summary a paragraph."""
# Failures that say nothing about the endpoint's health (our request was wrong).
_NOT_ENDPOINT_FAULTS: Final = (Failure.BAD_REQUEST, Failure.UNSUPPORTED, Failure.CIRCUIT_OPEN)


@dataclass
class Usage:
    """Tokens and cost (in the provider's currency, when it reports it)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    requests: int = 0

    def add(self, other: Usage) -> None:
        """Accumulate another usage."""
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.cost += other.cost
        self.requests += other.requests

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "promptTokens": self.prompt_tokens,
            "completionTokens": self.completion_tokens,
            "cost": round(self.cost, 6),
            "requests": self.requests,
        }


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
    ) -> Completion:
        """One completion under the client's policy; raises LLMError."""
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
        self._own_http = http is None
        self._http = http or httpx.AsyncClient(
            limits=httpx.Limits(
                max_connections=settings.max_concurrency + 4,
                max_keepalive_connections=min(KEEPALIVE_CONNECTIONS, settings.max_concurrency),
            )
        )
        self._timeout = httpx.Timeout(
            connect=settings.connect_timeout_s,
            read=settings.read_timeout_s,
            write=settings.read_timeout_s,
            pool=settings.connect_timeout_s,
        )
        self._slots = asyncio.Semaphore(settings.max_concurrency)
        self.breaker = breaker or CircuitBreaker(
            settings.breaker_failures, settings.breaker_cooldown_s
        )
        self._structured: dict[str, str] = {}
        self.stats = ClientStats()
        self.in_flight = 0

    async def aclose(self) -> None:
        """Close the HTTP client if we created it."""
        if self._own_http:
            await self._http.aclose()

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
    ) -> Completion:
        """One completion under the full policy; raises LLMError (never hangs past the deadline)."""
        deadline_s = deadline_s or self.settings.tip_deadline_s
        try:
            async with asyncio.timeout(deadline_s):
                return await self._complete(messages, schema, schema_name, max_tokens, deadline_s)
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
                            text, used_model, usage = await self._attempt(
                                model, messages, mode, schema, schema_name, max_tokens
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

    def _body(  # noqa: PLR0917 - private, called from one place
        self,
        model: str,
        messages: Sequence[dict[str, str]],
        mode: str,
        schema: dict[str, Any] | None,
        schema_name: str,
        max_tokens: int,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": model,
            "messages": list(messages),
            "stream": True,
            "max_tokens": max_tokens,
            "temperature": 0.2,
            "stream_options": {"include_usage": True},
        }
        if "openrouter.ai" in self.settings.base_url:
            body["usage"] = {"include": True}  # OpenRouter: cost in the usage chunk
        if schema is not None and mode == "json_schema":
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": schema_name, "strict": True, "schema": schema},
            }
        elif schema is not None and mode == "json_object":
            body["response_format"] = {"type": "json_object", "schema": schema}
        return body

    async def _attempt(  # noqa: PLR0917 - private, called from one place
        self,
        model: str,
        messages: Sequence[dict[str, str]],
        mode: str,
        schema: dict[str, Any] | None,
        schema_name: str,
        max_tokens: int,
    ) -> tuple[str, str, Usage]:
        body = self._body(model, messages, mode, schema, schema_name, max_tokens)
        headers = {
            "Authorization": f"Bearer {self.settings.api_key or ''}",
            "Accept": "text/event-stream",
            "X-Title": "call-coach",
        }
        url = f"{self.settings.base_url}/chat/completions"
        try:
            async with self._http.stream(
                "POST", url, json=body, headers=headers, timeout=self._timeout
            ) as resp:
                if resp.status_code != 200:
                    text = (await resp.aread()).decode("utf-8", "replace")
                    raise from_status(resp.status_code, text, resp.headers.get("retry-after"))
                if "text/event-stream" not in resp.headers.get("content-type", ""):
                    # Some servers ignore `stream` and answer with one JSON document.
                    return _from_document(await resp.aread(), model)
                return await _from_stream(resp, model)
        except httpx.TimeoutException as exc:
            raise LLMError(
                f"LLM timed out ({type(exc).__name__})", Failure.TIMEOUT, retryable=True
            ) from None
        except httpx.ConnectError as exc:
            raise LLMError(
                f"cannot reach LLM endpoint: {exc}", Failure.CONNECT, retryable=True
            ) from None
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
            raise LLMError(f"LLM connection broke: {exc}", Failure.SERVER, retryable=True) from None


def _usage(raw: Any) -> Usage:
    if not isinstance(raw, dict):
        return Usage(requests=1)
    cost = raw.get("cost")
    return Usage(
        prompt_tokens=int(raw.get("prompt_tokens") or 0),
        completion_tokens=int(raw.get("completion_tokens") or 0),
        cost=float(cost) if isinstance(cost, (int, float)) else 0.0,
        requests=1,
    )


def _chunk_error(error: Any) -> LLMError:
    message = error.get("message") if isinstance(error, dict) else str(error)
    code = error.get("code") if isinstance(error, dict) else None
    return LLMError(
        f"LLM stream failed mid-response: {message} (code {code})",
        Failure.STREAM,
        status=code if isinstance(code, int) else None,
        # A provider dying mid-stream is transient; a 4xx-coded chunk is not.
        retryable=not (isinstance(code, int) and 400 <= code < 500 and code != 429),
    )


async def _from_stream(resp: httpx.Response, model: str) -> tuple[str, str, Usage]:
    parts: list[str] = []
    size = 0
    usage = Usage(requests=1)
    used_model = model
    finished = False
    async for data in data_lines(resp.aiter_lines()):
        # After [DONE], read on to the end of the body so the connection can be reused.
        if finished:
            continue
        if data.strip() == DONE:
            finished = True
            continue
        try:
            chunk = json.loads(data)
        except json.JSONDecodeError:
            raise LLMError(
                f"LLM stream sent invalid JSON: {data[:120]!r}", Failure.PROTOCOL, retryable=True
            ) from None
        if not isinstance(chunk, dict):
            raise LLMError("LLM stream chunk is not an object", Failure.PROTOCOL, retryable=True)
        if chunk.get("error"):
            raise _chunk_error(chunk["error"])
        used_model = str(chunk.get("model") or used_model)
        for choice in chunk.get("choices") or []:
            if choice.get("finish_reason") == "error":
                raise _chunk_error(chunk.get("error") or {"message": "finish_reason error"})
            content = (choice.get("delta") or {}).get("content")
            if isinstance(content, str) and size < MAX_RESPONSE_CHARS:
                parts.append(content)
                size += len(content)
        if chunk.get("usage"):
            usage = _usage(chunk["usage"])
    return "".join(parts)[:MAX_RESPONSE_CHARS], used_model, usage


def _from_document(raw: bytes, model: str) -> tuple[str, str, Usage]:
    try:
        doc = json.loads(raw)
        text = doc["choices"][0]["message"]["content"] or ""
    except (ValueError, KeyError, IndexError, TypeError):
        raise LLMError(
            "LLM answer is neither SSE nor a chat completion", Failure.PROTOCOL, retryable=True
        ) from None
    if doc.get("error"):
        raise _chunk_error(doc["error"])
    return str(text)[:MAX_RESPONSE_CHARS], str(doc.get("model") or model), _usage(doc.get("usage"))
