"""The one polling helper, for state that has no notification of its own (a double's lists, a
service's counters, a subprocess's health endpoint). Everything that can be awaited is awaited
instead; tests never sleep (tests/coach/test_guards.py checks that)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

INTERVAL = 0.02
"""Seconds between two looks."""


class _Deadline:
    """When to give up, and what to say then."""

    def __init__(self, wait: float, what: object) -> None:
        self.wait = wait
        self.what = what
        self.at = time.monotonic() + wait

    def done(self, value: object) -> bool:
        """True when `value` is truthy; raises TimeoutError once the wait is over."""
        if value:
            return True
        if time.monotonic() >= self.at:
            raise TimeoutError(f"not within {self.wait}s: {self.what}")
        return False


async def until(
    predicate: Callable[[], T], wait: float = 10.0, *, what: str = "", interval: float = INTERVAL
) -> T:
    """Return the first truthy `predicate()`, looking every `interval` s for at most `wait` s;
    raise TimeoutError (naming `what`) otherwise."""
    deadline = _Deadline(wait, what or predicate)
    while not deadline.done(value := predicate()):  # noqa: ASYNC110 - polled: no event exists
        await asyncio.sleep(interval)
    return value


async def until_async(
    probe: Callable[[], Awaitable[T]],
    wait: float = 10.0,
    *,
    what: str = "",
    interval: float = INTERVAL,
) -> T:
    """As `until`, for a probe that must be awaited (a Redis read, an HTTP request)."""
    deadline = _Deadline(wait, what or probe)
    while not deadline.done(value := await probe()):  # noqa: ASYNC110 - polled: no event exists
        await asyncio.sleep(interval)
    return value


def until_sync(
    predicate: Callable[[], T], wait: float = 10.0, *, what: str = "", interval: float = INTERVAL
) -> T:
    """As `until`, for synchronous code (subprocesses, a thread's state)."""
    deadline = _Deadline(wait, what or predicate)
    while not deadline.done(value := predicate()):
        time.sleep(interval)
    return value


async def pace(interval: float) -> None:
    """Wait between two sends of a sender that imitates a real-time source (RTP every 20 ms):
    pacing, not synchronisation."""
    await asyncio.sleep(interval)
