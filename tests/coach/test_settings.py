"""Env: an empty value means unset for every getter (compose passes `NAME: ${NAME:-}` for
variables .env leaves out), and every service reads .env the same way."""

from __future__ import annotations

import pytest

from coach.settings import Env, SettingsError, service_env

pytestmark = pytest.mark.unit


def test_empty_means_unset_for_every_getter():
    env = Env({name: "" for name in ("S", "I", "F", "B", "C", "O")})
    assert env.str("S", "d") == "d"
    assert env.int("I", 3) == 3
    assert env.float("F", 0.5) == 0.5
    assert env.bool("B", True) is True
    assert env.choice("C", "a", ("a", "b")) == "a"
    assert env.optional("O") is None
    with pytest.raises(SettingsError, match="S"):
        env.str("S")


def test_service_env_reads_dotenv_then_environment(tmp_path, monkeypatch):
    (tmp_path / "custom.env").write_text("FROM_FILE=1\nBOTH=file\n")
    monkeypatch.setenv("COACH_ENV_FILE", str(tmp_path / "custom.env"))
    monkeypatch.setenv("BOTH", "environment")
    env = service_env()
    assert env.str("FROM_FILE") == "1" and env.str("BOTH") == "environment"
