"""A small Asterisk Manager Interface client: one logged-in TCP connection, actions in,
responses out, reconnected on its own with `coach.backoff.RECONNECT`.

ari needs AMI for one action only, `MixMonitorMute` (ARI cannot pause a MixMonitor), so this
is an action/response client: it logs in with `Events: off` (and the AMI user reads nothing
anyway, see asterisk/manager.conf), matches each response to its action by `ActionID`, and
ignores anything else Asterisk sends. Written here rather than taken from PyPI: panoramisk
(the asyncio AMI library) was last released in 2021 and retries on a fixed delay of its own;
the wire format is `Key: Value` lines ended by a blank line, a few lines to read.

Connection states (`AmiState`): IDLE -> CONNECTING -> CONNECTED -> CONNECTING (lost; every
pending action fails with `AmiUnavailable`, which says a retry can help) ... -> CLOSED.
An action while not CONNECTED fails at once: a pause button must not hang on a reconnect.
Bound: `MAX_PENDING` actions in flight; more are refused (`AmiUnavailable`), not queued.
"""

from __future__ import annotations

import asyncio
import enum
import itertools
import logging
from typing import Final

from coach.backoff import RECONNECT, Backoff, Retry
from coach.errors import CoachError
from coach.tasks import TaskSet

log = logging.getLogger("ari.ami")

MAX_PENDING: Final = 64
"""Actions awaiting their response at once; beyond it new ones are refused."""
MAX_MESSAGE_BYTES: Final = 64 * 1024
"""A longer message from Asterisk (or anything on that port) drops the connection."""


class AmiState(enum.Enum):
    IDLE = "idle"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    CLOSED = "closed"


_ALLOWED: Final = {
    AmiState.IDLE: {AmiState.CONNECTING, AmiState.CLOSED},
    AmiState.CONNECTING: {AmiState.CONNECTED, AmiState.CLOSED},
    AmiState.CONNECTED: {AmiState.CONNECTING, AmiState.CLOSED},
    AmiState.CLOSED: set(),
}


class AmiError(CoachError):
    """Asterisk answered an action with `Response: Error` (its message says why)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


class AmiUnavailable(CoachError):
    """No logged-in connection right now (or it broke mid-action): a retry later can help."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=True)


Message = dict[str, str]


def encode(fields: dict[str, str]) -> bytes:
    """One AMI message; refuses values that would smuggle in a line of their own."""
    lines = []
    for key, value in fields.items():
        if any(c in f"{key}{value}" for c in "\r\n"):
            raise ValueError(f"AMI field {key!r} holds a line break")
        lines.append(f"{key}: {value}\r\n")
    return "".join(lines).encode() + b"\r\n"


async def read_message(reader: asyncio.StreamReader) -> Message:
    """The next `Key: Value` block (keys as Asterisk spells them); EOF raises."""
    message: Message = {}
    size = 0
    while True:
        line = await reader.readline()
        if not line:
            raise ConnectionError("AMI closed the connection")
        size += len(line)
        if size > MAX_MESSAGE_BYTES:
            raise ConnectionError("AMI message too long")
        text = line.decode("utf-8", "replace").rstrip("\r\n")
        if not text:
            if message:
                return message
            continue
        key, sep, value = text.partition(":")
        if sep:
            message[key.strip()] = value.strip()


