"""Fixtures of the knowledge tests: the demo knowledge base (with its PDF and DOCX) built once."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.kb.corpus import demo_kb
from coach.knowledge import KnowledgeBase
from coach.knowledge.semantic import load


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of demo/kb plus the generated PDF and DOCX documents."""
    return demo_kb(tmp_path_factory.mktemp("kb") / "demo")


@pytest.fixture(scope="session")
def demo(demo_dir: Path) -> KnowledgeBase:
    """The demo knowledge base, indexed, with semantic ranking when the model is installed."""
    kb = KnowledgeBase(demo_dir, embedder=load("auto"))
    kb.refresh()
    return kb


@pytest.fixture(scope="session")
def lexical(demo_dir: Path) -> KnowledgeBase:
    """The demo knowledge base, lexical ranking only."""
    kb = KnowledgeBase(demo_dir)
    kb.refresh()
    return kb
