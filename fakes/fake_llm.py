"""A fake OpenAI-compatible chat completions server (real HTTP, real SSE) with fault knobs.

It streams like OpenRouter: `: OPENROUTER PROCESSING` keep-alive comments, then the reply a
token at a time (a word and the space after it) as `data: {...}` chunks carrying
`choices[0].delta.content`, a `finish_reason: "stop"` chunk, a usage chunk (with `cost`) and
`data: [DONE]`; after a 200 a failure arrives as a chunk with `error` and
`finish_reason: "error"`. `token_delay_s` paces the tokens (a fault's own delay wins: `slow`).
`cut` drops the connection mid-reply (no terminating chunk, no [DONE]), as a proxy or a dying
provider does. Faults are queued (`push`) or tied to a marker string found in the request
(`on`), so one test call can misbehave while the others do not.

A knowledge-answer request (schema `kb_answer`) is answered by default from its own passages:
the first sentence of the first passage, citing that passage's id.
Runs uvicorn in its own thread and event loop, so a hanging reply never blocks the client's loop.

What tests wait on instead of sleeping: `hanging` (requests held by a `hang` fault right now),
`aborted` (hung requests whose client went away: the cancellation reached the socket), `active`
and `max_active` (streams in progress), and `hold` (an event that keeps every stream at its
first keep-alive until set, so a test can see how many run side by side).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import re
import signal
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from coach.redis_server import free_port
from coach.tasks import first_completed

API_KEY = "test-key"
FAULTS = (
    "ok", "429", "402", "401", "500", "503", "hang", "hang_stream", "error_chunk",
    "invalid_json", "bad_content", "plain", "reject_schema", "no_stream", "402_budget",
    "reject_schema_500", "cut", "slow",
)  # fmt: skip
SLOW_TOKEN_S = 0.15
"""Pause between tokens of a `slow` reply (unless the fault says otherwise)."""
TOKEN = re.compile(r"\S+\s*|\s+")
"""What one streamed chunk carries: a word and the whitespace after it."""


class StreamCut(Exception):
    """Raised inside a streaming reply so the server drops the connection mid-body."""


@dataclass
class Fault:
    """What to do with one request."""

    kind: str = "ok"
    retry_after: str | None = None
    content: str | None = None
    token_delay_s: float | None = None
    """Pause between tokens (`slow`); None = the server's `token_delay_s`."""
    cut_after: int = 3
    """Tokens sent before a `cut` drops the connection."""


@dataclass
class Seen:
    """A request the server received."""

    body: dict[str, Any]
    at: float
    text: str


def kb_answer(body: dict[str, Any]) -> str | None:
    """A knowledge answer from the request's own passages (first sentence, cited), or None
    when the request carries no passages."""
    user = "\n".join(str(m.get("content", "")) for m in body.get("messages", []))
    for line in user.splitlines():
        try:
            passage = json.loads(line)
        except ValueError:
            continue
        if isinstance(passage, dict) and passage.get("id") and passage.get("text"):
            sentence = re.split(r"(?<=[.!?])\s", str(passage["text"]).strip(), maxsplit=1)[0]
            return json.dumps(
                {"answer": sentence, "cites": [str(passage["id"])]}, ensure_ascii=False
            )
    return None


def default_reply(body: dict[str, Any]) -> str:
    """JSON per the schema the client asked for (tip, summary or knowledge answer)."""
    fmt = body.get("response_format") or {}
    name = (fmt.get("json_schema") or {}).get("name", "")
    text = json.dumps(body.get("messages", []), ensure_ascii=False)
    if name == "kb_answer" or "<<<PASSAGES" in text:
        answer = kb_answer(body)
        if answer is not None:
            return answer
    if name == "call_summary" or "Resume esta llamada" in text or "Summarise this" in text:
        return json.dumps(
            {
                "summary": "El cliente llamó por una factura; el agente lo resolvió.",
                "disposition": "resolved",
                "actionItems": ["Enviar factura corregida"],
                "sentiment": "neutral",
            }
        )
    return json.dumps(
        {
            "kind": "tip",
            "severity": "info",
            "text": "Confirma el problema con el cliente y propone una solución.",
        }
    )


