"""The orchestrator end to end through the real bus (Redis): rules, metrics, summary, restarts."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import httpx
import pytest

from coach.backoff import BUS, Backoff
from coach.bus import Bus
from coach.redact import RedactionSession
from fakes.poll import until, until_async
from orchestrator.engine import Orchestrator
from orchestrator.llm.client import Completer
from orchestrator.llm.thread import LLMThread
from orchestrator.playbook_store import PlaybookStore
from orchestrator.service import make_app
from orchestrator.settings import PLAYBOOK_DIR, LLMSettings, Settings

pytestmark = pytest.mark.integration


def settings(name: str = "orch-1", **kw: Any) -> Settings:
    return Settings(consumer=name, metrics_interval_s=0.3, lease_ttl_ms=1000, **kw)


def store() -> PlaybookStore:
    s = PlaybookStore(PLAYBOOK_DIR)
    s.load()
    return s


async def start_engine(
    bus: Bus,
    name: str = "orch-1",
    llm: Completer | None = None,
    backoff: Backoff = BUS,
    **kw: Any,
) -> Orchestrator:
    engine = Orchestrator(bus, settings(name, **kw), store(), llm, tick_s=0.2, backoff=backoff)
    await engine.start()
    return engine


class CallScript:
    """Publishes one call's events the way STT and the ARI app would."""

    def __init__(self, bus: Bus, call_id: str, lang: str = "es") -> None:
        self.bus, self.call_id, self.lang, self.n = bus, call_id, lang, 0
        # Finals are masked as STT masks them before publishing (one session per speaker).
        self.redactors: dict[str, RedactionSession] = {}

    async def start(self) -> None:
        await self.bus.publish(
            {
                "type": "call.started",
                "callId": self.call_id,
                "agent": "200",
                "caller": {"number": "600000000"},
                "startedAt": int(time.time() * 1000),
                "lang": self.lang,
            }
        )

    async def say(self, speaker: str, start: float, end: float, text: str) -> str:
        self.n += 1
        uid = f"{self.call_id}-u{self.n}"
        await self.bus.publish(
            {
                "type": "partial",
                "callId": self.call_id,
                "speaker": speaker,
                "utteranceId": uid,
                "text": text[:10],
                "start": start,
                "end": start + 0.5,
            }
        )
        final = {
            "type": "final",
            "callId": self.call_id,
            "speaker": speaker,
            "utteranceId": uid,
            "text": text,
            "start": start,
            "end": end,
            "confidence": 0.9,
            "lang": self.lang,
        }
        await self.bus.publish(self.redactors.setdefault(speaker, RedactionSession()).final(final))
        return uid

    async def end(self) -> None:
        await self.bus.publish(
            {
                "type": "call.ended",
                "callId": self.call_id,
                "endedAt": int(time.time() * 1000),
                "reason": "caller-hangup",
            }
        )


async def events(bus: Bus, call_id: str, etype: str) -> list[dict[str, Any]]:
    return [e.data() for e in await bus.read_call(call_id) if e.type == etype]


async def wait_for(check: Callable[[], Awaitable[Any]], within: float = 10.0) -> Any:
    """Poll an async condition until it returns something truthy (fails after `within` s)."""
    return await until_async(check, within)


def rule_ids(coach: list[dict[str, Any]]) -> list[str]:
    return sorted(c["ruleId"] for c in coach if c["source"] == "rules")


