"""Media gateway over real UDP: formats, validation, source latching, STT stream lifecycle."""

from __future__ import annotations

import socket
import sys
import warnings

import pytest
from prometheus_client import CollectorRegistry

from ari.gateway import MediaGateway
from ari.rtp import FORMATS, build
from coach.tasks import TaskSet
from fakes.poll import pace, until
from tests.ari.conftest import TOKEN

pytestmark = pytest.mark.integration


@pytest.fixture
async def gateway(stt):
    tasks = TaskSet("ari", registry=CollectorRegistry())
    gw = MediaGateway(
        bind="127.0.0.1",
        base_port=34000 + (id(stt) % 500) * 2,
        port_count=50,
        stt_url=stt.url,
        token=TOKEN,
        buffer_seconds=5,
        tasks=tasks,
    )
    yield gw
    await gw.close()
    await tasks.close()


def _sender() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    return sock


@pytest.mark.skipif(sys.version_info >= (3, 13), reason="audioop reference removed in 3.13")
@pytest.mark.parametrize("name", ["ulaw", "alaw"])
async def test_g711_formats_reach_stt_as_pcm16(gateway, stt, name):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import audioop
    fmt = FORMATS[name]
    tap = await gateway.open_tap("g711-call", "customer", fmt)
    payloads = [bytes((i * 7 + k) % 256 for k in range(160)) for i in range(10)]
    with _sender() as sock:
        tap.expect(sock.getsockname())  # Asterisk's address, from the ExternalMedia reply
        for i, payload in enumerate(payloads):
            sock.sendto(
                build(
                    payload, payload_type=fmt.payload_type, sequence=i, timestamp=i * 160, ssrc=7
                ),
                ("127.0.0.1", tap.port),
            )
        await stt.wait_for(lambda: len(stt.audio("g711-call", "customer")) >= 3200)
    convert = audioop.ulaw2lin if name == "ulaw" else audioop.alaw2lin
    assert stt.audio("g711-call", "customer") == b"".join(convert(p, 2) for p in payloads)
    assert stt.streams[0].rate == 8000
    await gateway.close_tap(tap)
    assert stt.streams[0].ended and gateway.ports.in_use == 0


async def test_invalid_foreign_and_wrong_pt_packets_are_dropped(gateway, stt):
    fmt = FORMATS["slin16"]
    tap = await gateway.open_tap("val-call", "agent", fmt)
    good = bytes(range(256)) * 2 + bytes(128)  # 640 bytes, big-endian samples

    def pkt(seq: int, pt: int = 118) -> bytes:
        return build(good, payload_type=pt, sequence=seq, timestamp=seq * 320, ssrc=1)

    with _sender() as asterisk, _sender() as intruder:
        addr = ("127.0.0.1", tap.port)
        tap.expect(None)  # an Asterisk without UNICASTRTP_*: the first valid sender is latched
        asterisk.sendto(pkt(0), addr)
        await stt.wait_for(lambda: len(stt.audio("val-call", "agent")) >= 640)
        intruder.sendto(pkt(1), addr)  # not the latched source
        asterisk.sendto(b"\x00" * 20, addr)  # RTP version 0
        asterisk.sendto(pkt(1, pt=13), addr)  # comfort noise
        asterisk.sendto(b"\x80", addr)  # truncated
        asterisk.sendto(pkt(1), addr)
        await stt.wait_for(lambda: len(stt.audio("val-call", "agent")) >= 1280)
    await gateway.close_tap(tap)
    assert (tap.stats.foreign, tap.stats.invalid, tap.stats.wrong_pt) == (1, 2, 1)
    assert len(stt.audio("val-call", "agent")) == 1280


async def test_silent_tap_ends_its_stream_cleanly(gateway, stt):
    # Streams connect at once (lower setup latency); a tap that heard nothing just ends.
    tap = await gateway.open_tap("quiet-call", "agent", FORMATS["slin16"])
    await gateway.close_tap(tap)
    await stt.wait_for(lambda: stt.open_streams == 0)
    assert all(s.audio == b"" for s in stt.streams)


async def test_stt_reconnect_carries_offset(gateway, stt):
    fmt = FORMATS["slin16"]
    stt.close_after_bytes = 6400
    tap = await gateway.open_tap("off-call", "customer", fmt)
    with _sender() as sock:
        tap.expect(sock.getsockname())
        for i in range(30):  # 600 ms
            sock.sendto(
                build(bytes(640), payload_type=118, sequence=i, timestamp=i * 320, ssrc=3),
                ("127.0.0.1", tap.port),
            )
            await pace(0.005)  # a real-time-ish sender, not synchronisation
        await stt.wait_for(lambda: len(stt.streams) == 2 and stt.streams[1].audio)
    await gateway.close_tap(tap)
    first, second = stt.streams
    # The second socket says where it resumes, so STT keeps times relative to the call.
    # Frames in flight when STT died are lost (WebSocket has no acks): at most what was sent
    # after the cut, which is why `offset` counts what was sent, not what STT confirmed.
    resume = round(second.offset * 16000 * 2)
    assert len(first.audio) <= resume <= 30 * 640
    assert resume + len(second.audio) == 30 * 640


