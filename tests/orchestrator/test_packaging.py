"""The installed package (a wheel, as the image installs it) carries what the services read at
run time: without the playbooks an installed orchestrator cannot start (found by the first
`docker compose up`)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]


def test_wheel_carries_the_playbooks(tmp_path):
    # From a clean copy: a local editable install's egg-info would supply the file list.
    src = tmp_path / "src"
    shutil.copytree(
        ROOT,
        src,
        ignore=shutil.ignore_patterns(
            "*.egg-info",
            ".venv",
            ".git",
            "var",
            "models",
            "build",
            "test-artifacts",
            "__pycache__",
            "node_modules",
        ),
    )
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(src)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    [wheel] = tmp_path.glob("call_coach-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {p.name for p in (ROOT / "orchestrator" / "playbooks").glob("*.yaml")}
    assert shipped and {f"orchestrator/playbooks/{n}" for n in shipped} <= names
