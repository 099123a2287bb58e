"""The metrics reader (web/js/metrics.js) reads the one `metrics` shape of the contract."""

from __future__ import annotations

from typing import Any

import pytest

from coach.events import validate

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

READ = """async (ev) => (await import('/js/metrics.js')).readMetrics(ev)"""
EVENT: dict[str, Any] = {  # as orchestrator/callstate.py emits it
    "type": "metrics",
    "callId": "c",
    "callTime": 30.0,
    "talkRatio": {"agent": 0.6, "customer": 0.4},
    "longestSilence": 2.5,
    "silenceTotal": 4.0,
    "overtalk": {"count": 3, "seconds": 1.2},
    "speakers": {
        "agent": {"talkTime": 12.0, "utterances": 4, "words": 30, "wordsPerMinute": 150.0},
        "customer": {"talkTime": 8.0, "utterances": 3, "words": 20, "wordsPerMinute": 150.0},
    },
}


async def test_the_contract_s_shape_is_read(page, relay) -> None:
    validate(EVENT)  # the example is the contract's shape
    await page.goto(f"{relay.http}/wall.html")
    got = await page.evaluate(READ, EVENT)
    assert got == {
        "agentShare": pytest.approx(0.6),
        "agentTalk": 12.0,
        "customerTalk": 8.0,
        "silenceTotal": 4.0,
        "longestSilence": 2.5,
        "overtalkCount": 3,
        "overtalkSeconds": 1.2,
        "callTime": 30.0,
    }


async def test_only_the_speakers_heard_so_far_are_present(page, relay) -> None:
    await page.goto(f"{relay.http}/wall.html")
    early = {**EVENT, "talkRatio": {"customer": 1.0}, "speakers": {"customer": {"talkTime": 3.0}}}
    validate(early)
    got = await page.evaluate(READ, early)
    assert (got["agentShare"], got["agentTalk"], got["customerTalk"]) == (0.0, None, 3.0)
    silent = {**EVENT, "talkRatio": {}, "speakers": {}}
    validate(silent)
    got = await page.evaluate(READ, silent)
    assert (got["agentShare"], got["agentTalk"], got["customerTalk"]) == (None, None, None)


async def test_other_spellings_are_not_read(page, relay) -> None:
    await page.goto(f"{relay.http}/wall.html")
    # Spellings the reader used to guess at: none is part of the contract any more.
    other = await page.evaluate(
        READ,
        {
            "type": "metrics",
            "callId": "c",
            "talkRatio": 55,
            "talk_ratio": {"agent": 0.5, "customer": 0.5},
            "silence": {"current": 7, "total": 9, "longest": 3},
            "overtalk": 2,
            "agent": {"talkMs": 3000, "talkTime": 3},
            "customer": {"talk": 1},
            "duration": 20,
        },
    )
    assert all(value is None for value in other.values()), other
    nonsense = await page.evaluate(
        READ, {"type": "metrics", "callId": "c", "talkRatio": "lots", "speakers": [1, 2]}
    )
    assert all(value is None for value in nonsense.values()), nonsense