async def test_rules_metrics_and_extractive_summary(bus: Bus):
    engine = await start_engine(bus)
    try:
        call = CallScript(bus, "call-es-1")
        await call.start()
        await call.say("agent", 0.5, 3.0, "Buenos días, le atiende Laura, ¿en qué puedo ayudarle?")
        churn = await call.say(
            "customer", 4.0, 8.0, "Mire, quiero darme de baja, es la tercera vez que llamo."
        )
        card = await call.say("agent", 9.0, 12.0, "Dígame el número de su tarjeta, por favor.")
        pii = await call.say("customer", 13.0, 20.0, "Es el 4111 1111 1111 1111.")
        await call.say("customer", 31.0, 34.0, "¿Sigue ahí?")  # past 30 s, no disclosure

        async def five_alerts():
            c = await events(bus, call.call_id, "coach")
            return c if len(c) >= 6 else None

        coach = await wait_for(five_alerts)
        by_rule = {c["ruleId"]: c for c in coach}
        assert by_rule["churn.cancel"]["refs"] == [churn]
        assert by_rule["sentiment.anger"]["refs"] == [churn]
        assert by_rule["compliance.card_request"]["refs"] == [card]
        assert by_rule["compliance.card_request"]["severity"] == "critical"
        assert by_rule["compliance.pii_spoken"]["refs"] == [pii]
        assert "compliance.recording_disclosure" in by_rule
        assert "conversation.silence" in by_rule  # 20 s → 31 s without speech

        await wait_for(lambda: events(bus, call.call_id, "metrics"))
        await call.end()
        summary = (await wait_for(lambda: events(bus, call.call_id, "summary")))[0]
        assert summary["source"] == "extractive"
        assert summary["disposition"] == "cancellation_requested"
        assert "4111" not in summary["text"]
        assert "card" in summary["pii"]
        metrics = await events(bus, call.call_id, "metrics")
        last = metrics[-1]
        assert set(last["talkRatio"]) == {"agent", "customer"}
        assert last["longestSilence"] >= 11
        health = engine.health()
        assert health["mode"] == "rules-only" and health["status"] == "ok"
        assert "OPENROUTER_API_KEY" in health["llm"]["reason"]
    finally:
        await engine.stop()


async def test_negative_call_has_no_alerts(bus: Bus):
    engine = await start_engine(bus)
    try:
        call = CallScript(bus, "call-es-neg")
        await call.start()
        await call.say("agent", 0.5, 4.0, "Hola, esta llamada puede ser grabada. ¿En qué le ayudo?")
        await call.say("customer", 5.0, 8.0, "No quiero cancelar nada, gracias. Era una consulta.")
        await call.say("agent", 8.5, 11.0, "Perfecto, dígame.")
        await call.end()
        summary = (await wait_for(lambda: events(bus, call.call_id, "summary")))[0]
        assert await events(bus, call.call_id, "coach") == []
        assert summary["disposition"] == "completed"
    finally:
        await engine.stop()


async def test_restart_mid_call_loses_nothing(bus: Bus):
    call = CallScript(bus, "call-restart")
    first = await start_engine(bus, "orch-a")
    await call.start()
    u1 = await call.say("customer", 1.0, 3.0, "Quiero darme de baja.")
    await wait_for(lambda: events(bus, call.call_id, "coach"))
    await first.stop()

    # While no orchestrator runs, the call goes on.
    u2 = await call.say("customer", 4.0, 6.0, "Y quiero hablar con un supervisor.")
    u3 = await call.say("agent", 7.0, 9.0, "¿Me lee los dieciséis dígitos de la tarjeta?")
    await call.end()

    second = await start_engine(bus, "orch-a")
    try:
        summary = await wait_for(lambda: events(bus, call.call_id, "summary"))
        coach = await events(bus, call.call_id, "coach")
        assert rule_ids(coach) == [
            "churn.cancel",
            "compliance.card_request",
            "escalation.supervisor",
        ]  # each once, none lost
        refs = {c["ruleId"]: c["refs"] for c in coach}
        assert refs["churn.cancel"] == [u1] and refs["escalation.supervisor"] == [u2]
        assert refs["compliance.card_request"] == [u3]
        assert len(summary) == 1

        # The summary is published before the entries behind it are acknowledged: wait for
        # the acks (bounded) rather than look the moment the summary appears.
        async def all_acked() -> bool:
            pending = await bus.redis.xpending(bus.events_key, "orchestrator")
            return pending["pending"] == 0

        assert await wait_for(all_acked)
    finally:
        await second.stop()


async def crash(engine: Orchestrator) -> None:
    """Kill an engine without any clean-up: leases stay, entries stay unacknowledged."""
    tasks = list(engine.tasks)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


@pytest.mark.slow
async def test_crashed_replica_call_is_adopted_by_another(bus: Bus):
    call = CallScript(bus, "call-crash")
    doomed = await start_engine(bus, "orch-doomed")
    other = await start_engine(bus, "orch-other")
    try:
        await call.start()
        await call.say("customer", 1.0, 3.0, "Quiero darme de baja.")
        await wait_for(lambda: events(bus, call.call_id, "coach"))
        owner = (await doomed.leases.owners([call.call_id]))[0]
        victim = doomed if owner == "orch-doomed" else other
        survivor = other if victim is doomed else doomed
        await crash(victim)
        await call.say("customer", 4.0, 6.0, "Esto lo va a ver mi abogado.")
        await call.end()
        summary = await wait_for(lambda: events(bus, call.call_id, "summary"), within=15)
        assert len(summary) == 1
        assert rule_ids(await events(bus, call.call_id, "coach")) == [
            "churn.cancel",
            "escalation.legal",
        ]

        async def let_go():
            return call.call_id not in survivor.calls  # finished and let go

        await wait_for(let_go)
    finally:
        await doomed.stop()
        await other.stop()


