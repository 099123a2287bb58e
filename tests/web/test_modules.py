"""The page modules' logic, run inside the real browser (ES modules imported by the page)."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]


async def test_feed_dedupes_per_call_and_resumes_from_the_last_id(page, relay) -> None:
    await page.goto(f"{relay.http}/wall.html")
    result = await page.evaluate(
        """async () => {
        const { Feed } = await import('/js/feed.js');
        const seen = [];
        const feed = new Feed({ callId: '*', token: 't', onEvent: (ev) => seen.push(ev.id) });
        const frame = (id, callId) => feed._frame(JSON.stringify({ type: 'final', id, callId }));
        frame('100-0', 'a');
        frame('105-0', 'b');
        frame('103-0', 'a');   // older than b's event but new for call a: kept
        frame('100-0', 'a');   // a repeat: dropped
        frame('105-0', 'b');   // a repeat: dropped
        frame('105-1', 'b');
        feed._frame('{"type":"relay.gap","firstId":"90-0"}');
        feed._frame('not json');
        return { seen, since: new URL(feed._url()).searchParams.get('since'),
                 duplicates: feed.duplicates };
    }"""
    )
    assert result["seen"] == ["100-0", "105-0", "103-0", "105-1"]
    # Resume from the last id received (arrival order), as the relay's close reason says.
    assert result["since"] == "105-1"
    assert result["duplicates"] == 2


async def test_final_close_codes_stop_retrying(page, relay) -> None:
    await page.goto(f"{relay.http}/wall.html")
    states = await page.evaluate(
        """async () => {
        const { Feed } = await import('/js/feed.js');
        const out = {};
        for (const code of [4401, 4403, 4404, 4400, 4008, 1012, 1006]) {
            const feed = new Feed({ callId: 'x', token: 't', onEvent: () => {},
                                    onState: (s) => { out[code] = s; } });
            feed.stopped = false;
            feed._closed({ code, reason: '' });
            clearTimeout(feed.timer);
            feed.stopped = true;
        }
        return out;
    }"""
    )
    assert states == {
        "4401": "unauthorized",
        "4403": "refused",
        "4404": "refused",
        "4400": "refused",
        "4008": "reconnecting",
        "1012": "reconnecting",
        "1006": "reconnecting",
    }
