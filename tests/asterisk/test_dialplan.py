"""Every application and function the shipped dialplan uses is loaded by the shipped
modules.conf (`autoload=no`: a missing module only shows when a call reaches that line, as an
empty value or a hung-up call; linters do not know which modules are loaded)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from testbed.asterisk import Asterisk

pytestmark = pytest.mark.asterisk

DIALPLAN = Path(__file__).resolve().parents[2] / "asterisk" / "extensions.conf"
_APP = re.compile(r"^\s*(?:exten\s*=>\s*[^,]+,|same\s*=>\s*)[^,]+,\s*([A-Za-z]+)\(", re.M)
_FUNCTION = re.compile(r"(?:\$\{|\bSet\()([A-Z][A-Z_]*)\(")


def used(text: str) -> tuple[set[str], set[str]]:
    """Applications and functions a dialplan text calls."""
    code = "\n".join(line.split(";", 1)[0] for line in text.splitlines())
    return set(_APP.findall(code)), set(_FUNCTION.findall(code))


def test_the_parser_finds_applications_and_functions() -> None:
    apps, functions = used(
        "exten => _X.,1,NoOp(x) ; Comment(y)\n"
        " same => n(rec),MixMonitor(${STRFTIME(${EPOCH},,%Y)}.raw)\n"
        " same => n,Set(CHANNEL(language)=${IF($[1]?a:b)})\n"
    )
    assert apps == {"NoOp", "MixMonitor", "Set"}
    assert functions == {"STRFTIME", "CHANNEL", "IF"}


def registered(pbx: Asterisk, kind: str, name: str) -> bool:
    """Whether the running Asterisk knows application or function `name` (kind: "Application"
    or "Function"): its `core show` page is headed "-= Info about <kind> '<name>' =-"."""
    return f"Info about {kind} '{name}'" in pbx.cli(f"core show {kind.lower()} {name}")


def test_what_the_dialplan_calls_is_loaded(pbx: Asterisk) -> None:
    apps, functions = used(DIALPLAN.read_text())
    assert {"Stasis", "MixMonitor", "Dial"} <= apps and {"FILTER", "CHANNEL"} <= functions
    # The check must be able to fail: a name nothing registers reads as missing.
    assert not registered(pbx, "Application", "NoSuchApp")
    assert not registered(pbx, "Function", "NO_SUCH_FUNC")
    missing = [a for a in sorted(apps) if not registered(pbx, "Application", a)]
    missing += [f"{f}()" for f in sorted(functions) if not registered(pbx, "Function", f)]
    assert not missing, f"asterisk/modules.conf loads nothing that provides {missing}"
