"""Error types shared by the services: each says whether retrying can help."""

from __future__ import annotations


class CoachError(Exception):
    """Base error. `retryable` tells the one place that retries whether to try again."""

    retryable: bool = False

    def __init__(self, message: str, *, retryable: bool | None = None) -> None:
        super().__init__(message)
        if retryable is not None:
            self.retryable = retryable


class BusError(CoachError):
    """The bus refused or failed an operation."""


class BusUnavailable(BusError):
    """Redis cannot be reached right now (restart, network blip): retry later."""

    retryable = True
