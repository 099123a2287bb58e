"""The relay's history routes on a real PostgreSQL, filled by the real archiver from the bus:
a call appears with transcript, coaching and summary; a phrase search finds it at the right
second; an agent sees only its own calls on every route (404 for the others'); exports parse;
the audio answers Range requests through a short-lived signed URL."""

from __future__ import annotations

import csv
import io
import json
import time
import wave
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import srt
import webvtt

from archive.worker import Archiver
from coach.bus import Bus, BusConfig
from coach.record import roles
from coach.redis_server import EmbeddedRedis
from tests.callrecord import LINES_ES, call_events, words
from tests.pg import RecordDb, pg_server, record_db
from tests.relay.conftest import RelayServer, start_relay

pytestmark = pytest.mark.integration

__all__ = ["pg_server", "record_db"]  # fixtures used by this module

RIFF = b"RIFF" + bytes(range(256)) * 40
"""Stands for a recording: the route serves bytes, whatever they hold."""
RAW = bytes(range(256)) * 250 + b"\x01"
"""MixMonitor's headerless stereo PCM16 at 8 kHz (a trailing half frame: still being written)."""


@pytest.fixture
async def archived(bus: Bus, record_db: RecordDb, tmp_path: Path) -> RecordDb:
    """Three calls published on the bus and archived: two of agent 200, one of 201."""
    (tmp_path / "rec").mkdir()
    (tmp_path / "rec" / "c200a.wav").write_bytes(RIFF)
    (tmp_path / "rec" / "c201.raw").write_bytes(RAW)
    await bus.publish_many(call_events("c200a", agent="200", recording="/var/spool/rec/c200a.wav"))
    await bus.publish_many(call_events("c200b", agent="200", lang="en", disposition="resolved"))
    # Dialled for 200 but answered by 201: it is 201's call.
    await bus.publish_many(
        call_events("c201", agent="200", answered_by="201", recording="/var/spool/c201.raw")
    )
    archiver = Archiver(bus, record_db.url(), block_ms=50)
    await archiver.start()
    while await archiver.step():
        pass
    await archiver.close()
    return record_db


@pytest.fixture
async def relay_h(
    redis_server: EmbeddedRedis, bus_config: BusConfig, archived: RecordDb, tmp_path: Path
) -> AsyncIterator[RelayServer]:
    server = await start_relay(
        redis_server.url,
        bus_config,
        database_url=archived.url(roles.READER),
        recordings_dir=tmp_path / "rec",
    )
    yield server
    await server.stop()