class AmiClient:
    """`start()` connects in the background; `action()` sends one; `close()` stops."""

    def __init__(
        self,
        host: str,
        port: int,
        user: str,
        secret: str,
        *,
        tasks: TaskSet,
        backoff: Backoff = RECONNECT,
        timeout: float = 5.0,
    ) -> None:
        self.host, self.port, self.user = host, port, user
        self._secret = secret
        self.tasks = tasks
        self.backoff = backoff
        self.timeout = timeout
        """Seconds to connect, to log in, and for each action's response."""
        self.state = AmiState.IDLE
        self.error: str | None = None
        """Why the last connection attempt failed (health), None once logged in."""
        self.connects = 0
        """Successful logins so far (tests and health: a reconnect counts)."""
        self._ids = itertools.count(1)
        self._pending: dict[str, asyncio.Future[Message]] = {}
        self._writer: asyncio.StreamWriter | None = None
        self._write_lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()

    @property
    def closed(self) -> bool:
        """`close()` was called: no more reconnects."""
        return self.state is AmiState.CLOSED

    def _move(self, new: AmiState) -> None:
        if new not in _ALLOWED[self.state]:
            raise RuntimeError(f"AMI connection: {self.state.value} -> {new.value}")
        self.state = new

    def start(self) -> None:
        """Connect (and keep reconnecting) in the background."""
        self._move(AmiState.CONNECTING)
        self._task = self.tasks.spawn(self._run(), "ami", name="ami-connection")

    async def wait_connected(self, wait: float) -> None:
        """Until logged in (tests, start-up checks); TimeoutError otherwise."""
        await asyncio.wait_for(self._connected.wait(), wait)

    async def _run(self) -> None:
        retry = self.backoff.retry()
        reported: str | None = None  # each new reason is logged once, not every retry
        logins = self.connects
        while not self.closed:
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(self.host, self.port), self.timeout
                )
            except (OSError, TimeoutError) as exc:
                self.error = f"connect {self.host}:{self.port}: {str(exc) or type(exc).__name__}"
            else:
                try:
                    await self._session(reader, writer, retry)
                except (OSError, ConnectionError, TimeoutError, AmiError) as exc:
                    self.error = str(exc) or type(exc).__name__
                finally:
                    self._lost(writer)
            if self.closed:
                return
            delay = retry.next()
            if self.connects != logins:  # logged in since: a new outage is news again
                reported, logins = None, self.connects
            level = logging.WARNING if self.error != reported else logging.DEBUG
            reported = self.error
            log.log(
                level,
                "AMI unavailable, retrying in %.1f s: %s",
                delay,
                self.error,
                extra={"ami": f"{self.host}:{self.port}"},
            )
            await asyncio.sleep(delay)

    async def _session(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, retry: Retry
    ) -> None:
        banner = await asyncio.wait_for(reader.readline(), self.timeout)
        if not banner.startswith(b"Asterisk Call Manager/"):
            raise ConnectionError(f"not an AMI banner: {banner[:60]!r}")
        writer.write(
            encode(
                {
                    "Action": "Login",
                    "ActionID": "login",
                    "Username": self.user,
                    "Secret": self._secret,
                    "Events": "off",
                }
            )
        )
        await writer.drain()
        reply = await asyncio.wait_for(read_message(reader), self.timeout)
        if reply.get("Response") != "Success":
            raise AmiError(f"AMI login as {self.user!r} refused: {reply.get('Message', reply)}")
        self._writer = writer
        self._move(AmiState.CONNECTED)
        self.error = None
        self.connects += 1
        self._connected.set()
        retry.reset()  # the next outage starts again from the shortest delay
        log.info("AMI logged in", extra={"ami": f"{self.host}:{self.port}", "user": self.user})
        while True:
            message = await read_message(reader)
            fut = self._pending.pop(message.get("ActionID", ""), None)
            if fut is not None and not fut.done():
                fut.set_result(message)

    def _lost(self, writer: asyncio.StreamWriter) -> None:
        self._writer = None
        self._connected.clear()
        writer.close()
        if self.state is AmiState.CONNECTED:
            self._move(AmiState.CONNECTING)
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(AmiUnavailable("AMI connection lost before the response"))
                fut.exception()  # retrieved: the caller may have timed out already
        self._pending.clear()

    async def action(self, name: str, **fields: str) -> Message:
        """Send one action and return its response; AmiError on `Response: Error`,
        AmiUnavailable when not connected, at the bound, or on a timeout."""
        writer = self._writer
        if self.state is not AmiState.CONNECTED or writer is None:
            raise AmiUnavailable(f"AMI not connected ({self.error or self.state.value})")
        if len(self._pending) >= MAX_PENDING:
            raise AmiUnavailable(f"AMI busy: {MAX_PENDING} actions waiting")
        action_id = f"coach-{next(self._ids)}"
        fut: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._pending[action_id] = fut
        try:
            async with self._write_lock:
                writer.write(encode({"Action": name, "ActionID": action_id, **fields}))
                await writer.drain()
            reply = await asyncio.wait_for(fut, self.timeout)
        except TimeoutError:  # before OSError, of which it is a subclass
            raise AmiUnavailable(f"AMI {name}: no response in {self.timeout:g} s") from None
        except (OSError, ConnectionError) as exc:
            raise AmiUnavailable(f"AMI {name}: {exc}") from exc
        finally:
            self._pending.pop(action_id, None)
        if reply.get("Response") != "Success":
            raise AmiError(f"AMI {name}: {reply.get('Message', 'error')}")
        return reply

    async def close(self) -> None:
        """Log off (best effort) and stop reconnecting."""
        if self.state is AmiState.CLOSED:
            return
        writer = self._writer
        self._move(AmiState.CLOSED)
        if writer is not None:
            try:
                writer.write(encode({"Action": "Logoff", "ActionID": "logoff"}))
                await asyncio.wait_for(writer.drain(), 1.0)
            except (OSError, ConnectionError, TimeoutError):
                pass
            writer.close()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
