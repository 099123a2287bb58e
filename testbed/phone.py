"""Real SIP phones for the real-Asterisk tier: Debian's baresip (nobody here wrote it), one
process and config directory per phone, driven over its `ctrl_tcp` JSON-netstring interface.

A phone plays a WAV file into the call (`audio_source aufile`) and hears nothing
(`audio_player alsa,null`). baresip hangs up when its WAV ends, so `speech_wav` pads the
speech with silence long enough to outlast the test; tests hang up explicitly.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import random
import socket
import subprocess
import time
import wave
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from ari.audio import load_wav
from coach.tasks import TaskSet
from fakes.poll import until_async

SOUNDS = Path("/usr/share/asterisk/sounds/es")
PHONE_RTP = itertools.count(50000, 20)  # 10 RTP ports per phone, outside every other range
# baresip listens on its SIP port (UDP, TCP), the next one (TLS) and its control port: one
# block of four per phone, from a range nothing else here allocates from.
PHONE_PORTS = itertools.count(56000 + random.randrange(0, 3000, 4), 4)


def _bindable(port: int, kind: socket.SocketKind) -> bool:
    # No SO_REUSEADDR, like baresip: a port with connections in TIME_WAIT (a phone of an
    # earlier run) is refused here too.
    with socket.socket(socket.AF_INET, kind) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def phone_ports() -> tuple[int, int]:
    """(SIP port, control port) for a new phone, all of whose ports are free now."""
    while True:
        base = next(PHONE_PORTS)
        if base + 3 >= 60000:
            raise RuntimeError("no free port block for a phone")
        if _bindable(base, socket.SOCK_DGRAM) and all(
            _bindable(p, socket.SOCK_STREAM) for p in (base, base + 1, base + 2)
        ):
            return base, base + 2


def speech_wav(
    path: Path,
    prompts: list[str],
    *,
    lead: float = 0.5,
    gap: float = 1.0,
    pad: float = 240.0,
    intro: bytes = b"",
    sounds: Path = SOUNDS,
) -> Path:
    """An 8 kHz mono WAV: optional raw PCM (`intro`), `lead` seconds of silence, each prompt
    (Debian's telephone speech from `sounds`, Spanish by default) followed by `gap` seconds of
    silence, then `pad`."""
    pcm = bytearray(intro + b"\0\0" * int(8000 * lead))
    for name in prompts:
        rate, channels = load_wav(sounds / f"{name}.wav")
        assert rate == 8000, f"{name}: {rate} Hz"
        pcm += channels[0] + b"\0\0" * int(8000 * gap)
    pcm += b"\0\0" * int(8000 * pad)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(bytes(pcm))
    return path


class Phone:
    """One baresip user agent. `account` is its accounts-file line (AOR and options)."""

    def __init__(
        self,
        workdir: Path,
        name: str,
        account: str,
        wav: Path,
        *,
        sip_port: int,
        ctrl_port: int,
        address: str = "127.0.0.1",
    ) -> None:
        self.dir = workdir / name
        self.name = name
        self.account = account
        self.wav = wav
        self.sip_port, self.ctrl_port = sip_port, ctrl_port
        self.address = address
        """The loopback address it sends SIP and RTP from (another 127.0.0.x: a stranger)."""
        self.proc: subprocess.Popen[bytes] | None = None
        self.events: list[dict[str, Any]] = []
        self._changed = asyncio.Condition()
        self._responses: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._tokens = itertools.count(1)
        self._tasks = TaskSet("phone", registry=CollectorRegistry())
        self._reader: asyncio.Task[None] | None = None
        self._writer: asyncio.StreamWriter | None = None

    def _write_config(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        rtp = next(PHONE_RTP)
        (self.dir / "config").write_text(
            "\n".join(
                [
                    "poll_method epoll",
                    f"sip_listen {self.address}:{self.sip_port}",
                    f"net_interface {self.address}",
                    "audio_player alsa,null",
                    "audio_alert alsa,null",
                    f"audio_source aufile,{self.wav}",
                    f"rtp_ports {rtp}-{rtp + 9}",
                    "module_path /usr/lib/baresip/modules",
                    "module g711.so",
                    "module aufile.so",
                    "module alsa.so",
                    "module_app account.so",
                    "module_app menu.so",
                    "module_app ctrl_tcp.so",
                    f"ctrl_tcp_listen 127.0.0.1:{self.ctrl_port}",
                    "",
                ]
            )
        )
        # Empty: the account is added over the control socket once it is connected, so its
        # REGISTER_OK (sent at once) is not missed.
        (self.dir / "accounts").write_text("")

    async def start(self, timeout: float = 15.0) -> Phone:
        """Start baresip and connect to its control socket."""
        self._write_config()
        log = (self.dir / "baresip.log").open("ab")
        self.proc = subprocess.Popen(  # noqa: ASYNC220 - starting it does not block
            ["baresip", "-f", str(self.dir)], stdin=subprocess.DEVNULL, stdout=log, stderr=log
        )
        log.close()
        proc = self.proc

        async def connected() -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
            if proc.poll() is not None:
                raise AssertionError(f"baresip {self.name} exited: {self.log()[-2000:]}")
            try:
                return await asyncio.open_connection("127.0.0.1", self.ctrl_port)
            except OSError:
                return None

        # baresip opens its control port a moment after it starts; nothing to wait on but
        # the port itself.
        conn = await until_async(
            connected, timeout, what=f"baresip {self.name}'s control port", interval=0.05
        )
        assert conn is not None
        reader, self._writer = conn
        self._reader = self._tasks.spawn(
            self._read(reader), "phone-reader", name=f"phone-{self.name}"
        )
        await self.command("uanew", self.account)
        return self

    def log(self) -> str:
        """What baresip printed."""
        path = self.dir / "baresip.log"
        return path.read_text(errors="replace") if path.exists() else ""

    async def _read(self, reader: asyncio.StreamReader) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                length = int((await reader.readuntil(b":"))[:-1])
                body = json.loads(await reader.readexactly(length))
                await reader.readexactly(1)  # the netstring's ","
                if body.get("response"):
                    fut = self._responses.pop(str(body.get("token")), None)
                    if fut is not None and not fut.done():
                        fut.set_result(body)
                elif body.get("event"):
                    body["_at"] = time.monotonic()  # when it arrived (benchmarks)
                    async with self._changed:
                        self.events.append(body)
                        self._changed.notify_all()

    async def command(self, command: str, params: str = "", timeout: float = 10.0) -> Any:
        """Run a baresip command; returns its response body."""
        assert self._writer is not None
        token = str(next(self._tokens))
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._responses[token] = fut
        body = json.dumps({"command": command, "params": params, "token": token}).encode()
        self._writer.write(str(len(body)).encode() + b":" + body + b",")
        await self._writer.drain()
        async with asyncio.timeout(timeout):
            return await fut

    async def wait(self, kind: str, *, after: int = 0, timeout: float = 30.0) -> dict[str, Any]:
        """The first event of type `kind` at index >= `after` (waiting for it if needed)."""
        async with asyncio.timeout(timeout), self._changed:
            while True:
                for event in self.events[after:]:
                    if event.get("type") == kind:
                        return event
                await self._changed.wait()

    def seen(self, kind: str) -> bool:
        """Whether an event of type `kind` has arrived."""
        return any(e.get("type") == kind for e in self.events)

    async def dial(self, uri: str) -> None:
        """Place a call."""
        await self.command("dial", uri)

    async def accept(self) -> None:
        """Answer the ringing call."""
        await self.command("accept")

    async def hangup(self) -> None:
        """Hang up (or reject, while ringing) the current call."""
        await self.command("hangup")

    async def stop(self) -> None:
        """Quit baresip."""
        if self._writer is not None:
            self._writer.close()
        await self._tasks.close()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                await asyncio.to_thread(self.proc.wait, 10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                await asyncio.to_thread(self.proc.wait, 10)
