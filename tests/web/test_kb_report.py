"""The knowledge-base owner's report page (real browser, relay, Redis): passages with shown
and marks, unanswered questions masked, Spanish then English, CSV download, linked from the
wall; agents see that it is for supervisors."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from playwright.async_api import expect

from coach.knowledge.report import KBReport
from coach.knowledge.shown import ShownLog
from tests.web.conftest import shot

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.asyncio(loop_scope="session")]

ROAM = "roaming#roaming-fuera-de-la-ue"


async def _seed(bus) -> None:
    shown = ShownLog(bus.redis, bus.config.prefix)
    report = KBReport(bus.redis, bus.config.prefix)
    for n in range(2):
        await shown.add(ROAM, title="Roaming", section="Roaming fuera de la UE", card_id=f"kb-{n}")
    await report.feedback("c1", "1-0", False, card_id="kb-0", passage=ROAM, agent="200")
    await report.miss("c2", "¿Tenéis fibra en Teruel?", "es", source="call", utterance_id="u1")
    await report.miss(None, "tenéis fibra en teruel", "es", source="search")
    await report.miss(None, "mi tarjeta 4111 1111 1111 1111 no pasa", "es", source="search")


async def test_the_report_page(page, relay, bus) -> None:
    await _seed(bus)
    await page.goto(f"{relay.http}/wall.html#token={relay.token('supervisor')}")
    link = page.locator('.topbar a[href="kb-report.html"]')
    await expect(link).to_have_text("Informe de conocimiento")
    await link.click()
    await expect(page.locator(".page-title")).to_have_text("Informe de la base de conocimiento")
    doc = page.locator('tr.doc-row[data-doc="roaming"]')
    await expect(doc.locator("td").first).to_have_text("Roaming")
    row = page.locator(f'tr.passage-row[data-passage="{ROAM}"]')
    cells = row.locator("td")
    await expect(cells.nth(0)).to_have_text("Roaming fuera de la UE")
    await expect(cells.nth(1)).to_have_text("2")
    await expect(cells.nth(3)).to_have_text("1")
    await expect(cells.nth(3)).to_have_class("num bad")
    questions = page.locator("tr.unanswered-row")
    await expect(questions).to_have_count(2)
    first = questions.first.locator("td")
    await expect(first.nth(0)).to_have_text("tenéis fibra en teruel")  # the latest wording
    await expect(first.nth(2)).to_have_text("2")
    await expect(first.nth(4)).to_have_text("1 / 1")
    await expect(questions.nth(1).locator("td.question")).to_have_text("mi tarjeta [card] no pasa")
    assert "4111" not in await page.content()
    await page.screenshot(path=shot("kb-report"))
    async with page.expect_download() as info:
        await page.locator(".csv-unanswered").click()
    download = await info.value
    assert download.suggested_filename == "kb-unanswered.csv"
    text = await asyncio.to_thread(Path(await download.path()).read_text, encoding="utf-8")
    assert text.splitlines()[0] == "text,lang,count,lastSeen,fromCalls,fromSearches"
    assert "tenéis fibra en teruel,es,2," in text
    await page.locator(".topbar .lang").click()
    await expect(page.locator(".page-title")).to_have_text("Knowledge base report")
    await expect(page.locator("table.unanswered caption")).to_have_text("Unanswered questions")


async def test_agents_are_told_it_is_for_supervisors(page, relay) -> None:
    await page.goto(f"{relay.http}/kb-report.html#token={relay.token('agent', '200')}")
    await expect(page.locator(".status")).to_have_text("Este informe es solo para supervisores.")
    await expect(page.locator("table")).to_have_count(0)