def auth(relay: RelayServer, role: str, agent: str | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {relay.token(role, agent)}"}


async def test_archived_call_appears_with_transcript_coaching_summary(
    relay_h: RelayServer,
) -> None:
    async with httpx.AsyncClient(base_url=relay_h.http) as client:
        r = await client.get("/history/c200a", headers=auth(relay_h, "supervisor"))
        assert r.status_code == 200
        call = r.json()
    assert call["agent"] == "200" and call["lang"] == "es" and call["hasRecording"]
    assert [u["text"] for u in call["transcript"]] == [text for _, text in LINES_ES]
    assert call["transcript"][1]["words"][0]["w"] == "Hola,"
    assert [c["ruleId"] for c in call["coaching"]] == ["cancel-intent"]
    assert call["summary"]["disposition"] == "cancellation_requested"
    assert call["summary"]["actionItems"] == ["Process the cancellation"]
    assert call["metricsTimeline"][0]["talkRatio"]["agent"] == 0.55
    assert call["duration"] == 30.0


async def test_phrase_search_finds_the_call_at_the_right_second(relay_h: RelayServer) -> None:
    async with httpx.AsyncClient(base_url=relay_h.http) as client:
        r = await client.get(
            "/history",
            params={"q": '"quiero cancelar mi suscripción"', "speaker": "customer"},
            headers=auth(relay_h, "supervisor"),
        )
    assert r.status_code == 200, r.text
    body = r.json()
    # The same words in both Spanish calls: equal rank, then call id (descending).
    assert [c["callId"] for c in body["calls"]] == ["c201", "c200a"]
    match = body["calls"][0]["matches"][0]
    said = words(LINES_ES[1][1], 5.0, 9.0)
    assert match["at"] == next(w["start"] for w in said if w["w"] == "quiero")
    assert body["nextCursor"] is None


async def test_an_agent_sees_only_its_own_calls_on_every_route(relay_h: RelayServer) -> None:
    mine, other = auth(relay_h, "agent", "201"), "c200a"
    async with httpx.AsyncClient(base_url=relay_h.http) as client:
        listed = (await client.get("/history", headers=mine)).json()["calls"]
        assert [c["callId"] for c in listed] == ["c201"]
        # Asking for another agent's calls finds nothing (not an error that confirms them).
        assert (await client.get("/history?agent=200", headers=mine)).json()["calls"] == []
        assert (await client.get("/history?q=cancelar", headers=mine)).json()["calls"][0][
            "callId"
        ] == "c201"
        csv_text = (await client.get("/history/export.csv", headers=mine)).text
        assert [row["callId"] for row in csv.DictReader(io.StringIO(csv_text))] == ["c201"]
        for method, path in (
            ("GET", f"/history/{other}"),
            ("GET", f"/history/{other}/export?format=json"),
            ("GET", f"/history/{other}/export?format=vtt"),
            ("GET", f"/history/{other}/audio"),
            ("POST", f"/history/{other}/media-url"),
            ("GET", "/history/no-such-call"),
        ):
            r = await client.request(method, path, headers=mine)
            assert r.status_code == 404, (method, path, r.status_code)
            assert r.json() == {"error": "unknown call"}  # the same for missing and not-yours
        assert (await client.get("/history/c201", headers=mine)).status_code == 200
        sup = auth(relay_h, "supervisor")
        assert (await client.get(f"/history/{other}", headers=sup)).status_code == 200
        assert len((await client.get("/history", headers=sup)).json()["calls"]) == 3
        assert (await client.get("/history")).status_code == 401


async def test_exports_parse(relay_h: RelayServer, tmp_path: Path) -> None:
    sup = auth(relay_h, "supervisor")
    async with httpx.AsyncClient(base_url=relay_h.http) as client:
        as_json = await client.get("/history/c200a/export?format=json", headers=sup)
        as_vtt = await client.get("/history/c200a/export?format=vtt", headers=sup)
        as_srt = await client.get("/history/c200a/export?format=srt", headers=sup)
        as_txt = await client.get("/history/c200a/export?format=txt", headers=sup)
        as_csv = await client.get(
            "/history/export.csv?disposition=cancellation_requested", headers=sup
        )
        bad = await client.get("/history/c200a/export?format=doc", headers=sup)
    assert bad.status_code == 400 and bad.json()["field"] == "format"
    assert "attachment" in as_json.headers["content-disposition"]
    assert len(json.loads(as_json.text)["transcript"]) == len(LINES_ES)
    vtt_file = tmp_path / "c.vtt"
    vtt_file.write_text(as_vtt.text, encoding="utf-8")
    cues = webvtt.read(str(vtt_file)).captions
    assert [c.voice for c in cues][:2] == ["Agent", "Customer"]
    assert cues[1].start_in_seconds == 5.0 and cues[1].end_in_seconds == 9.0
    assert cues[1].text == LINES_ES[1][1]
    subs = list(srt.parse(as_srt.text))
    assert len(subs) == len(LINES_ES)
    assert subs[1].start.total_seconds() == 5.0 and subs[1].content == f"Customer: {LINES_ES[1][1]}"
    assert f"[00:05] Customer: {LINES_ES[1][1]}" in as_txt.text
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert {r["callId"] for r in rows} == {"c200a", "c201"}
    assert all(r["disposition"] == "cancellation_requested" for r in rows)


async def test_audio_range_through_a_signed_url(relay_h: RelayServer) -> None:
    mine = auth(relay_h, "agent", "200")
    async with httpx.AsyncClient(base_url=relay_h.http) as client:
        r = await client.post("/history/c200a/media-url", headers=mine)
        assert r.status_code == 200
        signed = r.json()
        assert signed["expiresAt"] <= time.time() + 120
        part = await client.get(signed["url"], headers={"Range": "bytes=100-199"})
        assert part.status_code == 206
        assert part.content == RIFF[100:200]
        assert part.headers["content-range"] == f"bytes 100-199/{len(RIFF)}"
        whole = await client.get(signed["url"])
        assert whole.status_code == 200 and whole.content == RIFF
        beyond = await client.get(signed["url"], headers={"Range": f"bytes={len(RIFF) + 10}-"})
        assert beyond.status_code == 416
        # The signature is for that call only, and cannot be altered.
        other = signed["url"].replace("c200a", "c201")
        assert (await client.get(other)).status_code == 401
        assert (await client.get(signed["url"][:-2] + "00")).status_code == 401
        assert (await client.get("/history/c200a/audio")).status_code == 401
        # With the header, too; a call without a recording is 404.
        assert (await client.get("/history/c200a/audio", headers=mine)).status_code == 200
        assert (await client.get("/history/c200b/audio", headers=mine)).status_code == 404


async def test_bad_parameters_are_named(relay_h: RelayServer) -> None:
    sup = auth(relay_h, "supervisor")
    async with httpx.AsyncClient(base_url=relay_h.http) as client:
        for query, field in (
            ("disposition=happy", "disposition"),
            ("sentiment=angry", "sentiment"),
            ("from=yesterday", "from"),
            ("minDuration=-1", "minDuration"),
            ("maxAgentTalkRatio=1.5", "maxAgentTalkRatio"),
            ("speaker=robot", "speaker"),
            ("limit=0", "limit"),
            ("cursor=garbage", "cursor"),
            ("talkRatio=0.5", "talkRatio"),
        ):
            r = await client.get(f"/history?{query}", headers=sup)
            assert r.status_code == 400, query
            assert r.json()["field"] == field, query


async def test_without_a_database_the_routes_say_so(
    redis_server: EmbeddedRedis, bus_config: BusConfig
) -> None:
    server = await start_relay(redis_server.url, bus_config)
    try:
        async with httpx.AsyncClient(base_url=server.http) as client:
            r = await client.get("/history", headers=auth(server, "supervisor"))
        assert r.status_code == 503 and "DATABASE_URL" in r.json()["error"]
    finally:
        await server.stop()


async def test_a_raw_recording_plays_as_wav_with_ranges(relay_h: RelayServer) -> None:
    mine = auth(relay_h, "agent", "201")
    frames = len(RAW) // 4
    async with httpx.AsyncClient(base_url=relay_h.http) as client:
        url = (await client.post("/history/c201/media-url", headers=mine)).json()["url"]
        whole = await client.get(url)
        assert whole.status_code == 200 and whole.headers["content-type"] == "audio/wav"
        with wave.open(io.BytesIO(whole.content)) as w:
            assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (2, 2, 8000)
            assert w.readframes(frames) == RAW[: frames * 4]
        size = 44 + frames * 4
        # A range across the header's end, one inside the samples, and the last bytes.
        for rng, first, last in (
            ("bytes=40-99", 40, 99),
            ("bytes=1000-1999", 1000, 1999),
            ("bytes=-10", size - 10, size - 1),
        ):
            part = await client.get(url, headers={"Range": rng})
            assert part.status_code == 206, rng
            assert part.headers["content-range"] == f"bytes {first}-{last}/{size}"
            assert part.content == whole.content[first : last + 1]
        assert (await client.get(url, headers={"Range": f"bytes={size}-"})).status_code == 416
