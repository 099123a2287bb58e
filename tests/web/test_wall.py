"""The supervisor wall in a real browser: tiles per active call, urgency order, follow a call."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import expect

from tests.web.conftest import Call, publish, shot

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.asyncio(loop_scope="session")]


async def test_wall_lists_calls_and_follows_one(page, relay, bus) -> None:
    calm = Call(agent="200", name="Lucía Gómez", number="+34600123456")
    hot = Call(agent="201", name="Jorge Martín", number="+34911222333")
    await publish(
        bus,
        calm.started(),
        calm.final("a1", "agent", "Buenos días, le atiende Carlos. ¿En qué puedo ayudarle?", 0.5),
        calm.final("c1", "customer", "Quería consultar mi última factura.", 4.0),
        calm.coach("info", "Ofrezca la factura electrónica.", ["c1"]),
        hot.started(),
        hot.final("h1", "customer", "¡Es la tercera vez que llamo y nadie me lo soluciona!", 1.0),
    )
    # The demo prints the supervisor link as `/#token=`: the console sends it to the wall.
    await page.goto(f"{relay.http}/#token={relay.token('supervisor')}")
    await expect(page).to_have_url(re.compile(r"/wall\.html"))
    await expect(page.locator(".topbar .conn")).to_have_attribute("data-state", "live")
    await expect(page.locator(".whoami")).to_have_text("Supervisión")
    tiles = page.locator(".tile")
    await expect(tiles).to_have_count(2)
    await expect(page.locator(".wall-count")).to_have_text("2 llamadas activas")
    calm_tile = page.locator(f'.tile[data-call="{calm.id}"]')
    hot_tile = page.locator(f'.tile[data-call="{hot.id}"]')
    await expect(calm_tile.locator(".caller")).to_have_text("Lucía Gómez")
    await expect(calm_tile.locator(".agent")).to_have_text("Agente 200")
    await expect(calm_tile.locator(".last")).to_contain_text(
        "Cliente: Quería consultar mi última factura."
    )
    await expect(calm_tile.locator(".dur")).to_have_text(re.compile(r"^0:4\d$"))
    await expect(calm_tile.locator(".alert-count")).to_have_text("Sin alertas")

    # A critical alert and a warning on the other call: it moves to the top, red.
    await publish(
        bus,
        hot.coach("warning", "El cliente repite el problema: resuma y confirme.", ["h1"]),
        hot.coach(
            "critical",
            "Cliente muy enfadado: ofrezca escalar a un responsable.",
            ["h1"],
            kind="alert",
        ),
        hot.partial("h2", "customer", "Quiero hablar con", 6.0),
    )
    await expect(hot_tile.locator(".alert-count")).to_have_text("2 alertas")
    await expect(hot_tile.locator(".alert-sev")).to_have_text("Crítico")
    await expect(hot_tile).to_have_attribute("data-severity", "critical")
    await expect(hot_tile.locator(".last")).to_contain_text("Quiero hablar con")
    await expect(tiles.first).to_have_attribute("data-call", hot.id)
    await page.screenshot(path=shot("wall"))

    # Follow the calm call: its transcript and coaching, replayed then live.
    await calm_tile.click()
    detail = page.locator(".detail")
    await expect(detail).to_be_visible()
    await expect(calm_tile).to_have_attribute("aria-pressed", "true")
    await expect(detail.locator(".caller-name")).to_have_text("Lucía Gómez")
    await expect(detail.locator(".bubble")).to_have_count(2)
    await expect(detail.locator(".card.sev-info")).to_have_count(1)
    await expect(detail.locator(".conn")).to_have_attribute("data-state", "live")
    await publish(bus, calm.partial("a2", "agent", "Claro, déjeme", 8.0))
    await expect(detail.locator('.bubble[data-utt="a2"]')).to_have_class(re.compile(r"\bpartial\b"))
    await publish(bus, calm.final("a2", "agent", "Claro, déjeme revisar su factura.", 8.0))
    await expect(detail.locator('.bubble[data-utt="a2"]')).to_have_class(re.compile(r"\bfinal\b"))
    await expect(detail.locator(".bubble")).to_have_count(3)
    # Nothing of the other call leaks into the followed one.
    await expect(detail).not_to_contain_text("tercera vez")
    await page.screenshot(path=shot("wall-follow"))

    # Switch to the other call with the keyboard; Escape closes the detail.
    await hot_tile.focus()
    await page.keyboard.press("Enter")
    await expect(detail.locator(".caller-name")).to_have_text("Jorge Martín")
    await expect(detail.locator(".pinned .card.sev-critical")).to_have_count(1)
    await expect(detail.locator('.bubble[data-utt="h2"]')).to_have_class(re.compile(r"\bpartial\b"))
    await page.keyboard.press("Escape")
    await expect(detail).to_be_hidden()
    await expect(hot_tile).to_be_focused()

    # A call that ends drops down the list, greyed.
    await publish(bus, hot.ended())
    await expect(hot_tile).to_have_class(re.compile(r"\bended\b"))
    await expect(tiles.first).to_have_attribute("data-call", calm.id)
    await expect(page.locator(".wall-count")).to_have_text("1 llamada activa")


async def test_agent_token_on_the_wall_sees_nothing(page, relay, bus) -> None:
    other = Call(agent="201", name="Pedro Secreto")
    await publish(bus, other.started())
    await page.goto(f"{relay.http}/wall.html#token={relay.token('agent', '200')}")
    await expect(page.locator(".waiting")).to_contain_text("token de supervisor")
    await expect(page.locator("body")).not_to_contain_text("Pedro Secreto")
