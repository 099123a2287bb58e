"""The one retry-delay policy: exponential backoff with jitter, and the named policies.

Every reconnect and retry loop in every service takes its delays from a `Backoff` here, so the
numbers are written once and a test can shrink them all. A loop holds a `Retry` (its attempt
count): `next()` before each wait, `reset()` after a success. Jitter (±20 % by default) keeps
several replicas from reconnecting to a restarted Redis or Asterisk in lockstep.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Backoff:
    """Delays `initial * factor**n`, capped at `maximum`, each scaled by 1 ± `jitter`."""

    initial: float
    """First delay, seconds."""
    maximum: float
    """Longest delay, seconds (also the pace of a loop that keeps failing)."""
    factor: float = 2.0
    """Growth per failed attempt."""
    jitter: float = 0.2
    """Each delay is multiplied by a uniform factor in [1 - jitter, 1 + jitter]."""

    def __post_init__(self) -> None:
        if not 0 < self.initial <= self.maximum:
            raise ValueError("backoff needs 0 < initial <= maximum")
        if self.factor < 1 or not 0 <= self.jitter < 1:
            raise ValueError("backoff needs factor >= 1 and 0 <= jitter < 1")

    def delay(self, attempt: int) -> float:
        """The wait before retry number `attempt` (0 = the first retry)."""
        base = min(self.maximum, self.initial * self.factor ** min(attempt, 64))
        if self.jitter:
            base *= random.uniform(1 - self.jitter, 1 + self.jitter)
        return base

    def retry(self) -> Retry:
        """A fresh attempt counter on this policy."""
        return Retry(self)

    def scaled(self, factor: float) -> Backoff:
        """The same policy with every delay multiplied (tests make them short)."""
        return replace(self, initial=self.initial * factor, maximum=self.maximum * factor)

    def capped(self, maximum: float) -> Backoff:
        """The same policy with another ceiling (a setting such as ARI_BACKOFF_MAX)."""
        return replace(self, maximum=maximum, initial=min(self.initial, maximum))


class Retry:
    """One loop's position on a `Backoff`: `next()` on failure, `reset()` on success."""

    def __init__(self, policy: Backoff) -> None:
        self.policy = policy
        self.attempt = 0

    def next(self) -> float:
        """The delay to wait now; the following one grows."""
        delay = self.policy.delay(self.attempt)
        self.attempt += 1
        return delay

    def reset(self) -> None:
        """Back to the first (shortest) delay."""
        self.attempt = 0


BUS = Backoff(initial=0.1, maximum=5.0)
"""Redis commands and publishers while the bus is away."""
BUS_READER = Backoff(initial=0.05, maximum=2.0)
"""Stream readers (relay hub, orchestrator groups): they catch up from a cursor, so retry fast."""
RECONNECT = Backoff(initial=0.2, maximum=10.0)
"""Long-lived sockets to another component (ARI events, STT streams)."""
LLM = Backoff(initial=0.5, maximum=8.0)
"""Retries of one LLM request (the client also honours Retry-After and its deadline)."""
STORE = Backoff(initial=1.0, maximum=60.0)
"""Retention and erasure work against a store that failed (a database or disk that is away)."""
