"""The ARI double keeps to Asterisk's rules (so the app's tests against it mean something)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import requests

from ari.rest import AriError, AriRest

pytestmark = pytest.mark.integration


@pytest.fixture
async def rest(double):
    client = AriRest(double.url, "coach", "ari-test-pass")
    yield client
    client.close()


async def test_auth_required(double):
    resp = await asyncio.to_thread(requests.get, f"{double.url}/ari/channels", timeout=5)
    assert resp.status_code == 401


async def test_status_codes(double, rest):
    async def call(fn, *args, **kwargs):
        try:
            return await rest.run(fn, *args, **kwargs)
        except AriError as exc:
            return exc.status

    assert await call(rest.hangup, "nope") == 404
    assert await call(rest.delete_bridge, "nope") == 404
    assert await call(rest.answer, "nope") == 404
    await call(rest.create_bridge, "b1", "b1")
    assert await call(rest.create_bridge, "b1", "b1") == 409
    assert await call(rest.add_channel, "b1", "nope") == 400
    # ExternalMedia: StasisStart comes shortly AFTER the response; bridging before it is 422.
    double.stasis_delay = 0.3
    em = await call(
        rest.external_media,
        app="coach_app",
        external_host="127.0.0.1:9",
        fmt="slin16",
        channel_id="em1",
        data="x",
    )
    assert em["channelvars"]["UNICASTRTP_LOCAL_PORT"]
    assert await call(rest.add_channel, "b1", "em1") == 422
    await double.wait_event("StasisStart", "em1")
    assert await call(rest.add_channel, "b1", "em1") is None
    # ExternalMedia channels and bridges never go away on their own.
    assert "em1" in double.channels and "b1" in double.bridges
    assert await call(rest.hangup, "em1") is None
    assert await call(rest.delete_bridge, "b1") is None
    assert double.leftovers() == ([], [])


async def test_hangup_event_order_and_snoop_follows_target(double, rest):
    events: list[dict[str, Any]] = []
    double.on_event = events.append
    double._clients.add(asyncio.Queue())  # a registered app, so Stasis() succeeds
    cid = await double.incoming_call("1", "A", b"", b"")
    await rest.run(rest.create_bridge, "b", "b")
    await rest.run(rest.add_channel, "b", cid)
    await rest.run(rest.snoop, cid, app="coach_app", app_args="x", snoop_id="sn")
    await double.wait_event("StasisStart", "sn")
    events.clear()
    await double.hangup(cid)
    kinds = [(e["type"], e.get("channel", {}).get("id")) for e in events]
    assert kinds[:4] == [
        ("ChannelHangupRequest", cid),
        ("ChannelLeftBridge", cid),
        ("StasisEnd", cid),
        ("ChannelDestroyed", cid),
    ]
    assert ("ChannelDestroyed", "sn") in kinds
    assert "b" in double.bridges  # the bridge stays until the app deletes it
    await rest.run(rest.delete_bridge, "b")
