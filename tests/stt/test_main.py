import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def run_stt(env_extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RELAY_TOKEN", "MODEL_PATH")}
    env.update(env_extra)
    return subprocess.run(
        [sys.executable, "-m", "stt"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({}, "RELAY_TOKEN"),
        ({"RELAY_TOKEN": "x" * 20, "STT_PORT": "eighty"}, "STT_PORT"),
        ({"RELAY_TOKEN": "x" * 20, "DEVICE": "tpu"}, "DEVICE"),
        ({"RELAY_TOKEN": "x" * 20, "MODEL_PATH": "/nonexistent/fw"}, "python -m stt.models"),
        ({"RELAY_TOKEN": "x" * 20, "LOG_LEVEL": "loud"}, "LOG_LEVEL"),
    ],
    ids=["no-token", "bad-port", "bad-device", "no-model", "bad-log-level"],
)
def test_bad_configuration_stops_start_up_naming_the_problem(env, needle):
    result = run_stt(env)
    assert result.returncode == 2
    assert needle in result.stderr
