"""Reorder RTP packets by sequence number, fill gaps with silence, follow SSRC changes.

Ordering is by sequence number only (not arrival time): a packet waits until the one before
it arrived or until `depth` later packets are waiting, then the missing one is declared lost
and replaced by silence of one packet's length. Bound: at most `depth` packets are held; a
late packet (its slot already played or filled) is dropped and counted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from ari.rtp import RtpPacket

SEQ_MOD: Final = 1 << 16
MAX_GAP_PACKETS: Final = 50
"""A jump of more than this many packets (1 s) is a resync, not a loss: no silence is made."""


@dataclass
class JitterStats:
    """Counters the gateway exports as metrics."""

    received: int = 0
    played: int = 0
    lost: int = 0
    late: int = 0
    duplicate: int = 0
    resyncs: int = 0
    ssrc_changes: int = 0


@dataclass
class JitterBuffer:
    """Sequence reordering for one RTP stream; `push` returns PCM chunks ready to forward."""

    depth: int = 3
    """Packets held while waiting for a missing one (3 x 20 ms = 60 ms of added latency)."""
    stats: JitterStats = field(default_factory=JitterStats)
    _ssrc: int | None = None
    _expected: int | None = None
    _held: dict[int, bytes] = field(default_factory=dict)
    _frame_len: int = 0

    def push(self, packet: RtpPacket, pcm: bytes) -> list[bytes]:
        """Add a decoded packet; return the PCM chunks now playable, in order."""
        self.stats.received += 1
        out: list[bytes] = []
        if self._ssrc != packet.ssrc:
            if self._ssrc is not None:
                # New source (Asterisk re-created its RTP instance): play what we hold, restart.
                self.stats.ssrc_changes += 1
                out.extend(self.flush())
            self._ssrc = packet.ssrc
            self._expected = packet.sequence
        if pcm:
            self._frame_len = len(pcm)
        assert self._expected is not None
        ahead = (packet.sequence - self._expected) % SEQ_MOD
        if ahead >= SEQ_MOD // 2:  # behind what we already played
            self.stats.late += 1
            return out
        if ahead > MAX_GAP_PACKETS + self.depth:
            # Far ahead: the sender jumped (or we lost >1 s). Play what we hold, resync.
            self.stats.resyncs += 1
            out.extend(self.flush())
            self._expected = packet.sequence
        if packet.sequence in self._held:
            self.stats.duplicate += 1
            return out
        self._held[packet.sequence] = pcm
        out.extend(self._drain())
        return out

    def _drain(self) -> list[bytes]:
        out: list[bytes] = []
        assert self._expected is not None
        while self._held:
            if self._expected not in self._held and len(self._held) <= self.depth:
                break
            out.append(self._play_next())
        return out

    def flush(self) -> list[bytes]:
        """Play everything held, filling gaps between held packets with silence."""
        out: list[bytes] = []
        while self._held:
            out.append(self._play_next())
        return out

    def _play_next(self) -> bytes:
        """The expected packet, or silence counted as lost; then expect the next one."""
        assert self._expected is not None
        chunk = self._held.pop(self._expected, None)
        if chunk is None:
            self.stats.lost += 1
            chunk = bytes(self._frame_len)
        else:
            self.stats.played += 1
        self._expected = (self._expected + 1) % SEQ_MOD
        return chunk