async def test_two_replicas_share_calls_without_duplicates(bus: Bus):
    r1 = await start_engine(bus, "orch-r1")
    r2 = await start_engine(bus, "orch-r2")
    try:
        calls = [CallScript(bus, f"shared-{i}") for i in range(8)]
        for c in calls:
            await c.start()
        for turn in range(3):
            for c in calls:
                await c.say(
                    "customer",
                    turn * 5 + 1,
                    turn * 5 + 3,
                    [
                        "Quiero darme de baja.",
                        "Quiero hablar con un supervisor.",
                        "Esto es una vergüenza.",
                    ][turn],
                )
        for c in calls:
            await c.end()
        for c in calls:
            await wait_for(partial(events, bus, c.call_id, "summary"))
        for c in calls:
            assert rule_ids(await events(bus, c.call_id, "coach")) == [
                "churn.cancel",
                "escalation.supervisor",
                "sentiment.anger",
            ]
            assert len(await events(bus, c.call_id, "summary")) == 1
        assert r1.stats["finals"] + r2.stats["finals"] == 24
    finally:
        await r1.stop()
        await r2.stop()


async def test_llm_tips_and_summary_and_a_hanging_call_stalls_no_one(
    bus: Bus, fake_llm, llm_settings: LLMSettings
):
    fake_llm.on("colgado", "hang")
    # The slow call's request hangs for the whole test (no timeout ends it before the stop).
    patient = dataclasses.replace(
        llm_settings, tip_deadline_s=60.0, read_timeout_s=60.0, max_attempts=1
    )
    llm = LLMThread(patient)
    engine = await start_engine(bus, llm=llm)
    try:
        slow = CallScript(bus, "call-hang")
        fast = CallScript(bus, "call-fast")
        await slow.start()
        await fast.start()
        await slow.say("customer", 1.0, 3.0, "El router está colgado otra vez.")
        await until(lambda: fake_llm.hanging == 1, what="the slow call's request hanging")
        uid = await fast.say("customer", 1.0, 3.0, "Tengo una duda con la factura.")
        tips = await wait_for(lambda: _llm_tips(bus, fast.call_id))
        assert fake_llm.hanging == 1  # the tip came while the other call's request hangs
        assert tips[0]["refs"] == [uid] and tips[0]["model"] == "fake/primary"
        await fast.end()
        summary = (await wait_for(lambda: events(bus, fast.call_id, "summary")))[0]
        assert summary["source"] == "llm" and summary["disposition"] == "resolved"
        assert summary["llmUsage"]["promptTokens"] >= 240  # tip + summary, from usage chunks
        assert summary["llmUsage"]["cost"] > 0
        assert await _llm_tips(bus, slow.call_id) == []
        # The prompt never carried what the PII rule redacts.
        assert engine.health()["mode"] == "llm"
    finally:
        await engine.stop()
        await llm.aclose()


async def test_pii_never_reaches_the_llm(bus: Bus, fake_llm, llm_settings: LLMSettings):
    llm = LLMThread(llm_settings)
    engine = await start_engine(bus, llm=llm)
    try:
        call = CallScript(bus, "call-pii")
        await call.start()
        await call.say(
            "customer", 1.0, 6.0, "Mi tarjeta es 4111 1111 1111 1111 y mi clave es gato99"
        )
        await wait_for(lambda: _llm_tips(bus, call.call_id))
        sent = " ".join(r.text for r in fake_llm.seen())
        assert "4111" not in sent and "gato99" not in sent and "[card]" in sent
    finally:
        await engine.stop()
        await llm.aclose()


async def test_llm_debounce_one_request_per_call_newest_context(
    bus: Bus, fake_llm, llm_settings: LLMSettings
):
    fake_llm.latency_s = 0.5
    llm = LLMThread(llm_settings)
    engine = await start_engine(bus, llm=llm)
    try:
        call = CallScript(bus, "call-burst")
        await call.start()
        for i in range(6):
            await call.say("customer", i * 2 + 1, i * 2 + 2, f"Frase número {i} del cliente.")
        await wait_for(lambda: _llm_tips(bus, call.call_id))

        async def settled():
            return engine.tips is not None and engine.tips.in_flight() == 0

        await wait_for(settled)
        reqs = fake_llm.seen("call-burst") or fake_llm.seen("Frase")
        assert 1 <= len(reqs) <= 3  # not one request per final
        assert "Frase número 5" in reqs[-1].text  # the newest context won
        assert fake_llm.max_active == 1  # one in flight for this call
    finally:
        await engine.stop()
        await llm.aclose()


