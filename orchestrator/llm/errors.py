"""LLM errors: each says whether retrying can help; the client's retry loop is the only retrier."""

from __future__ import annotations

import email.utils
import time
from enum import StrEnum

from coach.errors import CoachError


class Failure(StrEnum):
    """Why a request failed (a Prometheus label and a /health word)."""

    AUTH = "auth"  # 401/403: bad key; fix the configuration
    CREDITS = "credits"  # 402: out of credits
    RATE_LIMIT = "rate_limit"  # 429
    SERVER = "server"  # 5xx
    BAD_REQUEST = "bad_request"  # other 4xx
    TIMEOUT = "timeout"  # connect/read timeout or overall deadline
    CONNECT = "connect"  # cannot reach the endpoint
    STREAM = "stream_error"  # an error chunk inside a 200 stream
    PROTOCOL = "protocol"  # not SSE / not JSON where JSON was due
    CIRCUIT_OPEN = "circuit_open"  # failing fast while the endpoint is unhealthy
    UNSUPPORTED = "unsupported"  # the model rejects structured output


class LLMError(CoachError):
    """A failed LLM request."""

    def __init__(
        self,
        message: str,
        failure: Failure,
        *,
        status: int | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, retryable=retryable)
        self.failure = failure
        self.status = status
        self.retry_after = retry_after


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def from_status(status: int, body: str, retry_after: str | None) -> LLMError:
    """The error for a non-200 response."""
    detail = body.strip().replace("\n", " ")[:300]
    if status in (401, 403):
        return LLMError(
            f"LLM endpoint refused the API key (HTTP {status}): check OPENROUTER_API_KEY. {detail}",
            Failure.AUTH,
            status=status,
        )
    if status == 402:
        return LLMError(
            f"LLM account out of credits (HTTP 402): top up or change the key. {detail}",
            Failure.CREDITS,
            status=status,
        )
    lowered = body.lower()
    if "response_format" in lowered and "json_schema" in lowered and status != 429:
        # The server refuses the structured-output format itself. llama-cpp-python says so with
        # a 500 ("Input should be 'text' or 'json_object'"), hence checked before 5xx.
        return LLMError(
            f"model rejects structured output: {detail}", Failure.UNSUPPORTED, status=status
        )
    if status == 429:
        return LLMError(
            f"LLM rate limited (HTTP 429). {detail}",
            Failure.RATE_LIMIT,
            status=status,
            retryable=True,
            retry_after=parse_retry_after(retry_after),
        )
    if status in (408, 409) or status >= 500:
        return LLMError(
            f"LLM server error (HTTP {status}). {detail}",
            Failure.SERVER,
            status=status,
            retryable=True,
            retry_after=parse_retry_after(retry_after),
        )
    return LLMError(
        f"LLM request refused (HTTP {status}). {detail}", Failure.BAD_REQUEST, status=status
    )
