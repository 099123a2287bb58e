"""Relay settings: missing or bad values stop start-up naming the variable."""

from __future__ import annotations

import pytest

from coach.settings import Env, SettingsError
from relay.settings import RelaySettings

pytestmark = pytest.mark.unit
GOOD = {"RELAY_TOKEN": "t" * 20, "AUTH_SECRET": "s" * 40}


def test_defaults_and_overrides() -> None:
    s = RelaySettings.from_env(Env({**GOOD, "RELAY_PORT": "7171", "BUS_PREFIX": "x"}))
    assert s.port == 7171 and s.bus.prefix == "x" and s.redis_url is None
    assert "t" * 20 not in repr(s) and "s" * 40 not in repr(s)


def test_unset_variables_take_the_fields_defaults() -> None:
    s = RelaySettings.from_env(Env(GOOD))
    assert s == RelaySettings(relay_token="t" * 20, auth_secret="s" * 40, bus=s.bus)


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"AUTH_SECRET": "s" * 40}, "RELAY_TOKEN"),
        ({"RELAY_TOKEN": "t" * 20}, "AUTH_SECRET"),
        ({**GOOD, "RELAY_PORT": "seventy"}, "RELAY_PORT"),
        ({**GOOD, "RELAY_PORT": "70000"}, "RELAY_PORT"),
        ({**GOOD, "AUTH_SECRET": "short"}, "AUTH_SECRET"),
        ({**GOOD, "BUS_CALL_MAXLEN": "5"}, "BUS_CALL_MAXLEN"),
    ],
)
def test_bad_configuration_names_the_variable(env: dict[str, str], name: str) -> None:
    with pytest.raises(SettingsError, match=name):
        RelaySettings.from_env(Env(env))


def test_env_file_is_read_but_environment_wins(tmp_path) -> None:
    f = tmp_path / ".env"
    f.write_text("# comment\nRELAY_TOKEN='from-file-0123456789'\nRELAY_PORT=1234\n")
    env = Env({"RELAY_PORT": "4321", "AUTH_SECRET": "s" * 40}, env_file=f)
    s = RelaySettings.from_env(env)
    assert s.relay_token == "from-file-0123456789" and s.port == 4321
