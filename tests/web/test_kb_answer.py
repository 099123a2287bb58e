"""The streamed knowledge answer in the agent console (real browser, relay, Redis): the answer
grows in place inside its card (same elements, focus kept) with a typing caret until `done`,
and a dropped answer is taken off the card."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import expect

from tests.web.conftest import Call, publish, shot

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.asyncio(loop_scope="session")]

PASSAGE = "roaming#roaming-fuera-de-la-ue"
ANSWER = "Fuera de la UE el bono Viajero cuesta 5 € al día con 1 GB."


def _card(call: Call, card_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "coach", "callId": call.id, "kind": "knowledge", "severity": "info",
        "source": "kb", "text": "Fuera de la UE el bono Viajero cuesta 5 € al día por 1 GB.",
        "doc": {"id": PASSAGE, "title": "Roaming", "section": "Roaming fuera de la UE",
                "url": "/kb/docs/roaming#roaming-fuera-de-la-ue"},
        "score": 0.8, "cardId": card_id, "refs": ["c1"], **extra,
    }  # fmt: skip


def _partial(call: Call, card_id: str, text: str) -> dict[str, Any]:
    return _card(call, card_id, answer={"text": text, "done": False, "cites": []})


async def test_the_answer_grows_in_place_with_a_caret(page, relay, bus) -> None:
    call = Call(agent="200")
    await page.goto(f"{relay.http}/#token={relay.token('agent', '200')}")
    await expect(page.locator(".conn")).to_have_attribute("data-state", "live")
    question = "¿Cuánto cuesta el roaming fuera de la UE?"
    await publish(bus, call.started(), call.final("c1", "customer", question, 3.0))
    await publish(bus, _card(call, "kb-s1"))
    card = page.locator('.card[data-kind="knowledge"]')
    await expect(card).to_have_count(1)
    await expect(card.locator(".kb-answer")).to_have_count(0)
    words = ANSWER.split(" ")
    await publish(bus, _partial(call, "kb-s1", " ".join(words[:3])))
    box = card.locator(".kb-answer")
    await expect(box.locator(".kb-answer-text")).to_have_text("Fuera de la")
    await expect(box).to_have_attribute("data-state", "streaming")
    await expect(box).to_have_attribute("aria-busy", "true")
    await expect(box.locator(".kb-caret")).to_have_count(1)
    await expect(box.locator(".kb-answer-label")).to_have_text("Respuesta sugerida · escribiendo…")
    # Tag the rendered nodes and focus a button: a re-render would lose both.
    await page.evaluate(
        """() => {
          const card = document.querySelector('.card[data-kind="knowledge"]');
          card.querySelector('.kb-answer-text').dataset.tagged = 'yes';
          card.querySelector('.card-text').dataset.tagged = 'yes';
        }"""
    )
    await card.locator(".kb-useful").focus()
    for n in range(4, len(words) + 1):
        await publish(bus, _partial(call, "kb-s1", " ".join(words[:n])))
    await expect(box.locator(".kb-answer-text")).to_have_text(ANSWER)
    await page.screenshot(path=shot("console-knowledge-answer-streaming"))
    await publish(bus, _card(call, "kb-s1", model="fake/m",
                             answer={"text": ANSWER, "done": True, "cites": [PASSAGE]}))  # fmt: skip
    await expect(box).to_have_attribute("data-state", "done")
    await expect(box.locator(".kb-caret")).to_have_count(0)
    await expect(box.locator(".kb-answer-label")).to_have_text("Respuesta sugerida")
    await expect(box.locator("p")).to_have_text(ANSWER)
    await expect(card).to_have_count(1)
    await expect(card.locator('.kb-answer-text[data-tagged="yes"]')).to_have_count(1)
    await expect(card.locator('.card-text[data-tagged="yes"]')).to_have_count(1)
    await expect(card.locator(".kb-useful")).to_be_focused()
    await page.screenshot(path=shot("console-knowledge-answer-done"))


async def test_a_dropped_answer_is_taken_off_the_card(page, relay, bus) -> None:
    call = Call(agent="200")
    await page.goto(f"{relay.http}/#token={relay.token('agent', '200')}")
    await expect(page.locator(".conn")).to_have_attribute("data-state", "live")
    await publish(bus, call.started(), call.final("c1", "customer", "¿Y el roaming?", 3.0))
    await publish(bus, _card(call, "kb-d1"), _partial(call, "kb-d1", "Le regalamos"))
    card = page.locator('.card[data-kind="knowledge"]')
    await expect(card.locator(".kb-answer-text")).to_have_text("Le regalamos")
    dropped = {"text": "", "done": True, "cites": [], "dropped": True}
    await publish(bus, _card(call, "kb-d1", answer=dropped))
    await expect(card.locator(".kb-answer")).to_have_count(0)
    await expect(card.locator(".card-text")).to_contain_text("5 € al día")  # the card stays
    # A console that opens the call later replays the same events to the same end.
    page2 = await page.context.new_page()
    await page2.goto(f"{relay.http}/#token={relay.token('agent', '200')}")
    card2 = page2.locator('.card[data-kind="knowledge"]')
    await expect(card2).to_have_count(1)
    await expect(card2.locator(".kb-answer")).to_have_count(0)
    await page2.close()
