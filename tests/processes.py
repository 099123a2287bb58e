"""A service as a real process (`python -m <module>` from the repo root), for the tests that
kill one, restart it or check how it refuses to start."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def spawn(module: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start `python -m module` with `env`, its output appended to `log`."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", module], cwd=ROOT, env=env, stdout=out, stderr=out
        )


def run(module: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run `python -m module` to its end (a start that must fail), capturing its output."""
    return subprocess.run(
        [sys.executable, "-m", module],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
