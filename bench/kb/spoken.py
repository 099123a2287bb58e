"""Spoken questions: a third of the labelled set synthesised (espeak-ng, Debian), passed through
a telephone's 8 kHz band and transcribed by the STT's model (faster-whisper base, the
multilingual model the tests use, CPU int8), so recall is measured on what the STT really
writes (lower case, missing "¿", misheard words), not on typed text."""

from __future__ import annotations

import subprocess
import tempfile
import wave
from pathlib import Path
from typing import Any, Final

import numpy as np

from bench.kb.corpus import ROOT
from coach.resample import pcm16_to_float

MODEL: Final = ROOT / "models" / "faster-whisper-base"
VOICES: Final = {"es": "es", "en": "en-gb"}


def synthesise(text: str, lang: str, folder: Path) -> np.ndarray[Any, Any]:
    """16 kHz float audio of `text` as a phone line carries it (8 kHz, then back up)."""
    path = folder / "q.wav"
    subprocess.run(
        ["espeak-ng", "-v", VOICES[lang], "-s", "150", "-w", str(path), text],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    with wave.open(str(path)) as w:
        rate = w.getframerate()
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
    narrow = (pcm16_to_float(pcm, rate, 8000) * 32767).clip(-32768, 32767).astype(np.int16)
    return pcm16_to_float(narrow, 8000, 16000)


def spoken_set(data: dict[str, Any], every: int = 3) -> dict[str, Any]:
    """Every `every`-th question of each language, its text replaced by the transcript."""
    from faster_whisper import WhisperModel

    model = WhisperModel(str(MODEL), device="cpu", compute_type="int8", cpu_threads=2)
    out: dict[str, Any] = {"es": [], "en": [], "off_topic": []}
    with tempfile.TemporaryDirectory() as tmp:
        for lang in ("es", "en"):
            for item in data[lang][::every]:
                audio = synthesise(item["q"], lang, Path(tmp))
                segments, _ = model.transcribe(audio, language=lang, beam_size=1)
                heard = " ".join(s.text.strip() for s in segments).strip()
                out[lang].append({**item, "q": heard, "typed": item["q"]})
        for text in data["off_topic"][::every]:
            lang = "en" if text.isascii() else "es"
            audio = synthesise(text, lang, Path(tmp))
            segments, _ = model.transcribe(audio, language=lang, beam_size=1)
            out["off_topic"].append(" ".join(s.text.strip() for s in segments).strip())
    return out
