"""Per-call tip scheduling: one request in flight per call, newest context wins, no queueing."""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest

from fakes.poll import until
from orchestrator.llm.client import LLMClient
from orchestrator.tips import TipRequest, TipScheduler

pytestmark = pytest.mark.integration


def req(text: str, ref: str) -> TipRequest:
    return TipRequest([{"role": "user", "content": text}], [ref])


async def settle(tips: TipScheduler) -> None:
    await until(lambda: tips.in_flight() == 0, what="tip workers to finish")


class FakeTime:
    """The scheduler's clock: moves only when the scheduler waits (it records each wait)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.waits: list[float] = []

    def clock(self) -> float:
        return self.now

    async def pause(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


async def test_newest_context_supersedes_and_min_interval(llm_settings, fake_llm):
    client = LLMClient(llm_settings)
    published: list[dict[str, object]] = []

    async def publish(event):
        published.append(event)

    fake_time = FakeTime()
    tips = TipScheduler(
        client,
        publish,
        debounce_s=0.05,
        min_interval_s=0.6,
        clock=fake_time.clock,
        pause=fake_time.pause,
    )
    try:
        for i in range(5):  # a burst of finals within the debounce window
            tips.request("c1", req(f"c1 turn {i}", f"u{i}"))
        await settle(tips)
        sent = fake_llm.seen("c1 turn")
        assert len(sent) == 1 and "c1 turn 4" in sent[0].text  # one request, newest context
        assert published[0]["refs"] == ["u0", "u1", "u2", "u3", "u4"]
        assert fake_time.waits == [pytest.approx(0.05)]  # the debounce

        fake_time.now += 0.2  # the next final comes 0.2 s after the first request
        tips.request("c1", req("c1 turn 5", "u5"))
        await settle(tips)
        sent = fake_llm.seen("c1 turn")
        assert len(sent) == 2 and "c1 turn 5" in sent[1].text
        # Waited for the rest of the call's min interval (0.6 - 0.2), not just the debounce.
        assert fake_time.waits[1:] == [pytest.approx(0.4)]
    finally:
        await tips.close()
        await client.aclose()


async def test_calls_do_not_wait_for_each_other(llm_settings, fake_llm):
    fake_llm.on("slowcall", "hang")
    fake_llm.hold = threading.Event()
    # Timeouts beyond the test: the slow request hangs (and holds its slot) throughout.
    client = LLMClient(replace(llm_settings, read_timeout_s=60.0, tip_deadline_s=60.0))
    got: set[str] = set()

    async def publish(event):
        got.add(event["callId"])

    tips = TipScheduler(client, publish, debounce_s=0.0)
    try:
        tips.request("slow", req("slowcall", "s1"))
        await until(lambda: fake_llm.hanging == 1, what="the slow call's request hanging")
        for i in range(20):
            tips.request(f"c{i}", req(f"call {i}", f"u{i}"))
        # Side by side, not in a queue: every slot of the client's cap not held by the hanging
        # request streams at once (a queue would show one at a time and never get here).
        side_by_side = llm_settings.max_concurrency - 1
        await until(lambda: fake_llm.active == side_by_side, what="streams running side by side")
        fake_llm.hold.set()
        await until(lambda: len(got) == 20, what="a tip for every call")
        assert "slow" not in got and fake_llm.hanging == 1  # served while the slow one hangs
        assert fake_llm.max_active == side_by_side
        await tips.finish("slow")  # call ended: its hanging request is cancelled
    finally:
        await tips.close()
        await client.aclose()


async def test_a_failed_tip_worker_is_logged_counted_and_the_next_final_recovers(
    llm_settings, fake_llm, caplog: pytest.LogCaptureFixture
):
    from prometheus_client import REGISTRY

    def failures() -> float:
        labels = {"service": "orchestrator", "task": "tip-worker"}
        return REGISTRY.get_sample_value("coach_task_failures_total", labels) or 0.0

    client = LLMClient(llm_settings)
    real = client.complete
    broken = [True]

    async def complete_once_broken(*args, **kw):
        if broken.pop() if broken else False:
            raise RuntimeError("simulated: a bug in the tip path")
        return await real(*args, **kw)

    client.complete = complete_once_broken  # type: ignore[method-assign]
    published: list[dict[str, object]] = []

    async def publish(event):
        published.append(event)

    tips = TipScheduler(client, publish, debounce_s=0.0)
    before = failures()
    try:
        with caplog.at_level("ERROR", logger="coach.tasks"):
            tips.request("c1", req("first", "u1"))
            await settle(tips)
        assert failures() == before + 1 and tips.outcomes == {"failed": 1}
        assert any(
            getattr(r, "callId", None) == "c1" and "simulated" in r.getMessage()
            for r in caplog.records
        )
        assert published == []
        tips.request("c1", req("second", "u2"))  # the call's next final: a new worker
        await settle(tips)
        assert [e["refs"] for e in published] == [["u2"]]
        assert tips.outcomes == {"failed": 1, "tip": 1}
    finally:
        await tips.close()
        await client.aclose()
