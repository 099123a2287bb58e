"""`python -m relay` as an operator runs it: configuration errors, embedded Redis, SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import httpx
import pytest

from coach.record.roles import PASSWORD_VARS as PG_PASSWORD_VARS
from coach.redis_acl import PASSWORD_VARS
from coach.redis_server import free_port
from fakes.poll import until_sync
from relay.auth import verify_token

pytestmark = pytest.mark.integration


def run(args: list[str], env: dict[str, str], cwd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "relay", *args],
        check=False,
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def base_env() -> dict[str, str]:
    keep = ("PATH", "HOME", "LANG", "PYTHONPATH", "VIRTUAL_ENV")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env["PYTHONPATH"] = os.getcwd()
    return env


def test_missing_secret_stops_start_up_naming_it(tmp_path) -> None:
    result = run([], {**base_env(), "AUTH_SECRET": "s" * 40}, str(tmp_path))
    assert result.returncode == 2
    assert "RELAY_TOKEN is not set" in result.stderr


def test_bad_log_level_stops_start_up_naming_it(tmp_path) -> None:
    # No RELAY_TOKEN either: a relay that did not check LOG_LEVEL stops on that instead.
    result = run([], {**base_env(), "AUTH_SECRET": "s" * 40, "LOG_LEVEL": "loud"}, str(tmp_path))
    assert result.returncode == 2, result.stderr
    assert "LOG_LEVEL='loud' must be one of: debug, info, warning, error" in result.stderr


def test_token_command_prints_a_verifiable_token(tmp_path) -> None:
    secret = "k" * 40
    result = run(
        ["token", "--role", "agent", "--agent", "200"],
        {**base_env(), "AUTH_SECRET": secret},
        str(tmp_path),
    )
    assert result.returncode == 0
    assert verify_token(secret, result.stdout.strip()).agent == "200"
    result = run(["token", "--role", "agent"], {**base_env(), "AUTH_SECRET": secret}, str(tmp_path))
    assert result.returncode == 2 and "--agent" in result.stderr
    assert run(["token", "--role", "supervisor"], base_env(), str(tmp_path)).returncode == 2


def test_secrets_command_prints_every_secret_the_stack_needs(tmp_path) -> None:
    first, second = (run(["secrets"], base_env(), str(tmp_path)) for _ in range(2))
    assert first.returncode == 0, first.stderr
    values = dict(line.split("=", 1) for line in first.stdout.splitlines())
    assert set(values) == {
        "RELAY_TOKEN",
        "AUTH_SECRET",
        "ARI_PASS",
        "AMI_SECRET",
        *PASSWORD_VARS.values(),
        *PG_PASSWORD_VARS.values(),
    }
    assert all(len(v) >= 16 for v in values.values())
    assert first.stdout != second.stdout  # fresh every time, nothing built in


@pytest.mark.parametrize(
    ("module", "variable"),
    [
        ("ari", "BASE_PORT"),
        ("stt", "STT_PORT"),
        ("orchestrator", "ORCH_PORT"),
        ("relay", "RELAY_PORT"),
    ],
)
def test_every_service_reads_dotenv(tmp_path, module, variable) -> None:
    # Secrets from .env (none in the environment) and a bad value only .env has: the service
    # gets past the secrets and stops on that value, naming it.
    (tmp_path / ".env").write_text(
        f"RELAY_TOKEN={'t' * 24}\nAUTH_SECRET={'a' * 40}\nARI_PASS=p\n{variable}=not-a-number\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", module],
        env=base_env(),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert variable in result.stdout + result.stderr
    assert "RELAY_TOKEN" not in result.stdout + result.stderr


def test_native_mode_starts_embedded_redis_and_stops_cleanly_on_sigterm(tmp_path) -> None:
    port, redis_port = free_port(), free_port()
    env = {
        **base_env(),
        "RELAY_TOKEN": "t" * 20,
        "AUTH_SECRET": "s" * 40,
        "RELAY_PORT": str(port),
        "RELAY_HOST": "127.0.0.1",
        "REDIS_PORT": str(redis_port),
        "REDIS_DATA_DIR": str(tmp_path / "redis"),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "relay"], env=env, cwd=tmp_path, stderr=subprocess.PIPE, text=True
    )
    try:

        def healthy() -> httpx.Response | None:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health")
            except httpx.HTTPError:
                return None
            return health if health.status_code == 200 else None

        health = until_sync(healthy, 30, what="the relay's /health to answer 200")
        assert health is not None  # until_sync returns the first truthy answer
        assert health.json()["embeddedRedis"] == f"redis://127.0.0.1:{redis_port}/0"
        r = httpx.post(
            f"http://127.0.0.1:{port}/event",
            headers={"Authorization": "Bearer " + "t" * 20},
            json={"type": "call.ended", "callId": "x", "endedAt": 1, "reason": "error"},
        )
        assert r.status_code == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        assert (tmp_path / "redis").is_dir()
        # The embedded server went away with the relay.
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
        import socket

        with pytest.raises(OSError), socket.create_connection(("127.0.0.1", redis_port), timeout=1):
            pass
        assert '"msg": "relay stopped"' in (proc.stderr.read() if proc.stderr else "")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr:
            proc.stderr.close()
