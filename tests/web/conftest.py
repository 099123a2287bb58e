"""Browser tests: a real relay on real Redis, Debian's Chromium driven by Playwright.

Events are published through the bus (as the STT service and orchestrator do); the page gets
them over the relay's WebSocket. Screenshots go to `test-artifacts/` (gitignored).
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Final

import pytest
import pytest_asyncio

from coach.bus import Bus, BusConfig
from coach.redis_server import EmbeddedRedis
from tests.relay.conftest import RelayServer, start_relay

CHROMIUM = os.environ.get("COACH_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--lang=es-ES",
]


# One event loop for the whole web suite, so that one browser serves every test (launching
# Chromium is the slow part). Test modules mark themselves `asyncio(loop_scope="session")`.
LOOP: Final = "session"


@pytest_asyncio.fixture(scope="session", loop_scope=LOOP)
async def browser() -> AsyncIterator[Any]:
    """A headless Debian Chromium (no Playwright browser download), shared by the tests."""
    if not shutil.which(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (scripts/setup does)")
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        instance = await pw.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield instance
        await instance.close()


@pytest_asyncio.fixture(loop_scope=LOOP)
async def page(browser: Any) -> AsyncIterator[Any]:
    """A 1280×720 Spanish-language page; browser console errors fail the test."""
    context = await browser.new_context(viewport={"width": 1280, "height": 720}, locale="es-ES")
    pg = await context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.on(
        "console",
        lambda msg: (
            errors.append(msg.text) if msg.type == "error" and "WebSocket" not in msg.text else None
        ),
    )
    pg.errors = errors
    yield pg
    await context.close()
    assert not errors, f"errors in the page: {errors}"


@pytest_asyncio.fixture(loop_scope=LOOP)
async def relay(redis_server: EmbeddedRedis, bus_config: BusConfig) -> AsyncIterator[RelayServer]:
    """A relay serving web/ on the session's Redis."""
    server = await start_relay(redis_server.url, bus_config)
    yield server
    if not server.task.done():
        await server.stop()


@pytest_asyncio.fixture(loop_scope=LOOP)
async def bus(redis_server: EmbeddedRedis, bus_config: BusConfig) -> AsyncIterator[Bus]:
    """The producer side: publishes straight to the bus, like the STT service does."""
    client = Bus.connect(redis_server.url, bus_config)
    yield client
    await client.close()


def shot(name: str) -> str:
    """Where a screenshot called `name` goes."""
    ARTIFACTS.mkdir(exist_ok=True)
    return str(ARTIFACTS / f"{name}.png")


class Call:
    """Builds the events of one call; `now_ms` anchors timestamps to the real clock."""

    def __init__(self, agent: str = "200", name: str = "Lucía Gómez", number: str = "+34600123456"):
        self.id = f"call-{uuid.uuid4().hex[:8]}"
        self.agent = agent
        self.started_at = int(time.time() * 1000) - 42_000  # the call began 42 s ago
        self.name = name
        self.number = number

    def started(self) -> dict[str, Any]:
        return {
            "type": "call.started",
            "callId": self.id,
            "agent": self.agent,
            "caller": {"number": self.number, "name": self.name},
            "startedAt": self.started_at,
            "lang": "es",
        }

    def partial(self, utt: str, speaker: str, text: str, start: float) -> dict[str, Any]:
        return {
            "type": "partial",
            "callId": self.id,
            "speaker": speaker,
            "utteranceId": utt,
            "text": text,
            "start": start,
            "end": start + 0.3 * len(text.split()),
        }

    def final(self, utt: str, speaker: str, text: str, start: float) -> dict[str, Any]:
        return {
            **self.partial(utt, speaker, text, start),
            "type": "final",
            "confidence": 0.91,
            "lang": "es",
        }

    def coach(self, severity: str, text: str, refs: list[str], kind: str = "tip") -> dict[str, Any]:
        return {
            "type": "coach",
            "callId": self.id,
            "kind": kind,
            "severity": severity,
            "text": text,
            "source": "rules",
            "ruleId": f"rule-{severity}",
            "refs": refs,
        }

    def metrics(self, agent_talk: float, customer_talk: float) -> dict[str, Any]:
        total = agent_talk + customer_talk
        return {
            "type": "metrics",
            "callId": self.id,
            "callTime": 42.0,
            "talkRatio": {
                "agent": round(agent_talk / total, 3),
                "customer": round(customer_talk / total, 3),
            },
            "longestSilence": 3.2,
            "silenceTotal": 6.5,
            "overtalk": {"count": 2, "seconds": 1.4},
            "speakers": {
                "agent": {"talkTime": agent_talk, "utterances": 3, "words": 40},
                "customer": {"talkTime": customer_talk, "utterances": 3, "words": 30},
            },
        }

    def summary(self) -> dict[str, Any]:
        return {
            "type": "summary",
            "callId": self.id,
            "text": "La clienta quería dar de baja la fibra por la subida de precio; se le aplicó un descuento y se queda.",
            "disposition": "retained",
            "actionItems": [
                "Aplicar descuento del 20 % durante 12 meses",
                "Enviar confirmación por correo",
            ],
            "sentiment": "positive",
        }

    def ended(self) -> dict[str, Any]:
        return {
            "type": "call.ended",
            "callId": self.id,
            "endedAt": int(time.time() * 1000),
            "reason": "caller-hangup",
        }


async def publish(bus: Bus, *events: dict[str, Any]) -> None:
    """Publish events in order, one at a time (as live producers do)."""
    for event in events:
        await bus.publish(event)
