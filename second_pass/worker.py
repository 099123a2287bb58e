"""The second pass's loop: `call.ended` from a consumer group in, the transcript of record out.

Two tracked tasks share a bounded queue (second_pass/queue.py, its policy written there):
- the reader takes the group's entries: `call.started` teaches it the call's language, a
  `call.ended` with a recording is marked pending in the record and queued; everything else
  (and a call already done) is acknowledged at once;
- the worker takes one call at a time: loads the recording, decodes it in a thread
  (second_pass/transcribe.py), masks it (second_pass/mask.py), stores it in one transaction
  (coach/record/record_write.py), and only then acknowledges its entries.

Invariants:
- Durable: a call is acknowledged after its transcript (or its failure) is committed. A crash
  or SIGKILL in between leaves the entry pending: the restarted pass (same consumer name)
  reads its pending entries first, another replica claims them after `claim_idle_ms`.
- Idempotent: a call whose transcript is done is skipped; `store` replaces a call's rows, so
  a pass repeated after a crash leaves one transcript.
- The live path first: the decoding runs in this low-priority process (service.py: nice,
  SCHED_IDLE, few threads), one call at a time.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from coach.backoff import BUS_READER, RECONNECT, Backoff
from coach.bus import Bus, BusEvent
from coach.errors import BusUnavailable
from coach.events import parse_id
from coach.group_reader import GroupReader
from coach.record import record_write
from coach.redact import RedactConfig
from second_pass import prom
from second_pass.audio import RecordingError, load, locate
from second_pass.mask import mask
from second_pass.queue import Job, PendingCalls
from second_pass.transcribe import Interrupted, Transcriber

log = logging.getLogger("second_pass")

CLAIM_INTERVAL_S = 30.0
"""How often entries abandoned by a dead replica are looked for."""
READ_COUNT = 100
"""Most entries read at once (fewer when the queue has fewer free slots)."""
LANGS_KEPT = 10_000
"""Calls whose call.started language is remembered until their call.ended (oldest first out)."""


@dataclass(frozen=True)
class PassConfig:
    """What the loop needs besides the bus, the database and the model."""

    group: str = "second_pass"
    consumer: str = "second_pass"
    queue_max: int = 16
    block_ms: int = 1000
    claim_idle_ms: int = 1_800_000
    lang: str | None = None
    recordings_dir: Path | None = None
    raw_rate: int = 8000
    redact: RedactConfig = field(default_factory=RedactConfig)


class SecondPass:
    """Reader and worker (module docstring); `run(stop)` until `stop` is set."""

    def __init__(
        self,
        bus: Bus,
        database_url: str,
        transcriber: Transcriber,
        config: PassConfig,
        *,
        backoff: Backoff = BUS_READER,
    ) -> None:
        self.bus = bus
        self.database_url = database_url
        self.transcriber = transcriber
        self.config = config
        self.backoff = backoff
        self.queue = PendingCalls(config.queue_max)
        self.interrupt = threading.Event()
        """Set at shutdown: the decoding in progress stops at its next segment."""
        self._conns: dict[str, psycopg.AsyncConnection[Any]] = {}
        """One connection per task ("reader", "worker"): a transaction is never shared."""
        self.db_up = False
        self.done = 0
        self.failed = 0
        self._langs: collections.OrderedDict[str, str] = collections.OrderedDict()
        self.reader = GroupReader(
            bus,
            config.group,
            config.consumer,
            count=READ_COUNT,
            block_ms=config.block_ms,
            claim_idle_ms=config.claim_idle_ms,
            claim_interval_s=CLAIM_INTERVAL_S,
        )

    async def start(self) -> None:
        """Create the group at the stream's start (a first run does the calls still there)."""
        await self.bus.ensure_group(self.config.group, start="0")
        with contextlib.suppress(psycopg.OperationalError):
            await self._connection("reader")

    async def wait_for_schema(self, stop: asyncio.Event) -> bool:
        """Wait (with backoff) until the record is reachable and has the v4 tables (the archive
        migrates it; compose and the native stack start this pass after it); False if `stop`
        was set first."""
        retry = RECONNECT.retry()
        while not stop.is_set():
            try:
                conn = await self._connection("reader")
                async with conn.cursor() as cur:
                    await cur.execute("SELECT to_regclass('record.record_transcripts')")
                    row = await cur.fetchone()
                if row and row[0]:
                    return True
                log.warning("the call record is not at schema v4 yet (the archive migrates it)")
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                await self._failed(exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), retry.next())
        return False

    async def close(self) -> None:
        """Close the database connections."""
        await self._drop_connection()

    # -- reader ---------------------------------------------------------------------------

    async def read_loop(self) -> None:
        """Read the group into the queue until cancelled; failures retried with backoff."""
        retry = self.backoff.retry()
        while True:
            try:
                await self.queue.wait_space()
                await self.read_once()
                retry.reset()
            except (BusUnavailable, psycopg.OperationalError, psycopg.InterfaceError) as exc:
                await self._failed(exc)
                self.reader.rewind()  # what was read and not acknowledged: again
                await asyncio.sleep(retry.next())

    async def read_once(self) -> int:
        """One read of at most the queue's free slots; returns how many entries it handled."""
        entries = await self.reader.read(min(READ_COUNT, max(1, self.queue.free())))
        acks: list[str] = []
        for ev in entries:
            if await self._route(ev):
                acks.append(ev.id)
        if acks:
            await self.bus.ack(self.config.group, acks)
        self._gauges()
        return len(entries)

    async def _route(self, ev: BusEvent) -> bool:
        """Handle one entry; True when it can be acknowledged now."""
        if ev.type == "call.started":
            lang = ev.data().get("lang")
            if isinstance(lang, str) and lang:
                self._langs[ev.call_id] = lang
                while len(self._langs) > LANGS_KEPT:
                    self._langs.popitem(last=False)
            return True
        if ev.type != "call.ended":
            return True
        recording = ev.data().get("recording")
        if not isinstance(recording, str) or not recording:
            prom.CALLS.labels("skipped").inc()
            log.info("call ended without a recording: no second pass", extra={"callId": ev.call_id})
            return True
        conn = await self._connection("reader")
        lang = self._langs.pop(ev.call_id, None) or await self._call_lang(conn, ev.call_id)
        if not await record_write.mark_pending(conn, ev.call_id, recording, lang):
            prom.CALLS.labels("skipped").inc()
            log.info("transcript of record already done", extra={"callId": ev.call_id})
            return True
        ms, _ = parse_id(ev.id)
        offer = self.queue.offer(Job(ev.call_id, recording, lang, [ev.id], ms))
        if offer == "full":  # read beyond the free slots: left pending, read again later
            self.reader.rewind()
            return False
        if offer == "queued":
            log.info("call queued for its second pass", extra={"callId": ev.call_id})
        return False

    async def _call_lang(self, conn: psycopg.AsyncConnection[Any], call_id: str) -> str | None:
        async with conn.cursor() as cur:
            await cur.execute("SELECT lang FROM record.calls WHERE call_id = %s", [call_id])
            row = await cur.fetchone()
        return row[0] if row and row[0] else self.config.lang

    # -- worker ---------------------------------------------------------------------------

    async def work_loop(self) -> None:
        """Transcribe queued calls one at a time until cancelled."""
        while True:
            job = await self.queue.take()
            try:
                await self.process(job)
            finally:
                self.queue.done(job)
                self._gauges()

    async def process(self, job: Job) -> bool:
        """Transcribe, mask, store, acknowledge one call; False if interrupted (left pending)."""
        extra = {"callId": job.call_id}
        try:
            path = locate(job.recording, self.config.recordings_dir)
            channels = await asyncio.to_thread(load, path, self.config.raw_rate)
            log.info("second pass started", extra={**extra, "lang": job.lang or "auto"})
            decoded = await asyncio.to_thread(
                self.transcriber.transcribe, channels, job.lang, self.interrupt
            )
        except Interrupted:
            log.info("second pass interrupted: the call stays pending", extra=extra)
            return False
        except RecordingError as exc:
            reason = str(exc)
        except Exception as exc:
            # A recording that breaks the decoder must not hold the queue for ever: it is
            # stored as failed, with why, and logged.
            log.exception("decoding failed", extra=extra)
            reason = f"decoding failed: {exc}"
        else:
            reason = ""
        if reason:
            await self._commit(
                job,
                lambda c: record_write.mark_failed(
                    c, job.call_id, self.transcriber.model_name, reason
                ),
            )
            self.failed += 1
            prom.CALLS.labels("failed").inc()
            log.warning("recording unusable: %s", reason, extra=extra)
            return True
        utterances = mask(decoded.utterances, self.config.redact)
        await self._commit(
            job,
            lambda c: record_write.store(
                c,
                job.call_id,
                utterances,
                model=self.transcriber.model_name,
                lang=decoded.lang,
                audio_s=decoded.audio_s,
                decode_s=decoded.decode_s,
            ),
        )
        self.done += 1
        prom.CALLS.labels("done").inc()
        prom.AUDIO_SECONDS.inc(decoded.audio_s)
        prom.DECODE_SECONDS.inc(decoded.decode_s)
        rtf = decoded.decode_s / decoded.audio_s if decoded.audio_s else 0.0
        prom.REAL_TIME_FACTOR.observe(rtf)
        log.info(
            "transcript of record stored",
            extra={
                **extra,
                "utterances": len(utterances),
                "audioSeconds": round(decoded.audio_s, 1),
                "realTimeFactor": round(rtf, 3),
                "lang": decoded.lang,
            },
        )
        return True

    async def _commit(self, job: Job, write: Any) -> None:
        """Run `write(conn)` then acknowledge the job's entries, retrying (with backoff) while
        the database or the bus is away: the decoding is never repeated for that."""
        retry = self.backoff.retry()
        written = False
        while True:
            try:
                if not written:
                    await write(await self._connection("worker"))
                    written = True
                await self.bus.ack(self.config.group, list(job.entry_ids))
                return
            except (BusUnavailable, psycopg.OperationalError, psycopg.InterfaceError) as exc:
                await self._failed(exc)
                await asyncio.sleep(retry.next())

    # -- shared ---------------------------------------------------------------------------

    async def _failed(self, exc: Exception) -> None:
        where = "bus" if isinstance(exc, BusUnavailable) else "database"
        prom.ERRORS.labels(where).inc()
        if where == "database":
            self.db_up = False
            await self._drop_connection()
        log.warning("%s unavailable, retrying", where, extra={"error": str(exc)})

    async def _connection(self, task: str) -> psycopg.AsyncConnection[Any]:
        conn = self._conns.get(task)
        if conn is None or conn.closed:
            conn = await psycopg.AsyncConnection.connect(self.database_url, autocommit=True)
            self._conns[task] = conn
            self.db_up = True
        return conn

    async def _drop_connection(self) -> None:
        conns, self._conns = list(self._conns.values()), {}
        for conn in conns:
            with contextlib.suppress(psycopg.Error):
                await conn.close()

    def _gauges(self) -> None:
        prom.QUEUE_DEPTH.set(len(self.queue))
        prom.QUEUE_LAG.set(self.queue.oldest_age_s())

    def health(self) -> dict[str, Any]:
        """What /health shows of the loop."""
        current = self.queue.current
        return {
            "database": "up" if self.db_up else "down",
            "model": self.transcriber.model_name,
            "queued": len(self.queue),
            "queueMax": self.queue.limit,
            "current": current.call_id if current else None,
            "lagSeconds": round(self.queue.oldest_age_s(), 1),
            "done": self.done,
            "failed": self.failed,
        }
