"""Settings helpers: read environment variables once, check them, name the culprit on error.

Every service builds one frozen settings object at start-up from an `Env`. Tests pass a plain
dict instead of patching `os.environ`.
"""

from __future__ import annotations

import builtins
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final, TypeVar

T = TypeVar("T")


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


def read_env_file(path: str | Path) -> dict[str, str]:
    """Parse a `.env` file (KEY=VALUE lines, `#` comments, optional quotes)."""
    values: dict[str, str] = {}
    p = Path(path)
    if not p.is_file():
        return values
    for raw in p.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        key = key.strip().removeprefix("export ").strip()
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key] = value
    return values


LOG_LEVELS: Final = ("debug", "info", "warning", "error")
"""What LOG_LEVEL may be."""

ENV_FILE_VAR = "COACH_ENV_FILE"
"""Names the `.env` file services read (default `.env` in the working directory)."""


def service_env() -> Env:
    """What every service reads at start: the environment, then `.env` (or $COACH_ENV_FILE)."""
    return Env(None, env_file=os.environ.get(ENV_FILE_VAR) or ".env")


class Env:
    """Typed access to configuration: the environment first, then a `.env` file, then defaults."""

    def __init__(
        self,
        environ: Mapping[builtins.str, builtins.str] | None = None,
        env_file: builtins.str | Path | None = None,
    ) -> None:
        file_values = read_env_file(env_file) if env_file else {}
        self._values: dict[builtins.str, builtins.str] = {
            **file_values,
            **(os.environ if environ is None else environ),
        }

    def raw(self, name: builtins.str) -> builtins.str | None:
        """The raw value, or None when unset or empty."""
        value = self._values.get(name)
        return value if value not in (None, "") else None

    def str(self, name: builtins.str, default: builtins.str | _Missing = MISSING) -> builtins.str:
        """A required (no default) or defaulted string."""
        value = self.raw(name)
        if value is None:
            if isinstance(default, _Missing):
                raise SettingsError(f"{name} is not set")
            return default
        return value

    def optional(self, name: builtins.str) -> builtins.str | None:
        """A string that may be absent (e.g. an API key that switches a feature on)."""
        return self.raw(name)

    def int(
        self, name: builtins.str, default: int, *, min: int | None = None, max: int | None = None
    ) -> int:
        """An integer within optional bounds."""
        value = self.raw(name)
        if value is None:
            return default
        try:
            number = int(value)
        except ValueError:
            raise SettingsError(f"{name}={value!r} is not an integer") from None
        _check_bounds(name, number, min, max)
        return number

    def float(
        self,
        name: builtins.str,
        default: float,
        *,
        min: float | None = None,
        max: float | None = None,
    ) -> float:
        """A float within optional bounds."""
        value = self.raw(name)
        if value is None:
            return default
        try:
            number = float(value)
        except ValueError:
            raise SettingsError(f"{name}={value!r} is not a number") from None
        _check_bounds(name, number, min, max)
        return number

    def bool(self, name: builtins.str, default: bool) -> bool:
        """A boolean: 1/true/yes/on or 0/false/no/off (empty = unset, as for every getter)."""
        value = self.raw(name)
        if value is None:
            return default
        lowered = value.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise SettingsError(f"{name}={value!r} is not a boolean (use true or false)")

    def log_level(self) -> builtins.str:
        """LOG_LEVEL, checked like every other variable (every service reads it this way)."""
        return self.choice("LOG_LEVEL", "info", LOG_LEVELS)

    def choice(
        self, name: builtins.str, default: builtins.str, choices: Sequence[builtins.str]
    ) -> builtins.str:
        """One of a fixed set of strings."""
        value = self.str(name, default)
        if value not in choices:
            raise SettingsError(f"{name}={value!r} must be one of: {', '.join(choices)}")
        return value


def _check_bounds(name: str, number: float, lo: float | None, hi: float | None) -> None:
    if lo is not None and number < lo:
        raise SettingsError(f"{name}={number} is below the minimum {lo}")
    if hi is not None and number > hi:
        raise SettingsError(f"{name}={number} is above the maximum {hi}")
