"""The archive's settings: defaults, and a bad value stops the start naming the variable."""

from __future__ import annotations

import pytest

from archive.settings import Settings
from coach.settings import Env, SettingsError

pytestmark = pytest.mark.unit


def test_defaults_listen_on_loopback_and_embed_what_is_unset() -> None:
    s = Settings.from_env(Env({}))
    assert s.host == "127.0.0.1" and s.port == 7090
    assert s.redis_url is None and s.database_url is None
    assert s.group == "archive" and s.batch == 500


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"ARCHIVE_BATCH": "0"}, "ARCHIVE_BATCH"),
        ({"ARCHIVE_BATCH": "lots"}, "ARCHIVE_BATCH"),
        ({"ARCHIVE_PORT": "70000"}, "ARCHIVE_PORT"),
        ({"ARCHIVE_CLAIM_IDLE_MS": "10"}, "ARCHIVE_CLAIM_IDLE_MS"),
        ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL"),
        ({"LOG_LEVEL": "loud"}, "LOG_LEVEL"),
    ],
)
def test_a_bad_value_names_its_variable(env: dict[str, str], name: str) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.from_env(Env(env))


def test_the_database_url_is_not_in_the_repr() -> None:
    s = Settings.from_env(Env({"DATABASE_URL": "postgresql://coach_archive:secret@db/coach"}))
    assert "secret" not in repr(s)
