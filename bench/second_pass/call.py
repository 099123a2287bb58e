"""The dev prompts assembled into one stereo call: prompt i on the customer's channel when i is
even, the agent's when odd, one after another with a gap, as turns of a conversation."""

from __future__ import annotations

import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from bench.stt import corpus

RATE = 8000
"""The prompts' rate (telephone audio), kept for the recording as MixMonitor would."""


@dataclass(frozen=True)
class Turn:
    """One prompt placed in the call."""

    speaker: str
    start: float
    end: float
    reference: str


@dataclass(frozen=True)
class AssembledCall:
    """Both channels (8 kHz PCM16) and who said what when."""

    customer: npt.NDArray[np.int16]
    agent: npt.NDArray[np.int16]
    turns: list[Turn]

    @property
    def seconds(self) -> float:
        """Length of the call."""
        return len(self.customer) / RATE

    def reference(self, speaker: str) -> str:
        """Everything `speaker` said, in order."""
        return " ".join(t.reference for t in self.turns if t.speaker == speaker)

    def write(self, path: Path) -> Path:
        """As a stereo WAV (left customer, right agent), the recording's layout."""
        with wave.open(str(path), "wb") as w:
            w.setnchannels(2)
            w.setsampwidth(2)
            w.setframerate(RATE)
            w.writeframes(np.stack([self.customer, self.agent], axis=1).astype("<i2").tobytes())
        return path


def assemble(half: str = "all", gap_s: float = 0.8, limit: int = 0) -> AssembledCall:
    """The dev prompts of `half` (the first `limit` if given) as one call."""
    prompts = corpus.load_all(half=half)
    if limit:
        prompts = prompts[:limit]
    channels: dict[str, list[npt.NDArray[np.int16]]] = {"customer": [], "agent": []}
    turns: list[Turn] = []
    at = 0.5
    lead = np.zeros(int(at * RATE), np.int16)
    channels["customer"].append(lead)
    channels["agent"].append(lead)
    for i, p in enumerate(prompts):
        if p.rate != RATE:
            raise ValueError(f"{p.name}: {p.rate} Hz, expected {RATE}")
        speaker, other = ("customer", "agent") if i % 2 == 0 else ("agent", "customer")
        gap = np.zeros(int(gap_s * RATE), np.int16)
        channels[speaker] += [p.pcm, gap]
        channels[other] += [np.zeros(len(p.pcm), np.int16), gap]
        turns.append(Turn(speaker, at, at + p.duration, p.reference))
        at += p.duration + gap_s
    return AssembledCall(
        np.concatenate(channels["customer"]), np.concatenate(channels["agent"]), turns
    )
