"""The LLM client against a real HTTP server speaking OpenRouter-style SSE, fault by fault."""

from __future__ import annotations

import asyncio
import dataclasses
import threading

import httpx
import pytest

from coach.tasks import TaskSet
from fakes.fake_llm import FakeLLM
from fakes.poll import until
from orchestrator.llm.breaker import BreakerState
from orchestrator.llm.client import LLMClient
from orchestrator.llm.errors import Failure, LLMError, parse_retry_after
from orchestrator.prompts import TIP_SCHEMA, InvalidOutput, parse_tip
from orchestrator.settings import LLMSettings

pytestmark = pytest.mark.integration

MSGS = [{"role": "user", "content": "CLIENTE: hola"}]


async def ask(client: LLMClient, content: str = "CLIENTE: hola", **kw):
    return await client.complete(
        [{"role": "user", "content": content}], schema=TIP_SCHEMA, schema_name="coach_tip", **kw
    )


class Waits:
    """The client's waits between attempts, recorded instead of slept."""

    def __init__(self) -> None:
        self.seen: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.seen.append(seconds)


@pytest.fixture
def waits() -> Waits:
    return Waits()


@pytest.fixture
async def client(llm_settings: LLMSettings, waits: Waits):
    c = LLMClient(llm_settings, pause=waits)
    yield c
    await c.aclose()


async def test_streams_sse_with_keepalives_and_accounts_usage(client, fake_llm: FakeLLM):
    done = await ask(client)
    tip = parse_tip(done.text)
    assert tip is not None and tip.kind == "tip" and "solución" in tip.text
    assert done.usage.prompt_tokens == 120 and done.usage.completion_tokens == 20
    assert done.usage.cost == pytest.approx(0.00042)
    assert done.model == "fake/primary" and done.attempts == 1
    body = fake_llm.seen()[0].body
    assert body["stream"] is True
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["schema"] == TIP_SCHEMA
    assert client.stats.usage.cost == pytest.approx(0.00042)


async def test_429_honours_retry_after(client, fake_llm: FakeLLM, waits: Waits):
    fake_llm.push("429", retry_after="1.7")
    done = await ask(client)
    assert parse_tip(done.text) is not None
    assert len(fake_llm.seen()) == 2 and client.stats.outcomes[Failure.RATE_LIMIT.value] == 1
    assert waits.seen == [1.7]  # waited as told, not the short default backoff


async def test_other_retries_wait_the_shared_backoff(client, fake_llm: FakeLLM, waits: Waits):
    fake_llm.push("503", "503")
    await ask(client)
    assert len(fake_llm.seen()) == 3
    policy = client.backoff  # coach.backoff.LLM: jittered, doubling
    lo, hi = 1 - policy.jitter, 1 + policy.jitter
    assert len(waits.seen) == 2
    assert policy.initial * lo <= waits.seen[0] <= policy.initial * hi
    assert 2 * policy.initial * lo <= waits.seen[1] <= 2 * policy.initial * hi


async def test_retry_after_beyond_deadline_gives_up_at_once(
    client, fake_llm: FakeLLM, waits: Waits
):
    fake_llm.push("429", "429", "429", "429", "429", "429", retry_after="30")
    with pytest.raises(LLMError) as err:
        await ask(client)
    assert err.value.failure is Failure.RATE_LIMIT
    # One try per model, and no 30 s wait against a 3 s deadline.
    assert [r.body["model"] for r in fake_llm.seen()] == ["fake/primary", "fake/fallback"]
    assert waits.seen == []


@pytest.mark.parametrize("status,failure", [("402", Failure.CREDITS), ("401", Failure.AUTH)])
async def test_key_problems_are_not_retried_and_reported(client, fake_llm, status, failure):
    fake_llm.push(status)
    with pytest.raises(LLMError) as err:
        await ask(client)
    assert err.value.failure is failure and not err.value.retryable
    assert len(fake_llm.seen()) == 1  # neither retried nor tried on the fallback model
    health = client.health()
    assert health["state"] == "key_rejected" and health["keyProblem"]
    # Later requests fail fast without touching the server.
    with pytest.raises(LLMError) as again:
        await ask(client)
    assert again.value.failure is Failure.CIRCUIT_OPEN
    assert len(fake_llm.seen()) == 1


