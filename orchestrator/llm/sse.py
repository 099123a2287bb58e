"""Server-sent events as OpenAI-compatible servers send them: `data:` lines, `:` comments."""

from __future__ import annotations

from collections.abc import AsyncIterator

DONE = "[DONE]"


async def data_lines(lines: AsyncIterator[str]) -> AsyncIterator[str]:
    """The payload of each event; comments (`: OPENROUTER PROCESSING`) and other fields skipped.

    Multi-line `data:` fields are joined with newlines, per the SSE specification; an event
    ends at a blank line (or at end of stream).
    """
    buf: list[str] = []
    async for raw in lines:
        line = raw.rstrip("\r")
        if not line:
            if buf:
                yield "\n".join(buf)
                buf = []
            continue
        if line.startswith(":"):
            continue  # keep-alive comment
        name, _, value = line.partition(":")
        if name != "data":
            continue  # event:, id:, retry: carry nothing we use
        buf.append(value[1:] if value.startswith(" ") else value)
    if buf:
        yield "\n".join(buf)
