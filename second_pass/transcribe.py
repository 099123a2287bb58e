"""The second pass's decoding: faster-whisper over each speaker's whole recording, with the
full context a live stream cannot have.

Per channel, `WhisperModel.transcribe` in 30 s windows, each conditioned on the text before
it (`condition_on_previous_text`), beam search, word timestamps, and Silero VAD so silence
(the other speaker's turns, hold, pauses) is skipped rather than hallucinated over. Runs in a
worker thread; `stop` is looked at between segments, so a SIGTERM ends a long call's pass
within one segment's decoding (the call stays pending and is done again after the restart).
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from faster_whisper import WhisperModel

from second_pass.audio import RATE

WINDOW_S = 30
"""Whisper's own window: the longest context one decode sees."""


class Interrupted(Exception):
    """The pass was asked to stop before it finished (shutdown)."""


@dataclass(frozen=True)
class DecodeConfig:
    """How the recording is decoded (RECORD_* settings)."""

    model_path: str
    device: str = "cpu"
    compute_type: str = "int8"
    cpu_threads: int = 1
    beam_size: int = 5


@dataclass(frozen=True)
class RawUtterance:
    """One decoded segment of one speaker, before redaction."""

    speaker: str
    start: float
    end: float
    text: str
    words: list[dict[str, Any]] = field(default_factory=list)
    confidence: float | None = None


@dataclass(frozen=True)
class Decoded:
    """A whole call's decoding."""

    utterances: list[RawUtterance]
    lang: str | None
    audio_s: float
    decode_s: float


class Transcriber:
    """One loaded model; `transcribe` one call at a time (the worker never runs two)."""

    def __init__(self, config: DecodeConfig) -> None:
        self.config = config
        self.model_name = Path(config.model_path).name
        self.model = WhisperModel(
            config.model_path,
            device=config.device,
            compute_type=config.compute_type,
            cpu_threads=config.cpu_threads,
            num_workers=1,
        )

    def transcribe(
        self,
        channels: dict[str, npt.NDArray[np.float32]],
        lang: str | None,
        stop: threading.Event | None = None,
    ) -> Decoded:
        """Decode every channel (speaker -> 16 kHz float32); `lang` None = detected."""
        started = time.perf_counter()
        out: list[RawUtterance] = []
        detected: str | None = lang
        for speaker, audio in channels.items():
            segments, info = self.model.transcribe(
                audio,
                language=lang,
                beam_size=self.config.beam_size,
                condition_on_previous_text=True,
                word_timestamps=True,
                vad_filter=True,
                chunk_length=WINDOW_S,
            )
            detected = detected or info.language
            for seg in segments:  # a generator: each step decodes
                if stop is not None and stop.is_set():
                    raise Interrupted("stopped")
                text = seg.text.strip()
                if not text:
                    continue
                words = [
                    {
                        "w": w.word,
                        "start": round(w.start, 3),
                        "end": round(w.end, 3),
                        "p": round(w.probability, 3),
                    }
                    for w in seg.words or []
                ]
                out.append(
                    RawUtterance(
                        speaker,
                        round(seg.start, 3),
                        round(seg.end, 3),
                        text,
                        words,
                        confidence(words, seg.avg_logprob),
                    )
                )
        audio_s = max((len(a) / RATE for a in channels.values()), default=0.0)
        return Decoded(out, detected, audio_s, time.perf_counter() - started)


def confidence(words: list[dict[str, Any]], avg_logprob: float) -> float:
    """Mean word probability (the segment's mean token probability without words), in 0..1."""
    if words:
        return round(sum(float(w["p"]) for w in words) / len(words), 3)
    return round(min(1.0, max(0.0, math.exp(avg_logprob))), 3)
