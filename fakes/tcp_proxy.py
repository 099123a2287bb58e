"""A TCP proxy with a fault knob: connections that die without looking dead.

A client's pooled connection can be gone without its socket saying so: a firewall or NAT
dropped the flow, or the server was killed while a forked child (an AOF rewrite) still held its
sockets open. Nothing arrives to mark it closed; the next command is sent into the void and
answered with a reset. A real server cannot be made to show that on cue, so this proxy can:
`sever()` cuts every open connection from the server and keeps the client's side open and
silent until the client sends something, then closes it. Connections made afterwards pass
through as usual.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
from dataclasses import dataclass

from coach.tasks import TaskSet


class LinkState(enum.Enum):
    """One proxied connection."""

    OPEN = "open"
    SEVERED = "severed"  # the server side is gone; the client side is kept, silent
    CLOSED = "closed"


@dataclass(eq=False)
class _Link:
    client: asyncio.StreamWriter
    server: asyncio.StreamWriter
    state: LinkState = LinkState.OPEN


class TcpProxy:
    """Forwards 127.0.0.1:<port> to `upstream`; see the module docstring."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._links: set[_Link] = set()
        self._tasks = TaskSet("fake-tcp-proxy")
        self.severed_sends = 0
        """Client sends that arrived on a severed connection (each was answered by a close)."""

    async def start(self) -> TcpProxy:
        """Listen on a free loopback port."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    @property
    def open_links(self) -> int:
        """Connections passing traffic now."""
        return sum(1 for link in self._links if link.state is LinkState.OPEN)

    def sever(self) -> None:
        """Cut every open connection from the server, leaving the clients' sides silent."""
        for link in self._links:
            if link.state is LinkState.OPEN:
                link.state = LinkState.SEVERED
                link.server.close()

    async def stop(self) -> None:
        """Close the listener and every connection."""
        if self._server is not None:
            self._server.close()
        for link in self._links:
            _close(link)
        await self._tasks.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        link = _Link(writer, up_writer)
        self._links.add(link)
        self._tasks.spawn(self._pipe(up_reader, link, to_client=True), "server-to-client")
        await self._pipe(reader, link, to_client=False)

    async def _pipe(self, reader: asyncio.StreamReader, link: _Link, *, to_client: bool) -> None:
        out = link.client if to_client else link.server
        try:
            while True:
                data = await reader.read(65536)
                if link.state is LinkState.SEVERED:
                    if to_client:
                        return  # its server side was closed by sever(): nothing more comes
                    if data:
                        self.severed_sends += 1
                    break  # sent into a dead flow: the answer is a close
                if not data:
                    break
                out.write(data)
                await out.drain()
        except (ConnectionError, OSError):
            pass
        _close(link)


def _close(link: _Link) -> None:
    link.state = LinkState.CLOSED
    for writer in (link.client, link.server):
        with contextlib.suppress(Exception):
            writer.close()
