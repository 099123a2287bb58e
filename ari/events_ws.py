"""ARI events WebSocket (`websocket-client` in one thread): connect, read, reconnect with backoff
(`coach.backoff.RECONNECT`, its ceiling `backoff.maximum`).

Events are handed to the asyncio loop with `call_soon_threadsafe`. Every successful
(re)connect calls `on_connected` on the loop, which reconciles state: Asterisk does not replay
StasisStart after a reconnect. Overflow policy: the controller's event queue is bounded; if it
is full the connection is dropped on purpose, and the reconnect's reconciliation repairs what
the dropped events would have told us.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import enum
import json
import logging
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import websocket

from coach.backoff import RECONNECT, Backoff

log = logging.getLogger("ari.events")


class WsState(enum.Enum):
    """Connection state of the events WebSocket."""

    IDLE = "idle"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    BACKOFF = "backoff"
    FAILED = "failed"
    CLOSED = "closed"


# Handshake answers no retry can cure: the URL or the credentials are wrong (ari's own
# configuration, or ari.conf on the Asterisk side). Reconnecting would only fill the log.
FATAL_HANDSHAKE = {
    401: "wrong ARI_USER or ARI_PASS",
    404: "no ARI at this URL (check ARI_URL and that res_ari is loaded)",
}


class EventsConnection:
    """Owns the reader thread; `start()` once, `stop()` once."""

    def __init__(
        self,
        base_url: str,
        app: str,
        user: str,
        password: str,
        *,
        loop: asyncio.AbstractEventLoop,
        on_event: Callable[[dict[str, Any]], bool],
        on_connected: Callable[[], None],
        on_disconnected: Callable[[], None] | None = None,
        backoff: Backoff = RECONNECT,
    ) -> None:
        ws_base = base_url.replace("http://", "ws://", 1).replace("https://", "wss://", 1)
        self.url = f"{ws_base.rstrip('/')}/ari/events?app={quote(app)}&subscribeAll=false"
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        self._header = [f"Authorization: Basic {token}"]
        self._loop = loop
        self._on_event = on_event
        self._on_connected = on_connected
        self._on_disconnected = on_disconnected
        self.backoff = backoff
        """Delays between connection attempts; a 401/404 is retried every `backoff.maximum`."""
        self.state = WsState.IDLE
        self.error: str | None = None
        """Why the connection gave up (FAILED), for /health."""
        self.connects = 0
        self._stop = threading.Event()
        self._ws: websocket.WebSocket | None = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="ari-events", daemon=True)

    def start(self) -> None:
        """Start the reader thread."""
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Close the socket and join the thread."""
        self._stop.set()
        self.drop()
        if self._thread.is_alive():
            self._thread.join(timeout)
        self.state = WsState.CLOSED

    def drop(self) -> None:
        """Close the current connection (the thread reconnects unless stopping)."""
        with self._lock:
            ws = self._ws
        if ws is not None:
            # abort() shuts the socket down, which wakes the reader thread blocked in recv().
            with contextlib.suppress(OSError, websocket.WebSocketException):
                ws.abort()  # type: ignore[no-untyped-call]

    def _run(self) -> None:
        retry = self.backoff.retry()
        while not self._stop.is_set():
            self.state = WsState.CONNECTING
            try:
                # enable_multithread: stop()/drop() abort the socket from other threads.
                # suppress_origin: Asterisk checks Origin against ari.conf's allowed_origins and
                # logs a notice on every connect for a non-browser client that sends one.
                ws = websocket.create_connection(
                    self.url,
                    header=self._header,
                    timeout=5,
                    enable_multithread=True,
                    suppress_origin=True,
                )
            except websocket.WebSocketBadStatusException as exc:
                hint = FATAL_HANDSHAKE.get(exc.status_code)
                if hint is not None:
                    # Said once; retried quietly and slowly: a starting Asterisk can answer
                    # 401/404 for a moment before ARI is loaded.
                    error = f"ARI events handshake answered {exc.status_code}: {hint}"
                    if error != self.error:
                        log.error(
                            "%s; retrying every %.0f s",
                            error,
                            self.backoff.maximum,
                            extra={"url": self.url.split("?", 1)[0]},
                        )
                    self.error = error
                    self.state = WsState.FAILED
                    self._stop.wait(self.backoff.maximum)
                    continue
                log.warning("ARI events connect failed: %s", exc)
                self._backoff(retry.next())
                continue
            except (OSError, websocket.WebSocketException) as exc:
                log.warning("ARI events connect failed: %s", exc)
                self._backoff(retry.next())
                continue
            with self._lock:
                self._ws = ws
            if self._stop.is_set():
                ws.shutdown()  # type: ignore[no-untyped-call]  # no close handshake to wait on
                break
            ws.settimeout(None)
            self.error = None
            self.state = WsState.CONNECTED
            self.connects += 1
            retry.reset()
            log.info("ARI events connected", extra={"connects": self.connects})
            self._loop.call_soon_threadsafe(self._on_connected)
            self._read(ws)
            with self._lock:
                self._ws = None
            with contextlib.suppress(OSError, websocket.WebSocketException):
                ws.close(timeout=0.2)
            ws.shutdown()  # type: ignore[no-untyped-call]  # close() may fail half-way on a dead socket; this always closes it
            if self._on_disconnected is not None and not self._stop.is_set():
                self._loop.call_soon_threadsafe(self._on_disconnected)
            if not self._stop.is_set():
                log.warning("ARI events connection lost; reconnecting")
                self._backoff(retry.next())
        self.state = WsState.CLOSED

    def _backoff(self, delay: float) -> None:
        self.state = WsState.BACKOFF
        self._stop.wait(delay)  # jittered: several instances do not reconnect in lockstep

    def _read(self, ws: websocket.WebSocket) -> None:
        while not self._stop.is_set():
            try:
                raw = ws.recv()
            except (OSError, websocket.WebSocketException):
                return
            if not raw:
                return
            try:
                event = json.loads(raw)
            except ValueError:
                log.warning("ARI event is not JSON; ignored")
                continue
            if not isinstance(event, dict):
                continue
            try:
                self._loop.call_soon_threadsafe(self._deliver, ws, event)
            except RuntimeError:  # loop closed: we are shutting down
                return

    def _deliver(self, ws: websocket.WebSocket, event: dict[str, Any]) -> None:
        if not self._on_event(event):
            log.error("ARI event queue full; dropping the connection to resynchronise")
            with contextlib.suppress(OSError, websocket.WebSocketException):
                ws.abort()  # type: ignore[no-untyped-call]
