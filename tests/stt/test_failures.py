"""A task of a stream fails: the failure is logged with the call, counted in /metrics, and the
stream is closed with 1011 and a reason (the client reconnects with its offset)."""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
from typing import Any, cast

import httpx
import numpy as np
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from bench.stt import corpus
from coach.redis_server import free_port
from coach.web import CloseCode
from fakes import poll
from stt.engine import WhisperEngine
from stt.segmenter import SegmenterConfig
from stt.settings import SttSettings
from stt.stream import StreamConfig
from tests.stt import audio
from tests.stt.conftest import serving

pytestmark = [pytest.mark.integration, pytest.mark.slow]


class FinalsFail:
    """The real engine, except that every final decode raises (partials still work)."""

    def __init__(self, engine: Any) -> None:
        self._engine = engine

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)

    def decode(self, audio: Any, *, final: bool = True, **kw: Any) -> Any:
        if final:
            raise RuntimeError("injected decode failure")
        return self._engine.decode(audio, final=final, **kw)


async def test_a_failed_final_decode_is_logged_counted_and_closes_the_stream(
    engine, base_model, caplog
):
    token = secrets.token_hex(16)
    settings = SttSettings(
        relay_token=token,
        model_path=str(base_model.path),
        host="127.0.0.1",
        port=free_port(),
        decode_workers=1,
        # No speculative decode: the utterance's one final decode is the one that fails.
        stream=StreamConfig(segmenter=SegmenterConfig(hangover_s=0.3), speculate=False),
    )
    cid = "c-fail-1"
    prompt = corpus.load("conf-getpin").pcm
    pcm = np.concatenate([prompt, audio.silence(5.0)]).astype("<i2").tobytes()
    async with serving(settings, cast(WhisperEngine, FinalsFail(engine))) as base:
        with caplog.at_level(logging.ERROR):
            async with connect(
                f"ws://{base}/stream?callId={cid}&speaker=agent&rate=8000",
                additional_headers={"Authorization": f"Bearer {token}"},
            ) as ws:
                with pytest.raises(ConnectionClosed):
                    # Real-time audio until the server closes (at most the whole clip).
                    for off in range(0, len(pcm), 320):
                        await ws.send(pcm[off : off + 320])
                        await poll.pace(0.02)
                    await ws.send('{"type":"end"}')
                    while True:
                        await asyncio.wait_for(ws.recv(), 10)
            assert ws.close_code == CloseCode.INTERNAL
            assert "final-resolve" in (ws.close_reason or "")
        # The log names the task and the call, with the error.
        failed = [r for r in caplog.records if r.name == "coach.tasks"]
        assert [(r.task, r.callId) for r in failed] == [("final-resolve", cid)]
        assert "injected decode failure" in failed[0].getMessage()
        async with httpx.AsyncClient() as http:
            metrics = (await http.get(f"http://{base}/metrics")).text
            health = (await http.get(f"http://{base}/health")).json()
        count = re.search(
            r'^coach_task_failures_total\{service="stt",task="final-resolve"\} (\S+)$',
            metrics,
            re.M,
        )
        assert count is not None and float(count.group(1)) == 1.0, metrics
        assert re.search(r'^stt_stream_closes_total\{code="1011"\} 1\.0$', metrics, re.M), metrics
        # The stream is gone; the service goes on.
        assert health["openStreams"] == 0
