"""WS /ws against a real relay and Redis: replay, live, resume, auth, limits, slow clients."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from websockets.exceptions import ConnectionClosed

from coach.tasks import TaskSet
from tests.relay.conftest import RelayServer, final, partial, recv_json, recv_until, started

pytestmark = pytest.mark.integration


def is_live(frame: dict) -> bool:
    return frame["type"] == "relay.live"


async def close_of(ws) -> tuple[int, str]:
    """Wait for the server to close the socket; its close code and reason."""
    with pytest.raises(ConnectionClosed) as closed:
        async with asyncio.timeout(5):
            while True:
                await ws.recv()
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code, closed.value.rcvd.reason


async def test_replay_in_order_then_live(relay: RelayServer) -> None:
    stored = await relay.bus.publish_many(
        [started("c1"), *(final("c1", f"frase {i}", utt=f"u{i}") for i in range(30))]
    )
    async with await relay.connect("c1") as ws:
        frames = await recv_until(ws, is_live)
        assert [f["id"] for f in frames[:-1]] == [e["id"] for e in stored]
        assert frames[-1]["lastId"] == stored[-1]["id"]
        live = await relay.bus.publish(final("c1", "en vivo", utt="live"))
        assert await recv_json(ws) == live
        # Events of other calls are not sent on this socket.
        await relay.bus.publish(final("other", "no"))
        mine = await relay.bus.publish(final("c1", "otra", utt="u-next"))
        assert (await recv_json(ws))["id"] == mine["id"]


async def test_resume_from_last_id_has_no_gap_and_no_duplicate(relay: RelayServer) -> None:
    await relay.bus.publish(started("c1"))
    for i in range(10):
        await relay.bus.publish(final("c1", str(i), utt=f"u{i}"))
    async with await relay.connect("c1") as ws:
        frames = await recv_until(ws, is_live)
    last_seen = frames[5]["id"]  # the client had only processed six events
    more = [await relay.bus.publish(final("c1", f"late {i}", utt=f"l{i}")) for i in range(5)]
    async with await relay.connect("c1", since=last_seen) as ws:
        resumed = await recv_until(ws, is_live)
    expected = [f["id"] for f in frames[6:-1]] + [e["id"] for e in more]
    assert [f["id"] for f in resumed[:-1]] == expected


async def test_connecting_while_events_flow_loses_and_repeats_nothing(relay: RelayServer) -> None:
    """Replay and live overlap: a producer writes during the replay; the client sees each once."""
    await relay.bus.publish(started("race"))
    for i in range(300):
        await relay.bus.publish(final("race", f"pre {i}", utt=f"p{i}"))
    done = asyncio.Event()

    async def produce() -> None:
        for i in range(300):
            await relay.bus.publish(final("race", f"during {i}", utt=f"d{i}"))
        done.set()

    async with TaskSet("tests") as tasks:
        producer = tasks.spawn(produce(), "producer")  # writes while the client connects
        async with await relay.connect("race") as ws:
            await producer
            end = await relay.bus.publish(final("race", "end", utt="end"))
            frames = await recv_until(ws, lambda f: f.get("id") == end["id"])
    ids = [f["id"] for f in frames if f["type"] != "relay.live"]
    stored = [e.id for e in await relay.bus.read_call("race")]
    assert ids == stored  # same events, same order, no duplicates, no gaps


async def test_supervisor_sees_every_call_and_resumes_the_all_calls_feed(
    relay: RelayServer,
) -> None:
    await relay.bus.publish(started("a", agent="200"))
    await relay.bus.publish(started("b", agent="201"))
    await relay.bus.publish(partial("a", "parcial"))
    await relay.bus.publish(final("b", "hola"))
    token = relay.token("supervisor")
    async with await relay.connect("*", token) as ws:
        frames = await recv_until(ws, is_live)
        # History of active calls, partials left out (finals supersede them).
        assert [(f["callId"], f["type"]) for f in frames[:-1]] == [
            ("a", "call.started"),
            ("b", "call.started"),
            ("b", "final"),
        ]
        live = await relay.bus.publish(partial("a", "más"))
        assert (await recv_json(ws))["id"] == live["id"]
    missed = [await relay.bus.publish(final(c, "x", utt=c + "1")) for c in ("a", "b", "a")]
    async with await relay.connect("*", token, since=live["id"]) as ws:
        resumed = await recv_until(ws, is_live)
    assert [f["id"] for f in resumed[:-1]] == [e["id"] for e in missed]


async def test_agent_token_sees_only_its_own_calls(relay: RelayServer) -> None:
    await relay.bus.publish(started("mine", agent="200"))
    await relay.bus.publish(started("theirs", agent="201"))
    token = relay.token("agent", "200")
    async with await relay.connect("*", token) as ws:
        frames = await recv_until(ws, is_live)
        assert {f["callId"] for f in frames[:-1]} == {"mine"}
        await relay.bus.publish(final("theirs", "secreto"))
        await relay.bus.publish(started("new-mine", agent="200"))
        nxt = await recv_json(ws)
        assert (nxt["callId"], nxt["type"]) == ("new-mine", "call.started")
    async with await relay.connect("mine", token) as ws:
        assert (await recv_until(ws, is_live))[0]["callId"] == "mine"
    async with await relay.connect("theirs", token) as ws:
        assert await close_of(ws) == (4403, "this call belongs to another agent")
    async with await relay.connect("never-started", token) as ws:
        assert await close_of(ws) == (4404, "unknown call")


async def test_agent_filter_follows_who_answered(relay: RelayServer) -> None:
    # Dialled through a hunt (the dial target is "hunt"); agent 201 answered.
    await relay.bus.publish(started("q1", agent="hunt"))
    await relay.bus.publish(
        {"type": "call.answered", "callId": "q1", "agent": "201", "answeredAt": 1}
    )
    theirs, mine = relay.token("agent", "200"), relay.token("agent", "201")
    async with await relay.connect("*", mine) as ws:
        frames = await recv_until(ws, is_live)
        assert "q1" in {f["callId"] for f in frames[:-1]}
        live = await relay.bus.publish(final("q1", "hola"))
        assert (await recv_json(ws))["id"] == live["id"]
    async with await relay.connect("q1", mine) as ws:
        assert (await recv_until(ws, is_live))[0]["callId"] == "q1"
    async with await relay.connect("q1", theirs) as ws:
        assert await close_of(ws) == (4403, "this call belongs to another agent")
    # The active-calls index follows too (GET /calls, the all-calls replay).
    assert (await relay.bus.active_calls())["q1"]["agent"] == "201"


@pytest.mark.parametrize(
    ("query", "header", "code", "reason"),
    [
        ("callId=c1", False, 4401, "missing token"),  # connected, sent an empty auth message
        ("callId=c1", "garbage", 4401, "malformed token"),
        ("", True, 4400, "callId is required (a call id or *)"),
        ("callId=bad%20id", True, 4400, "callId is malformed"),
        ("callId=c1&since=yesterday", True, 4400, "since must be an event id like 1700000000000-0"),
        (
            "callId=c1&token=SERVICE",
            True,
            4401,
            'a token in the URL is refused: send {"type":"auth"} first',
        ),
    ],
)
async def test_refused_connections_get_a_close_code_and_reason(
    relay: RelayServer, query, header, code, reason
) -> None:
    import websockets

    from tests.relay.conftest import SERVICE_TOKEN

    url = f"ws://127.0.0.1:{relay.settings.port}/ws?" + query.replace("SERVICE", SERVICE_TOKEN)
    credential = SERVICE_TOKEN if header is True else header
    headers = {"Authorization": f"Bearer {credential}"} if credential else {}
    async with websockets.connect(url, additional_headers=headers) as ws:
        if not credential:
            await ws.send(json.dumps({"type": "auth", "token": ""}))
        assert await close_of(ws) == (code, reason)


@pytest.mark.parametrize(
    "first", ["hello", json.dumps({"type": "subscribe"}), json.dumps(["auth"]), b"\x00binary"]
)
async def test_the_first_message_must_be_auth(relay: RelayServer, first) -> None:
    import websockets

    async with websockets.connect(relay.ws_url("c1")) as ws:
        await ws.send(first)
        assert await close_of(ws) == (4401, 'the first message must be {"type":"auth"}')


async def test_a_silent_client_is_closed_after_the_auth_timeout(
    relay: RelayServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import websockets

    from relay import ws as relay_ws

    monkeypatch.setattr(relay_ws, "AUTH_TIMEOUT_S", 0.2)
    async with websockets.connect(relay.ws_url("c1")) as ws:
        assert await close_of(ws) == (4401, "no auth message within 0.2 s")


async def test_expired_and_forged_tokens_are_refused(relay: RelayServer) -> None:
    from relay.auth import make_token

    await relay.bus.publish(started("c1"))
    async with await relay.connect(
        "c1", relay.token("supervisor", ttl=60, now=time.time() - 120)
    ) as ws:
        assert await close_of(ws) == (4401, "token expired")
    forged = make_token("another-secret-" * 3, "supervisor")
    async with await relay.connect("c1", forged) as ws:
        assert await close_of(ws) == (4401, "bad token signature")


async def test_bearer_header_works_on_the_websocket(relay: RelayServer) -> None:
    import websockets

    await relay.bus.publish(started("c1"))
    url = f"ws://127.0.0.1:{relay.settings.port}/ws?callId=c1"
    headers = {"Authorization": f"Bearer {relay.token('supervisor')}"}
    async with websockets.connect(url, additional_headers=headers) as ws:
        assert (await recv_json(ws))["type"] == "call.started"


async def test_oversized_client_frame_closes_only_that_socket(relay: RelayServer) -> None:
    await relay.bus.publish(started("c1"))
    async with await relay.connect("c1") as other, await relay.connect("c1") as ws:
        await recv_until(ws, is_live)
        await recv_until(other, is_live)
        await ws.send("x" * (relay.settings.ws_max_message_bytes + 1))
        code, _ = await close_of(ws)
        assert code == 1009
        event = await relay.bus.publish(final("c1", "sigue"))
        assert (await recv_json(other))["id"] == event["id"]


class RawWebSocket:
    """A client that completes the handshake and then stops reading: a truly stalled browser.

    (Library clients keep draining the socket into memory, which hides the problem.)"""

    def __init__(self, port: int, path: str, token: str) -> None:
        import base64
        import os
        import socket

        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.connect(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                f"Authorization: Bearer {token}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self.sock.recv(1)
        assert self.buffer.startswith(b"HTTP/1.1 101")
        self.buffer = b""

    def read_all_frames(self) -> list[tuple[int, bytes]]:
        """Read until the server closes the TCP connection; every (opcode, payload)."""
        self.sock.settimeout(30)
        with self.sock:
            while chunk := self.sock.recv(1 << 20):
                self.buffer += chunk
        frames, data = [], self.buffer
        while len(data) >= 2:
            opcode, length, offset = data[0] & 0x0F, data[1] & 0x7F, 2
            if length == 126:
                length, offset = int.from_bytes(data[2:4], "big"), 4
            elif length == 127:
                length, offset = int.from_bytes(data[2:10], "big"), 10
            frames.append((opcode, data[offset : offset + length]))
            data = data[offset + length :]
        return frames


async def test_stalled_client_is_cut_off_without_delaying_others(redis_server, bus_config) -> None:
    """A client that stops reading: its partials are dropped, then it is closed with 4008 and a
    resume id; a healthy client on the same call gets everything meanwhile; resuming fills the gap."""
    from coach.events import parse_id
    from tests.relay.conftest import SERVICE_TOKEN, start_relay

    relay = await start_relay(redis_server.url, bus_config, client_buffer=50, ws_close_timeout=120)
    try:
        await relay.bus.publish(started("c1"))
        # The handshake blocks: run it off the loop that serves the relay.
        stalled = await asyncio.to_thread(
            RawWebSocket, relay.settings.port, "/ws?callId=c1", SERVICE_TOKEN
        )
        healthy = await relay.connect("c1")
        await recv_until(healthy, is_live)
        big = "palabra " * 900
        published: list[dict] = []
        for i in range(1000):
            batch = await relay.bus.publish_many(
                [partial("c1", big, utt=f"u{i}"), final("c1", big, utt=f"u{i}")]
            )
            published += batch
            # The healthy client keeps up in lockstep: the stalled one never holds it back.
            assert [(await recv_json(healthy))["id"] for _ in batch] == [e["id"] for e in batch]
        frames = await asyncio.to_thread(stalled.read_all_frames)
        opcode, payload = frames[-1]
        assert opcode == 8, "the last frame is a close frame"
        code, reason = int.from_bytes(payload[:2], "big"), payload[2:].decode()
        assert code == 4008 and "since=" in reason
        since = reason.split("since=")[1]
        received = [json.loads(line) for op, p in frames if op == 1 for line in p.split(b"\n")]
        assert received[-1]["id"] == since
        # Partials were shed before the cut; what arrived is in order, without duplicates.
        keys = [parse_id(f["id"]) for f in received if "id" in f]
        assert keys == sorted(set(keys))
        async with await relay.connect("c1", since=since) as resumed:
            rest = await recv_until(resumed, is_live, timeout=30)
        missing = [e["id"] for e in published if parse_id(e["id"]) > parse_id(since)]
        assert missing and [f["id"] for f in rest[:-1]] == missing
        await healthy.close()
    finally:
        await relay.stop()


async def test_agent_feed_gets_late_events_of_a_call_that_ended_before_the_relay_started(
    redis_server, bus_config
) -> None:
    """The summary arrives after call.ended; a relay started in between still routes it to
    the agent following `*` (it looks the call's agent up instead of dropping the event)."""
    from coach.bus import Bus
    from tests.relay.conftest import start_relay

    producer = Bus.connect(redis_server.url, bus_config)
    await producer.publish(started("done", agent="200"))
    await producer.publish(
        {"type": "call.ended", "callId": "done", "endedAt": 2, "reason": "caller-hangup"}
    )
    relay = await start_relay(redis_server.url, bus_config)
    try:
        async with await relay.connect("*", relay.token("agent", "200")) as ws:
            await recv_until(ws, is_live)
            summary = await producer.publish(
                {
                    "type": "summary",
                    "callId": "done",
                    "text": "ok",
                    "disposition": "resolved",
                    "actionItems": [],
                    "sentiment": "neutral",
                }
            )
            assert (await recv_json(ws))["id"] == summary["id"]
    finally:
        await relay.stop()
        await producer.close()
