"""A call's recording as one float32 signal per speaker at 16 kHz (what Whisper takes).

Which channel is which speaker: MixMonitor's `D` option (asterisk/extensions.conf, started on
the caller channel) interleaves what that channel *reads* — the caller's own voice — on the
left and what it *writes* — the agent's voice bridged to it — on the right; `ari.replay` and
the demo WAV use the same order. So left = customer, right = agent; a mono file is the mix.
"""

from __future__ import annotations

import wave
from pathlib import Path, PurePosixPath

import numpy as np
import numpy.typing as npt

from coach import recordings
from coach.resample import pcm16_to_float

RATE = 16_000
"""Sample rate Whisper decodes at."""
STEREO_SPEAKERS = ("customer", "agent")
"""Speaker of each stereo channel, left first (module docstring)."""
MONO_SPEAKER = "mix"
RAW_SUFFIXES = (".raw", ".sln", ".slin")
"""Headerless signed 16-bit little-endian interleaved stereo, as MixMonitor writes it."""


class RecordingError(Exception):
    """The recording cannot be read (missing, empty, not PCM16): the call's pass fails."""


def speakers_of(channels: int) -> tuple[str, ...]:
    """The speaker of each of `channels` channels, in order."""
    if channels == 1:
        return (MONO_SPEAKER,)
    if channels == 2:
        return STEREO_SPEAKERS
    raise RecordingError(f"a recording has 1 or 2 channels, not {channels}")


def load(path: Path, raw_rate: int = 8000) -> dict[str, npt.NDArray[np.float32]]:
    """speaker -> 16 kHz float32 signal of the recording at `path`."""
    try:
        if path.suffix.lower() in RAW_SUFFIXES:
            data = path.read_bytes()
            rate, channels = raw_rate, 2
            data = data[: len(data) - len(data) % 4]  # whole stereo frames (file may be cut)
        else:
            with wave.open(str(path)) as w:
                if w.getsampwidth() != 2:
                    raise RecordingError(f"{path.name}: {8 * w.getsampwidth()}-bit, not 16-bit PCM")
                rate, channels = w.getframerate(), w.getnchannels()
                data = w.readframes(w.getnframes())
    except (OSError, EOFError, wave.Error) as exc:
        raise RecordingError(f"{path.name}: {exc}") from exc
    names = speakers_of(channels)
    samples = np.frombuffer(data, dtype="<i2")
    if samples.size == 0:
        raise RecordingError(f"{path.name}: no audio")
    return {
        name: pcm16_to_float(np.ascontiguousarray(samples[n::channels]), rate, RATE)
        for n, name in enumerate(names)
    }


def locate(reported: str, recordings_dir: Path | None) -> Path:
    """Where the recording `call.ended` named is here (coach.recordings.locate); without a
    folder, the path as reported."""
    if recordings_dir is None:
        return Path(reported)
    found = recordings.locate(reported, recordings_dir)
    if found is None:
        name = PurePosixPath(reported).name
        raise RecordingError(f"recording {name} not found under {recordings_dir}")
    return found
