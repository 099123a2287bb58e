"""The LLM client's streamed text (`on_text`) against the fake server's SSE: one call per
token, cumulative, a retry after a cut stream starting again from empty, and the same across
the LLM thread (the sink runs on the caller's loop)."""

from __future__ import annotations

import itertools
import threading

import pytest

from fakes.fake_llm import FakeLLM
from orchestrator.llm.client import LLMClient
from orchestrator.llm.thread import LLMThread
from orchestrator.settings import LLMSettings

pytestmark = pytest.mark.integration

MSGS = [{"role": "user", "content": "CLIENTE: hola"}]
REPLY = '{"answer": "Cuesta cinco euros al día.", "cites": ["roaming#ue"]}'


class Sink:
    def __init__(self) -> None:
        self.texts: list[str] = []
        self.threads: set[int] = set()

    async def __call__(self, text: str) -> None:
        self.texts.append(text)
        self.threads.add(threading.get_ident())


async def _no_wait(_: float) -> None:
    return None


async def test_text_streams_cumulatively_per_token(llm_settings: LLMSettings, fake_llm: FakeLLM):
    fake_llm.push("ok", content=REPLY)
    client = LLMClient(llm_settings, pause=_no_wait)
    sink = Sink()
    try:
        done = await client.complete(MSGS, on_text=sink)
    finally:
        await client.aclose()
    assert done.text == REPLY and sink.texts[-1] == REPLY
    assert len(sink.texts) == len(REPLY.split(" "))  # one call per streamed token
    assert all(b.startswith(a) and len(b) > len(a) for a, b in itertools.pairwise(sink.texts))


async def test_a_cut_stream_is_retried_from_empty(llm_settings: LLMSettings, fake_llm: FakeLLM):
    fake_llm.push("cut", "ok", content=REPLY, cut_after=3)
    client = LLMClient(llm_settings, pause=_no_wait)
    sink = Sink()
    try:
        done = await client.complete(MSGS, on_text=sink)
    finally:
        await client.aclose()
    assert done.attempts == 2 and done.text == REPLY
    restart = next(i for i, (a, b) in enumerate(itertools.pairwise(sink.texts)) if len(b) < len(a))
    assert restart == 2  # three tokens of the cut attempt, then the retry's first token
    assert sink.texts[restart + 1] == REPLY.split(" ", maxsplit=1)[0] + " "


async def test_the_sink_runs_on_the_callers_loop(llm_settings: LLMSettings, fake_llm: FakeLLM):
    fake_llm.push("ok", content=REPLY)
    llm = LLMThread(llm_settings)
    sink = Sink()
    try:
        done = await llm.complete(MSGS, on_text=sink)
    finally:
        await llm.aclose()
    assert done.text == REPLY and sink.texts[-1] == REPLY
    assert sink.threads == {threading.get_ident()}  # not the "llm" thread
    assert llm._thread.ident not in sink.threads
