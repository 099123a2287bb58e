"""The HTTP side of the LLM client: one `/chat/completions` request, its SSE stream parsed
into text, model and usage, every failure mapped to a classified `LLMError`. No policy here:
retries, breaker, fallback and deadlines are `client.LLMClient`'s."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Final

import httpx
from httpx_sse import EventSource, ServerSentEvent, SSEError

from orchestrator.llm.errors import Failure, LLMError, from_status
from orchestrator.settings import LLMSettings

DONE: Final = "[DONE]"
"""The `data:` payload that ends an OpenAI-compatible stream."""
TextSink = Callable[[str], Coroutine[Any, Any, None]]
"""Told the reply's text so far (cumulative, this attempt's) after each streamed piece; the
stream waits for it, so a sink must be quick (a retry starts the text again from empty)."""

KEEPALIVE_CONNECTIONS: Final = 16
"""Idle connections kept for reuse. httpcore's pool scans every pooled connection for every
request; with 200 idle ones that cost 25 ms of CPU per request (measured), with 16 it is noise."""
MAX_RESPONSE_CHARS: Final = 20_000
"""A reply longer than this is cut off: a tip is a sentence, a summary a paragraph."""


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


class Transport:
    """Requests to one OpenAI-compatible endpoint over a pooled HTTP client."""

    def __init__(self, settings: LLMSettings, http: httpx.AsyncClient | None = None) -> None:
        self.settings = settings
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

    async def aclose(self) -> None:
        """Close the HTTP client if we created it."""
        if self._own_http:
            await self._http.aclose()

    def body(  # noqa: PLR0917 - called from one place
        self,
        model: str,
        messages: Sequence[dict[str, str]],
        mode: str,
        schema: dict[str, Any] | None,
        schema_name: str,
        max_tokens: int,
    ) -> dict[str, Any]:
        """The chat-completions request body for `model`."""
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
            # Only providers that neither keep nor train on what they are sent: a call's
            # transcript must not stay with a third party by default.
            body["provider"] = {"data_collection": "deny"}
        if schema is not None and mode == "json_schema":
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": schema_name, "strict": True, "schema": schema},
            }
        elif schema is not None and mode == "json_object":
            body["response_format"] = {"type": "json_object", "schema": schema}
        return body

    async def send(  # noqa: PLR0917 - called from one place
        self,
        model: str,
        messages: Sequence[dict[str, str]],
        mode: str,
        schema: dict[str, Any] | None,
        schema_name: str,
        max_tokens: int,
        on_text: TextSink | None = None,
    ) -> tuple[str, str, Usage]:
        """One request: the reply's text, the model that answered and the usage; raises
        LLMError (classified, retryable or not) for every way it can fail. `on_text` hears
        the text as it streams in."""
        body = self.body(model, messages, mode, schema, schema_name, max_tokens)
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
                return await _from_stream(resp, model, on_text)
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


async def _from_stream(
    resp: httpx.Response, model: str, on_text: TextSink | None = None
) -> tuple[str, str, Usage]:
    text = ""
    usage = Usage(requests=1)
    used_model = model
    finished = False
    # httpx-sse parses the event stream (comments such as `: OPENROUTER PROCESSING`, multi-line
    # `data:` fields, CRLF) so no SSE framing is hand-written here.
    async for event in _events(resp):
        data = event.data
        # After [DONE], read on to the end of the body so the connection can be reused.
        if finished or not data:
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
            if isinstance(content, str) and content and len(text) < MAX_RESPONSE_CHARS:
                text = (text + content)[:MAX_RESPONSE_CHARS]
                if on_text is not None:
                    await on_text(text)
        if chunk.get("usage"):
            usage = _usage(chunk["usage"])
    return text, used_model, usage


async def _events(resp: httpx.Response) -> AsyncIterator[ServerSentEvent]:
    """The stream's server-sent events; a malformed stream is a retryable protocol error."""
    try:
        async for event in EventSource(resp).aiter_sse():
            yield event
    except SSEError as exc:
        raise LLMError(f"LLM stream is not SSE: {exc}", Failure.PROTOCOL, retryable=True) from None


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
