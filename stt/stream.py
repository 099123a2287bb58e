"""One speaker's live audio -> partial and final events (the latency-critical logic).

Pipeline per stream: PCM16 -> 16 kHz float (coach.resample) -> Silero VAD per 32 ms -> Segmenter
-> decodes.

Same audio, same words: where utterances end and what their finals say is a function of the
audio and the settings only, never of how fast a decode came back (a loaded machine must not
change the transcript):
- Every pause of `tail_s` silence starts a *speculative* final decode (beam 5) of exactly the
  audio and prompt the final of an utterance ending at that pause would decode:
  [start, speech end + tail_s), the same prompt.
- At `early_hangover_s` of silence the stream decides whether the utterance ends there: it ends
  if that decode's text reads as finished (a sentence end, or no trailing comma, article,
  preposition or conjunction: see endpoint.py). If the decode is not back yet, the stream
  *holds*: later VAD frames wait in `_frames` (the audio is buffered) and reach the segmenter
  after the decision, so speech resuming meanwhile cannot change it. Otherwise the speaker is
  mid-sentence and the utterance goes on to the long hangover, so sentences are not split at
  breathing pauses (that split is what costs WER).
- A final decodes [start, speech end + tail_s); a speculative decode of the same audio and
  prompt is the final (awaited if still running) instead of decoding again. Speculation only
  makes finals early; it never chooses a split. Partials (greedy, newest audio) are only shown.
- Turns longer than `split_after_s` end at their next short pause: decode time grows with the
  utterance, so a 20 s monologue is finalised in pieces instead of in one slow decode.
- Held frames are bounded (`HOLD_LIMIT_S`): past that, `feed` waits for the decision, which
  stops the socket being read and pushes back on the sender (as a full final queue does);
  decisions are never taken early, so load never changes a split.

Failures: every task of a stream (decode results, final resolution, the finals emitter) runs in
the stream's `coach.tasks.TaskSet`, so an exception is logged with the call id and counted in
`coach_task_failures_total{service="stt",task=...}`. A stream whose task failed cannot be
trusted to emit its finals in order any more: it is marked failed, and the next `feed` or
`finish` raises `StreamFailed`; the app then closes the socket with 1011 (CloseCode.INTERNAL)
and the reason, and the client (ari) reconnects with the offset it has sent so far.
"""

from __future__ import annotations

import asyncio
import collections
import enum
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from prometheus_client import CollectorRegistry

from coach.redact import CallContexts, RedactConfig, RedactionSession
from coach.resample import StreamResampler
from coach.tasks import TaskFailure, TaskSet, first_completed
from stt.buffer import AudioBuffer
from stt.endpoint import looks_finished
from stt.engine import SAMPLE_RATE, Hypothesis, WhisperEngine
from stt.language import CallLanguages
from stt.repair import compression_ratio, copies, is_hallucination
from stt.scheduler import DecodeScheduler, Job, JobKind
from stt.segmenter import SegEvent, SegKind, Segmenter, SegmenterConfig, SegState
from stt.stabilize import Stabilizer
from stt.vad import FRAME, StreamingVad

log = logging.getLogger("stt.stream")

HOLD_LIMIT_S = 4.0
"""Audio that may wait for an end decision (module docstring) before `feed` waits too."""
MIN_WORDS_PER_S = 0.6
"""With greedy finals, fewer words than this per second of speech means Whisper stopped early."""

Emit = Callable[[dict[str, Any]], Awaitable[None]]
FinalObserver = Callable[[float, str], None]
"""Told (seconds from the end of speech arriving to the final being emitted, how it ended)."""


class StreamFailed(Exception):
    """A task of the stream failed; the stream stops (see the module docstring)."""

    def __init__(self, failure: TaskFailure) -> None:
        super().__init__(
            f"transcription failed ({failure.kind}: {type(failure.error).__name__}); "
            "reconnect with the offset sent so far"
        )
        self.failure = failure


class StreamState(enum.Enum):
    """Lifecycle of one stream; transitions only go forward."""

    OPEN = "open"
    ENDING = "ending"
    CLOSED = "closed"


