"""The recordings store on a real directory: age by modification time (set with os.utime, no
waiting), which file is which call's (MixMonitor's name, the call id, names other stores
know), and nothing but recordings inside the directory is ever touched."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from coach.retention import Erasure, KnowsRecordings, Store
from retention.recordings import RecordingsStore, call_of

pytestmark = pytest.mark.unit

DAY = 86_400


def make(path: Path, age_days: float, size: int = 1000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\0" * size)
    when = time.time() - age_days * DAY
    os.utime(path, (when, when))
    return path


def cutoff_ms(days: float) -> int:
    return int((time.time() - days * DAY) * 1000)


def test_it_is_a_store_that_does_not_claim_to_know_recordings(tmp_path: Path) -> None:
    store = RecordingsStore(tmp_path)
    assert isinstance(store, Store) and store.kind == "audio"
    assert not isinstance(store, KnowsRecordings)


def test_a_call_id_comes_from_mixmonitor_names_and_plain_names() -> None:
    assert call_of(Path("20261201-101500-1733050000.42.raw")) == "1733050000.42"
    assert call_of(Path("replay-abc123.wav")) == "replay-abc123"
    assert call_of(Path("2026-12-01.wav")) == "2026-12-01"


async def test_recordings_past_the_cutoff_go_and_the_rest_stay(tmp_path: Path) -> None:
    coach = tmp_path / "coach"
    old_raw = make(coach / "20261001-090000-1727770000.1.raw", 40, 4096)
    old_wav = make(tmp_path / "1727770000.2.wav", 31)
    fresh = make(coach / "20261130-090000-1733000000.3.raw", 29)
    notes = make(tmp_path / "old-notes.txt", 400)  # not a recording
    removed = await RecordingsStore(tmp_path).purge_before(cutoff_ms(30))
    assert not old_raw.exists() and not old_wav.exists()
    assert fresh.exists() and notes.exists()
    by_call = {r.call_id: r for r in removed}
    assert set(by_call) == {"1727770000.1", "1727770000.2"}
    assert by_call["1727770000.1"].bytes == 4096
    assert by_call["1727770000.1"].detail == "coach/20261001-090000-1727770000.1.raw"
    assert all(r.what == "recording" and r.rows == 1 for r in removed)
    assert await RecordingsStore(tmp_path).purge_before(cutoff_ms(30)) == []  # idempotent


async def test_symbolic_links_are_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    victim = make(outside / "20260101-000000-x.raw", 400)
    root = tmp_path / "recordings"
    root.mkdir()
    (root / "linked").symlink_to(outside, target_is_directory=True)
    (root / "20260101-000000-y.raw").symlink_to(victim)
    assert await RecordingsStore(root).purge_before(cutoff_ms(1)) == []
    assert victim.exists()


async def test_erasure_takes_the_calls_files_only(tmp_path: Path) -> None:
    mine = make(tmp_path / "coach" / "20261201-101500-1733050000.42.raw", 0)
    mine_wav = make(tmp_path / "1733050000.42.wav", 0)
    named = make(tmp_path / "other-name.wav", 0)  # the call's stream names this file
    similar = make(tmp_path / "20261201-101500-1733050000.421.raw", 0)
    other = make(tmp_path / "20261201-101500-1733050001.7.raw", 0)
    store = RecordingsStore(tmp_path)
    removed = await store.erase(Erasure("1733050000.42", frozenset({"other-name.wav"})))
    assert not mine.exists() and not mine_wav.exists() and not named.exists()
    assert similar.exists() and other.exists()
    assert sum(r.bytes or 0 for r in removed) == 3000
