"""Batching across streams: the decodes of jobs taken together run as one CTranslate2 call.

A scheduler worker that finds several jobs of one class waiting (finals, or partials of other
streams) takes up to `batch_max` of them as a *group* and runs each job's own code on a thread of
its own. The jobs stay opaque (a stream's job may detect the language, decode, retry with beam
search, re-decode an echo in the 30 s window); every `WhisperEngine.decode` they make meets the
others' at a `Rendezvous`: once every job still running waits in a decode, the waiting requests
are grouped by `DecodeRequest.batch_key` and each group runs as one batched encode + generate
(groups of other keys side by side, each on the thread of its first member).
Word alignment and the echo checks then run per job on that job's slice of the encoder output.

Same input, same output: on CTranslate2's CPU backend a window's encoder output, token ids,
scores and no-speech probability are byte-identical whether it is decoded alone or in a batch
(tests/stt/test_batch.py; 116 of 116 dev-prompt windows, greedy and beam 5), provided the
windows have the same number of frames (this engine cuts windows to the audio, so shorter ones
would have to be padded, which changes the text), the same beam and length cap, and
<|startoftranscript|> at the same position (CTranslate2 requires it). Requests that differ in
any of those run in separate calls. So batching never changes a transcript; it only changes
how many windows one call carries.

A lone job never waits for company: the scheduler groups only jobs already queued (or, with
`STT_BATCH_WAIT_MS`, waits that long for more), and a group of one runs exactly as without
batching.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

Req = TypeVar("Req", bound="Batchable")
Res = TypeVar("Res")
T = TypeVar("T")

_local = threading.local()


class Batchable(Protocol):
    """A decode request that knows which others it may share a call with."""

    @property
    def batch_key(self) -> Hashable:
        """Requests with equal keys may run in one call (module docstring)."""
        ...


@dataclass(eq=False)
class _Slot(Generic[Req, Res]):
    request: Req
    run: Callable[[Sequence[Req]], Sequence[Res]]
    done: bool = False
    result: Res | None = None
    error: BaseException | None = None
    lead: list[_Slot[Req, Res]] | None = None
    """Set when this slot's thread is to run the call of the group it heads."""


@dataclass(eq=False)
class Rendezvous(Generic[Req, Res]):
    """Where the decodes of one group's `members` jobs meet (one per thread); `observe` is
    told the size of every call made."""

    members: int
    observe: Callable[[int], None] | None = None
    _cond: threading.Condition = field(default_factory=threading.Condition)
    _waiting: list[_Slot[Req, Res]] = field(default_factory=list)

    def generate(self, request: Req, run: Callable[[Sequence[Req]], Sequence[Res]]) -> Res:
        """Decode `request` together with the other members' (blocks until its call ran);
        `run` decodes a list of requests with equal keys in one call."""
        slot: _Slot[Req, Res] = _Slot(request, run)
        with self._cond:
            self._waiting.append(slot)
            self._deal()
        while True:
            with self._cond:
                self._cond.wait_for(lambda: slot.done or slot.lead is not None)
                lead, slot.lead = slot.lead, None
            if lead is None:
                break
            self._run(lead)
        if slot.error is not None:
            raise slot.error
        return slot.result  # type: ignore[return-value]

    def leave(self) -> None:
        """A member's job returned: the others no longer wait for its decodes."""
        with self._cond:
            self.members -= 1
            self._deal()

    def _deal(self) -> None:
        # Lock held. When every running member waits, group the requests by key; the first
        # member of each group runs its call, so calls of other shapes run side by side (one
        # CTranslate2 replica each) instead of one after another.
        if not self._waiting or len(self._waiting) < self.members:
            return
        ready, self._waiting = self._waiting, []
        groups: dict[Hashable, list[_Slot[Req, Res]]] = {}
        for slot in ready:
            groups.setdefault(slot.request.batch_key, []).append(slot)
        for group in groups.values():
            group[0].lead = group
        self._cond.notify_all()

    def _run(self, group: list[_Slot[Req, Res]]) -> None:
        try:
            results = group[0].run([s.request for s in group])
            if self.observe is not None:
                self.observe(len(group))
            for s, r in zip(group, results, strict=True):
                s.result = r
        except Exception as exc:  # noqa: BLE001 - raised in each member's own decode
            for s in group:
                s.error = exc
        with self._cond:
            for s in group:
                s.done = True
            self._cond.notify_all()


def current() -> Rendezvous[Any, Any] | None:
    """The rendezvous of the group this thread's job belongs to (None: decode alone)."""
    rendezvous: Rendezvous[Any, Any] | None = getattr(_local, "rendezvous", None)
    return rendezvous


def member(rendezvous: Rendezvous[Any, Any], run: Callable[[], T]) -> Callable[[], T]:
    """`run` as a member of `rendezvous`: its decodes meet the others'; it leaves when done."""

    def joined() -> T:
        _local.rendezvous = rendezvous
        try:
            return run()
        finally:
            _local.rendezvous = None
            rendezvous.leave()

    return joined
