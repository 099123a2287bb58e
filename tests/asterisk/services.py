"""The call coach services as their own processes (`python -m NAME`), as in production: so a
test can kill one (SIGKILL, not a polite stop) and start it again mid-call."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from fakes.poll import until_sync

ROOT = Path(__file__).resolve().parents[2]


class ServiceProcess:
    """`python -m <module>` with an environment, a log file and a health URL."""

    def __init__(self, module: str, env: dict[str, str], health: str, log: Path) -> None:
        self.module = module
        # COACH_ENV_FILE: a developer's .env in the repo must not leak into the tier.
        self.env = {**os.environ, "COACH_ENV_FILE": "/dev/null", **env, "PYTHONPATH": str(ROOT)}
        self.health_url = health
        self.log_path = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0, *, want: str = "ok") -> ServiceProcess:
        """Start and wait until /health reports `want` (bounded; fails early if it exits)."""
        out = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", self.module],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            cwd=ROOT,
        )
        out.close()
        self.wait_health(timeout, want=want)
        return self

    def wait_health(self, timeout: float = 60.0, *, want: str = "ok") -> dict[str, Any]:
        """Poll /health until its status is `want`: the process has no other signal."""
        proc = self.proc
        assert proc is not None
        body: dict[str, Any] = {}

        def reached() -> dict[str, Any] | None:
            nonlocal body
            if proc.poll() is not None:
                raise AssertionError(
                    f"{self.module} exited with {proc.returncode}:\n" + self.log()[-3000:]
                )
            try:
                body = httpx.get(self.health_url, timeout=2).json()
            except (httpx.HTTPError, ValueError):
                return None
            return body if body.get("status") == want else None

        try:
            reached_body = until_sync(
                reached, timeout, what=f"{self.module} /health {want!r}", interval=0.1
            )
        except TimeoutError:
            raise AssertionError(
                f"{self.module} /health not {want!r} after {timeout:.0f}s: "
                f"{body}\n{self.log()[-3000:]}"
            ) from None
        assert reached_body is not None
        return reached_body

    def health(self) -> dict[str, Any]:
        """GET /health (whatever its status code)."""
        body: dict[str, Any] = httpx.get(self.health_url, timeout=5).json()
        return body

    def log(self) -> str:
        """What the service logged."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        """SIGKILL: no drain, no detach, as a crash would."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM, then wait (killed if it does not stop)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        return self.proc.returncode
