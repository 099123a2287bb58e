"""A circuit breaker: after repeated failures, fail fast for a while, then let one probe through."""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import StrEnum


class BreakerState(StrEnum):
    """Closed: requests flow. Open: fail fast. Half-open: one probe decides."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Counts consecutive failures; opens at `threshold` for `cooldown_s`."""

    def __init__(
        self, threshold: int, cooldown_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.threshold = threshold
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._failures = 0
        self._opened_at = 0.0
        self._cooldown = cooldown_s
        self._probing = False
        self.state = BreakerState.CLOSED
        self.last_error = ""

    def allow(self) -> bool:
        """Whether a request may go now (in half-open state, only one probe at a time)."""
        if self.state is BreakerState.OPEN:
            if self._clock() - self._opened_at < self._cooldown:
                return False
            self.state = BreakerState.HALF_OPEN
            self._probing = False
        if self.state is BreakerState.HALF_OPEN:
            if self._probing:
                return False
            self._probing = True
        return True

    def success(self) -> None:
        """A request succeeded: close."""
        self._failures = 0
        self._probing = False
        self.state = BreakerState.CLOSED

    def failure(self, error: str, cooldown_s: float | None = None) -> None:
        """A request failed; `cooldown_s` opens at once for that long (e.g. a bad key)."""
        self.last_error = error
        self._failures += 1
        self._probing = False
        if (
            cooldown_s is not None
            or self._failures >= self.threshold
            or (self.state is BreakerState.HALF_OPEN)
        ):
            self.state = BreakerState.OPEN
            self._opened_at = self._clock()
            self._cooldown = self.cooldown_s if cooldown_s is None else cooldown_s

    def release(self) -> None:
        """A probe ended without a verdict (cancelled): let another probe through."""
        self._probing = False