async def test_health_shows_details_only_to_the_token_holder(bus: Bus):
    engine = await start_engine(bus)
    engine.last_error = "bus said: connection refused to redis://10.0.0.5"
    token = "health-token-0123456789"
    try:
        transport = httpx.ASGITransport(app=make_app(engine, token))
        async with httpx.AsyncClient(transport=transport, base_url="http://orch") as client:
            for headers in ({}, {"Authorization": "Bearer wrong-token-000000"}):
                public = (await client.get("/health", headers=headers)).json()
                assert "lastError" not in public and "playbookErrors" not in public
                assert "10.0.0.5" not in json.dumps(public)
                assert set(public["llm"]) <= {"mode", "state", "reason"}
            full = await client.get("/health", headers={"Authorization": f"Bearer {token}"})
            assert full.json()["lastError"] == engine.last_error
    finally:
        await engine.stop()


async def test_health_and_metrics_endpoints(bus: Bus):
    engine = await start_engine(bus)
    try:
        transport = httpx.ASGITransport(app=make_app(engine))
        async with httpx.AsyncClient(transport=transport, base_url="http://orch") as client:
            await wait_for(lambda: _consuming(engine))
            health = await client.get("/health")
            assert health.status_code == 200 and health.json()["mode"] == "rules-only"
            assert health.json()["bus"] == "up"
            metrics = await client.get("/metrics")
            assert "orch_final_to_coach_seconds" in metrics.text
    finally:
        await engine.stop()


async def _consuming(engine: Orchestrator) -> bool:
    return engine.state.value == "consuming"


async def _llm_tips(bus: Bus, call_id: str) -> list[dict[str, Any]]:
    return [c for c in await events(bus, call_id, "coach") if c["source"] == "llm"]


async def test_bus_error_after_the_summary_does_not_publish_it_twice(bus: Bus):
    from coach.errors import BusUnavailable

    engine = await start_engine(bus)
    real_done = engine.leases.done
    failures: list[str] = []

    async def flaky_done(call_id: str) -> None:
        if not failures:
            failures.append(call_id)
            raise BusUnavailable("redis unavailable: simulated blip")
        await real_done(call_id)

    engine.leases.done = flaky_done  # type: ignore[method-assign]
    try:
        call = CallScript(bus, "call-blip")
        await call.start()
        await call.say("customer", 1.0, 3.0, "Quiero darme de baja.")
        await call.end()

        async def let_go():
            return failures and call.call_id not in engine.calls

        await wait_for(let_go)
        assert len(await events(bus, call.call_id, "summary")) == 1
        assert await engine.leases.cursor(call.call_id) == "done"
    finally:
        await engine.stop()


async def test_alert_survives_a_bus_error_while_publishing_it(bus: Bus):
    from coach.errors import BusUnavailable

    engine = await start_engine(bus)
    real = bus.publish_many
    failed: list[bool] = []

    async def flaky(evs):
        if not failed and any(e.get("type") == "coach" for e in evs):
            failed.append(True)
            raise BusUnavailable("redis unavailable: simulated blip")
        return await real(evs)

    bus.publish_many = flaky  # type: ignore[method-assign]
    try:
        call = CallScript(bus, "call-publish-blip")
        await call.start()
        uid = await call.say("customer", 1.0, 3.0, "Quiero darme de baja.")
        coach = await wait_for(lambda: events(bus, call.call_id, "coach"))
        assert failed and [c["refs"] for c in coach] == [[uid]]
    finally:
        bus.publish_many = real  # type: ignore[method-assign]
        await engine.stop()


