"""STT fixtures: the real faster-whisper-base model, assembled once from its PyPI packages."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from coach.tasks import TaskSet, first_completed
from coach.web import EmbeddedServer
from fakes import poll
from stt.app import create_app
from stt.models import ModelInfo, ensure_base
from stt.settings import SttSettings

ROOT = Path(__file__).resolve().parents[2]
MODEL_DIR = ROOT / "models" / "faster-whisper-base"


@pytest.fixture(scope="session")
def base_model() -> ModelInfo:
    """faster-whisper-base under <repo>/models/ (gitignored; assembled on first use)."""
    return ensure_base(MODEL_DIR)


@pytest.fixture(scope="session")
def engine(base_model):
    """One shared decoder for in-process tests."""
    from stt.engine import EngineConfig, WhisperEngine

    return WhisperEngine(EngineConfig(str(base_model.path)))


@contextlib.asynccontextmanager
async def serving(settings: SttSettings, engine: Any) -> AsyncIterator[str]:
    """`create_app(settings, engine)` served by uvicorn in this loop; yields `host:port`, and
    stops it gracefully (closing its listening socket) at the end."""
    server = EmbeddedServer(
        uvicorn.Config(
            create_app(settings, engine),
            host=settings.host,
            port=settings.port,
            log_config=None,
            lifespan="on",
        )
    )
    tasks = TaskSet("test")
    task = tasks.spawn(server.serve(), "uvicorn")
    try:
        await poll.until(lambda: server.started or task.done(), 30, what="stt up")
        yield f"{settings.host}:{settings.port}"
    finally:
        server.should_exit = True
        await first_completed(task, wait=30)
        await tasks.close()
