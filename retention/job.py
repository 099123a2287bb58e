"""The two things the worker does with its stores: a retention sweep, and one call's erasure.

Every removal is logged as one JSON line (`callId`, `store`, `what`, `rows`, `bytes`, `reason`
= `retention` or `erasure`) and counted. A store that fails does not stop the others; the
sweep reports it and the next sweep tries again (every store's purge is idempotent).

An erasure first asks every store that knows recordings which files are the call's, then
erases the audio stores, then the text stores: if an audio store fails, the text is kept for
the retry, since it is what names the files.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from coach.retention import Erasure, KnowsRecordings, Removal, Store
from retention.metrics import RetentionMetrics

log = logging.getLogger("retention")


class ErasureFailed(Exception):
    """Some store could not erase the call; retrying can help (what was removed stays removed)."""


@dataclass
class SweepReport:
    """What one sweep did."""

    at_ms: int
    removed: list[Removal] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    """Store name -> error of the stores that failed."""


class Job:
    """Retention sweeps and erasures over `stores`."""

    def __init__(
        self,
        stores: Sequence[Store],
        *,
        audio_ms: int,
        text_ms: int,
        metrics: RetentionMetrics,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.stores = list(stores)
        self.audio_ms = audio_ms
        self.text_ms = text_ms
        self.metrics = metrics
        self.clock = clock
        self.last_sweep: SweepReport | None = None

    def cutoff_ms(self, store: Store, now_ms: int) -> int:
        """What is older than this goes, for `store`'s kind of data."""
        return now_ms - (self.audio_ms if store.kind == "audio" else self.text_ms)

    async def sweep(self) -> SweepReport:
        """Purge every store of what is past its retention period."""
        report = SweepReport(int(self.clock() * 1000))
        for store in self.stores:
            cutoff = self.cutoff_ms(store, report.at_ms)
            try:
                removed = await store.purge_before(cutoff)
            except Exception as exc:  # noqa: BLE001 - one store's failure must not stop the rest
                self._failed(store, exc, None)
                report.failed[store.name] = f"{type(exc).__name__}: {exc}"
                continue
            removed = [r for r in removed if r.rows or r.bytes]  # "0 rows" is no removal
            for removal in removed:
                self._record(removal, "retention")
            report.removed += removed
        self.metrics.sweeps.labels("failed" if report.failed else "ok").inc()
        if not report.failed:
            self.metrics.last_sweep.set(report.at_ms / 1000)
        log.info(
            "retention sweep done",
            extra={
                "removed": sum(r.rows for r in report.removed),
                "freedBytes": sum(r.bytes or 0 for r in report.removed),
                "failedStores": sorted(report.failed),
            },
        )
        self.last_sweep = report
        return report

    async def recordings_of(self, call_id: str) -> frozenset[str]:
        """Base names of the call's recordings, as far as any store knows."""
        names: set[str] = set()
        for store in self.stores:
            if isinstance(store, KnowsRecordings):
                try:
                    names |= await store.recordings(call_id)
                except Exception as exc:  # noqa: BLE001 - another store may know
                    self._failed(store, exc, call_id)
        return frozenset(names)

    async def erase(self, request: Erasure) -> list[Removal]:
        """Erase one call from every store; ErasureFailed if any store failed."""
        removed: list[Removal] = []
        failed: list[str] = []
        for kind in ("audio", "text"):
            if failed:
                break  # keep the text that names the recordings until they are gone
            for store in self.stores:
                if store.kind != kind:
                    continue
                try:
                    done = await store.erase(request)
                except Exception as exc:  # noqa: BLE001 - reported, and the request retried
                    self._failed(store, exc, request.call_id)
                    failed.append(f"{store.name}: {type(exc).__name__}: {exc}")
                    continue
                done = [r for r in done if r.rows or r.bytes]
                for removal in done:
                    self._record(removal, "erasure")
                removed += done
        if failed:
            raise ErasureFailed("; ".join(failed))
        return removed

    def _record(self, removal: Removal, reason: str) -> None:
        self.metrics.removed.labels(removal.store, removal.what, reason).inc(removal.rows)
        if removal.bytes:
            self.metrics.removed_bytes.labels(removal.store, reason).inc(removal.bytes)
        log.info(
            "removed %s",
            removal.what,
            extra={
                "callId": removal.call_id,
                "store": removal.store,
                "what": removal.what,
                "rows": removal.rows,
                "bytes": removal.bytes,
                "file": removal.detail,
                "reason": reason,
            },
        )

    def _failed(self, store: Store, exc: BaseException, call_id: str | None) -> None:
        self.metrics.store_errors.labels(store.name).inc()
        log.error(
            "store %s failed",
            store.name,
            exc_info=exc,
            extra={"callId": call_id, "store": store.name, "error": str(exc)},
        )