async def test_402_in_flight_budget_retries_smaller(client, fake_llm):
    fake_llm.push("402_budget")
    done = await ask(client)
    sizes = [r.body["max_tokens"] for r in fake_llm.seen()]
    assert sizes == [200, 100] and parse_tip(done.text) is not None
    assert client.health()["state"] == "closed" and not client.health()["keyProblem"]


async def test_wrong_key_is_401(llm_settings, fake_llm):
    c = LLMClient(dataclasses.replace(llm_settings, api_key="wrong"))
    with pytest.raises(LLMError) as err:
        await ask(c)
    await c.aclose()
    assert err.value.failure is Failure.AUTH and "OPENROUTER_API_KEY" in str(err.value)


async def test_500_is_retried_then_falls_back_to_next_model(client, fake_llm):
    fake_llm.push("500", "500", "500")
    done = await ask(client)
    models = [r.body["model"] for r in fake_llm.seen()]
    assert models == ["fake/primary"] * 3 + ["fake/fallback"]
    assert done.model == "fake/fallback"


async def test_error_chunk_inside_200_is_a_failure_and_retried(client, fake_llm):
    fake_llm.push("error_chunk")
    done = await ask(client)
    assert len(fake_llm.seen()) == 2
    assert client.stats.outcomes[Failure.STREAM.value] == 1
    assert parse_tip(done.text) is not None


async def test_error_chunk_every_time_fails(client, fake_llm):
    fake_llm.on("BROKEN", "error_chunk")
    with pytest.raises(LLMError) as err:
        await ask(client, "CLIENTE: BROKEN")
    assert err.value.failure is Failure.STREAM


async def test_invalid_json_chunk_is_a_protocol_failure(client, fake_llm):
    fake_llm.push("invalid_json")
    await ask(client)
    assert client.stats.outcomes[Failure.PROTOCOL.value] == 1
    assert len(fake_llm.seen()) == 2


async def test_invalid_json_content_is_not_shown(client, fake_llm):
    from orchestrator.prompts import InvalidOutput

    fake_llm.push("bad_content")
    done = await ask(client)
    with pytest.raises(InvalidOutput):
        parse_tip(done.text)


async def test_plain_text_answer_is_never_shown(client, fake_llm):
    # Free text may be the caller's words echoed back: it is dropped (and counted), not shown.
    fake_llm.push("plain")
    with pytest.raises(InvalidOutput, match="not a JSON tip"):
        parse_tip((await ask(client)).text)


@pytest.mark.parametrize("fault", ["reject_schema", "reject_schema_500"])
async def test_structured_output_downgrades_when_rejected(client, fake_llm, fault):
    fake_llm.on("SCHEMA", fault)
    done = await ask(client, "CLIENTE: SCHEMA")
    kinds = [(r.body.get("response_format") or {}).get("type") for r in fake_llm.seen()]
    assert kinds == ["json_schema", "json_object"]
    assert parse_tip(done.text) is not None
    await ask(client, "CLIENTE: SCHEMA")  # remembered per model: no second rejection
    assert [(r.body.get("response_format") or {}).get("type") for r in fake_llm.seen()][-1] == (
        "json_object"
    )


async def test_non_streaming_answer_is_accepted(client, fake_llm):
    fake_llm.push("no_stream")
    done = await ask(client)
    assert parse_tip(done.text) is not None and done.usage.prompt_tokens == 50


