"""The history and call pages in a real browser, on a real relay reading a real PostgreSQL
filled by the real archiver: search with highlighted hits, the call page's audio player synced
to the transcript (Range requests through the signed URL), and an agent's isolation."""

from __future__ import annotations

import io
import re
import wave
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
import pytest_asyncio
from playwright.async_api import expect

from archive.worker import Archiver
from coach.bus import Bus, BusConfig
from coach.record import roles
from coach.redis_server import EmbeddedRedis
from tests.callrecord import LINES_ES, call_events
from tests.pg import RecordDb, pg_server, record_db
from tests.relay.conftest import RelayServer, start_relay
from tests.web.conftest import LOOP, shot

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.asyncio(loop_scope="session")]

__all__ = ["pg_server", "record_db"]  # fixtures used here


def stereo_wav(seconds: float, rate: int = 8000) -> bytes:
    """A quiet two-channel tone (a recording's shape: left customer, right agent)."""
    t = np.arange(int(seconds * rate)) / rate
    left = (0.05 * np.sin(2 * np.pi * 220 * t) * 32767).astype(np.int16)
    right = (0.05 * np.sin(2 * np.pi * 330 * t) * 32767).astype(np.int16)
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.column_stack([left, right]).tobytes())
    return buf.getvalue()


@pytest_asyncio.fixture(loop_scope=LOOP)
async def history_relay(
    redis_server: EmbeddedRedis, bus_config: BusConfig, record_db: RecordDb, tmp_path: Path
) -> AsyncIterator[RelayServer]:
    recordings = tmp_path / "rec"
    recordings.mkdir()
    (recordings / "c200a.wav").write_bytes(stereo_wav(32.0))
    bus = Bus.connect(redis_server.url, bus_config)
    await bus.publish_many(call_events("c200a", agent="200", recording="/var/spool/c200a.wav"))
    await bus.publish_many(call_events("c200b", agent="200", lang="en", disposition="resolved"))
    await bus.publish_many(call_events("c201", agent="200", answered_by="201"))
    archiver = Archiver(bus, record_db.url(), block_ms=50)
    await archiver.start()
    while await archiver.step():
        pass
    await archiver.close()
    await bus.close()
    server = await start_relay(
        redis_server.url,
        bus_config,
        database_url=record_db.url(roles.READER),
        recordings_dir=recordings,
    )
    yield server
    await server.stop()


async def test_search_then_play_the_moment_it_was_said(page, history_relay) -> None:
    relay = history_relay
    await page.goto(f"{relay.http}/history.html#token={relay.token('supervisor')}")
    await expect(page.locator(".result")).to_have_count(3)
    await page.fill("#f-q", '"cancelar mi suscripción"')
    await page.select_option("#f-speaker", "customer")
    await page.click("button[type=submit]")
    await expect(page.locator(".result")).to_have_count(2)
    first = page.locator('.result[data-call-id="c201"]')
    await expect(first.locator("mark").first).to_have_text("cancelar")
    await page.screenshot(path=shot("history-search"), full_page=True)

    await page.locator('.result[data-call-id="c200a"] .match-at').first.click()
    await expect(page).to_have_url(re.compile(r"call\.html#call=c200a&t=5\.\d+"))
    await expect(page.locator(".line")).to_have_count(len(LINES_ES))
    await expect(page.locator(".summary .chip.disposition")).to_have_text("cancellation requested")
    await expect(page.locator(".coaching .card")).to_have_count(1)
    await expect(page.locator(".timeline .mark")).to_have_count(1)
    audio = page.locator("audio")
    # The player loaded the recording through the signed URL (Range requests) and seeked to
    # the hit; the line being spoken is highlighted.
    await page.wait_for_function("() => document.querySelector('audio').readyState >= 1")
    duration = await audio.evaluate("a => a.duration")
    assert 31.5 < duration < 32.5
    await expect(page.locator(".line").nth(1)).to_have_class(re.compile(r"\bspeaking\b"))
    src = await audio.evaluate("a => a.currentSrc")
    assert "sig=" in src and "token" not in src

    # Clicking a line plays from there.
    await page.locator(".line").nth(4).click()
    await page.wait_for_function(
        "() => Math.abs(document.querySelector('audio').currentTime - 20) < 1"
    )
    await expect(page.locator(".line").nth(4)).to_have_class(re.compile(r"\bspeaking\b"))
    await page.screenshot(path=shot("history-call"), full_page=True)


async def test_an_agent_sees_only_its_own_calls(page, history_relay) -> None:
    relay = history_relay
    await page.goto(f"{relay.http}/history.html#token={relay.token('agent', '201')}")
    await expect(page.locator(".result")).to_have_count(1)
    await expect(page.locator(".result")).to_have_attribute("data-call-id", "c201")
    assert await page.locator("#f-agent").count() == 0  # no agent filter for an agent
    await page.goto(f"{relay.http}/call.html#call=c200a")
    await expect(page.locator(".error")).to_have_text(re.compile("No existe"))
    assert await page.locator(".line").count() == 0
    # Chromium logs the expected 404 of that fetch as a console error: it is the point here.
    page.errors[:] = [e for e in page.errors if "status of 404" not in e]