@dataclass(frozen=True)
class StreamConfig:
    """Tunables of the streaming logic (seconds unless named otherwise)."""

    segmenter: SegmenterConfig = field(default_factory=SegmenterConfig)
    early_hangover_s: float = 0.3
    """Silence after which a sentence-complete speculative decode is emitted as the final."""
    partials: bool = True
    """Emit partials at all."""
    redact: RedactConfig = field(default_factory=RedactConfig)
    """What is masked in every partial and final before it leaves the stream (coach/redact.py)."""
    partial_interval_s: float = 0.4
    """Cadence of partial decodes while someone talks."""
    first_partial_s: float = 0.3
    """Speech needed before the first partial."""
    preroll_s: float = 0.4
    """Audio kept before the detected speech onset (VAD reacts a little late). Tuned on the
    Spanish tuning half (bench.stt.replay): errors 122 at 0.2 s, 121 at 0.3, 114 at 0.35, 113
    at 0.4, 117 at 0.45, 112 at 0.5, 122 at 0.7 (of 562 words); 0.4 is mid-plateau."""
    tail_s: float = 0.032
    """Silence kept after the detected end of speech in the final decode; a speculative decode
    starts once this much silence has arrived, so it is paid in every final's latency. Played
    as the bench plays it (bench.stt.replay --timeline), errors on the tuning halves at 0.15 /
    0.1 / 0.064 / 0.032 s: es 118 / 114 / 113 / 114 of 562 words, en 23 / - / 27 / 26 of 509:
    within the decoder's noise (the changed prompts differ by a word either way), while the
    real-time final latency p50 fell 0.507 -> 0.429 -> 0.393 s (20 es prompts, 0.15 / 0.064 /
    0.032). One 32 ms frame is the segmenter's own pause report (speculate_after_s)."""
    min_utterance_s: float = 0.2
    """Utterances with less speech than this are dropped (clicks, coughs, tones). Not 0.25: a
    lowered male voice's "Sí." lasts 0.224 s by the VAD (tests/stt/test_short_answers.py)."""
    prompt_context: bool = False
    """Prompt a final decode with the speaker's previous final when it ended just before."""
    context_gap_s: float = 1.0
    """Only a previous final that ended at most this long before the utterance began is used:
    it is then most likely the same sentence, split at a pause."""
    context_tokens: int = 64
    """How many previous tokens to prompt with."""
    speculate: bool = True
    """Decode speculatively during pauses and end finished sentences at the early hangover
    (off = plain hangover then decode, for comparison)."""
    words: bool = True
    """Finals carry word timings and calibrated word confidences (one more decoder pass)."""
    max_no_speech_prob: float = 0.9
    """A decode with no-speech probability above this *and* log-probability below -1 is dropped
    (the VAD already vouched for speech, so only clear non-speech is dropped here)."""


@dataclass(frozen=True)
class StreamParams:
    """Who is talking: from the WebSocket query."""

    call_id: str
    speaker: str
    rate: int
    lang: str | None = None
    offset: float = 0.0
    """Seconds of this speaker's call audio sent before this stream (a reconnect)."""


@dataclass(eq=False)
class _Utterance:
    uid: str
    start: int  # absolute 16 kHz sample where its audio starts (pre-roll included)
    speech_start: int
    end: int | None = None  # absolute sample where speech ended
    resumes: int = 0
    stabilizer: Stabilizer = field(default_factory=Stabilizer)
    partial_sent: str = ""
    partials_sent: int = 0
    spec: Job[tuple[Hypothesis, int] | None] | None = None
    spec_key: tuple[int, int, tuple[int, ...]] | None = None  # (start, end, prompt) it decodes
    prev: _Utterance | None = None  # the speaker's previous utterance (prompt context)
    out: asyncio.Future[dict[str, Any] | None] | None = None  # its final event, once ended
    final_hyp: Hypothesis | None = None  # the usable decode its final carries
    partial_inflight: bool = False
    last_partial_at: int = 0
    finalised: bool = False
    ended_by: str = ""  # early (sentence complete), pause (hangover or split), cut, flush
    end_seen_at: float = 0.0  # monotonic time the audio at `end` arrived


