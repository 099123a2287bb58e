"""ARI test double: real HTTP REST + events WebSocket on 127.0.0.1, real RTP over UDP.

Follows Asterisk's ARI (DESIGN.md "Asterisk facts"): REST paths under /ari, JSON shapes of
Channel/Bridge/Playback, status codes (404 unknown, 409 not in Stasis / exists, 422 bridging
a channel before its StasisStart), event order on hangup (ChannelHangupRequest,
ChannelLeftBridge, StasisEnd, ChannelDestroyed), snoop channels dying with their target,
ExternalMedia channels and bridges never going away on their own, StasisStart delivered
shortly after the creating request returned. RTP is slin16/slin big-endian, 20 ms packets.

Knobs: agent_behaviour (answer/no-answer/busy/unreachable/refuse), stasis_delay, rtp_speed,
rtp_reorder, rtp_loss_every, rtp_ssrc_change_at, drop_events(), accept_events.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from ari.audio import mix, resample
from ari.rtp import FORMATS, build, pcm16le_to_payload
from coach.tasks import TaskSet
from coach.web import EmbeddedServer
from fakes.poll import pace, until

CAUSES = {16: "Normal Clearing", 17: "User busy", 19: "No answer", 20: "Subscriber absent"}


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000+0000", time.gmtime())


@dataclass
class DChannel:
    id: str
    name: str
    state: str
    kind: str  # caller / agent / snoop / external
    caller: dict[str, str] = field(default_factory=lambda: {"name": "", "number": ""})
    app: str | None = None  # Stasis app while in Stasis
    app_args: list[str] = field(default_factory=list)
    stasis_started: bool = False
    bridge: str | None = None
    snoop_of: str | None = None
    external_host: tuple[str, int] | None = None
    fmt: str = "slin16"
    local_port: int = 0
    transport: asyncio.DatagramTransport | None = None
    audio: bytes = b""  # PCM16 LE 8 kHz this party says (callers, agents)
    partner: str | None = None  # the other half of a Local channel pair
    created: str = field(default_factory=_now)

    def json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "state": self.state,
            "protocol_id": "",
            "caller": dict(self.caller),
            "connected": {"name": "", "number": ""},
            "accountcode": "",
            "creationtime": self.created,
            "language": "es",
            "dialplan": {
                "context": "coach-inbound",
                "exten": "s",
                "priority": 3,
                "app_name": "Stasis" if self.app else "AppDial2",
                "app_data": ",".join([self.app, *self.app_args]) if self.app else "",
            },
        }
        if self.kind == "external":
            out["channelvars"] = {
                "UNICASTRTP_LOCAL_ADDRESS": "127.0.0.1",
                "UNICASTRTP_LOCAL_PORT": str(self.local_port),
            }
        return out


@dataclass
class DBridge:
    id: str
    name: str
    channels: list[str] = field(default_factory=list)
    created: str = field(default_factory=_now)

    def json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "technology": "simple_bridge",
            "bridge_type": "mixing",
            "bridge_class": "stasis",
            "creator": "Stasis",
            "name": self.name,
            "channels": list(self.channels),
            "creationtime": self.created,
            "video_mode": "none",
        }


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"message": message}, status_code=status)


class AriDouble:
    """Start with `await start()`; `url` is the http base (ARI_URL)."""

    def __init__(
        self, *, app: str = "coach_app", user: str = "coach", password: str = "secret"
    ) -> None:
        self.app_name = app
        self.user = user
        self.password = password
        self.channels: dict[str, DChannel] = {}
        self.bridges: dict[str, DBridge] = {}
        self.agent_audio: bytes = b""
        self.agent_behaviour = "answer"
        self.agent_answer_delay = 0.05
        self.no_answer_after: float | None = None  # default: the originate timeout
        self.stasis_delay = 0.02
        self.rtp_speed = 1.0
        self.rtp_reorder = False
        self.rtp_loss_every = 0
        self.rtp_ssrc_change_at: int | None = None
        self.accept_events = True
        self.fail_list = 0
        self.events_log: list[dict[str, Any]] = []
        self.requests: list[tuple[str, str, int]] = []
        self.stasis_started_at: dict[str, float] = {}
        self.rtp_sent: dict[str, int] = {}
        self.on_event: Any = None  # optional callback seeing every event (tests)
        self._event_cond = asyncio.Condition()
        self._clients: set[asyncio.Queue[dict[str, Any] | None]] = set()
        self._connected = asyncio.Event()
        # Its own registry: the double's task failures are not the service's metric.
        self._tasks = TaskSet("ari-double", registry=CollectorRegistry())
        self._server_tasks = TaskSet("ari-double-http", registry=CollectorRegistry())
        self._stopping = False
        # ExternalMedia channel id -> [packets (or None = lost), next index, channel]. One
        # clock task sends the next packet of every stream each 20 ms: 200 streams cost one
        # wake-up per tick instead of 200 (keeps the double from being the bench bottleneck).
        self._streams: dict[str, list[Any]] = {}
        self._clock: asyncio.Task[None] | None = None
        self._payload_cache: dict[tuple[int, int, str], list[bytes]] = {}
        self._ids = itertools.count(1)
        self._server: EmbeddedServer | None = None
        self._serve_task: asyncio.Task[None] | None = None
        self.port = 0

    # -- lifecycle ----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> AriDouble:
        p = "/ari"
        routes = [
            Route(p + "/channels", self._list_channels, methods=["GET"]),
            Route(p + "/channels", self._originate, methods=["POST"]),
            Route(p + "/channels/externalMedia", self._external_media, methods=["POST"]),
            Route(p + "/channels/{cid}", self._get_channel, methods=["GET"]),
            Route(p + "/channels/{cid}", self._delete_channel, methods=["DELETE"]),
            Route(p + "/channels/{cid}/answer", self._answer, methods=["POST"]),
            Route(p + "/channels/{cid}/ring", self._ring, methods=["POST", "DELETE"]),
            Route(p + "/channels/{cid}/continue", self._continue, methods=["POST"]),
            Route(p + "/channels/{cid}/play", self._play, methods=["POST"]),
            Route(p + "/channels/{cid}/snoop", self._snoop, methods=["POST"]),
            Route(p + "/bridges", self._list_bridges, methods=["GET"]),
            Route(p + "/bridges", self._create_bridge, methods=["POST"]),
            Route(p + "/bridges/{bid}", self._delete_bridge, methods=["DELETE"]),
            Route(p + "/bridges/{bid}/addChannel", self._add_channel, methods=["POST"]),
            Route(p + "/bridges/{bid}/removeChannel", self._remove_channel, methods=["POST"]),
            WebSocketRoute(p + "/events", self._events_ws),
        ]
        config = uvicorn.Config(
            Starlette(routes=routes),
            host="127.0.0.1",
            port=0,
            log_config=None,
            lifespan="off",
            ws="websockets-sansio",
            access_log=False,
        )
        self._server = EmbeddedServer(config)
        server = self._server
        self._serve_task = self._server_tasks.spawn(server.serve(), "http")
        serve_task = self._serve_task
        await until(lambda: server.started or serve_task.done(), what="ARI double listening")
        if serve_task.done():
            serve_task.result()
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        for q in list(self._clients):
            q.put_nowait(None)
        self._streams.clear()
        self._stopping = True
        await self._tasks.close()
        for ch in self.channels.values():
            if ch.transport is not None:
                ch.transport.close()
        if self._server is not None:
            self._server.should_exit = True
        if self._serve_task is not None:
            await self._serve_task

    async def wait_connected(self, wait: float = 10.0) -> None:
        """Until an events WebSocket of the app is connected."""
        await asyncio.wait_for(self._connected.wait(), wait)

    # -- test controls -----------------------------------------------------------------------

    async def incoming_call(
        self, number: str, name: str, audio: bytes, agent_audio: bytes, *app_args: str
    ) -> str:
        """A call reaches Stasis(coach_app,role=caller[,app_args]); returns the caller channel id.

        Raises RuntimeError (STASISSTATUS=FAILED) when no events WebSocket is connected.
        """
        if not self._clients:
            raise RuntimeError("STASISSTATUS=FAILED: application not registered")
        cid = f"{int(time.time())}.{next(self._ids)}"
        ch = DChannel(
            cid,
            f"PJSIP/trunk-{next(self._ids):08x}",
            "Ring",
            "caller",
            caller={"name": name, "number": number},
            audio=audio,
        )
        self.channels[cid] = ch
        self.agent_audio = agent_audio
        self._emit("ChannelCreated", channel=ch.json())
        self._enter_stasis(ch, ["role=caller", *app_args])
        return cid

    async def hangup(self, cid: str) -> None:
        """The party on `cid` hangs up (remote side)."""
        ch = self.channels.get(cid)
        if ch is not None:
            self._emit("ChannelHangupRequest", channel=ch.json(), cause=16)
            self._destroy(ch, 16)

    async def drop_events(self) -> None:
        """Close every events WebSocket (Asterisk restart / network blip)."""
        self._connected.clear()
        for q in list(self._clients):
            q.put_nowait(None)

    def leftovers(self) -> tuple[list[str], list[str]]:
        """Channel and bridge ids still present."""
        return sorted(self.channels), sorted(self.bridges)

    # -- events --------------------------------------------------------------------------------

    def _emit(self, kind: str, **body: Any) -> None:
        event = {
            "type": kind,
            "timestamp": _now(),
            "application": self.app_name,
            "asterisk_id": "00:00:00:00:00:01",
            **body,
        }
        self.events_log.append(event)
        if self.on_event is not None:
            self.on_event(event)
        for q in self._clients:
            q.put_nowait(event)
        self._spawn(self._notify())

    async def _notify(self) -> None:
        async with self._event_cond:
            self._event_cond.notify_all()

    async def wait_event(self, kind: str, channel_id: str, wait: float = 5.0) -> dict[str, Any]:
        """Until an event of `kind` about `channel_id` has been emitted."""

        def find() -> dict[str, Any] | None:
            return next(
                (
                    e
                    for e in self.events_log
                    if e["type"] == kind and (e.get("channel") or {}).get("id") == channel_id
                ),
                None,
            )

        async with asyncio.timeout(wait), self._event_cond:
            await self._event_cond.wait_for(lambda: find() is not None)
        found = find()
        assert found is not None
        return found

    def _enter_stasis(self, ch: DChannel, args: list[str], delay: float = 0.0) -> None:
        ch.app = self.app_name
        ch.app_args = args

        async def later() -> None:
            await asyncio.sleep(delay)
            if ch.id in self.channels and ch.app:
                self.stasis_started_at.setdefault(ch.id, time.monotonic())
                ch.stasis_started = True
                self._emit("StasisStart", args=args, channel=ch.json())

        if delay:
            self._spawn(later())
        else:
            self.stasis_started_at.setdefault(ch.id, time.monotonic())
            ch.stasis_started = True
            self._emit("StasisStart", args=args, channel=ch.json())

    def _spawn(self, coro: Any, kind: str = "double") -> asyncio.Task[Any] | None:
        if self._stopping:  # an event after stop(): nobody listens any more
            coro.close()
            return None
        return self._tasks.spawn(coro, kind)

    def _started(self, ch: DChannel) -> bool:
        return ch.app is not None and ch.stasis_started

    def _destroy(self, ch: DChannel, cause: int) -> None:
        if ch.id not in self.channels:
            return
        if ch.bridge:
            self._leave_bridge(ch)
        del self.channels[ch.id]
        if ch.app and self._started(ch):
            self._emit("StasisEnd", channel=ch.json())
        ch.state = "Down"
        self._emit(
            "ChannelDestroyed",
            channel=ch.json(),
            cause=cause,
            cause_txt=CAUSES.get(cause, "Unknown"),
        )
        if ch.transport is not None:
            ch.transport.close()
        self._stop_stream(ch.id)
        if ch.partner and ch.partner in self.channels:
            self._destroy(self.channels[ch.partner], cause)
        # A snoop channel hangs up when the channel it spies on goes away.
        for other in list(self.channels.values()):
            if other.snoop_of == ch.id:
                self._destroy(other, 16)

    def _leave_bridge(self, ch: DChannel) -> None:
        bridge = self.bridges.get(ch.bridge or "")
        ch.bridge = None
        if bridge is not None and ch.id in bridge.channels:
            bridge.channels.remove(ch.id)
            self._emit("ChannelLeftBridge", channel=ch.json(), bridge=bridge.json())
            self._media_check(bridge)

    async def _events_ws(self, ws: WebSocket) -> None:
        if (
            ws.query_params.get("app") != self.app_name
            or not self._authorized(ws.headers.get("authorization"), ws.query_params.get("api_key"))
            or not self.accept_events
        ):
            await ws.close(code=1008)
            return
        await ws.accept()
        q: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._clients.add(q)
        self._connected.set()
        try:
            while True:
                event = await q.get()
                if event is None:
                    await ws.close(code=1011)
                    return
                await ws.send_json(event)
        except (WebSocketDisconnect, RuntimeError, OSError):
            return
        finally:
            self._clients.discard(q)
            if not self._clients:
                self._connected.clear()

    def _authorized(self, header: str | None, api_key: str | None) -> bool:
        expected = f"{self.user}:{self.password}"
        if api_key is not None:
            return api_key == expected
        if not header or not header.startswith("Basic "):
            return False
        try:
            return base64.b64decode(header[6:]).decode() == expected
        except ValueError:
            return False

    # -- REST ----------------------------------------------------------------------------------

    def _check(self, request: Request) -> JSONResponse | None:
        if not self._authorized(
            request.headers.get("authorization"), request.query_params.get("api_key")
        ):
            return _error(401, "Authentication required")
        return None

    def _log(self, request: Request, status: int) -> None:
        self.requests.append((request.method, request.url.path, status))

    async def _respond(self, request: Request, fn: Callable[[], Response]) -> Response:
        denied = self._check(request)
        resp = denied if denied is not None else fn()
        self._log(request, resp.status_code)
        return resp

    def _channel(self, request: Request) -> DChannel | None:
        return self.channels.get(request.path_params["cid"])

    async def _on_channel(
        self,
        request: Request,
        fn: Callable[[DChannel], Response],
        *,
        in_stasis: bool,
    ) -> Response:
        """Respond as Asterisk does for a channel route: 404 for an unknown channel, 409 for
        one not in a Stasis application (when the route needs it), else `fn(channel)`."""

        def do() -> Response:
            ch = self._channel(request)
            if ch is None:
                return _error(404, "Channel not found")
            if in_stasis and not self._started(ch):
                return _error(409, "Channel not in Stasis application")
            return fn(ch)

        return await self._respond(request, do)

    async def _list_channels(self, request: Request) -> Response:
        def do() -> Response:
            if self.fail_list > 0:  # knob: Asterisk answering 503 while it starts up
                self.fail_list -= 1
                return _error(503, "Service Unavailable")
            return JSONResponse([c.json() for c in self.channels.values()])

        return await self._respond(request, do)

    async def _list_bridges(self, request: Request) -> Response:
        return await self._respond(
            request, lambda: JSONResponse([b.json() for b in self.bridges.values()])
        )

    async def _answer(self, request: Request) -> Response:
        def do(ch: DChannel) -> Response:
            if ch.state != "Up":
                ch.state = "Up"
                self._emit("ChannelStateChange", channel=ch.json())
            return Response(status_code=204)

        return await self._on_channel(request, do, in_stasis=True)

    async def _ring(self, request: Request) -> Response:
        def do(ch: DChannel) -> Response:
            return Response(status_code=204)

        return await self._on_channel(request, do, in_stasis=True)

    async def _get_channel(self, request: Request) -> Response:
        def do(ch: DChannel) -> Response:
            return JSONResponse(ch.json())

        return await self._on_channel(request, do, in_stasis=False)

    async def _delete_channel(self, request: Request) -> Response:
        def do(ch: DChannel) -> Response:
            self._destroy(ch, 16)
            return Response(status_code=204)

        return await self._on_channel(request, do, in_stasis=False)

    async def _continue(self, request: Request) -> Response:
        def do(ch: DChannel) -> Response:
            if ch.bridge:
                self._leave_bridge(ch)
            self._emit("StasisEnd", channel=ch.json())
            ch.app = None
            ch.app_args = []
            ch.stasis_started = False
            return Response(status_code=204)

        return await self._on_channel(request, do, in_stasis=True)

    async def _play(self, request: Request) -> Response:
        def do(ch: DChannel) -> Response:
            media = request.query_params.get("media")
            if not media:
                return _error(400, "media is required")
            pid = request.query_params.get("playbackId") or f"pb-{next(self._ids)}"
            pb = {
                "id": pid,
                "media_uri": media,
                "target_uri": f"channel:{ch.id}",
                "language": "es",
                "state": "queued",
            }

            async def run() -> None:
                await asyncio.sleep(0.01)
                self._emit("PlaybackStarted", playback={**pb, "state": "playing"})
                await asyncio.sleep(0.1)
                self._emit("PlaybackFinished", playback={**pb, "state": "done"})

            self._spawn(run())
            return JSONResponse(pb, status_code=201)

        return await self._on_channel(request, do, in_stasis=True)

    async def _originate(self, request: Request) -> Response:
        q = request.query_params

        def do() -> Response:
            endpoint, app = q.get("endpoint"), q.get("app")
            if not endpoint or not app:
                return _error(400, "endpoint and app are required")
            if self.agent_behaviour == "refuse":
                return _error(400, "Endpoint not found")
            if self.agent_behaviour == "unreachable":
                # As a real Asterisk 22 answers for a PJSIP endpoint with no registered contact
                # (an earlier double let the channel ring and die with cause 20 instead).
                return _error(500, "Allocation failed")
            cid = q.get("channelId") or f"{int(time.time())}.{next(self._ids)}"
            if cid in self.channels:
                return _error(409, "Channel with given unique ID already exists")
            name = f"{endpoint}-{next(self._ids):08x}"
            local = endpoint.startswith("Local/")
            ch = DChannel(
                cid,
                name + (";1" if local else ""),
                "Down",
                "agent",
                caller={"name": "", "number": endpoint.rsplit("/", 1)[-1]},
                audio=self.agent_audio,
            )
            self.channels[cid] = ch
            if local:
                # As on a real Asterisk 22: originating a Local channel with channelId=X also
                # creates its ;2 half, id "X;2" (or otherChannelId), running the dialplan, not
                # in Stasis; hanging up either half hangs up both.
                other = q.get("otherChannelId") or f"{cid};2"
                self.channels[other] = DChannel(other, name + ";2", "Down", "local2", partner=cid)
                ch.partner = other
            args = (q.get("appArgs") or "").split(",") if q.get("appArgs") else []
            timeout = float(q.get("timeout", "30"))
            self._spawn(self._ring_agent(ch, args, timeout))
            return JSONResponse(ch.json())

        return await self._respond(request, do)

    async def _ring_agent(self, ch: DChannel, args: list[str], ring_for: float) -> None:
        await asyncio.sleep(0.01)
        if ch.id not in self.channels:
            return
        ch.state = "Ringing"
        self._emit("ChannelStateChange", channel=ch.json())
        behaviour = self.agent_behaviour
        if behaviour == "answer":
            await asyncio.sleep(self.agent_answer_delay)
            if ch.id in self.channels:
                ch.state = "Up"
                self._emit("ChannelStateChange", channel=ch.json())
                self._enter_stasis(ch, args)
            return
        wait = {"busy": 0.05, "unreachable": 0.02}.get(
            behaviour, self.no_answer_after if self.no_answer_after is not None else ring_for
        )
        await asyncio.sleep(wait)
        cause = {"busy": 17, "unreachable": 20}.get(behaviour, 19)
        if ch.id in self.channels:
            self._destroy(ch, cause)

    async def _snoop(self, request: Request) -> Response:
        q = request.query_params

        def do() -> Response:
            target = self._channel(request)
            if target is None:
                return _error(404, "Channel not found")
            if not q.get("app"):
                return _error(400, "app is required")
            if q.get("spy", "none") not in ("none", "in", "out", "both"):
                return _error(400, "Invalid spy direction")
            sid = q.get("snoopId") or f"{int(time.time())}.{next(self._ids)}"
            if sid in self.channels:
                return _error(409, "Channel with given unique ID already exists")
            ch = DChannel(
                sid, f"Snoop/{target.id}-{next(self._ids):08x}", "Up", "snoop", snoop_of=target.id
            )
            self.channels[sid] = ch
            args = (q.get("appArgs") or "").split(",") if q.get("appArgs") else []
            ch.fmt = q.get("spy", "none")  # remembered: which direction it hears
            self._enter_stasis(ch, args, delay=self.stasis_delay)
            return JSONResponse(ch.json())

        return await self._respond(request, do)

    async def _external_media(self, request: Request) -> Response:
        q = request.query_params
        denied = self._check(request)
        if denied is not None:
            return denied
        host, fmt, app = q.get("external_host"), q.get("format"), q.get("app")
        if not host or not fmt or not app:
            resp = _error(400, "app, external_host and format are required")
        elif fmt not in FORMATS or FORMATS[fmt].sample_bytes != 2:
            resp = _error(400, f"format {fmt} not supported by the double")
        elif q.get("channelId") in self.channels:
            resp = _error(409, "Channel with given unique ID already exists")
        else:
            addr, _, port = host.rpartition(":")
            cid = q.get("channelId") or f"{int(time.time())}.{next(self._ids)}"
            loop = asyncio.get_running_loop()
            transport, _ = await loop.create_datagram_endpoint(
                asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0)
            )
            ch = DChannel(
                cid,
                f"UnicastRTP/{host}-0x{next(self._ids):x}",
                "Up",
                "external",
                external_host=(addr, int(port)),
                fmt=fmt,
                transport=transport,
                local_port=transport.get_extra_info("sockname")[1],
            )
            self.channels[cid] = ch
            data = q.get("data")
            self._enter_stasis(ch, [data] if data else [], delay=self.stasis_delay)
            resp = JSONResponse(ch.json())
        self._log(request, resp.status_code)
        return resp

    async def _create_bridge(self, request: Request) -> Response:
        q = request.query_params

        def do() -> Response:
            bid = q.get("bridgeId") or f"bridge-{next(self._ids)}"
            if bid in self.bridges:
                return _error(409, "Bridge with given id already exists")
            bridge = DBridge(bid, q.get("name") or "")
            self.bridges[bid] = bridge
            self._emit("BridgeCreated", bridge=bridge.json())
            return JSONResponse(bridge.json())

        return await self._respond(request, do)

    async def _delete_bridge(self, request: Request) -> Response:
        def do() -> Response:
            bridge = self.bridges.get(request.path_params["bid"])
            if bridge is None:
                return _error(404, "Bridge not found")
            for cid in list(bridge.channels):
                ch = self.channels.get(cid)
                if ch is not None:
                    self._leave_bridge(ch)
            del self.bridges[bridge.id]
            self._emit("BridgeDestroyed", bridge=bridge.json())
            return Response(status_code=204)

        return await self._respond(request, do)

    async def _add_channel(self, request: Request) -> Response:
        def do() -> Response:
            bridge = self.bridges.get(request.path_params["bid"])
            if bridge is None:
                return _error(404, "Bridge not found")
            cid = request.query_params.get("channel")
            if not cid:
                return _error(400, "channel is required")
            ch = self.channels.get(cid)
            if ch is None:
                return _error(400, "Channel not found")
            if not self._started(ch):
                return _error(422, "Channel not in Stasis application")
            if ch.bridge == bridge.id:
                return Response(status_code=204)
            if ch.bridge:
                self._leave_bridge(ch)
            ch.bridge = bridge.id
            bridge.channels.append(cid)
            self._emit("ChannelEnteredBridge", channel=ch.json(), bridge=bridge.json())
            self._media_check(bridge)
            return Response(status_code=204)

        return await self._respond(request, do)

    async def _remove_channel(self, request: Request) -> Response:
        def do() -> Response:
            bridge = self.bridges.get(request.path_params["bid"])
            if bridge is None:
                return _error(404, "Bridge not found")
            ch = self.channels.get(request.query_params.get("channel") or "")
            if ch is None:
                return _error(400, "Channel not found")
            if ch.bridge != bridge.id:
                return _error(422, "Channel not in this bridge")
            self._leave_bridge(ch)
            return Response(status_code=204)

        return await self._respond(request, do)

    # -- media ---------------------------------------------------------------------------------

    def _media_check(self, bridge: DBridge) -> None:
        """Start/stop RTP of each ExternalMedia channel according to what its bridge hears."""
        members = [self.channels[c] for c in bridge.channels if c in self.channels]
        for ext in (m for m in members if m.kind == "external"):
            sources = self._sources(ext, members)
            running = ext.id in self._streams
            if sources and not running:
                self._streams[ext.id] = [self._packets(ext, sources), 0, ext]
                if self._clock is None or self._clock.done():
                    self._clock = self._spawn(self._rtp_clock(), "rtp-clock")
            elif not sources and running:
                self._stop_stream(ext.id)

    def _sources(self, ext: DChannel, members: list[DChannel]) -> bytes:
        audio = b""
        for m in members:
            if m is ext:
                continue
            if m.kind == "snoop" and m.fmt == "in":
                target = self.channels.get(m.snoop_of or "")
                if target is not None:
                    audio = mix(audio, target.audio) if audio else target.audio
            elif m.kind in ("caller", "agent"):
                audio = mix(audio, m.audio) if audio else m.audio
        return audio

    def _stop_stream(self, ext_id: str) -> None:
        stream = self._streams.pop(ext_id, None)
        if stream is not None:
            self.rtp_sent[ext_id] = sum(1 for p in stream[0][: stream[1]] if p is not None)

    def _payloads(self, pcm8k: bytes, fmt_name: str) -> list[bytes]:
        # Cached: resampling in pure Python is slow and the bench reuses the same prompts.
        key = (hash(pcm8k), len(pcm8k), fmt_name)
        cached = self._payload_cache.get(key)
        if cached is None:
            fmt = FORMATS[fmt_name]
            pcm = resample(pcm8k, 8000, fmt.rate)
            size = fmt.frame_bytes(20)
            pcm += bytes(-len(pcm) % size)
            cached = [pcm16le_to_payload(pcm[i : i + size], fmt) for i in range(0, len(pcm), size)]
            self._payload_cache[key] = cached
        return cached

    def _packets(self, ext: DChannel, pcm8k: bytes) -> list[bytes | None]:
        fmt = FORMATS[ext.fmt]
        size = fmt.frame_bytes(20)
        frames = self._payloads(pcm8k, ext.fmt)
        ssrc, seq, ts = random.getrandbits(32), random.getrandbits(16), random.getrandbits(32)
        packets: list[bytes | None] = []
        for i, frame in enumerate(frames):
            if self.rtp_ssrc_change_at is not None and i == self.rtp_ssrc_change_at:
                ssrc, seq = random.getrandbits(32), random.getrandbits(16)
            if self.rtp_loss_every and i % self.rtp_loss_every == self.rtp_loss_every - 1:
                packets.append(None)  # lost in the network: its slot passes silently
                continue
            packets.append(
                build(
                    frame,
                    payload_type=fmt.payload_type,
                    sequence=seq + i,
                    timestamp=ts + i * size // 2,
                    ssrc=ssrc,
                    marker=i == 0,
                )
            )
        if self.rtp_reorder:
            # Swap neighbours (…, 3, 2, 5, 4, …): each pair arrives out of order.
            for k in range(2, len(packets) - 1, 4):
                packets[k], packets[k + 1] = packets[k + 1], packets[k]
        return packets

    async def _rtp_clock(self) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        tick = 0
        while self._streams:
            for ext_id, stream in list(self._streams.items()):
                packets, index, ext = stream
                if index >= len(packets):
                    self._stop_stream(ext_id)
                    continue
                stream[1] = index + 1
                packet = packets[index]
                if packet is None:
                    continue
                if ext.transport is None or ext.transport.is_closing() or not ext.external_host:
                    self._stop_stream(ext_id)
                    continue
                ext.transport.sendto(packet, ext.external_host)
            tick += 1
            delay = start + tick * 0.02 / self.rtp_speed - loop.time()
            await pace(max(0.0, delay))  # real-time RTP, sped up by rtp_speed
