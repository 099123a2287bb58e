"""The call page's "live / record" switch in a real browser, on a real relay and PostgreSQL:
the live transcript first, the transcript of record (second_pass/) on the switch, the audio
synced to either; a call whose record is pending or absent says so (Spanish first)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import psycopg
import pytest
import pytest_asyncio
from playwright.async_api import expect

from archive.worker import Archiver
from coach.bus import Bus, BusConfig
from coach.record import record_write, roles
from coach.record.record_write import RecordUtterance
from coach.redis_server import EmbeddedRedis
from tests.callrecord import LINES_ES, call_events
from tests.pg import RecordDb, pg_server, record_db
from tests.relay.conftest import RelayServer, start_relay
from tests.web.conftest import LOOP, shot
from tests.web.test_history import stereo_wav

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.asyncio(loop_scope="session")]

__all__ = ["pg_server", "record_db"]  # fixtures used here

RECORD = [
    RecordUtterance("agent", 0.4, 3.9, "Buenos días, le atiende Marta. ¿En qué puedo ayudarle?"),
    RecordUtterance(
        "customer", 5.0, 9.1, "Hola, quiero cancelar mi suscripción porque es muy cara."
    ),
    RecordUtterance(
        "agent", 10.2, 14.0, "Entiendo. Antes de cancelar, le puedo ofrecer un descuento."
    ),
    RecordUtterance(
        "customer",
        21.5,
        24.5,
        "Mi tarjeta es [card].",
        [],
        0.8,
        [{"kind": "card", "start": 22.4, "end": 24.4, "charStart": 14, "charEnd": 20}],
    ),
]


@pytest_asyncio.fixture(loop_scope=LOOP)
async def record_relay(
    redis_server: EmbeddedRedis, bus_config: BusConfig, record_db: RecordDb, tmp_path: Path
) -> AsyncIterator[RelayServer]:
    recordings = tmp_path / "rec"
    recordings.mkdir()
    (recordings / "c300.wav").write_bytes(stereo_wav(32.0))
    bus = Bus.connect(redis_server.url, bus_config)
    await bus.publish_many(call_events("c300", agent="200", recording="/var/spool/c300.wav"))
    await bus.publish_many(call_events("c301", agent="200"))
    await bus.publish_many(call_events("c302", agent="200"))
    archiver = Archiver(bus, record_db.url(), block_ms=50)
    await archiver.start()
    while await archiver.step():
        pass
    await archiver.close()
    await bus.close()
    async with await psycopg.AsyncConnection.connect(record_db.url(), autocommit=True) as conn:
        await record_write.mark_pending(conn, "c300", "/var/spool/c300.wav", "es")
        await record_write.store(
            conn,
            "c300",
            RECORD,
            model="faster-whisper-base",
            lang="es",
            audio_s=32.0,
            decode_s=5.0,
        )
        await record_write.mark_pending(conn, "c302", "/var/spool/c302.wav", "es")
    server = await start_relay(
        redis_server.url,
        bus_config,
        database_url=record_db.url(roles.READER),
        recordings_dir=recordings,
    )
    yield server
    await server.stop()


async def test_switch_between_live_and_record_with_the_audio_in_sync(page, record_relay) -> None:
    relay = record_relay
    await page.goto(f"{relay.http}/call.html#call=c300&token={relay.token('supervisor')}")
    live_btn, record_btn = page.locator(".view-live"), page.locator(".view-record")
    await expect(live_btn).to_have_text("En directo")
    await expect(record_btn).to_have_text("De registro")
    await expect(live_btn).to_have_attribute("aria-pressed", "true")
    await expect(page.locator(".record-model")).to_have_text("Modelo faster-whisper-base")
    await expect(page.locator(".line")).to_have_count(len(LINES_ES))
    await expect(page.locator(".line .text").first).to_have_text(LINES_ES[0][1])
    await page.wait_for_function("() => document.querySelector('audio').readyState >= 1")

    await record_btn.click()
    await expect(record_btn).to_have_attribute("aria-pressed", "true")
    await expect(live_btn).to_have_attribute("aria-pressed", "false")
    await expect(page.locator(".line")).to_have_count(len(RECORD))
    await expect(page.locator(".line .text").nth(3)).to_have_text("Mi tarjeta es [card].")
    await expect(page.locator(".line").nth(3)).to_have_class(re.compile(r"\blane-customer\b"))
    # The record's own timings drive the player: click a line, it plays from its start and is
    # the line highlighted.
    await page.locator(".line").nth(2).click()
    await page.wait_for_function(
        "() => Math.abs(document.querySelector('audio').currentTime - 10.2) < 1"
    )
    await expect(page.locator(".line").nth(2)).to_have_class(re.compile(r"\bspeaking\b"))
    await page.screenshot(path=shot("call-record-view"), full_page=True)

    await live_btn.click()
    await expect(page.locator(".line")).to_have_count(len(LINES_ES))
    await expect(page.locator(".line .text").first).to_have_text(LINES_ES[0][1])


async def test_a_pending_or_absent_record_is_said(page, record_relay) -> None:
    relay = record_relay
    token = relay.token("supervisor")
    await page.goto(f"{relay.http}/call.html#call=c302&token={token}")
    await expect(page.locator(".record-pending")).to_have_text(re.compile("se está preparando"))
    assert await page.locator(".view-record").count() == 0
    await expect(page.locator(".line")).to_have_count(len(LINES_ES))
    await page.goto(f"{relay.http}/call.html#call=c301&token={token}")
    await page.reload()
    await expect(page.locator(".record-none")).to_have_text(
        "Esta llamada no tiene transcripción de registro."
    )
