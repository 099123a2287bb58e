"""The LLM client on its own thread: same results, cancellation crosses over, clean close."""

from __future__ import annotations

import asyncio
import threading

import pytest

from orchestrator.llm.thread import LLMThread
from orchestrator.prompts import TIP_SCHEMA, parse_tip

pytestmark = pytest.mark.integration


async def test_complete_runs_on_the_llm_thread(llm_settings, fake_llm):
    llm = LLMThread(llm_settings)
    try:
        done = await llm.complete([{"role": "user", "content": "hola"}], schema=TIP_SCHEMA)
        assert parse_tip(done.text) is not None and done.usage.completion_tokens == 20
        assert llm.health()["usage"]["requests"] == 1
        assert any(t.name == "llm" for t in threading.enumerate())
    finally:
        await llm.aclose()
    assert not any(t.name == "llm" and t.is_alive() for t in threading.enumerate())


async def test_cancelling_the_caller_cancels_the_request(llm_settings, fake_llm):
    fake_llm.on("HANG", "hang")
    llm = LLMThread(llm_settings)
    try:
        task = asyncio.create_task(llm.complete([{"role": "user", "content": "HANG"}]))
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

        for _ in range(200):  # the request on the other loop winds down
            if not llm.client.in_flight:
                break
            await asyncio.sleep(0.01)
        assert llm.client.in_flight == 0
    finally:
        await llm.aclose()
