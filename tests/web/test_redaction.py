"""Masked personal data on the console: the kind in the reader's language, never the value."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from coach.redact import RedactionSession
from tests.web.conftest import Call, publish

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.asyncio(loop_scope="session")]


async def test_masked_spans_show_their_kind_in_the_console_language(page, relay, bus) -> None:
    call = Call(agent="200")
    await page.goto(f"{relay.http}/#token={relay.token('agent', '200')}")
    await expect(page.locator(".conn")).to_have_attribute("data-state", "live")
    raw = call.final("c1", "customer", "Mi tarjeta es 4111 1111 1111 1111 y el CVV 123.", 3.0)
    masked = RedactionSession().final(raw)  # as STT publishes it
    await publish(bus, call.started(), masked)
    text = page.locator('.bubble[data-utt="c1"] .text')
    await expect(text).to_have_text("Mi tarjeta es [tarjeta] y el CVV [CVV].")
    await expect(text.locator(".redacted")).to_have_count(2)
    await expect(text.locator('.redacted[data-kind="card"]')).to_have_attribute(
        "title", "Dato personal: se ocultó antes de guardarse"
    )
    await page.locator("button.lang").click()
    await expect(text).to_have_text("Mi tarjeta es [card number] y el CVV [CVV].")
    assert "4111" not in await page.content()