class FailingReads:
    """A fault knob on the bus: reads of one call's stream made by that call's worker task
    raise a BusError (`times` times, or always), as a Redis error reply would."""

    def __init__(self, bus: Bus, call_id: str, times: int | None) -> None:
        self.bus, self.call_id, self.left = bus, call_id, times
        self.real = bus.read_call
        self.raised = 0

    async def __call__(
        self, call_id: str, after: str | None = None, count: int | None = None
    ) -> Any:
        from coach.errors import BusError

        task = asyncio.current_task()
        in_worker = task is not None and task.get_name() == f"call-worker:{call_id}"
        if call_id == self.call_id and in_worker and (self.left is None or self.left > 0):
            if self.left is not None:
                self.left -= 1
            self.raised += 1
            raise BusError("simulated: WRONGTYPE reply from the call's stream")
        return await self.real(call_id, after=after, count=count)


def _worker_failures() -> float:
    from prometheus_client import REGISTRY

    value = REGISTRY.get_sample_value(
        "coach_task_failures_total", {"service": "orchestrator", "task": "call-worker"}
    )
    return value or 0.0


def _failure_records(caplog: pytest.LogCaptureFixture, call_id: str) -> list[Any]:
    return [
        r
        for r in caplog.records
        if r.name == "coach.tasks"
        and getattr(r, "callId", None) == call_id
        and "call-worker" in r.getMessage()
    ]


async def test_a_failed_call_worker_is_logged_counted_and_recovers(
    bus: Bus, caplog: pytest.LogCaptureFixture
):
    call = CallScript(bus, "call-worker-fails-once")
    fault = FailingReads(bus, call.call_id, times=1)
    bus.read_call = fault  # type: ignore[method-assign]
    before = _worker_failures()
    engine = await start_engine(bus, backoff=BUS.scaled(0.1))
    try:
        with caplog.at_level("ERROR", logger="coach.tasks"):
            await call.start()
            uid = await call.say("customer", 1.0, 3.0, "Quiero darme de baja.")
            coach = await wait_for(lambda: events(bus, call.call_id, "coach"))
        assert fault.raised == 1
        assert [c["refs"] for c in coach] == [[uid]]  # recovered: the alert came, once
        records = _failure_records(caplog, call.call_id)
        assert len(records) == 1 and "WRONGTYPE" in records[0].getMessage()
        assert _worker_failures() == before + 1
        assert engine.health()["degradedCalls"] == 0
        await call.end()
        summary = await wait_for(lambda: events(bus, call.call_id, "summary"))
        assert len(summary) == 1
    finally:
        bus.read_call = fault.real  # type: ignore[method-assign]
        await engine.stop()


async def test_a_call_worker_that_always_fails_is_given_up_and_counted(
    bus: Bus, caplog: pytest.LogCaptureFixture
):
    from orchestrator.engine import WORKER_RESTARTS

    broken = CallScript(bus, "call-worker-always-fails")
    healthy = CallScript(bus, "call-worker-healthy")
    fault = FailingReads(bus, broken.call_id, times=None)
    bus.read_call = fault  # type: ignore[method-assign]
    before = _worker_failures()
    engine = await start_engine(bus, backoff=BUS.scaled(0.1))
    try:
        with caplog.at_level("ERROR", logger="coach.tasks"):
            await broken.start()
            await broken.say("customer", 1.0, 3.0, "Quiero darme de baja.")

            async def degraded():
                return engine.health()["degradedCalls"] == 1

            await wait_for(degraded)
        assert fault.raised == WORKER_RESTARTS + 1  # the first run and each restart, no more
        assert len(_failure_records(caplog, broken.call_id)) == WORKER_RESTARTS + 1
        assert _worker_failures() == before + WORKER_RESTARTS + 1
        health = engine.health()
        assert health["calls"] == 1 and broken.call_id in health["lastError"]

        # The other calls are coached as before.
        await healthy.start()
        uid = await healthy.say("customer", 1.0, 3.0, "Quiero darme de baja.")
        coach = await wait_for(lambda: events(bus, healthy.call_id, "coach"))
        assert [c["refs"] for c in coach] == [[uid]]

        # The given-up call's entries are acknowledged; its end lets it go, done, unretried.
        await broken.end()

        async def let_go():
            return broken.call_id not in engine.calls

        await wait_for(let_go)
        assert engine.health()["degradedCalls"] == 0
        assert await engine.leases.cursor(broken.call_id) == "done"
        assert fault.raised == WORKER_RESTARTS + 1
        assert await events(bus, broken.call_id, "summary") == []

        async def none_pending():
            pending = await bus.redis.xpending(bus.events_key, "orchestrator")
            return pending["pending"] == 0

        await wait_for(none_pending)
    finally:
        bus.read_call = fault.real  # type: ignore[method-assign]
        await engine.stop()
