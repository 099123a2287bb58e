"""Spanish dev prompts (Debian asterisk-core-sounds-es[-wav]): references, audio, speech times."""

from __future__ import annotations

import gzip
import wave
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import numpy.typing as npt

SOUNDS = Path("/usr/share/asterisk/sounds/es_MX_f_Allison")
TRANSCRIPTS = Path("/usr/share/doc/asterisk-core-sounds-es/core-sounds-es.txt.gz")
ROOT = Path(__file__).resolve().parents[2]
PROMPT_LISTS = (
    ROOT.parent / "shared" / "corpus" / "es-dev-prompts.txt",
    ROOT / "shared" / "corpus" / "es-dev-prompts.txt",
)
# The dev list, for when shared/ is not beside the repo (kept in sync by hand; 115 names).
FALLBACK_PROMPTS = ("conf-getpin", "conf-invalid", "agent-newlocation", "conf-getconfno")


@dataclass(frozen=True)
class Prompt:
    """One recording: name, reference text, 8 kHz PCM16 samples."""

    name: str
    reference: str
    pcm: npt.NDArray[np.int16]
    rate: int

    @property
    def duration(self) -> float:
        """Seconds."""
        return len(self.pcm) / self.rate

    @cached_property
    def speech_span(self) -> tuple[float, float]:
        """(first, last) second with speech energy: 10 ms frames within 30 dB of the loudest."""
        hop = self.rate // 100
        n = len(self.pcm) // hop
        frames = self.pcm[: n * hop].astype(np.float64).reshape(n, hop)
        rms = np.sqrt((frames**2).mean(axis=1)) + 1e-9
        loud = np.nonzero(rms > rms.max() * 10 ** (-30 / 20))[0]
        if loud.size == 0:
            return 0.0, 0.0
        return loud[0] * hop / self.rate, (loud[-1] + 1) * hop / self.rate


def references() -> dict[str, str]:
    """name -> transcript from the Debian package's text list."""
    out: dict[str, str] = {}
    with gzip.open(TRANSCRIPTS, "rt", encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if ":" in line and not line.startswith(";"):
                name, text = line.split(":", 1)
                out[name.strip()] = text.strip()
    return out


def prompt_names() -> list[str]:
    """The dev prompt names from shared/corpus/es-dev-prompts.txt."""
    for path in PROMPT_LISTS:
        if path.is_file():
            return [
                n.strip()
                for n in path.read_text().splitlines()
                if n.strip() and not n.startswith("#")
            ]
    return list(FALLBACK_PROMPTS)


def load(name: str, refs: dict[str, str] | None = None) -> Prompt:
    """Read one prompt's WAV and reference."""
    refs = refs if refs is not None else references()
    with wave.open(str(SOUNDS / f"{name}.wav")) as w:
        if w.getnchannels() != 1 or w.getsampwidth() != 2:
            raise ValueError(f"{name}: expected mono PCM16")
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").copy()
        rate = w.getframerate()
    return Prompt(name, refs.get(name, ""), pcm, rate)


def load_all(names: list[str] | None = None) -> list[Prompt]:
    """Every dev prompt that has a reference text (bracketed tone descriptions are skipped)."""
    refs = references()
    out = []
    for name in names or prompt_names():
        if not (SOUNDS / f"{name}.wav").is_file():
            continue
        ref = refs.get(name, "")
        if not ref or ref.startswith("["):
            continue
        out.append(load(name, refs))
    return out
