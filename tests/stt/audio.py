"""Test audio: real prompts from the Debian Spanish sounds, and synthetic non-speech."""

from __future__ import annotations

import numpy as np

from bench.stt import corpus
from coach.resample import pcm16_to_float

RATE = 8000
DTMF = {"1": (697, 1209), "5": (770, 1336), "9": (852, 1477), "#": (941, 1477)}


def dtmf(keys: str = "159#", tone_s: float = 0.15, gap_s: float = 0.1) -> np.ndarray:
    """PCM16 DTMF key presses at 8 kHz."""
    t = np.arange(int(tone_s * RATE)) / RATE
    parts = []
    for key in keys:
        lo, hi = DTMF[key]
        parts.append(0.3 * (np.sin(2 * np.pi * lo * t) + np.sin(2 * np.pi * hi * t)))
        parts.append(np.zeros(int(gap_s * RATE)))
    return (np.concatenate(parts) * 32767 * 0.5).astype(np.int16)


def noise(seconds: float, level: float = 0.02, seed: int = 1) -> np.ndarray:
    """Line noise (white, low level) at 8 kHz."""
    rng = np.random.default_rng(seed)
    return (rng.normal(0, level, int(seconds * RATE)) * 32767).clip(-32768, 32767).astype(np.int16)


def hold_music(seconds: float) -> np.ndarray:
    """A simple chord progression (hold-music stand-in) at 8 kHz."""
    t = np.arange(int(seconds * RATE)) / RATE
    chord = np.zeros_like(t)
    for f in (261.6, 329.6, 392.0):
        chord += np.sin(2 * np.pi * f * t) * (1 + 0.3 * np.sin(2 * np.pi * 0.5 * t))
    return (chord / 3 * 0.3 * 32767).astype(np.int16)


def tone_file(name: str) -> np.ndarray:
    """A real tone prompt from the Debian package (beep, ascending tones...)."""
    return corpus.load(name).pcm


def silence(seconds: float) -> np.ndarray:
    """Digital silence."""
    return np.zeros(int(seconds * RATE), np.int16)


def to_float16k(pcm: np.ndarray) -> np.ndarray:
    """8 kHz PCM16 -> 16 kHz float32 (coach.resample, as the service does it)."""
    return pcm16_to_float(pcm, RATE, 16_000)
