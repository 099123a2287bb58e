"""Fixtures of the orchestrator tests: the fake LLM server and LLM settings pointing at it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fakes.fake_llm import API_KEY, FakeLLM
from orchestrator.settings import LLMSettings


@pytest.fixture
def fake_llm() -> Iterator[FakeLLM]:
    """A running fake OpenAI-compatible server."""
    server = FakeLLM().start()
    yield server
    server.stop()


@pytest.fixture
def llm_settings(fake_llm: FakeLLM) -> LLMSettings:
    """Client settings for the fake server, with short timeouts so failures show quickly."""
    return LLMSettings(
        base_url=fake_llm.url,
        api_key=API_KEY,
        model="fake/primary",
        fallback_models=("fake/fallback",),
        connect_timeout_s=1.0,
        read_timeout_s=0.6,
        tip_deadline_s=3.0,
        summary_deadline_s=5.0,
        max_attempts=3,
        max_concurrency=8,
        breaker_failures=5,
        breaker_cooldown_s=30.0,
        debounce_ms=0,
        min_interval_s=0.0,
    )
