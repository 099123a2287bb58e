"""Which channel of a recording is which speaker, and where a reported recording is found."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from second_pass.audio import RecordingError, load, locate, speakers_of

pytestmark = pytest.mark.unit


def tone(seconds: float, rate: int, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.5 * 32767 * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def test_left_is_the_customer_right_the_agent() -> None:
    # MixMonitor's D option: left = what the caller channel reads (the caller), right = what
    # it writes (the agent); ari.replay and the demo WAV keep that order.
    assert speakers_of(2) == ("customer", "agent")
    assert speakers_of(1) == ("mix",)
    with pytest.raises(RecordingError):
        speakers_of(3)


def test_a_raw_recording_splits_into_speakers(tmp_path: Path) -> None:
    left, right = tone(0.5, 8000), np.zeros(4000, np.int16)
    frames = np.stack([left, right], axis=1).astype("<i2").tobytes()
    path = tmp_path / "20260101-120000-1.raw"
    path.write_bytes(frames + b"\x01")  # a half frame at the end: still being written
    channels = load(path, raw_rate=8000)
    assert list(channels) == ["customer", "agent"]
    assert len(channels["customer"]) == 8000  # 0.5 s at 16 kHz
    assert np.abs(channels["customer"]).max() > 0.3
    assert np.abs(channels["agent"]).max() == 0.0


def test_a_stereo_wav_keeps_its_order(tmp_path: Path) -> None:
    path = tmp_path / "call.wav"
    left, right = np.zeros(16000, np.int16), tone(1.0, 16000)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(np.stack([left, right], axis=1).astype("<i2").tobytes())
    channels = load(path)
    assert np.abs(channels["customer"]).max() == 0.0
    assert np.abs(channels["agent"]).max() > 0.3


def test_bad_recordings_are_named(tmp_path: Path) -> None:
    with pytest.raises(RecordingError, match=r"gone\.raw"):
        load(tmp_path / "gone.raw")
    (tmp_path / "empty.raw").write_bytes(b"")
    with pytest.raises(RecordingError, match="no audio"):
        load(tmp_path / "empty.raw")


def test_asterisk_paths_are_found_under_the_mounted_volume(tmp_path: Path) -> None:
    (tmp_path / "coach").mkdir()
    (tmp_path / "coach" / "x.raw").write_bytes(b"\0" * 4)
    reported = "/var/spool/asterisk/monitor/coach/x.raw"
    assert locate(reported, tmp_path) == (tmp_path / "coach" / "x.raw").resolve()
    (tmp_path / "y.wav").write_bytes(b"\0")
    assert locate("/somewhere/else/y.wav", tmp_path) == (tmp_path / "y.wav").resolve()
    with pytest.raises(RecordingError, match="not found"):
        locate("/etc/passwd", tmp_path)
    with pytest.raises(RecordingError):
        locate("/x/../../etc/passwd", tmp_path)
    assert locate(reported, None) == Path(reported)
