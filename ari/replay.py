"""`python -m ari.replay FILE [AGENT.wav]`: play a recording into the pipeline as a live call.

A stereo file is left = customer, right = agent: a WAV, or Asterisk's own call recording as
it is (`.raw`, MixMonitor's interleaved stereo, 8 kHz unless `--raw-rate`); or give two mono
WAV files (customer, agent).
The audio goes as real RTP over UDP (the format ExternalMedia uses, 20 ms packets) into an
in-process media gateway, which forwards it to STT exactly as during a live call, framed by
`call.started` / `call.ended` on the bus (a single stereo file is `call.ended.recording`, as
MixMonitor's file is on a live call). Real-time pace by default; `--speed 4` is 4x faster.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import random
import socket
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ari.audio import RAW_RATE, load_audio, load_wav, resample
from ari.gateway import MediaGateway, MediaTap
from ari.rtp import FORMATS, AudioFormat, build, pcm16le_to_payload
from coach import logs
from coach.bus import Bus, BusConfig
from coach.events import is_call_id
from coach.settings import Env, SettingsError
from coach.tasks import TaskSet

log = logging.getLogger("ari.replay")


@dataclass(frozen=True)
class ReplaySettings:
    """Environment of the replay tool (same names as the service)."""

    stt_url: str
    """STT base URL (ws://host:8080)."""
    relay_token: str = field(repr=False)
    """Bearer token for STT."""
    redis_url: str
    """Redis of the bus."""
    bus: BusConfig
    """Bus key prefix and bounds (BUS_*)."""
    base_port: int
    """First local UDP port for the replay's gateway."""
    lang: str
    """Language announced in call.started."""

    @classmethod
    def from_env(cls, env: Env) -> ReplaySettings:
        """Build and check; raises SettingsError naming the variable."""
        return cls(
            stt_url=env.str("STT_URL", "ws://127.0.0.1:8080").rstrip("/"),
            relay_token=env.str("RELAY_TOKEN"),
            redis_url=env.str("REDIS_URL"),
            bus=BusConfig.from_env(env),
            base_port=env.int("REPLAY_BASE_PORT", 21000, min=1024, max=65000),
            lang=env.str("CALL_LANG", "es"),
        )


def load_legs(paths: Sequence[str | Path], raw_rate: int = RAW_RATE) -> tuple[int, bytes, bytes]:
    """(rate, customer PCM, agent PCM) from one stereo file or two mono files."""
    if len(paths) == 1:
        rate, channels = load_audio(paths[0], raw_rate)
        if len(channels) != 2:
            raise ValueError(f"{paths[0]}: one file must be stereo (left customer, right agent)")
        return rate, channels[0], channels[1]
    if len(paths) != 2:
        raise ValueError("give one stereo file or two mono files")
    rate_c, (customer, *_) = load_wav(paths[0])
    rate_a, (agent, *_) = load_wav(paths[1])
    if rate_a != rate_c:
        agent = resample(agent, rate_a, rate_c)
    return rate_c, customer, agent


def recording_of(paths: Sequence[str | Path]) -> str | None:
    """The call's recording: a single stereo file replayed is it, as MixMonitor's file is on a
    live call (the history plays it, the second pass transcribes it); two mono files are not."""
    return os.path.abspath(paths[0]) if len(paths) == 1 else None


def packets(pcm: bytes, fmt: AudioFormat) -> list[bytes]:
    """RTP packets of 20 ms as Asterisk's ExternalMedia sends them (random SSRC/seq/ts)."""
    size = fmt.frame_bytes(20)
    ssrc, seq, ts = random.getrandbits(32), random.getrandbits(16), random.getrandbits(32)
    out = []
    for i in range(0, len(pcm), size):
        frame = pcm[i : i + size]
        frame += bytes(size - len(frame))
        out.append(
            build(
                pcm16le_to_payload(frame, fmt),
                payload_type=fmt.payload_type,
                sequence=seq + i // size,
                timestamp=ts + i // 2,
                ssrc=ssrc,
                marker=i == 0,
            )
        )
    return out


async def send_rtp(pkts: list[bytes], port: int, speed: float) -> int:
    """Send packets to 127.0.0.1:port, one per 20 ms / speed; returns how many."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    try:
        start = loop.time()
        for n, pkt in enumerate(pkts):
            delay = start + n * 0.02 / speed - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            await loop.sock_sendto(sock, pkt, ("127.0.0.1", port))
    finally:
        sock.close()
    return len(pkts)


async def replay(
    paths: Sequence[str | Path],
    settings: ReplaySettings,
    *,
    speed: float = 1.0,
    call_id: str | None = None,
    agent: str = "200",
    caller_number: str = "replay",
    caller_name: str = "Replay",
    fmt_name: str = "slin16",
    bus: Bus | None = None,
    raw_rate: int = RAW_RATE,
) -> str:
    """Replay a recording as a call; returns its call id."""
    rate, customer, agent_pcm = load_legs(paths, raw_rate)
    recording = recording_of(paths)
    fmt = FORMATS[fmt_name]
    call_id = call_id or f"replay-{uuid.uuid4().hex[:12]}"
    if not is_call_id(call_id):
        raise ValueError(f"invalid call id {call_id!r}")
    own_bus = bus is None
    bus = bus or Bus.connect(settings.redis_url, settings.bus)
    tasks = TaskSet("ari-replay")
    gateway = MediaGateway(
        bind="127.0.0.1",
        base_port=settings.base_port,
        port_count=1000,
        stt_url=settings.stt_url,
        token=settings.relay_token,
        buffer_seconds=60,
        tasks=tasks,
    )
    taps: list[MediaTap] = []
    try:
        await bus.publish(
            {
                "type": "call.started",
                "callId": call_id,
                "agent": agent,
                "caller": {"number": caller_number, "name": caller_name},
                "startedAt": int(time.time() * 1000),
                "lang": settings.lang,
            }
        )
        legs = {"customer": customer, "agent": agent_pcm}
        for speaker in legs:
            tap = await gateway.open_tap(call_id, speaker, fmt)
            tap.expect(None)  # we are the sender here: no ExternalMedia reply to wait for
            taps.append(tap)
        log.info("replaying", extra={"callId": call_id, "seconds": len(customer) / 2 / rate})
        counts = await asyncio.gather(
            *(
                send_rtp(packets(resample(pcm, rate, fmt.rate), fmt), tap.port, speed)
                for tap, pcm in zip(taps, legs.values(), strict=True)
            )
        )
        # UDP on loopback is not lost, but the last datagrams may still be in the socket
        # buffer: wait (bounded) until each tap has read everything before closing it.
        for _ in range(200):  # at most 2 s
            if all(t.stats.datagrams >= n for t, n in zip(taps, counts, strict=True)):
                break
            await asyncio.sleep(0.01)
    finally:
        for tap in taps:
            await gateway.close_tap(tap)
        await tasks.close(wait=5)
        ended = {
            "type": "call.ended",
            "callId": call_id,
            "endedAt": int(time.time() * 1000),
            "reason": "replay-finished",
        }
        if recording:
            ended["recording"] = recording
        await bus.publish(ended)
        if own_bus:
            await bus.close()
    return call_id


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(prog="python -m ari.replay", description=__doc__)
    parser.add_argument(
        "files", nargs="+", help="stereo WAV or Asterisk .raw recording, or customer.wav agent.wav"
    )
    parser.add_argument(
        "--raw-rate",
        type=int,
        default=RAW_RATE,
        help="sample rate of a .raw recording (8000 for G.711 calls)",
    )
    parser.add_argument("--speed", type=float, default=1.0, help="1 = real time, 4 = 4x")
    parser.add_argument("--call-id", help="call id (default: replay-<random>)")
    parser.add_argument("--agent", default="200", help="agent id in call.started")
    parser.add_argument("--caller-number", default="replay")
    parser.add_argument("--caller-name", default="Replay")
    parser.add_argument("--format", default="slin16", choices=["slin16", "slin"])
    args = parser.parse_args(argv)
    if not 0.1 <= args.speed <= 100:
        parser.error("--speed must be between 0.1 and 100")
    try:
        settings = ReplaySettings.from_env(Env())
    except SettingsError as exc:
        print(f"ari.replay: configuration error: {exc}", file=sys.stderr)
        return 2
    logs.setup("ari.replay")
    try:
        call_id = asyncio.run(
            replay(
                args.files,
                settings,
                speed=args.speed,
                call_id=args.call_id,
                agent=args.agent,
                caller_number=args.caller_number,
                caller_name=args.caller_name,
                fmt_name=args.format,
                raw_rate=args.raw_rate,
            )
        )
    except (OSError, ValueError) as exc:
        print(f"ari.replay: {exc}", file=sys.stderr)
        return 1
    print(call_id)
    return 0


if __name__ == "__main__":
    sys.exit(main())