@dataclass
class FakeLLM:
    """The fake server. `latency_s` is spread over keep-alive comments before the first token."""

    latency_s: float = 0.0
    keepalives: int = 2
    token_delay_s: float = 0.0
    """Pause between two streamed tokens (a `slow` fault's own pause wins)."""
    reply: Callable[[dict[str, Any]], str] = default_reply
    model: str = "fake/model-1"
    requests: list[Seen] = field(default_factory=list)
    queue: deque[Fault] = field(default_factory=deque)
    markers: dict[str, deque[Fault]] = field(default_factory=dict)
    active: int = 0
    max_active: int = 0
    hanging: int = 0
    """Requests held by a `hang` fault right now."""
    aborted: int = 0
    """Hung requests whose client disconnected (cancelled, or timed out) before the release."""
    hold: threading.Event | None = None
    """If set to an unset event, streams send keep-alives after their first one until it is set."""
    port: int = field(default_factory=free_port)

    def __post_init__(self) -> None:
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._tokens = 0
        self.release = threading.Event()  # set to end all hangs

    async def _until(self, event: threading.Event) -> str:
        """Wait (on the server's loop, no thread held) until `event` is set."""
        while not event.is_set():  # noqa: ASYNC110 - a threading.Event, set by other threads
            await asyncio.sleep(0.01)
        return "released"

    @staticmethod
    async def _disconnected(request: Request) -> str:
        """Return once the client has gone away (the body is already read)."""
        while (await request.receive())["type"] != "http.disconnect":
            pass
        return "gone"

    async def _hang(self, request: Request) -> Response:
        with self._lock:
            self.hanging += 1
        try:
            done = await first_completed(self._until(self.release), self._disconnected(request))
        finally:
            with self._lock:
                self.hanging -= 1
        if any(not f.cancelled() and f.result() == "gone" for f in done):
            with self._lock:
                self.aborted += 1
            return Response(status_code=499)
        return JSONResponse({"error": "released"}, status_code=500)

    @property
    def url(self) -> str:
        """Base URL for LLM_BASE_URL."""
        return f"http://127.0.0.1:{self.port}/v1"

    def push(
        self, *kinds: str, retry_after: str | None = None, content: str | None = None,
        token_delay_s: float | None = None, cut_after: int = 3,
    ) -> None:  # fmt: skip
        """Queue faults for the next requests (in order)."""
        for kind in kinds:
            assert kind in FAULTS, kind
            self.queue.append(Fault(kind, retry_after, content, token_delay_s, cut_after))

    def on(
        self, marker: str, *kinds: str, retry_after: str | None = None,
        content: str | None = None, token_delay_s: float | None = None, cut_after: int = 3,
    ) -> None:  # fmt: skip
        """Faults for requests whose messages contain `marker` (the last one repeats)."""
        for kind in kinds:
            assert kind in FAULTS, kind
        self.markers[marker] = deque(
            Fault(k, retry_after, content, token_delay_s, cut_after) for k in kinds
        )

    def seen(self, marker: str | None = None) -> list[Seen]:
        """Requests received (optionally only those containing `marker`)."""
        with self._lock:
            return [r for r in self.requests if marker is None or marker in r.text]

    def _fault(self, text: str) -> Fault:
        for marker, faults in self.markers.items():
            if marker in text:
                return faults.popleft() if len(faults) > 1 else faults[0]
        return self.queue.popleft() if self.queue else Fault()

    async def _chat(self, request: Request) -> Response:
        if request.headers.get("authorization") != f"Bearer {API_KEY}":
            return JSONResponse(
                {"error": {"code": 401, "message": "No auth credentials found"}}, status_code=401
            )
        try:
            body = await request.json()
        except ClientDisconnect:
            return Response(status_code=499)  # the client gave up (deadline) mid-upload
        text = json.dumps(body.get("messages", []), ensure_ascii=False)
        with self._lock:
            self.requests.append(Seen(body, time.monotonic(), text))
            fault = self._fault(text)
        kind = fault.kind
        if kind in ("429", "503"):
            headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
            return JSONResponse(
                {"error": {"code": int(kind), "message": "Rate limited"}},
                status_code=int(kind),
                headers=headers,
            )
        if kind == "402":
            return JSONResponse(
                {"error": {"code": 402, "message": "Insufficient credits"}}, status_code=402
            )
        if kind == "402_budget":
            msg = (
                "This request requires more credits, or fewer max_tokens. You requested up "
                f"to {body.get('max_tokens')} tokens, but can only afford 100."
            )
            return JSONResponse({"error": {"code": 402, "message": msg}}, status_code=402)
        if kind == "401":
            return JSONResponse(
                {"error": {"code": 401, "message": "User not found."}}, status_code=401
            )
        if kind == "500":
            return JSONResponse(
                {"error": {"code": 500, "message": "Internal error"}}, status_code=500
            )
        if kind == "reject_schema" and (body.get("response_format") or {}).get("type") == (
            "json_schema"
        ):
            return JSONResponse(
                {"error": {"message": "response_format json_schema is not supported"}},
                status_code=400,
            )
        if kind == "reject_schema_500" and (body.get("response_format") or {}).get("type") == (
            "json_schema"
        ):
            # Exactly what llama-cpp-python's server answers (checked against a real one).
            return JSONResponse(
                {
                    "error": {
                        "message": "1 validation error:\n  {'type': 'literal_error', 'loc': "
                        "('body', 'response_format', 'type'), 'msg': \"Input should be "
                        "'text' or 'json_object'\", 'input': 'json_schema'}",
                        "type": "internal_server_error",
                        "param": None,
                        "code": None,
                    }
                },
                status_code=500,
            )
        if kind == "hang":
            return await self._hang(request)
        content = fault.content if fault.content is not None else self.reply(body)
        if kind == "bad_content":
            content = content[: len(content) // 2]  # truncated JSON: invalid
        if kind == "plain":
            content = "Pregunta al cliente si quiere que le llamen más tarde."
        if kind == "no_stream":
            await asyncio.sleep(self.latency_s)
            return JSONResponse(
                {
                    "id": "gen-1",
                    "model": self.model,
                    "choices": [
                        {
                            "message": {"role": "assistant", "content": content},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {"prompt_tokens": 50, "completion_tokens": 10, "cost": 0.0001},
                }
            )
        return StreamingResponse(self._stream(body, content, fault), media_type="text/event-stream")

    async def _stream(self, body: dict[str, Any], content: str, fault: Fault) -> AsyncIterator[str]:
        kind = fault.kind
        delay = self.token_delay_s if fault.token_delay_s is None else fault.token_delay_s
        if kind == "slow" and fault.token_delay_s is None:
            delay = max(delay, SLOW_TOKEN_S)
        with self._lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        try:
            n = max(1, self.keepalives)
            for i in range(n):
                yield ": OPENROUTER PROCESSING\n\n"
                while i == 0 and self.hold is not None and not self.hold.is_set():
                    await asyncio.sleep(0.05)  # held: keep-alives, as OpenRouter sends them
                    yield ": OPENROUTER PROCESSING\n\n"
                await asyncio.sleep(self.latency_s / n)
            if kind == "hang_stream":
                await self._until(self.release)
                return
            model = body.get("model") or self.model
            pieces = TOKEN.findall(content) or [content]
            for i, piece in enumerate(pieces):
                if kind == "cut" and i >= fault.cut_after:
                    raise StreamCut  # uvicorn drops the connection: no last chunk, no [DONE]
                if i and delay:
                    await asyncio.sleep(delay)
                chunk = {
                    "id": "gen-1",
                    "model": model,
                    "object": "chat.completion.chunk",
                    "choices": [
                        {
                            "index": 0,
                            "delta": {"role": "assistant", "content": piece},
                            "finish_reason": None,
                        }
                    ],
                }
                yield f"data: {json.dumps(chunk)}\n\n"
                with self._lock:
                    self._tokens += 1
                if i == 0 and kind == "error_chunk":
                    err = {
                        "id": "gen-1",
                        "model": model,
                        "object": "chat.completion.chunk",
                        "error": {"code": 502, "message": "Provider disconnected"},
                        "choices": [
                            {"index": 0, "delta": {"content": ""}, "finish_reason": "error"}
                        ],
                    }
                    yield f"data: {json.dumps(err)}\n\n"
                    return
                if i == 0 and kind == "invalid_json":
                    yield 'data: {"id": "gen-1", "choices": [{"delta": \n\n'
                    return
                if i == 0:
                    yield ": OPENROUTER PROCESSING\n\n"
            done = {
                "id": "gen-1",
                "model": model,
                "object": "chat.completion.chunk",
                "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
            }
            yield f"data: {json.dumps(done)}\n\n"
            usage: dict[str, Any] = {
                "id": "gen-1",
                "model": model,
                "object": "chat.completion.chunk",
                "choices": [],
                "usage": {
                    "prompt_tokens": 120,
                    "completion_tokens": 20,
                    "total_tokens": 140,
                    "cost": 0.00042,
                },
            }
            yield f"data: {json.dumps(usage)}\n\n"
            yield "data: [DONE]\n\n"
        finally:
            with self._lock:
                self.active -= 1

    @property
    def tokens_sent(self) -> int:
        """Content chunks sent so far, over all requests."""
        with self._lock:
            return self._tokens

    def start(self) -> FakeLLM:
        """Start serving in a background thread; returns when it accepts connections."""
        app = Starlette(routes=[Route("/v1/chat/completions", self._chat, methods=["POST"])])
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_config=None,
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("fake LLM did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Stop the server and end any hang."""
        self.release.set()
        if self._server:
            self._server.should_exit = True
        if self._thread:
            self._thread.join(timeout=10)


def main() -> None:
    """`python -m fakes.fake_llm --port P --latency S [--hang MARKER] [--vary]`."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--latency", type=float, default=0.5)
    ap.add_argument("--hang", default=None, help="requests containing this text hang")
    ap.add_argument("--vary", action="store_true", help="a different tip text every time")
    args = ap.parse_args()
    counter = itertools.count()

    def varied(body: dict[str, Any]) -> str:
        if "call_summary" in json.dumps(body.get("response_format") or {}):
            return default_reply(body)
        return json.dumps(
            {
                "kind": "tip",
                "severity": "info",
                "text": f"Consejo {next(counter)}: resume y confirma el siguiente paso.",
            }
        )

    fake = FakeLLM(
        latency_s=args.latency,
        reply=varied if args.vary else default_reply,
        port=args.port or free_port(),
    )
    if args.hang:
        fake.on(args.hang, "hang")
    fake.start()
    print(json.dumps({"url": fake.url}), flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(1.0):
            pass
    except KeyboardInterrupt:
        pass
    with fake._lock:
        stats = {"requests": len(fake.requests), "max_active": fake.max_active}
    print(json.dumps(stats), flush=True)
    fake.stop()


if __name__ == "__main__":
    main()
