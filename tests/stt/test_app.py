"""The real service (`python -m stt`, real base model, real Redis) over real WebSockets."""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from bench.stt import client, corpus
from bench.stt.wer import WerCounts
from coach.bus import Bus, BusConfig
from coach.events import validate
from coach.redis_server import free_port
from fakes import poll
from tests.stt import audio

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
PROMPTS = ["conf-getpin", "agent-newlocation", "conf-invalid", "conf-lockednow"]


class Service:
    def __init__(self, url: str, token: str, prefix: str, proc: subprocess.Popen[bytes]) -> None:
        self.url, self.token, self.prefix, self.proc = url, token, prefix, proc
        self.http = url.replace("ws://", "http://")

    def get(self, path: str) -> str:
        body: bytes = urllib.request.urlopen(self.http + path, timeout=5).read()
        return body.decode()

    def health(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.get("/health"))
        return data


@pytest.fixture(scope="module")
def service(redis_server, base_model, tmp_path_factory):
    token = secrets.token_hex(16)
    port = free_port()
    prefix = f"stt{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "RELAY_TOKEN": token,
        "STT_PORT": str(port),
        "STT_HOST": "127.0.0.1",
        "MODEL_PATH": str(base_model.path),
        "REDIS_URL": redis_server.url,
        "BUS_PREFIX": prefix,
        "STT_MAX_STREAMS": "8",
    }
    log_path = tmp_path_factory.mktemp("stt") / "stt.log"
    log = log_path.open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "stt"], cwd=ROOT, env=env, stdout=log, stderr=log
    )
    svc = Service(f"ws://127.0.0.1:{port}", token, prefix, proc)

    def up() -> bool:
        assert proc.poll() is None, "stt exited at start-up"
        try:
            svc.health()
        except OSError:
            return False
        return True

    try:
        poll.until_sync(up, 60, what="stt up")
        yield svc
    finally:
        proc.terminate()
        code = proc.wait(20)
        log.close()
    # uvicorn re-raises the captured SIGTERM after its graceful shutdown, hence -15.
    assert code in (0, -15)
    assert "Application shutdown complete" in log_path.read_text(), "stt did not shut down cleanly"


@pytest.fixture
async def svc_bus(service, redis_server):
    b = Bus.connect(redis_server.url, BusConfig(prefix=service.prefix))
    yield b
    await b.close()


def call_id() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


async def finals_on_bus(bus: Bus, cid: str) -> list[dict[str, Any]]:
    events = [e.data() for e in await bus.read_call(cid)]
    return [e for e in events if e["type"] == "final" and e["text"]]


async def bus_finals(bus: Bus, cid: str, want: int, wait_s: float = 10.0) -> list[dict[str, Any]]:
    """The call's finals on the bus, once there are at least `want`."""

    async def enough() -> list[dict[str, Any]] | None:
        finals = await finals_on_bus(bus, cid)
        return finals if len(finals) >= want else None

    found = await poll.until_async(enough, wait_s, what=f"{want} finals of {cid} on the bus")
    return found or []


async def published_all(service: Service) -> None:
    """Wait until the service's publisher holds nothing (every event it was given is on the bus)."""

    async def empty() -> bool:
        return bool((await asyncio.to_thread(service.health))["busBuffered"] == 0)

    await poll.until_async(empty, 10, what="stt publisher drained")


async def test_real_prompts_at_real_time(service, svc_bus):
    prompts = corpus.load_all(PROMPTS)
    pcm, segments = client.timeline(
        [(p.name, p.pcm, p.speech_span) for p in prompts], 8000, gap_s=1.5
    )
    cid = call_id()
    session = await client.play(service.url, service.token, cid, "customer", pcm, 8000)
    assert session.close_code == 1000
    finals = session.finals()
    # Each prompt gives at least one final; the text matches the references.
    counts = WerCounts()
    for i, (prompt, seg) in enumerate(zip(prompts, segments, strict=True)):
        hi = segments[i + 1].start if i + 1 < len(segments) else 1e9
        mine = [r.event["text"] for r in finals if seg.start - 0.3 <= r.event["start"] < hi]
        assert mine, f"no final for {prompt.name}"
        counts.add(prompt.reference, " ".join(mine))
    assert counts.wer <= 0.25, [r.event["text"] for r in finals]
    # Partials come before their final and share its utteranceId; times are seconds from start.
    for final in finals:
        uid = final.event["utteranceId"]
        partial_times = [r.at for r in session.partials() if r.event["utteranceId"] == uid]
        assert partial_times and max(partial_times) <= final.at
        assert validate(final.event)["confidence"] > 0
        assert 0 <= final.event["start"] < final.event["end"] <= len(pcm) / 8000
    # Every final also landed on the bus, in order.
    on_bus = await bus_finals(svc_bus, cid, len(finals))
    assert [e["utteranceId"] for e in on_bus] == [r.event["utteranceId"] for r in finals]


async def test_silence_noise_tones_and_music_give_no_finals(service, svc_bus):
    pcm = np.concatenate(
        [
            audio.silence(1.0),
            audio.noise(2.0),
            audio.dtmf("159#159#"),
            audio.silence(0.5),
            audio.tone_file("beep"),
            audio.tone_file("ascending-2tone"),
            audio.tone_file("beeperr"),
            audio.hold_music(4.0),
            audio.noise(1.0, level=0.005),
            audio.silence(1.0),
        ]
    )
    cid = call_id()
    session = await client.play(service.url, service.token, cid, "agent", pcm, 8000, realtime=False)
    assert session.close_code == 1000
    assert session.finals() == []
    # Everything the stream emitted was handed to the publisher before the close: once it is
    # drained, the bus holds all there will be.
    await published_all(service)
    assert await finals_on_bus(svc_bus, cid) == []