async def test_hang_times_out_at_the_deadline_and_others_do_not_stall(llm_settings, fake_llm):
    fake_llm.on("HANG", "hang")
    # No read timeout within the test: only the overall deadline can end the hanging request.
    c = LLMClient(dataclasses.replace(llm_settings, read_timeout_s=60.0))
    tasks = TaskSet("test")
    try:
        hung = tasks.spawn(ask(c, "CLIENTE: HANG", deadline_s=3.0), "hung")
        await until(lambda: fake_llm.hanging == 1, what="the request hanging at the server")
        for i in range(5):
            done = await ask(c, f"CLIENTE: other call {i}")
            assert parse_tip(done.text) is not None
        assert not hung.done() and fake_llm.hanging == 1  # served while the other one hangs
        with pytest.raises(LLMError) as err:
            await asyncio.wait_for(hung, 20)  # a bound for a broken deadline, not a measure
        assert err.value.failure is Failure.TIMEOUT and "overall deadline" in str(err.value)
        await until(lambda: fake_llm.aborted == 1, what="the hanging request abandoned")
        assert c.in_flight == 0
    finally:
        await tasks.close()
        await c.aclose()


async def test_hang_mid_stream_is_a_read_timeout(client, fake_llm):
    fake_llm.push("hang_stream", "hang_stream", "hang_stream", "hang_stream")
    with pytest.raises(LLMError) as err:
        await ask(client, deadline_s=1.0)
    assert err.value.failure is Failure.TIMEOUT


async def test_breaker_opens_after_repeated_failures(llm_settings, fake_llm):
    c = LLMClient(
        dataclasses.replace(llm_settings, breaker_failures=3, max_attempts=1, fallback_models=())
    )
    fake_llm.on("FAIL", "500")
    for _ in range(3):
        with pytest.raises(LLMError):
            await ask(c, "CLIENTE: FAIL")
    assert c.breaker.state is BreakerState.OPEN
    n = len(fake_llm.seen())
    with pytest.raises(LLMError) as err:
        await ask(c, "CLIENTE: fine")
    assert err.value.failure is Failure.CIRCUIT_OPEN and len(fake_llm.seen()) == n
    await c.aclose()


async def test_global_concurrency_cap(llm_settings, fake_llm):
    fake_llm.hold = threading.Event()  # streams wait (sending keep-alives) until released
    c = LLMClient(dataclasses.replace(llm_settings, max_concurrency=2, read_timeout_s=60.0))
    tasks = TaskSet("test")
    try:
        asks = [tasks.spawn(ask(c, f"CLIENTE: call {i}"), "ask") for i in range(6)]
        await until(lambda: fake_llm.active == 2 and c.in_flight == 2, what="two streams")
        # Four wait for a slot: none of them reached the server.
        assert len(fake_llm.seen()) == 2
        fake_llm.hold.set()
        await asyncio.gather(*asks)
        assert fake_llm.max_active == 2 and len(fake_llm.seen()) == 6
    finally:
        await tasks.close()
        await c.aclose()


async def test_connection_refused_is_retryable_connect_failure(llm_settings):
    c = LLMClient(
        dataclasses.replace(
            llm_settings, base_url="http://127.0.0.1:9/v1", max_attempts=1, fallback_models=()
        )
    )
    with pytest.raises(LLMError) as err:
        await ask(c)
    assert err.value.failure is Failure.CONNECT and err.value.retryable
    await c.aclose()


def test_retry_after_formats():
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert parse_retry_after("soon") is None


async def test_uses_shared_http_client(llm_settings, fake_llm):
    async with httpx.AsyncClient() as http:
        c = LLMClient(llm_settings, http=http)
        await ask(c)
        await c.aclose()
        assert not http.is_closed


async def test_openrouter_is_asked_for_providers_that_keep_no_data() -> None:
    from orchestrator.llm.transport import Transport
    from orchestrator.settings import LLMSettings

    routed = Transport(LLMSettings(api_key="k"))  # the default endpoint: OpenRouter
    local = Transport(LLMSettings(api_key="k", base_url="http://127.0.0.1:8081/v1"))
    try:
        args = ("m", [{"role": "user", "content": "x"}], "off", None, "tip", 10)
        assert routed.body(*args)["provider"] == {"data_collection": "deny"}
        assert "provider" not in local.body(*args)  # other servers do not know the field
    finally:
        await routed.aclose()
        await local.aclose()
