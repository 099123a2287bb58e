"""Batching events into WebSocket frames: one event per line, bounded frame size."""

from __future__ import annotations

import pytest

from relay.ws import FRAME_BYTES, _frames

pytestmark = pytest.mark.unit


def test_small_events_share_a_frame_and_report_the_last_id() -> None:
    items = [(f'{{"n":{i}}}', f"1-{i}") for i in range(5)]
    assert list(_frames(items)) == [("\n".join(t for t, _ in items), "1-4")]


def test_frames_stay_under_the_byte_budget_and_keep_order() -> None:
    big = "x" * (FRAME_BYTES // 3)
    items = [(f'{{"t":"{big}","n":{i}}}', f"1-{i}") for i in range(7)]
    frames = list(_frames(items))
    assert len(frames) == 4
    assert all(len(f) <= FRAME_BYTES for f, _ in frames)
    assert [line for f, _ in frames for line in f.split("\n")] == [t for t, _ in items]
    assert [last for _, last in frames] == ["1-1", "1-3", "1-5", "1-6"]


def test_an_event_larger_than_the_budget_goes_alone() -> None:
    huge = ("h" * (FRAME_BYTES + 10), "1-1")
    frames = list(_frames([("a", "1-0"), huge, ("b", "1-2")]))
    assert frames == [("a", "1-0"), (huge[0], "1-1"), ("b", "1-2")]
    assert list(_frames([])) == []
