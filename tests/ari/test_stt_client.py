"""The STT client's reconnection policy against the fake STT (real WebSockets on 127.0.0.1)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from prometheus_client import CollectorRegistry

from ari.stt_client import SttUplink, UplinkState
from coach.backoff import Backoff
from coach.tasks import TaskSet
from fakes.fake_stt import FakeStt
from fakes.poll import pace
from tests.ari.conftest import TOKEN

pytestmark = pytest.mark.integration

PCM = b"\x01\x00" * 1600  # 100 ms at 16 kHz
FAST = Backoff(initial=0.01, maximum=0.02)
SLOW = Backoff(initial=30.0, maximum=30.0)


@pytest.fixture
async def tasks() -> AsyncIterator[TaskSet]:
    async with TaskSet("ari", registry=CollectorRegistry()) as tasks:
        yield tasks


async def test_wrong_token_is_fatal_not_retried(stt: FakeStt, tasks: TaskSet) -> None:
    stream = SttUplink(
        stt.url, "not-the-token", "call-1", "customer", 16000, tasks=tasks, backoff=FAST
    )
    stream.feed(PCM)
    await stt.wait_for(lambda: stt.bad_tokens >= 1)
    # A retrying client would be back within 20 ms; a fatal refusal ends the task instead.
    await asyncio.wait_for(stream.close(), 5)
    assert stream.state is UplinkState.CLOSED
    assert stream.error is not None and not stream.error.retryable
    assert "4401" in str(stream.error)
    assert stt.handshakes == 1
    assert stream.dropped_bytes == len(PCM)
    stream.feed(PCM)  # after a fatal refusal audio is not queued for a socket that never comes
    assert stream.queued_bytes == 0


async def test_restart_close_is_retried(stt: FakeStt, tasks: TaskSet) -> None:
    stt.close_after_bytes = len(PCM)
    stream = SttUplink(
        stt.url, TOKEN, "call-2", "agent", 16000, tasks=tasks, backoff=FAST, frame_ms=20
    )
    stream.feed(PCM)
    await stt.wait_for(lambda: len(stt.streams) >= 1 and stt.close_after_bytes is None)
    stream.feed(PCM)
    await stt.wait_for(lambda: len(stt.streams) == 2 and len(stt.streams[1].audio) >= len(PCM))
    await asyncio.wait_for(stream.close(), 5)
    assert stream.error is None
    assert stream.connects == 2
    assert stt.streams[1].ended


async def test_audio_does_not_wake_the_backoff(stt: FakeStt, tasks: TaskSet) -> None:
    # STT is down (restarting): every RTP packet queues audio, and none of them may cut the
    # backoff short (found in a compose restart: a reconnect every 20 ms, 197 warnings in 2 s).
    stt.down = True
    stream = SttUplink(stt.url, TOKEN, "call-3", "customer", 16000, tasks=tasks, backoff=SLOW)
    stream.feed(PCM)
    await stt.wait_for(lambda: stt.refused >= 1)
    for _ in range(50):
        stream.feed(PCM[:640])
        await pace(0)  # packets arrive one by one: the stream task runs after each
    await stt.wait_for(lambda: stream.state is UplinkState.BACKOFF)
    assert stt.refused == 1
    # close() still ends a long backoff at once (and tries once more to deliver the audio).
    stt.down = False
    await asyncio.wait_for(stream.close(), 5)
    assert stt.refused == 1 and stt.streams[-1].ended