def _stranger() -> socket.socket:
    """A sender on another loopback address: someone else on the LAN."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.2", 0))
    return sock


async def test_only_asterisks_address_may_send_even_before_its_reply(gateway, stt):
    fmt = FORMATS["slin16"]
    tap = await gateway.open_tap("inj-call", "customer", fmt)
    addr = ("127.0.0.1", tap.port)
    voice = [bytes([i]) * 640 for i in range(1, 11)]
    with _sender() as asterisk, _stranger() as spray:
        # The stranger sprays at the predictable port before ExternalMedia even exists...
        for i in range(20):
            spray.sendto(
                build(b"\x7f" * 640, payload_type=118, sequence=i, timestamp=i * 320, ssrc=99), addr
            )
        asterisk.sendto(build(voice[0], payload_type=118, sequence=0, timestamp=0, ssrc=5), addr)
        await until(lambda: tap.stats.datagrams >= 21, what="the first datagrams")
        tap.expect(asterisk.getsockname())  # ...then Asterisk's reply names its address
        for i, chunk in enumerate(voice[1:], 1):
            spray.sendto(
                build(b"\x7f" * 640, payload_type=118, sequence=i, timestamp=i * 320, ssrc=5), addr
            )  # same SSRC, wrong address
            asterisk.sendto(
                build(chunk, payload_type=118, sequence=i, timestamp=i * 320, ssrc=5), addr
            )
        await stt.wait_for(lambda: len(stt.audio("inj-call", "customer")) >= 6400)
    await gateway.close_tap(tap)
    assert stt.audio("inj-call", "customer") == b"".join(voice)  # byte-symmetric samples
    assert tap.stats.foreign == 29


async def test_oversized_datagrams_are_dropped_and_the_stream_goes_on(gateway, stt):
    fmt = FORMATS["slin16"]
    tap = await gateway.open_tap("big-call", "agent", fmt)
    addr = ("127.0.0.1", tap.port)
    with _sender() as asterisk:
        tap.expect(asterisk.getsockname())
        asterisk.sendto(build(bytes(640), payload_type=118, sequence=0, timestamp=0, ssrc=1), addr)
        # 64 KB from Asterisk's own address: used to reach STT whole and close it with 1009.
        asterisk.sendto(
            build(bytes(60_000), payload_type=118, sequence=1, timestamp=320, ssrc=1), addr
        )
        for seq in range(2, 6):
            asterisk.sendto(
                build(bytes(640), payload_type=118, sequence=seq, timestamp=seq * 320, ssrc=1), addr
            )
        await stt.wait_for(lambda: len(stt.audio("big-call", "agent")) >= 6 * 640)
    await gateway.close_tap(tap)
    assert tap.stats.oversize == 1 and tap.jitter.stats.lost == 1  # its place: silence
    assert len(stt.streams) == 1 and len(stt.audio("big-call", "agent")) == 6 * 640


async def test_a_new_ssrc_is_taken_only_as_a_steady_stream(gateway, stt):
    fmt = FORMATS["slin16"]
    tap = await gateway.open_tap("ssrc-call", "customer", fmt)
    addr = ("127.0.0.1", tap.port)

    def pkt(fill: int, seq: int, ssrc: int) -> bytes:
        return build(
            bytes([fill]) * 640, payload_type=118, sequence=seq, timestamp=seq * 320, ssrc=ssrc
        )

    with _sender() as asterisk:
        tap.expect(asterisk.getsockname())
        asterisk.sendto(pkt(1, 0, 10), addr)
        asterisk.sendto(pkt(9, 500, 66), addr)  # a lone packet of another SSRC: not taken
        asterisk.sendto(pkt(2, 1, 10), addr)
        # A re-INVITE: Asterisk's new RTP instance, new SSRC and sequence, steady.
        for k in range(4):
            asterisk.sendto(pkt(3 + k, 7000 + k, 20), addr)
        await stt.wait_for(lambda: len(stt.audio("ssrc-call", "customer")) >= 6 * 640)
    await gateway.close_tap(tap)
    got = stt.audio("ssrc-call", "customer")
    assert got == b"".join(bytes([f]) * 640 for f in (1, 2, 3, 4, 5, 6))
    assert tap.stats.ssrc == 1 and tap.ssrc == 20
