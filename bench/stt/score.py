"""Scoring of a played stream: events matched to the prompts they belong to (bench.stt)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

from bench.stt import client, corpus
from bench.stt.wer import WerCounts


@dataclass
class Figures:
    """Per-run measurements."""

    wer: WerCounts = field(default_factory=WerCounts)
    final_latency: list[float] = field(default_factory=list)
    first_partial: list[float] = field(default_factory=list)
    cadence: list[float] = field(default_factory=list)
    finals_per_prompt: list[int] = field(default_factory=list)
    missing: int = 0
    texts: list[tuple[str, str, str]] = field(default_factory=list)

    def add(self, other: Figures) -> None:
        """Merge another run's figures."""
        self.wer.errors += other.wer.errors
        self.wer.words += other.wer.words
        self.final_latency += other.final_latency
        self.first_partial += other.first_partial
        self.cadence += other.cadence
        self.finals_per_prompt += other.finals_per_prompt
        self.missing += other.missing
        self.texts += other.texts


def pct(values: list[float], q: float) -> float:
    """Percentile, NaN for no data."""
    return float(np.percentile(values, q)) if values else float("nan")


def score(session: client.Session, prompts: list[corpus.Prompt], lang: str = "es") -> Figures:
    """Match events to the prompts they belong to and measure."""
    fig = Figures(wer=WerCounts(lang=lang))
    segs = session.segments
    for i, (prompt, seg) in enumerate(zip(prompts, segs, strict=True)):
        lo = seg.start - 0.3
        hi = segs[i + 1].start - 0.3 if i + 1 < len(segs) else float("inf")
        mine = [r for r in session.events if lo <= r.event["start"] < hi]
        finals = [r for r in mine if r.event["type"] == "final" and r.event["text"].strip()]
        text = " ".join(r.event["text"] for r in finals)
        fig.wer.add(prompt.reference, text)
        fig.texts.append((prompt.name, prompt.reference, text))
        fig.finals_per_prompt.append(len(finals))
        if not finals:
            fig.missing += 1
            continue
        fig.final_latency.append(finals[-1].at - seg.speech[1])
        first = min(r.at for r in mine)
        fig.first_partial.append(first - seg.speech[0])
        # Cadence: gaps between successive events while the speaker talks.
        times = sorted(r.at for r in mine if r.at <= seg.speech[1] + 0.05)
        times.append(finals[-1].at if finals[-1].at > seg.speech[1] else seg.speech[1])
        fig.cadence += [b - a for a, b in itertools.pairwise(times)]
    return fig