class SttStream:
    """Turns one speaker's audio into events; `feed` audio, then `finish` or `abort`."""

    def __init__(
        self,
        params: StreamParams,
        engine: WhisperEngine,
        scheduler: DecodeScheduler,
        emit: Emit,
        config: StreamConfig | None = None,
        *,
        on_final: FinalObserver | None = None,
        registry: CollectorRegistry | None = None,
        languages: CallLanguages | None = None,
        redaction: CallContexts | None = None,
    ) -> None:
        self.params = params
        # With no lang given (auto): the call's language, detected once for both legs.
        self._languages = languages
        self.engine = engine
        self.scheduler = scheduler
        self.config = config or StreamConfig()
        self.state = StreamState.OPEN
        self.id = uuid.uuid4().hex[:8]
        self._emit = emit
        self._on_final = on_final
        # (absolute sample one past a chunk, monotonic arrival time): final latency is measured
        # from when the end of speech arrived. Bounded: ~40 s of 20 ms chunks.
        self._arrivals: collections.deque[tuple[int, float]] = collections.deque(maxlen=2048)
        self._vad = StreamingVad()
        self._seg = Segmenter(self.config.segmenter)
        self._resampler = StreamResampler(params.rate, SAMPLE_RATE)
        self._audio = AudioBuffer()
        self._utt: _Utterance | None = None
        self._prev: _Utterance | None = None  # the last utterance that ended
        self._count = 0
        # VAD probabilities not yet given to the segmenter: only while an end decision waits for
        # its decode (module docstring). Bounded by HOLD_LIMIT_S.
        self._frames: collections.deque[float] = collections.deque()
        self._decision: Job[tuple[Hypothesis, int] | None] | None = None
        self._advancing = asyncio.Lock()
        tail = int(self.config.tail_s * SAMPLE_RATE)
        # The speculative decode needs tail_s of silence after the speech; the decision needs it.
        self._spec_frames = max(1, -(-tail // FRAME))
        self._early_frames = max(
            self._spec_frames, round(self.config.early_hangover_s * SAMPLE_RATE / FRAME)
        )
        self._hold_limit = int(HOLD_LIMIT_S * SAMPLE_RATE / FRAME)
        # Finals are emitted in utterance order by one task; each entry resolves to a final event
        # (or None when the utterance turned out to be noise). Bounded by the scheduler's
        # max_finals back-pressure: a stream cannot run far ahead of its decodes.
        self._finals: asyncio.Queue[
            tuple[asyncio.Future[dict[str, Any] | None], _Utterance] | None
        ] = asyncio.Queue()
        # Raw text never leaves the stream: every event passes this one session, finals in order.
        # The call's other leg shares what its finals say: the agent's "¿me dice la tarjeta?"
        # primes the customer's stream, whose answer may be bare numbers.
        self._redactor = RedactionSession(
            self.config.redact, call=redaction.get(params.call_id) if redaction else None
        )
        self.failure: TaskFailure | None = None
        """The first task failure, if any: the stream then stops."""
        self._failed = asyncio.Event()
        self._tasks = TaskSet("stt", registry=registry, on_failure=self._task_failed)
        self._emitter = self._tasks.spawn(
            self._emit_finals(), "finals-emitter", call_id=params.call_id
        )
        self.finals_emitted = 0

    # -- input -----------------------------------------------------------------------------

    async def feed(self, pcm: bytes) -> None:
        """Consume PCM16 LE mono at the stream's rate (even byte count)."""
        self._check()
        if self.state is not StreamState.OPEN:
            return
        x = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
        await self._push(self._resampler(x))

    async def _push(self, x: npt.NDArray[np.float32]) -> None:
        """Run 16 kHz samples through buffer, VAD, segmenter and decodes."""
        if x.size == 0:
            return  # the resampler holds a few ms back at first
        self._audio.append(x)
        self._arrivals.append((self._audio.end, time.monotonic()))
        # Frame k of the VAD covers absolute samples [k*FRAME, (k+1)*FRAME).
        self._frames.extend(float(p) for p in self._vad(x))
        await self._advance()
        while self._decision is not None and len(self._frames) > self._hold_limit:
            await asyncio.wait([self._decision.future])
            await self._advance()
        await self._maybe_partial()
        if self._utt is None and not self._frames:
            # Nothing to keep but the pre-roll of an utterance that may start with the frames
            # seen so far (relative to the segmenter, not to the chunk: the same audio in other
            # chunk sizes keeps the same samples).
            self._audio.trim_before(
                (self._seg.frame - self._seg.onset_frames) * FRAME
                - int(self.config.preroll_s * SAMPLE_RATE)
            )

    async def _advance(self) -> None:
        """Give waiting VAD frames to the segmenter, holding at an undecided early end."""
        async with self._advancing:
            while self._frames:
                if not await self._decided():
                    return
                for ev in self._seg.push(self._frames.popleft()):
                    await self._on_segment(ev)
                await self._on_frame()

    async def _on_frame(self) -> None:
        """After each frame: speculate and decide at fixed silence lengths of a pause."""
        utt = self._utt
        if utt is None or not self.config.speculate or self._seg.state is not SegState.TRAILING:
            return
        silent = self._seg.silence_frames
        if silent == self._spec_frames:
            await self._speculate(utt)
        if silent == self._early_frames and utt.spec is not None:
            self._decision = utt.spec

    async def _decided(self) -> bool:
        """Whether frames may flow: no decision waits, or it was taken now."""
        job = self._decision
        if job is None:
            return True
        utt = self._utt
        if not job.future.done():
            return False
        self._decision = None
        if job.future.cancelled() or job.future.exception() is not None:
            return True  # a failed decode fails the stream (its decode-result task)
        result = job.future.result()
        if utt is not None and result is not None and looks_finished(result[0].text):
            ev = self._seg.end_now()
            if ev is not None:
                await self._finalise(utt, ev.frame * FRAME, "early")
        return True

    async def finish(self) -> None:
        """Flush the last utterance, emit every pending final, and close."""
        self._check()
        if self.state is not StreamState.OPEN:
            return
        # The resampler's last few ms, then the utterance ends where the audio does.
        await self._push(self._resampler.flush())
        while self._decision is not None:
            await asyncio.wait([self._decision.future])
            await self._advance()
        self.state = StreamState.ENDING
        ev = self._seg.end_now()
        if ev is not None and self._utt is not None:
            await self._finalise(self._utt, ev.frame * FRAME, "flush")
        await self._finals.put(None)
        # The emitter ends after the last final, unless a task fails first.
        await first_completed(self._emitter, self._failed.wait())
        self._check()
        self.state = StreamState.CLOSED

    async def idle(self) -> None:
        """Wait until no decode result is being handled (the emitter aside): tests pace on it."""
        while pending := [t for t in self._tasks if t is not self._emitter]:
            await asyncio.wait(pending)

    def _task_failed(self, failure: TaskFailure) -> None:
        if self.failure is None:
            self.failure = failure
            log.error(
                "stream stops: its %s task failed",
                failure.kind,
                extra={"callId": self.params.call_id, "stream": self.id, "task": failure.kind},
            )
        self._failed.set()

    def _check(self) -> None:
        if self.failure is not None:
            raise StreamFailed(self.failure)

    async def abort(self) -> None:
        """Stop at once (client gone): pending decodes are cancelled."""
        if self.state is StreamState.CLOSED:
            return
        self.state = StreamState.CLOSED
        self.scheduler.drop_stream(self.id)
        if self._utt is not None and self._utt.spec is not None:
            self._utt.spec.cancel()
        await self._tasks.close()

    # -- segmentation ----------------------------------------------------------------------

    def _time(self, sample: int) -> float:
        return round(self.params.offset + sample / SAMPLE_RATE, 3)

    async def _on_segment(self, ev: SegEvent) -> None:
        if ev.kind is SegKind.START:
            self._count += 1
            speech_start = ev.frame * FRAME
            start = max(
                0, self._audio.start, speech_start - int(self.config.preroll_s * SAMPLE_RATE)
            )
            self._utt = _Utterance(
                f"{self.params.speaker}-{self.id}-{self._count}",
                start,
                speech_start,
                prev=self._prev,
            )
        elif ev.kind is SegKind.RESUME and self._utt is not None:
            self._utt.resumes += 1
            spec = self._utt.spec
            # A speculative decode already running is kept: its result becomes a partial.
            if spec is not None and not spec.future.done() and spec.started is None:
                spec.cancel()
        elif ev.kind is SegKind.END and self._utt is not None:
            # After a hard cut at max_s the segmenter is already in the next utterance.
            how = "pause" if self._seg.state is SegState.SILENCE else "cut"
            await self._finalise(self._utt, ev.frame * FRAME, how)

    # -- decoding --------------------------------------------------------------------------

    def _final_end(self, speech_end: int) -> int:
        """Where a final's audio ends: tail_s after the speech, within the frames the VAD saw
        (not the chunk that happened to arrive: the same audio gives the same end)."""
        return min(speech_end + int(self.config.tail_s * SAMPLE_RATE), self._seg.frame * FRAME)

    async def _prompt(self, utt: _Utterance) -> tuple[tuple[int, ...], str]:
        """The previous final's tokens, when prompting is on and it ended just before.

        Awaits that final if it is still decoding: the prompt, like the audio, must not depend
        on which decode came back first."""
        prev = utt.prev
        if not self.config.prompt_context or prev is None or prev.end is None:
            return (), ""
        if utt.speech_start - prev.end > self.config.context_gap_s * SAMPLE_RATE:
            return (), ""
        if prev.out is not None:
            await asyncio.wait([prev.out])
        hyp = prev.final_hyp
        if hyp is None:
            return (), ""
        return hyp.tokens[-self.config.context_tokens :], hyp.text

    def _decode_job(
        self,
        utt: _Utterance,
        end: int | None,
        final: bool,
        prompting: tuple[tuple[int, ...], str] = ((), ""),
    ) -> Callable[[], tuple[Hypothesis, int] | None]:
        # Partials decode without the speaker's previous words: on a half-heard utterance the
        # decoder tends to copy the prompt instead of listening.
        prompt, prompt_text = prompting if final else ((), "")
        # Finals snapshot their audio now (the buffer is trimmed once the utterance is over);
        # a partial snapshots when it runs, so one that waited in the queue decodes newer audio.
        fixed = self._audio.slice(utt.start, end) if end is not None else None
        speech_s = ((end or 0) - utt.speech_start) / SAMPLE_RATE

        def run() -> tuple[Hypothesis, int] | None:
            if fixed is not None:
                audio = fixed
            elif utt.finalised:
                return None  # the utterance ended while this partial waited
            else:
                audio = self._audio.slice(utt.start)
            if audio.size < SAMPLE_RATE // 10:
                return None
            lang = self._lang(audio)
            if not final:
                # Partials continue from the words already shown (forced prefix): cheaper on long
                # utterances, stable by construction, and it stops Whisper from collapsing a
                # mid-word cut into a single token.
                prefix = " ".join(utt.stabilizer.committed)
                hyp = self.engine.decode(audio, final=False, lang=lang, prefix=prefix)
                return hyp, utt.start + audio.size
            timed = self.config.words
            hyp = self.engine.decode(
                audio, prompt_tokens=prompt, final=True, lang=lang, words=timed
            )
            if prompt and copies(prompt_text, hyp.text):
                # The decoder repeated the prompt instead of listening: decode without it.
                hyp = self.engine.decode(audio, final=True, lang=lang, words=timed)
            words = len(hyp.text.split())
            if words < speech_s * MIN_WORDS_PER_S and self.engine.config.beam_size_final < 5:
                # Whisper sometimes stops after a token or two on long audio (greedy). Retry with
                # beam search and keep the longer reading (judged on the audio alone, not on the
                # partials shown so far: those depend on timing).
                retry = self.engine.decode(
                    audio, prompt_tokens=prompt, final=True, lang=lang, beam_size=5, words=timed
                )
                if len(retry.text.split()) > len(hyp.text.split()):
                    hyp = retry
            return hyp, utt.start + audio.size

        return run

    def _lang(self, audio: npt.NDArray[np.float32]) -> str | None:
        """The language to decode in (on a decode thread): given, or the call's detected one."""
        if self.params.lang is not None or self._languages is None:
            return self.params.lang
        return self._languages.resolve(
            self.params.call_id, audio.size / SAMPLE_RATE, lambda: self.engine.detect(audio)
        )

    async def _speculate(self, utt: _Utterance) -> None:
        """Decode what the final would be if the utterance ended at this pause."""
        if utt.spec is not None and not utt.spec.future.done():
            utt.spec.cancel()
        end = self._final_end(self._seg.silence_start * FRAME)
        prompting = await self._prompt(utt)
        job = await self.scheduler.submit(
            JobKind.SPECULATIVE, self.id, self._decode_job(utt, end, True, prompting)
        )
        utt.spec = job
        utt.spec_key = (utt.start, end, prompting[0])
        self._track(self._after_decode(utt, job), "decode-result")

    async def _maybe_partial(self) -> None:
        utt = self._utt
        cfg = self.config
        if not cfg.partials or utt is None or utt.partial_inflight or utt.finalised:
            return
        if self._seg.state is not SegState.SPEECH:
            return
        now = self._audio.end
        if now - utt.speech_start < cfg.first_partial_s * SAMPLE_RATE:
            return
        if utt.last_partial_at and now - utt.last_partial_at < cfg.partial_interval_s * SAMPLE_RATE:
            return
        utt.partial_inflight = True
        utt.last_partial_at = now
        job = await self.scheduler.submit(
            JobKind.PARTIAL, self.id, self._decode_job(utt, None, False)
        )
        self._track(self._after_decode(utt, job, partial=True), "decode-result")

    async def _after_decode(self, utt: _Utterance, job: Job[Any], partial: bool = False) -> None:
        try:
            result = await job.future
        except asyncio.CancelledError:
            return
        finally:
            if partial:
                utt.partial_inflight = False
        if result is not None and not utt.finalised and self.state is not StreamState.CLOSED:
            hyp, audio_end = result
            await self._send_partial(utt, hyp, audio_end)
        if job is self._decision:
            # The stream holds for this decode: decide and let the held frames through.
            await self._advance()

    async def _send_partial(self, utt: _Utterance, hyp: Hypothesis, audio_end: int) -> None:
        if not self.config.partials or not self._usable(hyp):
            return
        text = utt.stabilizer.update(hyp.text)
        if not text:
            return
        # Sent even when the text did not change: `end` advancing tells listeners it is current.
        utt.partial_sent = text
        utt.partials_sent += 1
        await self._emit(
            self._redactor.partial(
                {
                    "type": "partial",
                    "callId": self.params.call_id,
                    "speaker": self.params.speaker,
                    "utteranceId": utt.uid,
                    "text": text,
                    "start": self._time(utt.speech_start),
                    "end": self._time(audio_end),
                }
            )
        )

    def _usable(self, hyp: Hypothesis) -> bool:
        if is_hallucination(hyp.text) or compression_ratio(hyp.text) > 2.4:
            return False
        return not (hyp.no_speech_prob > self.config.max_no_speech_prob and hyp.avg_logprob < -1.0)

    def _arrived_at(self, sample: int) -> float:
        """When the chunk holding `sample` arrived (the recent end is searched first)."""
        at = time.monotonic()
        for end, t in reversed(self._arrivals):
            if end < sample:
                break
            at = t
        return at

    async def _finalise(self, utt: _Utterance, speech_end: int, how: str) -> None:
        if utt.finalised:
            return
        utt.finalised = True
        utt.end = speech_end
        utt.ended_by = how
        utt.end_seen_at = self._arrived_at(speech_end)
        if self._utt is utt:
            self._utt = None
        loop = asyncio.get_running_loop()
        out: asyncio.Future[dict[str, Any] | None] = loop.create_future()
        utt.out = out
        self._prev = utt
        await self._finals.put((out, utt))
        speech_s = (speech_end - utt.speech_start) / SAMPLE_RATE
        if speech_s < self.config.min_utterance_s:
            out.set_result(self._final_event(utt, None))
            return
        if how == "flush":
            end = min(self._audio.end, speech_end + int(self.config.tail_s * SAMPLE_RATE))
        else:
            end = self._final_end(speech_end)
        prompting = await self._prompt(utt)
        spec = utt.spec
        if (
            spec is not None
            and utt.spec_key == (utt.start, end, prompting[0])
            and not spec.future.cancelled()
        ):
            # The speculative decode read exactly this audio with this prompt: it is the final.
            self._track(self._resolve(out, utt, spec), "final-resolve")
            return
        job = await self.scheduler.submit(
            JobKind.FINAL, self.id, self._decode_job(utt, end, True, prompting)
        )
        self._track(self._resolve(out, utt, job), "final-resolve")

    async def _resolve(
        self, out: asyncio.Future[dict[str, Any] | None], utt: _Utterance, job: Job[Any]
    ) -> None:
        try:
            result = await job.future
            hyp = result[0] if result is not None else None
            event = self._final_event(utt, hyp)
        except asyncio.CancelledError:
            if not out.done():
                out.cancel()
            raise
        except Exception as exc:
            # The emitter skips this utterance; the task set logs and counts the failure and
            # the stream stops (module docstring).
            if not out.done():
                out.set_exception(exc)
            raise
        if not out.done():
            out.set_result(event)

    def _final_event(self, utt: _Utterance, hyp: Hypothesis | None) -> dict[str, Any] | None:
        usable = hyp is not None and self._usable(hyp)
        if hyp is not None and not usable:
            log.info(
                "decode rejected as non-speech",
                extra={
                    "callId": self.params.call_id,
                    "chars": len(hyp.text),  # never the text: it is not redacted yet
                    "noSpeech": round(hyp.no_speech_prob, 3),
                    "logprob": round(hyp.avg_logprob, 3),
                    "utteranceId": utt.uid,
                },
            )
        if not usable and utt.partials_sent == 0:
            return None  # noise: nothing was shown, nothing to replace
        assert utt.end is not None
        text = hyp.text if hyp is not None and usable else ""
        if hyp is not None and usable:
            utt.final_hyp = hyp
        return {
            "type": "final",
            "callId": self.params.call_id,
            "speaker": self.params.speaker,
            "utteranceId": utt.uid,
            "text": text,
            "start": self._time(utt.speech_start),
            "end": self._time(max(utt.end, utt.speech_start)),
            "confidence": round(hyp.confidence, 3) if hyp is not None and usable else 0.0,
            "lang": hyp.lang if hyp is not None else (self.params.lang or "es"),
            **(
                {"words": self._words(utt, hyp)} if hyp is not None and usable and hyp.words else {}
            ),
        }

    def _words(self, utt: _Utterance, hyp: Hypothesis) -> list[dict[str, Any]]:
        """The decode's words with times from the call's start (its audio began at utt.start),
        kept within the speech the VAD heard (the aligner may stretch into the pre-roll)."""
        base = self.params.offset + utt.start / SAMPLE_RATE
        lo = self._time(utt.speech_start)
        out = []
        for w in hyp.words:
            start = max(lo, round(base + w["start"], 3))
            out.append({**w, "start": start, "end": max(start, round(base + w["end"], 3))})
        return out

    async def _emit_finals(self) -> None:
        while True:
            item = await self._finals.get()
            if item is None:
                return
            fut, utt = item
            try:
                event = await fut
            except asyncio.CancelledError:
                if self.state is StreamState.CLOSED:
                    raise
                continue
            except Exception:  # noqa: BLE001 - _resolve's task failed: reported by the task set
                continue
            if event is not None:
                self.finals_emitted += 1
                await self._emit(self._redactor.final(event))
                lag = time.monotonic() - utt.end_seen_at
                if self._on_final is not None:
                    self._on_final(lag, utt.ended_by)
                log.debug(
                    "final emitted",
                    extra={
                        "callId": self.params.call_id,
                        "utteranceId": utt.uid,
                        "endedBy": utt.ended_by,
                        "lagS": round(lag, 3),
                    },
                )

    def _track(self, coro: Coroutine[Any, Any, None], kind: str) -> None:
        self._tasks.spawn(coro, kind, call_id=self.params.call_id)
