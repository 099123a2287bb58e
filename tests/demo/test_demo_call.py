"""The bundled demo call: who speaks it (SVOX Pico, espeak-ng without it), on which channel,
and that the real model the demo uses understands the chosen voices better than espeak-ng's."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

from bench.demo_voice import line_audio, lines
from bench.stt.wer import WerCounts
from bench.voices import BY_NAME, available

pytestmark = [pytest.mark.unit, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
MAKE = ROOT / "scripts" / "make_demo_call.py"


def need_pico() -> None:
    """Pico is what scripts/setup installs: CI must have it, elsewhere its absence skips."""
    missing = available(BY_NAME["pico-es"])
    if missing and os.environ.get("CI"):
        pytest.fail(f"{missing} missing: scripts/setup installs it")
    if missing:
        pytest.skip(f"{missing} not installed (scripts/setup installs it)")


def make(tmp_path: Path, script: str, env: dict[str, str] | None = None) -> tuple[str, Path]:
    out = tmp_path / "call.wav"
    done = subprocess.run(
        [sys.executable, str(MAKE), str(ROOT / "demo" / script), "--out", str(out)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    return done.stdout + done.stderr, out


def channels(path: Path) -> tuple[int, np.ndarray]:
    with wave.open(str(path)) as w:
        assert w.getnchannels() == 2
        rate = w.getframerate()
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, 2)
    return rate, pcm.astype(np.float32)


@pytest.mark.parametrize(
    ("script", "customer", "agent"),
    [
        ("transcript.es.json", "pico-es", "pico-es-male"),
        ("transcript2.es.json", "pico-es-male", "pico-es"),
    ],
)
def test_each_line_is_spoken_by_its_speakers_voice_on_its_channel(
    tmp_path: Path, script: str, customer: str, agent: str
) -> None:
    need_pico()
    said, wav = make(tmp_path, script)
    assert f"left customer: {customer}, right agent: {agent}" in said
    rate, pcm = channels(wav)
    placed = json.loads(wav.with_suffix(".json").read_text(encoding="utf-8"))["lines"]
    for line in placed:
        span = pcm[int(line["at"] * rate) : int((line["at"] + line["dur"]) * rate)]
        mine, other = (0, 1) if line["speaker"] == "customer" else (1, 0)
        assert np.sqrt(np.mean(span[:, mine] ** 2)) > 300, line["text"]
        assert np.abs(span[:, other]).max() == 0, f"talk-over at {line['at']}"
    ends = [line["at"] + line["dur"] for line in placed]
    assert all(b["at"] >= e for e, b in zip(ends, placed[1:], strict=False))


def test_without_pico_the_call_is_spoken_by_espeak(tmp_path: Path) -> None:
    espeak = shutil.which("espeak-ng")
    assert espeak, "espeak-ng missing: scripts/setup installs it"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "espeak-ng").symlink_to(espeak)
    said, wav = make(tmp_path, "transcript.es.json", {**os.environ, "PATH": str(bin_dir)})
    assert "left customer: espeak-es419-m3, right agent: espeak-es419" in said
    assert "libttspico-utils" in said
    _, pcm = channels(wav)
    assert np.sqrt(np.mean(pcm**2)) > 100


def test_the_demo_model_understands_pico_better_than_espeak() -> None:
    """The first lines of the demo through an 8 kHz leg, decoded by faster-whisper base."""
    need_pico()
    from faster_whisper import WhisperModel

    from stt.models import ensure_base

    model = WhisperModel(
        str(ensure_base(ROOT / "models" / "faster-whisper-base").path),
        device="cpu",
        compute_type="int8",
        cpu_threads=2,
    )
    sample = lines()[:8]
    scores = {}
    for name in ("pico-es", "pico-es-male", "espeak-es419-m3"):
        counts = WerCounts()
        for _, text in sample:
            segments, _ = model.transcribe(line_audio(BY_NAME[name], text, 8000), language="es")
            counts.add(text, " ".join(s.text for s in segments))
        scores[name] = counts.wer
    assert scores["pico-es"] < 0.15, scores
    assert scores["pico-es-male"] < 0.15, scores
    assert max(scores["pico-es"], scores["pico-es-male"]) < scores["espeak-es419-m3"], scores
