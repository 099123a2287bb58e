"""Per-call tip scheduling: one request in flight per call, newest context wins, no queueing."""

from __future__ import annotations

import asyncio
import time

import pytest

from orchestrator.llm.client import LLMClient
from orchestrator.tips import TipRequest, TipScheduler

pytestmark = pytest.mark.integration


def req(text: str, ref: str) -> TipRequest:
    return TipRequest([{"role": "user", "content": text}], [ref])


async def settle(tips: TipScheduler) -> None:
    for _ in range(500):
        if tips.in_flight() == 0:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("tip workers still running")


async def test_newest_context_supersedes_and_min_interval(llm_settings, fake_llm):
    fake_llm.latency_s = 0.2
    client = LLMClient(llm_settings)
    published: list[dict[str, object]] = []

    async def publish(event):
        published.append(event)

    tips = TipScheduler(client, publish, debounce_s=0.05, min_interval_s=0.6)
    for i in range(5):  # a burst of finals within the debounce window
        tips.request("c1", req(f"c1 turn {i}", f"u{i}"))
    await settle(tips)
    sent = fake_llm.seen("c1 turn")
    assert len(sent) == 1 and "c1 turn 4" in sent[0].text  # one request, newest context
    assert published[0]["refs"] == ["u0", "u1", "u2", "u3", "u4"]

    tips.request("c1", req("c1 turn 5", "u5"))
    await settle(tips)
    sent = fake_llm.seen("c1 turn")
    assert len(sent) == 2 and sent[1].at - sent[0].at >= 0.55  # min interval per call
    await client.aclose()


async def test_calls_do_not_wait_for_each_other(llm_settings, fake_llm):
    fake_llm.latency_s = 0.4
    fake_llm.on("slowcall", "hang")
    client = LLMClient(llm_settings)
    got: dict[str, float] = {}
    t0 = time.monotonic()

    async def publish(event):
        got[event["callId"]] = time.monotonic() - t0

    tips = TipScheduler(client, publish, debounce_s=0.0)
    tips.request("slow", req("slowcall", "s1"))
    for i in range(20):
        tips.request(f"c{i}", req(f"call {i}", f"u{i}"))

    for _ in range(300):
        if len(got) == 20:
            break
        await asyncio.sleep(0.01)
    assert len(got) == 20 and "slow" not in got
    assert max(got.values()) < 1.5  # 20 calls x 0.4 s served side by side, not in a queue
    await tips.finish("slow")  # call ended: its hanging request is cancelled
    await tips.close()
    await client.aclose()
