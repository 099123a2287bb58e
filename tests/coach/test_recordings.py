"""Finding a recording the bus named under RECORDINGS_DIR, and never outside it."""

from __future__ import annotations

from pathlib import Path

import pytest

from coach.recordings import locate

pytestmark = pytest.mark.unit


def test_asterisks_path_is_found_under_the_mounted_folder_with_its_subfolder(
    tmp_path: Path,
) -> None:
    (tmp_path / "coach").mkdir()
    (tmp_path / "coach" / "x.raw").write_bytes(b"\0" * 4)
    # MixMonitor writes into coach/ below Asterisk's monitor folder; the relay and the second
    # pass see the same volume at /recordings.
    assert (
        locate("/var/spool/asterisk/monitor/coach/x.raw", tmp_path)
        == (tmp_path / "coach" / "x.raw").resolve()
    )
    (tmp_path / "y.wav").write_bytes(b"\0")
    assert locate("/another/host/y.wav", tmp_path) == (tmp_path / "y.wav").resolve()
    assert locate(str(tmp_path / "y.wav"), tmp_path) == (tmp_path / "y.wav").resolve()


def test_nothing_outside_the_folder_is_opened(tmp_path: Path) -> None:
    base = tmp_path / "rec"
    base.mkdir()
    secret = tmp_path / "secret.wav"
    secret.write_bytes(b"\0")
    assert locate(str(secret), base) is None
    assert locate("/x/../../secret.wav", base) is None
    assert locate("../secret.wav", base) is None
    (base / "link.wav").symlink_to(secret)
    assert locate("link.wav", base) is None
    assert locate("/var/spool/asterisk/monitor/coach/missing.raw", base) is None
