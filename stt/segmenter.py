"""Utterance boundaries from per-frame speech probabilities (pure logic, no audio, no clock).

States: SILENCE -> SPEECH (onset confirmed) -> TRAILING (speech stopped, hangover running) ->
SPEECH again (a pause) or SILENCE (an end). The segmenter reports a `pause` a few frames into
the silence so the stream can start a speculative final decode while the hangover runs; the
stream may end the utterance early (`end_now`) when that decode says the sentence is complete.
Long monologues are split at the first pause after `split_after_s`, and cut hard at `max_s`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from stt.vad import FRAME_S


class SegState(enum.Enum):
    """Where the segmenter is."""

    SILENCE = "silence"
    SPEECH = "speech"
    TRAILING = "trailing"


class SegKind(enum.Enum):
    """What happened at a frame."""

    START = "start"
    PAUSE = "pause"
    RESUME = "resume"
    END = "end"


@dataclass(frozen=True)
class SegEvent:
    """A boundary at `frame`: first speech frame (START/RESUME) or first silent one (PAUSE/END)."""

    kind: SegKind
    frame: int


@dataclass(frozen=True)
class SegmenterConfig:
    """Thresholds and timings (seconds)."""

    onset: float = 0.5
    """Speech probability at or above which a frame is speech."""
    offset: float = 0.35
    """Probability below which a frame is silence (hysteresis between the two)."""
    min_onset_s: float = 0.064
    """Speech must last this long before an utterance starts (clicks do not count)."""
    speculate_after_s: float = 0.032
    """Silence after which a PAUSE is reported (a speculative decode starts)."""
    hangover_s: float = 0.6
    """Silence after which the utterance ends even if the decoder thinks it is incomplete."""
    split_after_s: float = 6.0
    """Utterances longer than this end at the next pause of `split_pause_s`."""
    split_pause_s: float = 0.2
    """Pause that ends a long utterance."""
    max_s: float = 25.0
    """Hard cut: an utterance never exceeds this (Whisper windows are 30 s)."""


class Segmenter:
    """Feed one probability per 32 ms frame; get boundary events back."""

    def __init__(self, config: SegmenterConfig | None = None) -> None:
        self.config = config or SegmenterConfig()
        c = self.config
        self._min_onset = max(1, round(c.min_onset_s / FRAME_S))
        self._speculate = max(1, round(c.speculate_after_s / FRAME_S))
        self._hangover = max(self._speculate, round(c.hangover_s / FRAME_S))
        self._split_after = round(c.split_after_s / FRAME_S)
        self._split_pause = max(1, round(c.split_pause_s / FRAME_S))
        self._max = round(c.max_s / FRAME_S)
        self.state = SegState.SILENCE
        self.frame = 0
        self.start_frame = 0
        self.silence_start = 0
        self._onset_run = 0
        self.speech_frames = 0

    @property
    def onset_frames(self) -> int:
        """Speech frames that confirm an onset: an utterance starts at most this far back."""
        return self._min_onset

    @property
    def silence_frames(self) -> int:
        """Frames of silence since speech stopped (0 unless TRAILING)."""
        return self.frame - self.silence_start if self.state is SegState.TRAILING else 0

    def push(self, prob: float) -> list[SegEvent]:
        """Consume the next frame's probability."""
        c = self.config
        f = self.frame
        self.frame += 1
        events: list[SegEvent] = []
        if self.state is SegState.SILENCE:
            if prob >= c.onset:
                self._onset_run += 1
                if self._onset_run >= self._min_onset:
                    self.state = SegState.SPEECH
                    self.start_frame = f - self._onset_run + 1
                    self.speech_frames = self._onset_run
                    events.append(SegEvent(SegKind.START, self.start_frame))
            else:
                self._onset_run = 0
            return events
        if self.state is SegState.SPEECH:
            if prob < c.offset:
                self.state = SegState.TRAILING
                self.silence_start = f
                if self._speculate == 1:
                    events.append(SegEvent(SegKind.PAUSE, f))
            else:
                self.speech_frames += 1
                if f + 1 - self.start_frame >= self._max:
                    events.append(self._end(f + 1))
                    # Speech goes on: the next utterance starts right here.
                    self.state = SegState.SPEECH
                    self.start_frame = f + 1
                    self.speech_frames = 0
                    events.append(SegEvent(SegKind.START, f + 1))
            return events
        # TRAILING
        if prob >= c.onset:
            self.state = SegState.SPEECH
            self.speech_frames += 1
            events.append(SegEvent(SegKind.RESUME, f))
            return events
        silent = self.frame - self.silence_start
        long_utterance = self.silence_start - self.start_frame >= self._split_after
        if silent == self._speculate:
            events.append(SegEvent(SegKind.PAUSE, self.silence_start))
        if silent >= self._hangover or (long_utterance and silent >= self._split_pause):
            events.append(self._end(self.silence_start))
        return events

    def end_now(self) -> SegEvent | None:
        """End the current utterance at once (decoder says complete, or the stream ends)."""
        if self.state is SegState.SILENCE:
            self._onset_run = 0
            return None
        end = self.silence_start if self.state is SegState.TRAILING else self.frame
        return self._end(end)

    def _end(self, end_frame: int) -> SegEvent:
        self.state = SegState.SILENCE
        self._onset_run = 0
        return SegEvent(SegKind.END, end_frame)
