"""Recall@k and the off-topic rate of a knowledge base against the labelled question set."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bench.kb.corpus import QUESTIONS
from coach.knowledge import KnowledgeBase


@dataclass
class Scores:
    """What the question set measured."""

    questions: int = 0
    at1: int = 0
    at3: int = 0
    off_topic: int = 0
    off_topic_silent: int = 0
    misses: list[tuple[str, list[str], list[tuple[str, float]]]] = field(default_factory=list)
    noisy: list[tuple[str, str, float]] = field(default_factory=list)
    by_lang: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    undetected: list[str] = field(default_factory=list)
    """Questions the question detector did not take for questions (no card, whatever the KB)."""

    @property
    def recall1(self) -> float:
        """Share of questions whose best card answers them."""
        return self.at1 / self.questions if self.questions else 0.0

    @property
    def recall3(self) -> float:
        """Share of questions answered by one of the top three cards."""
        return self.at3 / self.questions if self.questions else 0.0

    @property
    def silent_rate(self) -> float:
        """Share of off-topic utterances that showed no card."""
        return self.off_topic_silent / self.off_topic if self.off_topic else 0.0


def load(path: Path = QUESTIONS) -> dict[str, Any]:
    """The question set: {"es": [{q, ids}], "en": [...], "off_topic": [str]}."""
    data: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return data


def evaluate(
    kb: KnowledgeBase,
    min_score: float,
    data: dict[str, Any] | None = None,
    detect: Callable[[str], bool] | None = None,
) -> Scores:
    """Ask every question; a hit counts only at or above `min_score` (what a card needs).
    With `detect` (the orchestrator's question detector), a line it does not take for a
    question is not searched, as in a call: a missed question, a silent off-topic line."""
    data = data or load()
    s = Scores()
    for lang in ("es", "en"):
        n = a1 = a3 = 0
        for item in data[lang]:
            asked = detect is None or detect(item["q"])
            if not asked:
                s.undetected.append(item["q"])
            hits = kb.search(item["q"], k=3, lang=lang, min_score=min_score) if asked else []
            ids = [h.passage.id for h in hits]
            want = set(item["ids"])
            n += 1
            a1 += bool(ids[:1] and ids[0] in want)
            a3 += bool(want & set(ids))
            if not want & set(ids):
                s.misses.append((item["q"], item["ids"], [(h.passage.id, h.score) for h in hits]))
        s.questions += n
        s.at1 += a1
        s.at3 += a3
        s.by_lang[lang] = (n, a1, a3)
    for text in data["off_topic"]:
        s.off_topic += 1
        hits = kb.search(text, k=1, min_score=min_score) if not detect or detect(text) else []
        if hits:
            s.noisy.append((text, hits[0].passage.id, hits[0].score))
        else:
            s.off_topic_silent += 1
    return s
