"""What the retention and erasure job (`python -m retention`) asks of every place call data
lives: the plug-in interface, so each component that keeps something about a call (the bus's
Redis, the recordings directory, the call record's PostgreSQL tables) plugs its own store in.

A `Store` does two things, both idempotent (a repeated or interrupted run changes nothing more):
- `purge_before(cutoff_ms)`: remove what is older than the cutoff (ms since the epoch). The job
  passes `now - RETENTION_DAYS_AUDIO` to stores of kind `audio` and `now - RETENTION_DAYS_TEXT`
  to stores of kind `text`.
- `erase(request)`: remove everything about one call (a data subject's erasure request).
Each returns what it removed as `Removal`s; the job logs every one (callId, what, rows/bytes).

A store that knows which recordings belong to a call (the call's `call.ended.recording`, a
`recording` column) also implements `KnowsRecordings`: the job asks all of them first and
hands the file names to every store in `Erasure.recordings`, so the recordings store can
remove files whose names do not carry the call id.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

DataKind = Literal["audio", "text"]
"""Which retention period applies to a store: RETENTION_DAYS_AUDIO or RETENTION_DAYS_TEXT."""


@dataclass(frozen=True)
class Removal:
    """One thing a store removed: logged by the job, counted in its metrics."""

    store: str
    """The store's name (`redis`, `recordings`, `record`, ...)."""
    what: str
    """What was removed, in a few words (`call stream`, `recording`, `utterances`, ...)."""
    call_id: str | None = None
    """The call it belonged to, when the store knows (None: several calls at once)."""
    rows: int = 0
    """Entries, rows or files removed."""
    bytes: int | None = None
    """Bytes freed, when the store knows."""
    detail: str | None = None
    """E.g. the file name; never call content."""


@dataclass(frozen=True)
class Erasure:
    """One call to erase."""

    call_id: str
    recordings: frozenset[str] = field(default_factory=frozenset)
    """Base names of the call's recording files that some store knows of."""


@runtime_checkable
class Store(Protocol):
    """A place where call data lives (module docstring)."""

    @property
    def name(self) -> str:
        """Short name, in logs and metrics."""
        ...

    @property
    def kind(self) -> DataKind:
        """Which retention period applies."""
        ...

    async def purge_before(self, cutoff_ms: int) -> list[Removal]:
        """Remove everything older than `cutoff_ms` (ms since the epoch)."""
        ...

    async def erase(self, request: Erasure) -> list[Removal]:
        """Remove everything about `request.call_id`."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


@runtime_checkable
class KnowsRecordings(Protocol):
    """A store that can say which recording files belong to a call."""

    async def recordings(self, call_id: str) -> set[str]:
        """Base names of the call's recording files (empty when it knows none)."""
        ...
