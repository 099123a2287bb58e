"""The LLM client on its own thread: same results, cancellation crosses over, clean close."""

from __future__ import annotations

import asyncio
import dataclasses
import threading

import pytest

from coach.tasks import TaskSet
from fakes.poll import until
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
    # Timeouts far beyond the waits below: only the cancellation can end the request.
    patient = dataclasses.replace(llm_settings, read_timeout_s=60.0, tip_deadline_s=60.0)
    llm = LLMThread(patient)
    tasks = TaskSet("test")
    try:
        task = tasks.spawn(llm.complete([{"role": "user", "content": "HANG"}]), "complete")
        await until(lambda: fake_llm.hanging == 1, what="the request hanging at the server")
        assert llm.client.in_flight == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # The LLM thread's request was cancelled too: its connection closed, the server saw it.
        await until(lambda: fake_llm.aborted == 1, what="the server seeing the client go away")
        await until(lambda: llm.client.in_flight == 0, what="the LLM thread letting go")
        assert fake_llm.hanging == 0 and len(fake_llm.seen("HANG")) == 1
    finally:
        await tasks.close()
        await llm.aclose()