async def expect_close(service, query: str, send, token: str | None = "good") -> tuple[int, str]:
    headers = (
        {"Authorization": f"Bearer {service.token if token == 'good' else token}"} if token else {}
    )
    async with connect(f"{service.url}/stream?{query}", additional_headers=headers) as ws:
        for item in send:
            try:
                await ws.send(item)
            except ConnectionClosed:
                break
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 10)
        assert ws.close_code is not None
        return ws.close_code, ws.close_reason or ""


GOOD = "callId=c-bad&speaker=agent&rate=8000"


@pytest.mark.parametrize(
    ("query", "send", "token", "code", "reason"),
    [
        (GOOD, [], None, 4401, "token"),
        (GOOD, [], "wrong-token-xxxxxxxx", 4401, "token"),
        ("callId=c-bad&speaker=agent&rate=44100", [], "good", 4400, "rate"),
        ("callId=c-bad&speaker=boss&rate=8000", [], "good", 4400, "speaker"),
        ("speaker=agent&rate=8000", [], "good", 4400, "callId"),
        (GOOD + "&lang=xx", [], "good", 4400, "lang"),
        (GOOD, [b"\x00" * 321], "good", 1007, "even"),
        (GOOD, [b"\x00" * 200_000], "good", 1009, "limit"),
        (GOOD, ["hello"], "good", 1003, "end"),
        (GOOD, [json.dumps({"type": "start"})], "good", 1003, "end"),
    ],
    ids=[
        "no-token",
        "wrong-token",
        "bad-rate",
        "bad-speaker",
        "no-call",
        "bad-lang",
        "odd-bytes",
        "oversized",
        "garbage",
        "unknown-json",
    ],
)
async def test_bad_input_closes_with_a_clear_code(service, query, send, token, code, reason):  # noqa: PLR0917
    got_code, got_reason = await expect_close(service, query, send, token)
    assert got_code == code
    assert reason in got_reason


async def test_bad_streams_do_not_disturb_a_good_one(service):
    prompt = corpus.load_all(["conf-getpin"])[0]
    pcm = np.concatenate([audio.silence(0.3), prompt.pcm, audio.silence(1.0)])

    async def good():
        return await client.play(
            service.url, service.token, call_id(), "agent", pcm, 8000, realtime=True
        )

    async def bad():
        # While the good stream is open.
        await poll.until_async(
            lambda: asyncio.to_thread(lambda: service.health()["openStreams"] >= 1),
            10,
            what="the good stream open",
        )
        for send in ([b"\x00" * 321], ["garbage"], [b"\x00" * 200_000]):
            await expect_close(service, GOOD, send)

    session, _ = await asyncio.gather(good(), bad())
    assert session.close_code == 1000
    assert [r.event["text"] for r in session.finals()] != []


async def test_vanished_client_still_publishes_its_last_words(service, svc_bus):
    prompt = corpus.load_all(["agent-newlocation"])[0]
    cid = call_id()
    async with connect(
        f"{service.url}/stream?callId={cid}&speaker=customer&rate=8000",
        additional_headers={"Authorization": f"Bearer {service.token}"},
    ) as ws:
        data = prompt.pcm[: len(prompt.pcm) * 3 // 4].tobytes()
        for i in range(0, len(data), 3200):
            await ws.send(data[i : i + 3200])
        # Vanish mid-utterance: drop the TCP connection without a close handshake.
        ws.transport.abort()
    finals = await bus_finals(svc_bus, cid, 1, wait_s=15)
    assert finals and "favor" in finals[0]["text"].lower()
    await poll.until_async(
        lambda: asyncio.to_thread(lambda: service.health()["openStreams"] == 0),
        10,
        what="the vanished client's stream closed (not leaked)",
    )


async def test_header_token_and_health_and_metrics_report(service):
    prompt = corpus.load_all(["conf-lockednow"])[0]
    async with connect(
        f"{service.url}/stream?callId={call_id()}&speaker=agent&rate=8000",
        additional_headers={"Authorization": f"Bearer {service.token}"},
    ) as ws:
        await ws.send(np.concatenate([prompt.pcm, audio.silence(0.5)]).tobytes()[:64000])
        health = service.health()
        assert health["openStreams"] >= 1
        await ws.send(json.dumps({"type": "end"}))
        events = [json.loads(m) async for m in ws]
    assert any(e["type"] == "final" for e in events)
    assert ws.close_code == 1000
    assert {"model": "base", "device": "cpu"}.items() <= health.items()
    assert health["computeType"].startswith("int8")
    metrics = service.get("/metrics")
    for name in (
        "stt_open_streams",
        "stt_queue_depth",
        "stt_decode_seconds",
        "stt_real_time_factor",
        "stt_dropped_partials",
    ):
        assert name in metrics
    # The final above was timed from the end of its speech arriving to its emission.
    lag_counts = re.findall(
        r'^stt_final_lag_seconds_count\{ended_by="(\w+)"\} (\S+)$', metrics, re.M
    )
    assert sum(float(n) for _, n in lag_counts) >= 1, metrics
