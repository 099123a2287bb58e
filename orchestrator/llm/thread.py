"""Runs the LLM client on its own event loop in a thread.

Hundreds of streaming HTTP requests cost real CPU (HTTP parsing, TLS, SSE, JSON). On the
rules loop that work would sit between a final and its alert; on its own loop the rules loop
keeps its turn (the interpreter switches threads every few milliseconds), so playbook alerts
stay fast whatever the LLM is doing. Only `complete()` crosses over; results come back as
futures, and a streamed reply's `on_text` runs on the caller's loop (the stream waits for it,
so pieces arrive in order and a slow caller slows the read rather than queueing text).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from typing import Any

from orchestrator.llm.client import Completion, LLMClient
from orchestrator.llm.transport import TextSink
from orchestrator.settings import LLMSettings


class LLMThread:
    """An `LLMClient` living in a dedicated thread; same `complete()`/`health()` interface."""

    def __init__(self, settings: LLMSettings) -> None:
        self.settings = settings
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="llm", daemon=True)
        self._thread.start()
        self.client: LLMClient = self._call(self._make())

    async def _make(self) -> LLMClient:
        return LLMClient(self.settings)

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=30)

    async def complete(
        self,
        messages: Sequence[dict[str, str]],
        *,
        schema: dict[str, Any] | None = None,
        schema_name: str = "reply",
        max_tokens: int | None = None,
        deadline_s: float | None = None,
        on_text: TextSink | None = None,
    ) -> Completion:
        """`LLMClient.complete` run on the LLM thread; cancelling the caller cancels it there."""
        sink = _on_loop(on_text, asyncio.get_running_loop()) if on_text is not None else None
        future = asyncio.run_coroutine_threadsafe(
            self.client.complete(
                messages,
                schema=schema,
                schema_name=schema_name,
                max_tokens=max_tokens,
                deadline_s=deadline_s,
                on_text=sink,
            ),
            self._loop,
        )
        return await asyncio.wrap_future(future)

    def health(self) -> dict[str, Any]:
        """The client's state (plain reads of counters: a torn read is harmless here)."""
        return self.client.health()

    async def aclose(self) -> None:
        """Close the client, stop the loop, join the thread."""
        if not self._loop.is_running():
            return
        done = asyncio.run_coroutine_threadsafe(self.client.aclose(), self._loop)
        await asyncio.wrap_future(done)
        self._loop.call_soon_threadsafe(self._loop.stop)
        await asyncio.to_thread(self._thread.join, 10)
        self._loop.close()


def _on_loop(sink: TextSink, loop: asyncio.AbstractEventLoop) -> TextSink:
    """`sink` run on `loop` (the caller's), awaited from the LLM thread's loop."""

    async def relay(text: str) -> None:
        await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(sink(text), loop))

    return relay
