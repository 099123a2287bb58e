"""A fake Asterisk Manager Interface on 127.0.0.1, for faults the real Asterisk will not make
on demand (a dropped connection mid-action, a response that never comes, logins refused).

It answers as Asterisk 22 does (checked against the real one in tests/asterisk/
test_recording.py): the banner `Asterisk Call Manager/11.0.0`, `Login` with the wrong secret
or an unknown user -> `Response: Error` / `Message: Authentication failed` and the connection
closed; before a login every other action -> `Message: Permission denied` (manager.c); a
logged-in user with `write=call` gets `Permission denied` for
actions outside it; `MixMonitorMute` checks Direction (read/write/both), Channel (known here,
else `No such channel`) and State, and answers `Response: Success`; each response carries the
action's `ActionID`.

Knobs: `channels` (names/uniqueids that exist and are recorded), `refuse_logins`,
`drop_on_action` (close the connection when that action arrives, without an answer),
`stall_action` (never answer that action), `kick()` (close every connection now).
What it saw: `logins`, `actions`, `muted` (channel -> state 0/1 per direction).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from ari.ami import encode, read_message

BANNER = b"Asterisk Call Manager/11.0.0\r\n"
CALL_ACTIONS = frozenset({"MixMonitorMute", "Hangup", "Setvar", "Redirect", "StopMixMonitor"})
"""Actions `write=call` grants (a sample; what matters is that others are denied)."""
ALWAYS = frozenset({"Ping", "Logoff", "Login", "Challenge"})


@dataclass
class FakeAmi:
    user: str
    secret: str
    channels: set[str] = field(default_factory=set)
    refuse_logins: bool = False
    drop_on_action: str | None = None
    stall_action: str | None = None
    logins: int = 0
    actions: list[dict[str, str]] = field(default_factory=list)
    muted: dict[str, dict[str, bool]] = field(default_factory=dict)
    port: int = 0
    _server: asyncio.Server | None = None
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)

    async def start(self) -> FakeAmi:
        """Listen on 127.0.0.1 (a free port unless `port` is set)."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        """Stop listening and close every connection."""
        self.kick()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def kick(self) -> None:
        """Drop every open connection (as an Asterisk restart does)."""
        for writer in list(self._writers):
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        writer.write(BANNER)
        logged_in = False
        try:
            while True:
                msg = await read_message(reader)
                self.actions.append(msg)
                action = msg.get("Action", "")
                if action == self.drop_on_action:
                    return
                if action == self.stall_action:
                    continue
                reply, close = self._answer(action, msg, logged_in)
                if action == "Login" and reply.get("Response") == "Success":
                    logged_in = True
                    self.logins += 1
                if "ActionID" in msg:
                    reply = {"Response": reply["Response"], "ActionID": msg["ActionID"]} | reply
                writer.write(encode(reply))
                await writer.drain()
                if close:
                    return
        except (ConnectionError, OSError):
            return
        finally:
            self._writers.discard(writer)
            writer.close()

    def _answer(
        self, action: str, msg: dict[str, str], logged_in: bool
    ) -> tuple[dict[str, str], bool]:
        if action == "Login":
            if self.refuse_logins or (msg.get("Username"), msg.get("Secret")) != (
                self.user,
                self.secret,
            ):
                return {"Response": "Error", "Message": "Authentication failed"}, True
            return {"Response": "Success", "Message": "Authentication accepted"}, False
        if action == "Logoff":
            return {"Response": "Goodbye", "Message": "Thanks for all the fish."}, True
        if not logged_in:
            return {"Response": "Error", "Message": "Permission denied"}, False
        if action == "Ping":
            return {"Response": "Success", "Ping": "Pong"}, False
        if action not in CALL_ACTIONS:
            return {"Response": "Error", "Message": "Permission denied"}, False
        if action != "MixMonitorMute":
            return {"Response": "Error", "Message": "No such channel"}, False
        direction = msg.get("Direction", "").lower()
        if not direction:
            return {
                "Response": "Error",
                "Message": "No direction specified. Must be read, write or both",
            }, False
        if direction not in ("read", "write", "both"):
            return {
                "Response": "Error",
                "Message": "Invalid direction specified. Must be read, write or both",
            }, False
        channel = msg.get("Channel", "")
        if not channel:
            return {"Response": "Error", "Message": "No channel specified"}, False
        if channel not in self.channels:
            return {"Response": "Error", "Message": "No such channel"}, False
        on = msg.get("State", "") not in ("", "0", "no", "false", "off")
        state = self.muted.setdefault(channel, {"read": False, "write": False})
        for side in ("read", "write") if direction == "both" else (direction,):
            state[side] = on
        return {"Response": "Success"}, False
