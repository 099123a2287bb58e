"""Benchmark of the ari component (see __main__)."""

from __future__ import annotations

import contextlib
from typing import Any

import httpx

from fakes.poll import until_async


async def health_after_teardown(http: httpx.AsyncClient, wait: float = 10.0) -> dict[str, Any]:
    """ari's /health once it counts no call (or as it is after `wait` s: leaks are reported)."""
    health: dict[str, Any] = (await http.get("/health")).json()

    async def no_calls() -> dict[str, Any] | None:
        body: dict[str, Any] = (await http.get("/health")).json()
        return body if body["calls"] == 0 else None

    with contextlib.suppress(TimeoutError):
        ended = await until_async(no_calls, wait, what="ari's calls ended", interval=0.1)
        health = ended or health
    return health
