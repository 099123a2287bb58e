"""Recording pause in a real browser: the console and the wall show the recording state from the
call's `call.recording` events, and the button asks the relay to pause or resume (the relay's
own route and what lies behind it are tests/relay/test_recording.py; here its answer is set
with Playwright's routing, so the page's handling of 200 and 409 is what is tested)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from playwright.async_api import expect

from tests.web.conftest import Call, publish

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.asyncio(loop_scope="session")]


def _rec(call: Call, state: str, at: float, **extra: Any) -> dict[str, Any]:
    return {"type": "call.recording", "callId": call.id, "state": state, "at": at, **extra}


class Answers:
    """What the page's POST /calls/{id}/recording gets back, and what it sent."""

    def __init__(self) -> None:
        self.queue: list[tuple[int, dict[str, Any]]] = []
        self.seen: list[dict[str, Any]] = []

    async def handle(self, route: Any) -> None:
        req = route.request
        self.seen.append(
            {"body": json.loads(req.post_data or "{}"), "auth": req.headers.get("authorization")}
        )
        status, body = self.queue.pop(0)
        await route.fulfill(status=status, content_type="application/json", body=json.dumps(body))


async def test_the_agent_pauses_and_resumes_from_the_console(page, relay, bus) -> None:
    call = Call(agent="200")
    token = relay.token("agent", "200")
    answers = Answers()
    await page.route("**/calls/*/recording", answers.handle)
    await page.goto(f"{relay.http}/#token={token}")
    await expect(page.locator(".conn")).to_have_attribute("data-state", "live")
    await publish(bus, call.started())
    await expect(page.locator(".caller-name")).to_have_text("Lucía Gómez")
    rec = page.locator(".call-head .rec")
    await expect(rec).to_be_hidden()  # nothing recorded before the agent is bridged

    await publish(bus, _rec(call, "started", 2.0))
    await expect(rec.locator(".rec-state")).to_have_text("Grabando")
    button = rec.locator("button.rec-toggle")
    await expect(button).to_have_text("Pausar grabación")

    answers.queue.append((200, {"callId": call.id, "state": "paused", "at": 10.0}))
    await button.click()
    await expect(rec.locator(".rec-state")).to_have_text("Grabación en pausa")
    await expect(button).to_have_text("Reanudar grabación")
    assert answers.seen[0] == {"body": {"state": "paused"}, "auth": f"Bearer {token}"}
    await publish(bus, _rec(call, "paused", 10.0))  # what ari publishes once AMI muted
    await expect(rec.locator(".rec-state")).to_have_text("Grabación en pausa")

    # A refusal is shown and the state stays as it is.
    answers.queue.append((409, {"error": "the recording is already resumed"}))
    await button.click()
    await expect(rec.locator(".rec-problem")).to_contain_text("already resumed")
    await expect(rec.locator(".rec-state")).to_have_text("Grabación en pausa")
    assert answers.seen[1]["body"] == {"state": "resumed"}
    # Chromium logs the refused request itself; that one was asked for.
    page.errors[:] = [e for e in page.errors if "status of 409" not in e]

    # The state follows the stream (a supervisor resumed it), and the error note goes.
    await publish(bus, _rec(call, "resumed", 20.0))
    await expect(rec.locator(".rec-state")).to_have_text("Grabando")
    await expect(rec.locator(".rec-problem")).to_have_count(0)
    await publish(bus, _rec(call, "stopped", 30.0, path="/rec/x.raw"), call.ended())
    await expect(rec).to_be_hidden()


async def test_the_wall_flags_a_paused_recording_and_resumes_it(page, relay, bus) -> None:
    call = Call(agent="201", name="Marta Ruiz")
    answers = Answers()
    await page.route("**/calls/*/recording", answers.handle)
    token = relay.token("supervisor")
    await page.goto(f"{relay.http}/wall.html#token={token}")
    await expect(page.locator(".topbar .conn")).to_have_attribute("data-state", "live")
    await publish(bus, call.started(), _rec(call, "started", 1.0), _rec(call, "paused", 5.0))
    tile = page.locator(f'.tile[data-call="{call.id}"]')
    await expect(tile.locator(".rec-paused")).to_have_text("Grabación en pausa")

    await tile.click()
    rec = page.locator(".call-head .rec")
    await expect(rec.locator(".rec-state")).to_have_text("Grabación en pausa")
    answers.queue.append((200, {"callId": call.id, "state": "resumed", "at": 9.0}))
    await rec.locator("button.rec-toggle").click()
    await expect(rec.locator(".rec-state")).to_have_text("Grabando")
    assert answers.seen == [{"body": {"state": "resumed"}, "auth": f"Bearer {token}"}]
    await publish(bus, _rec(call, "resumed", 9.0))
    await expect(tile.locator(".rec-paused")).to_have_count(0)
