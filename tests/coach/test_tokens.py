"""Scoped service tokens: the file's format, scopes, re-reading on change."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from coach.tokens import ServiceTokens, TokenFileError, parse, token_hash

pytestmark = pytest.mark.unit


def _line(name: str, scopes: str, token: str) -> str:
    return f"{name} {scopes} {token_hash(token)}\n"


def test_scopes_of_each_holder(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text(
        "# comment\n"
        + _line("crm", "publish:coach,publish:summary", "crm-token")
        + _line("dash", "read", "dash-token")
        + _line("ari", "stream", "ari-token")
    )
    tokens = ServiceTokens(path)
    crm = tokens.lookup("crm-token")
    assert crm is not None and crm.name == "crm"
    assert crm.may_publish("coach") and not crm.may_publish("call.started")
    assert not crm.may("read")
    dash = tokens.lookup("dash-token")
    assert dash is not None and dash.may("read") and not dash.may_publish("coach")
    ari = tokens.lookup("ari-token")
    assert ari is not None and ari.may("stream") and not ari.may("read")
    assert tokens.lookup("unknown-token") is None and tokens.lookup("") is None


def test_a_changed_file_is_read_again_without_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text(_line("crm", "publish:coach", "old-token"))
    tokens = ServiceTokens(path)
    assert tokens.lookup("old-token") is not None
    path.write_text(_line("crm", "publish:coach", "new-token-rotated"))
    os.utime(path, ns=(1, 1))  # a different mtime even on a coarse clock
    assert tokens.lookup("new-token-rotated") is not None
    assert tokens.lookup("old-token") is None


def test_a_broken_edit_keeps_the_last_good_set(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text(_line("crm", "publish:coach", "crm-token"))
    tokens = ServiceTokens(path)
    path.write_text("crm publish:coach not-a-hash-and-longer\n")
    assert tokens.lookup("crm-token") is not None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("crm publish:coach\n", ":1: want"),
        (f"crm admin {'a' * 64}\n", "unknown scope admin"),
        ("crm read abc\n", "hex sha256"),
        (f"a read {'b' * 64}\nb read {'b' * 64}\n", ":2: the same token twice"),
    ],
)
def test_malformed_files_name_the_line(text: str, message: str) -> None:
    with pytest.raises(TokenFileError, match=message):
        parse(text)


def test_without_a_file_the_relay_token_holds_every_scope() -> None:
    tokens = ServiceTokens(None, fallback="relay-token-123456")
    holder = tokens.lookup("relay-token-123456")
    assert holder is not None and holder.may("read") and holder.may_publish("call.started")
    assert tokens.lookup("other") is None
