"""Dev prompts (Debian asterisk-core-sounds-es[-wav], -en[-wav]): references, audio, speech times.

Each language's dev list is split once into a *tuning* half and a *reporting* half by a fixed
seeded shuffle (`split`): tune on the first, report on the second, so figures say how the
service does on speech it was not tuned on.
"""

from __future__ import annotations

import gzip
import random
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
LANGS = ("es", "en")
SPLIT_SEED = 17
"""Seed of the tuning/reporting shuffle: fixed, so the halves never change."""
HALVES = ("tune", "report", "all")


def sounds(lang: str = "es") -> Path:
    """Directory of a language's WAV prompts."""
    return SOUNDS if lang == "es" else Path("/usr/share/asterisk/sounds/en_US_f_Allison")


def transcripts(lang: str = "es") -> Path:
    """The Debian package's `name: text` list of a language."""
    return (
        TRANSCRIPTS
        if lang == "es"
        else Path("/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz")
    )


def prompt_lists(lang: str = "es") -> tuple[Path, ...]:
    """Where a language's dev list may be (shared/ beside the repo, or inside it)."""
    return tuple(p.with_name(f"{lang}-dev-prompts.txt") for p in PROMPT_LISTS)


def split(names: list[str], seed: int = SPLIT_SEED) -> tuple[list[str], list[str]]:
    """(tuning, reporting): the sorted names shuffled with `seed`, first half for tuning."""
    order = sorted(names)
    random.Random(seed).shuffle(order)
    half = len(order) // 2
    return sorted(order[:half]), sorted(order[half:])


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


def references(lang: str = "es") -> dict[str, str]:
    """name -> transcript from the Debian package's text list."""
    out: dict[str, str] = {}
    with gzip.open(transcripts(lang), "rt", encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if ":" in line and not line.startswith(";"):
                name, text = line.split(":", 1)
                out[name.strip()] = text.strip()
    return out


def prompt_names(lang: str = "es", half: str = "all") -> list[str]:
    """The dev prompt names from shared/corpus/<lang>-dev-prompts.txt, or one half of them."""
    names = list(FALLBACK_PROMPTS) if lang == "es" else []
    for path in prompt_lists(lang):
        if path.is_file():
            names = [
                n.strip()
                for n in path.read_text().splitlines()
                if n.strip() and not n.startswith("#")
            ]
            break
    if half == "all":
        return names
    tune, report = split(names)
    return tune if half == "tune" else report


def load(name: str, refs: dict[str, str] | None = None, lang: str = "es") -> Prompt:
    """Read one prompt's WAV and reference."""
    refs = refs if refs is not None else references(lang)
    with wave.open(str(sounds(lang) / f"{name}.wav")) as w:
        if w.getnchannels() != 1 or w.getsampwidth() != 2:
            raise ValueError(f"{name}: expected mono PCM16")
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").copy()
        rate = w.getframerate()
    return Prompt(name, refs.get(name, ""), pcm, rate)


def load_all(names: list[str] | None = None, lang: str = "es", half: str = "all") -> list[Prompt]:
    """Every dev prompt (of `half`) that has a reference text (tone descriptions are skipped)."""
    refs = references(lang)
    out = []
    for name in names or prompt_names(lang, half):
        if not (sounds(lang) / f"{name}.wav").is_file():
            continue
        ref = refs.get(name, "")
        if not ref or ref.startswith("["):
            continue
        out.append(load(name, refs, lang))
    return out
