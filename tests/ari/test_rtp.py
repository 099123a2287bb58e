"""RTP parsing, validation and payload decoding."""

from __future__ import annotations

import struct
import sys
import warnings
from array import array

import pytest

from ari.rtp import FORMATS, RtpError, build, parse, pcm16le_to_payload, to_pcm16le

pytestmark = pytest.mark.unit


def test_parse_basic_header():
    pkt = build(
        b"\x01\x02",
        payload_type=118,
        sequence=65535,
        timestamp=2**32 - 1,
        ssrc=0xDEADBEEF,
        marker=True,
    )
    p = parse(pkt)
    assert (p.payload_type, p.sequence, p.timestamp, p.ssrc, p.marker, p.payload) == (
        118,
        65535,
        2**32 - 1,
        0xDEADBEEF,
        True,
        b"\x01\x02",
    )


def test_parse_csrc_extension_and_padding():
    header = struct.pack("!BBHII", 0x80 | 0x20 | 0x10 | 2, 10, 7, 160, 42)
    csrcs = struct.pack("!II", 1, 2)
    ext = struct.pack("!HH", 0xBEDE, 1) + b"\x00" * 4
    payload = b"abcd"
    padding = b"\x00\x00\x03"
    p = parse(header + csrcs + ext + payload + padding)
    assert p.payload == payload and p.payload_type == 10 and p.sequence == 7


@pytest.mark.parametrize(
    "data",
    [
        b"\x80\x76\x00",  # short
        struct.pack("!BBHII", 0x40, 118, 1, 1, 1) + b"xx",  # version 1
        struct.pack("!BBHII", 0x8F, 118, 1, 1, 1),  # 15 CSRCs announced, none present
    ],
)
def test_parse_rejects_bad_packets(data):
    with pytest.raises(RtpError):
        parse(data)


def test_payload_types_per_format():
    assert {n: f.payload_type for n, f in FORMATS.items()} == {
        "slin16": 118,
        "slin": 10,
        "ulaw": 0,
        "alaw": 8,
    }
    assert FORMATS["slin16"].frame_bytes(20) == 640
    assert FORMATS["slin"].frame_bytes(20) == 320
    assert FORMATS["ulaw"].frame_bytes(20) == 160


def test_slin_is_big_endian_on_the_wire():
    samples = array("h", [1, -2, 300, -32768, 32767])
    wire = b"".join(struct.pack(">h", s) for s in samples)
    le = to_pcm16le(wire, FORMATS["slin16"])
    assert le == b"".join(struct.pack("<h", s) for s in samples)
    assert pcm16le_to_payload(le, FORMATS["slin"]) == wire


def test_odd_slin_payload_is_invalid():
    with pytest.raises(RtpError):
        to_pcm16le(b"\x00\x01\x02", FORMATS["slin16"])


@pytest.mark.skipif(sys.version_info >= (3, 13), reason="audioop reference removed in 3.13")
@pytest.mark.parametrize("name", ["ulaw", "alaw"])
def test_g711_tables_match_reference(name):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import audioop
    data = bytes(range(256))
    ref = audioop.ulaw2lin(data, 2) if name == "ulaw" else audioop.alaw2lin(data, 2)
    assert to_pcm16le(data, FORMATS[name]) == ref
