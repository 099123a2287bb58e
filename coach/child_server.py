"""A real server run as a child process on 127.0.0.1: the shared half of the embedded Redis
and PostgreSQL (port, temporary data directory, waiting until it answers, stopping it)."""

from __future__ import annotations

import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Self

from coach.errors import CoachError


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ChildServer:
    """Port, data root and process of one child server; subclasses say how to start it."""

    stop_signal: signal.Signals = signal.SIGTERM
    """What asks the server to shut down cleanly (it flushes what it holds)."""
    stop_wait_s: float = 10.0
    """How long a clean stop may take before the server is killed."""

    def __init__(self, port: int, data_dir: str | Path | None, tmp_prefix: str) -> None:
        self.port = port or free_port()
        self._tmp = None if data_dir else tempfile.TemporaryDirectory(prefix=tmp_prefix)
        self.root = Path(data_dir or self._tmp.name)  # type: ignore[union-attr]
        """The folder given, or a temporary one removed by `cleanup()`."""
        self.process: subprocess.Popen[bytes] | None = None

    def wait_ready(self, ready: Callable[[], bool], timeout: float, what: str) -> None:
        """Return once `ready()` holds; CoachError if the process exits or time runs out."""
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise CoachError(f"{what} exited at start: {self.exit_reason()}")
            if ready():
                return
            time.sleep(0.02)
        self.stop()
        raise CoachError(f"{what} did not answer on port {self.port} within {timeout}s")

    def exit_reason(self) -> str:
        """Where to look when the server exited at start."""
        return "see its log"

    def stop(self, kill: bool = False) -> None:
        """Stop: `stop_signal` (a clean shutdown) or SIGKILL with `kill=True`."""
        if self.process is None:
            return
        if self.process.poll() is None:
            if kill:
                self.process.kill()
            else:
                self.process.send_signal(self.stop_signal)
            try:
                self.process.wait(timeout=self.stop_wait_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stderr:
            self.process.stderr.close()
        self.process = None

    def cleanup(self) -> None:
        """Stop and remove a temporary data directory."""
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    def start(self) -> Self:
        """Start the server and wait until it answers."""
        raise NotImplementedError
