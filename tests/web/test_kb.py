"""Knowledge cards and the knowledge search box in the agent console (real browser, relay, Redis)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from playwright.async_api import expect

from coach.bus import BusConfig
from coach.knowledge.settings import KBSettings
from coach.redis_server import EmbeddedRedis
from fakes.poll import until_async
from tests.relay.conftest import RelayServer, start_relay
from tests.web.conftest import LOOP, Call, publish, shot

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.asyncio(loop_scope="session")]

ROAMING = (
    "# Roaming\n\n## Roaming fuera de la UE\n\nFuera de la UE el bono Viajero cuesta 5 € al día "
    "por 1 GB y 30 minutos.\n\n## Desactivar el roaming\n\nSe desactiva desde la app, en Viajes.\n"
)


@pytest_asyncio.fixture(loop_scope=LOOP)
async def kb_relay(
    redis_server: EmbeddedRedis, bus_config: BusConfig, tmp_path: Path
) -> AsyncIterator[RelayServer]:
    (tmp_path / "roaming.md").write_text(ROAMING, encoding="utf-8")
    server = await start_relay(
        redis_server.url, bus_config, kb=KBSettings(dir=tmp_path, semantic="off", min_score=0.3)
    )
    headers = {"Authorization": f"Bearer {server.token('supervisor')}"}
    async with httpx.AsyncClient(base_url=server.http, headers=headers) as client:

        async def indexed() -> bool:
            return (await client.get("/kb/docs/roaming")).status_code == 200

        await until_async(indexed, 10)
    yield server
    if not server.task.done():
        await server.stop()


def _card(call: Call, **extra: Any) -> dict[str, Any]:
    return {
        "type": "coach",
        "callId": call.id,
        "kind": "knowledge",
        "severity": "info",
        "source": "kb",
        "text": "Fuera de la UE el bono Viajero cuesta 5 € al día por 1 GB y 30 minutos.",
        "doc": {
            "id": "roaming#roaming-fuera-de-la-ue",
            "title": "Roaming",
            "section": "Roaming fuera de la UE",
            "url": "/kb/docs/roaming#roaming-fuera-de-la-ue",
        },
        "score": 0.82,
        "cardId": "kb-card-1",
        "refs": ["c1"],
        **extra,
    }


async def test_knowledge_card_answer_source_and_feedback(page, kb_relay, bus) -> None:
    call = Call(agent="200")
    await page.goto(f"{kb_relay.http}/#token={kb_relay.token('agent', '200')}")
    await expect(page.locator(".conn")).to_have_attribute("data-state", "live")
    question = "¿Cuánto me cuesta el roaming en Estados Unidos?"
    await publish(bus, call.started(), call.final("c1", "customer", question, 3.0), _card(call))
    card = page.locator('.card[data-kind="knowledge"]')
    await expect(card).to_have_count(1)
    await expect(card.locator(".kind")).to_have_text("Respuesta")
    await expect(card.locator(".card-text")).to_contain_text("5 € al día")
    await expect(card.locator(".kb-open")).to_have_text("Roaming › Roaming fuera de la UE")
    await expect(card.locator(".kb-score")).to_have_text("confianza 82 %")
    # The LLM's answer arrives with the same cardId: it fills the same card.
    await publish(
        bus,
        _card(call, model="fake/m", answer={"text": "Cuesta 5 € al día fuera de la UE.",
                                            "done": True, "cites": ["roaming#roaming-fuera-de-la-ue"]}),
    )  # fmt: skip
    await expect(card.locator(".kb-answer p")).to_have_text("Cuesta 5 € al día fuera de la UE.")
    await expect(card).to_have_count(1)
    await card.locator(".kb-useful").click()
    await expect(card.locator(".kb-thanks")).to_have_text("Gracias, anotado.")
    headers = {"Authorization": f"Bearer {kb_relay.token('supervisor')}"}
    async with httpx.AsyncClient(base_url=kb_relay.http, headers=headers) as client:
        report = (await client.get("/kb/report")).json()
    assert [(p["passage"], p["useful"], p["notUseful"]) for p in report["passages"]] == [
        ("roaming#roaming-fuera-de-la-ue", 1, 0)
    ]
    # The source opens in the console, the cited section marked.
    await card.locator(".kb-open").click()
    viewer = page.locator(".kb-doc")
    await expect(viewer).to_be_visible()
    await expect(viewer.locator(".kb-doc-title")).to_have_text("Roaming")
    await expect(viewer.locator(".kb-cited h4")).to_have_text("Roaming fuera de la UE")
    await page.screenshot(path=shot("console-knowledge-card"))


async def test_search_box_with_hotkey(page, kb_relay) -> None:
    await page.goto(f"{kb_relay.http}/#token={kb_relay.token('agent', '200')}")
    await expect(page.locator(".conn")).to_have_attribute("data-state", "live")
    await page.keyboard.press("Alt+k")
    box = page.locator(".kb-q")
    await expect(box).to_be_focused()
    await box.fill("cómo desactivo el roaming")
    await box.press("Enter")
    first = page.locator(".kb-result").first
    await expect(first.locator(".kb-open")).to_have_text("Roaming › Desactivar el roaming")
    await expect(first.locator(".kb-text")).to_have_text("Se desactiva desde la app, en Viajes.")
    await box.fill("receta de paella valenciana")
    await box.press("Enter")
    await expect(page.locator(".kb-result")).to_have_count(0)
    await expect(page.locator(".kb-status")).to_have_text("Nada con suficiente confianza.")
    await page.screenshot(path=shot("console-knowledge-search"))
