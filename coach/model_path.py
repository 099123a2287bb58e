"""Where a faster-whisper model lives when its path is not given: one rule for every service
that loads one (stt's MODEL_PATH, the second pass's RECORD_MODEL_PATH)."""

from __future__ import annotations

import os

DEFAULT_MODEL_DIR = "models"
"""Folder of the model directories (relative to the working directory)."""


def default_model_path(size: str, model_dir: str = DEFAULT_MODEL_DIR) -> str:
    """`models/faster-whisper-<size>`: what `python -m stt.models assemble|fetch` makes."""
    return os.path.join(model_dir, f"faster-whisper-{size}")
