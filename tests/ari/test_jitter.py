"""Jitter buffer: reordering by sequence, silence for losses, late/duplicate, SSRC change."""

from __future__ import annotations

import pytest

from ari.jitter import JitterBuffer
from ari.rtp import RtpPacket

pytestmark = pytest.mark.unit


def pkt(seq: int, ssrc: int = 1) -> tuple[RtpPacket, bytes]:
    pcm = bytes([seq % 256]) * 4
    return RtpPacket(118, seq % 65536, seq * 2, ssrc, False, b""), pcm


def run(jb: JitterBuffer, seqs: list[int], ssrc: int = 1) -> list[bytes]:
    out: list[bytes] = []
    for s in seqs:
        out += jb.push(*pkt(s, ssrc))
    return out


def frames(*seqs: int) -> list[bytes]:
    return [bytes([s % 256]) * 4 for s in seqs]


SILENCE = bytes(4)


def test_in_order_plays_at_once():
    jb = JitterBuffer()
    assert run(jb, [10, 11, 12]) == frames(10, 11, 12)


def test_reordered_packets_come_out_in_order():
    jb = JitterBuffer()
    assert run(jb, [1, 3, 2, 5, 4, 6]) == frames(1, 2, 3, 4, 5, 6)
    assert jb.stats.lost == 0


def test_lost_packet_becomes_silence_after_depth():
    jb = JitterBuffer(depth=3)
    out = run(jb, [1, 3, 4, 5])
    assert out == frames(1)  # 2 still awaited: only 3 packets held
    out = run(jb, [6])
    assert out == [SILENCE, *frames(3, 4, 5, 6)]
    assert jb.stats.lost == 1


def test_late_and_duplicate_packets_are_dropped():
    jb = JitterBuffer(depth=1)
    out = run(jb, [1, 3, 4, 2, 4, 5])
    assert out == [*frames(1), SILENCE, *frames(3, 4, 5)]
    assert jb.stats.late == 2 and jb.stats.duplicate == 0  # 2 was filled, 4 already played
    assert run(jb, [7, 7]) == []
    assert jb.stats.duplicate == 1


def test_sequence_wraparound():
    jb = JitterBuffer()
    assert run(jb, [65534, 65535, 65536, 65537]) == frames(65534, 65535, 0, 1)


def test_ssrc_change_flushes_and_restarts():
    jb = JitterBuffer()
    out = run(jb, [100, 102])
    out += run(jb, [5000, 5001], ssrc=2)
    assert out == [*frames(100), SILENCE, *frames(102), *frames(5000, 5001)]
    assert jb.stats.ssrc_changes == 1


def test_big_jump_resyncs_without_minutes_of_silence():
    jb = JitterBuffer()
    out = run(jb, [1, 2, 3000, 3001])
    assert out == frames(1, 2, 3000, 3001)
    assert jb.stats.resyncs == 1 and jb.stats.lost == 0


def test_flush_fills_gaps_between_held():
    jb = JitterBuffer(depth=5)
    run(jb, [1])
    assert run(jb, [3, 5]) == []
    assert jb.flush() == [SILENCE, *frames(3), SILENCE, *frames(5)]
