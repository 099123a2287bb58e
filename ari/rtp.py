"""RTP packets as Asterisk's ExternalMedia sends them: parse, validate, decode to PCM16 LE.

Facts (DESIGN.md "Asterisk facts"): 12-byte header, PT 118 slin16, 10 slin, 0 ulaw, 8 alaw,
20 ms packets, slin samples big-endian.
"""

from __future__ import annotations

import struct
import sys
from array import array
from dataclasses import dataclass
from typing import Final

RTP_VERSION: Final = 2
HEADER_BYTES: Final = 12
_HEADER = struct.Struct("!BBHII")


@dataclass(frozen=True)
class AudioFormat:
    """One ExternalMedia `format`: its RTP payload type, sample rate and bytes per sample."""

    name: str
    payload_type: int
    rate: int
    sample_bytes: int

    def frame_bytes(self, ms: int = 20) -> int:
        """Payload size of a packet of `ms` milliseconds."""
        return self.rate * ms // 1000 * self.sample_bytes


FORMATS: Final = {
    "slin16": AudioFormat("slin16", 118, 16000, 2),
    "slin": AudioFormat("slin", 10, 8000, 2),
    "ulaw": AudioFormat("ulaw", 0, 8000, 1),
    "alaw": AudioFormat("alaw", 8, 8000, 1),
}


class RtpError(ValueError):
    """A datagram that is not an acceptable RTP packet for this stream (it is dropped)."""


@dataclass(frozen=True)
class RtpPacket:
    """The fields of one RTP packet that the media gateway uses."""

    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    marker: bool
    payload: bytes


def parse(data: bytes) -> RtpPacket:
    """Parse one RTP datagram (CSRCs, header extension and padding handled); raise RtpError."""
    if len(data) < HEADER_BYTES:
        raise RtpError(f"short packet ({len(data)} bytes)")
    b0, b1, seq, ts, ssrc = _HEADER.unpack_from(data)
    if b0 >> 6 != RTP_VERSION:
        raise RtpError(f"RTP version {b0 >> 6}")
    offset = HEADER_BYTES + 4 * (b0 & 0x0F)
    if b0 & 0x10:  # header extension: 4-byte header then length*4 bytes
        if len(data) < offset + 4:
            raise RtpError("truncated header extension")
        (ext_words,) = struct.unpack_from("!H", data, offset + 2)
        offset += 4 + 4 * ext_words
    end = len(data)
    if b0 & 0x20:  # padding: the last byte counts the padding bytes
        end -= data[-1]
    if end < offset:
        raise RtpError("header longer than packet")
    return RtpPacket(b1 & 0x7F, seq, ts, ssrc, bool(b1 & 0x80), bytes(data[offset:end]))


def build(
    payload: bytes,
    *,
    payload_type: int,
    sequence: int,
    timestamp: int,
    ssrc: int,
    marker: bool = False,
) -> bytes:
    """Build an RTP packet (used by the replay tool and the ARI test double)."""
    b1 = (0x80 if marker else 0) | (payload_type & 0x7F)
    header = _HEADER.pack(0x80, b1, sequence & 0xFFFF, timestamp & 0xFFFFFFFF, ssrc & 0xFFFFFFFF)
    return header + payload


def _ulaw_to_linear(byte: int) -> int:
    u = ~byte & 0xFF
    t = ((u & 0x0F) << 3) + 0x84
    t <<= (u & 0x70) >> 4
    return (0x84 - t) if u & 0x80 else (t - 0x84)


def _alaw_to_linear(byte: int) -> int:
    a = byte ^ 0x55
    t = (a & 0x0F) << 4
    seg = (a & 0x70) >> 4
    if seg == 0:
        t += 8
    elif seg == 1:
        t += 0x108
    else:
        t += 0x108
        t <<= seg - 1
    return t if a & 0x80 else -t


# 256-entry tables (the stdlib's audioop is deprecated and gone in 3.13).
_ULAW: Final = [_ulaw_to_linear(i) for i in range(256)]
_ALAW: Final = [_alaw_to_linear(i) for i in range(256)]


def to_pcm16le(payload: bytes, fmt: AudioFormat) -> bytes:
    """Convert one payload of `fmt` to PCM16 little-endian samples."""
    if fmt.sample_bytes == 2:
        if len(payload) % 2:
            raise RtpError("odd payload length for 16-bit samples")
        samples = array("h", payload)
        # Asterisk's slin is network (big-endian) order; swap on little-endian hosts.
        if sys.byteorder == "little":
            samples.byteswap()
        return samples.tobytes()
    table = _ULAW if fmt.name == "ulaw" else _ALAW
    out = array("h", [table[b] for b in payload])
    if sys.byteorder == "big":
        out.byteswap()
    return out.tobytes()


def pcm16le_to_payload(pcm: bytes, fmt: AudioFormat) -> bytes:
    """PCM16 LE to a payload of `fmt` (slin/slin16 only: big-endian); for senders."""
    if fmt.sample_bytes != 2:
        raise ValueError(f"encoding to {fmt.name} is not supported")
    samples = array("h", pcm)
    if sys.byteorder == "little":
        samples.byteswap()
    return samples.tobytes()
