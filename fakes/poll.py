"""The one polling helper, for state that has no notification of its own (a double's lists, a
service's counters, a subprocess's health endpoint). Everything that can be awaited is awaited
instead; tests never sleep (tests/coach/test_tasks.py checks that)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

INTERVAL = 0.02
"""Seconds between two looks."""


async def until(predicate: Callable[[], T], wait: float = 10.0, *, what: str = "",
                interval: float = INTERVAL) -> T:
    """Return the first truthy `predicate()`, looking every `interval` s for at most `wait` s;
    raise TimeoutError (naming `what`) otherwise."""
    deadline = time.monotonic() + wait
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"not within {wait}s: {what or predicate!r}")
        await asyncio.sleep(interval)


async def until_async(probe: Callable[[], Awaitable[T]], wait: float = 10.0, *, what: str = "",
                      interval: float = INTERVAL) -> T:
    """As `until`, for a probe that must be awaited (a Redis read, an HTTP request)."""
    deadline = time.monotonic() + wait
    while True:
        value = await probe()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"not within {wait}s: {what or probe!r}")
        await asyncio.sleep(interval)


def until_sync(predicate: Callable[[], T], wait: float = 10.0, *, what: str = "",
               interval: float = INTERVAL) -> T:
    """As `until`, for synchronous code (subprocesses, a thread's state)."""
    deadline = time.monotonic() + wait
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"not within {wait}s: {what or predicate!r}")
        time.sleep(interval)


async def pace(interval: float) -> None:
    """Wait between two sends of a sender that imitates a real-time source (RTP every 20 ms):
    pacing, not synchronisation."""
    await asyncio.sleep(interval)
