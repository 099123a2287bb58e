"""The second pass's settings: defaults, the live model by default, bad values named."""

from __future__ import annotations

from pathlib import Path

import pytest

from coach.settings import Env, SettingsError
from second_pass.settings import Settings

pytestmark = pytest.mark.unit


def model(tmp: Path, name: str) -> Path:
    path = tmp / name
    path.mkdir()
    (path / "model.bin").write_bytes(b"x")
    return path


def env(**values: str) -> Env:
    base = {"REDIS_URL": "redis://127.0.0.1:6379/0", "DATABASE_URL": "postgresql://a@b/c"}
    return Env({**base, **values})


def test_defaults_follow_the_live_model(tmp_path: Path) -> None:
    live = model(tmp_path, "faster-whisper-base")
    s = Settings.from_env(env(MODEL_PATH=str(live)))
    assert s.model_path == str(live)
    assert (s.nice, s.idle_sched, s.cpu_threads, s.beam_size) == (19, True, 1, 5)
    assert (s.host, s.port, s.group, s.lang) == ("127.0.0.1", 7096, "second_pass", None)
    big = model(tmp_path, "faster-whisper-small")
    s = Settings.from_env(env(MODEL_PATH=str(live), RECORD_MODEL_PATH=str(big), RECORD_LANG="en"))
    assert (s.model_path, s.lang) == (str(big), "en")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("RECORD_NICE", "20"),
        ("RECORD_QUEUE_MAX", "0"),
        ("RECORD_LANG", "spanish"),
        ("RECORD_DEVICE", "tpu"),
        ("DATABASE_URL", "mysql://x"),
        ("REDACT_KINDS", "card,shoe"),
    ],
)
def test_bad_values_are_named(tmp_path: Path, name: str, value: str) -> None:
    live = model(tmp_path, "m")
    with pytest.raises(SettingsError, match=name):
        Settings.from_env(env(MODEL_PATH=str(live), **{name: value}))


def test_the_bus_and_the_record_are_required(tmp_path: Path) -> None:
    live = model(tmp_path, "m")
    with pytest.raises(SettingsError, match="REDIS_URL"):
        Settings.from_env(Env({"MODEL_PATH": str(live), "DATABASE_URL": "postgresql://a@b/c"}))
    with pytest.raises(SettingsError, match="RECORD_MODEL_PATH"):
        Settings.from_env(env(MODEL_PATH=str(tmp_path / "none")))
