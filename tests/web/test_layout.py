"""The console and the wall at common screen sizes, in the real browser."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from tests.web.conftest import Call, publish, shot

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.asyncio(loop_scope="session")]

SIZES = [(1280, 720), (1366, 768), (1920, 1080), (820, 1000)]
NO_SIDEWAYS_SCROLL = "document.scrollingElement.scrollWidth <= window.innerWidth"


async def _busy_call(bus) -> Call:
    call = Call(
        agent="200", name="María de los Ángeles Fernández-Villaverde", number="+34699000111"
    )
    events = [call.started()]
    for i in range(14):
        speaker = "customer" if i % 2 else "agent"
        text = f"Frase {i}: " + "una explicación bastante larga sobre la factura y el contrato " * (
            1 + i % 3
        )
        events.append(call.final(f"u{i}", speaker, text.strip(), i * 4.0))
    events += [
        call.coach(
            "critical",
            "El cliente menciona una reclamación formal: ofrezca escalar.",
            ["u13"],
            kind="alert",
        ),
        call.coach(
            "warning", "Lleva 20 segundos sin confirmar la identidad del cliente.", ["u2", "u4"]
        ),
        call.coach("info", "Buen momento para ofrecer la factura electrónica.", ["u9"]),
        call.metrics(agent_talk=30.0, customer_talk=45.0),
        call.partial("u14", "customer", "Y además quería preguntar por", 60.0),
    ]
    await publish(bus, *events)
    return call


async def test_console_and_wall_fit_common_screens(page, relay, bus) -> None:
    call = await _busy_call(bus)
    await page.goto(f"{relay.http}/#token={relay.token('agent', '200')}")
    # A fresh `callId=*` replay leaves partials out (the relay's rule): 14 finals.
    await expect(page.locator(".bubble")).to_have_count(14)
    for width, height in SIZES:
        await page.set_viewport_size({"width": width, "height": height})
        await expect(page.locator(".pinned .card")).to_be_visible()
        assert await page.evaluate(NO_SIDEWAYS_SCROLL), (
            f"console scrolls sideways at {width}x{height}"
        )
        await page.screenshot(path=shot(f"console-{width}x{height}"))
    await page.set_viewport_size({"width": 1280, "height": 720})
    # Following live: the newest line is in view at 1280×720.
    await expect(page.locator('.bubble[data-utt="u13"]')).to_be_in_viewport()

    await page.goto(f"{relay.http}/wall.html#token={relay.token('supervisor')}")
    tile = page.locator(f'.tile[data-call="{call.id}"]')
    await tile.click()
    # A single call's replay includes the partial in progress.
    await expect(page.locator(".detail .bubble")).to_have_count(15)
    for width, height in SIZES:
        await page.set_viewport_size({"width": width, "height": height})
        await expect(tile).to_be_visible()
        assert await page.evaluate(NO_SIDEWAYS_SCROLL), f"wall scrolls sideways at {width}x{height}"
    await page.set_viewport_size({"width": 1366, "height": 768})
    await page.screenshot(path=shot("wall-1366x768"))
