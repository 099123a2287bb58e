"""`python -m orchestrator` as a real process: configuration errors, /health, graceful SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from typing import Any

import httpx
import pytest

from coach.redis_server import EmbeddedRedis, free_port
from coach.settings import Env, SettingsError
from fakes.poll import until_sync
from orchestrator.settings import Settings

pytestmark = pytest.mark.integration


def env_for(redis: EmbeddedRedis, port: int, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENROUTER", "LLM_"))}
    env.update(
        {
            "REDIS_URL": redis.url,
            "ORCH_PORT": str(port),
            "ORCH_HOST": "127.0.0.1",
            "BUS_PREFIX": f"svc{port}",
            **extra,
        }
    )
    return env


def wait_health(port: int, proc: subprocess.Popen[str]) -> dict[str, Any]:
    def healthy() -> dict[str, Any] | None:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        try:
            r = httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
        except httpx.HTTPError:
            return None
        return dict(r.json()) if r.status_code == 200 else None

    body = until_sync(healthy, 20, what="the orchestrator healthy", interval=0.05)
    assert body is not None
    return body


@pytest.mark.slow
def test_rules_only_start_health_metrics_and_sigterm(redis_server: EmbeddedRedis):
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "orchestrator"],
        env=env_for(redis_server, port),
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        health = wait_health(port, proc)
        assert health["mode"] == "rules-only" and health["bus"] == "up"
        assert "OPENROUTER_API_KEY" in health["llm"]["reason"]
        assert health["playbooks"] == ["en", "es"]
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics").text
        assert "orch_calls_owned" in metrics
        assert httpx.get(f"http://127.0.0.1:{port}/event").status_code == 404  # health/metrics only
        proc.send_signal(signal.SIGTERM)
        _, logs = proc.communicate(timeout=8)  # within Compose's 10 s stop grace
        assert proc.returncode == 0
        assert "rules-only mode" in logs  # said at start
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_bad_setting_stops_start_naming_the_variable(redis_server: EmbeddedRedis):
    port = free_port()
    out = subprocess.run(
        [sys.executable, "-m", "orchestrator"],
        env=env_for(redis_server, port, LLM_MAX_CONCURRENCY="lots"),
        capture_output=True,
        check=False,
        text=True,
        timeout=30,
    )
    assert out.returncode == 2 and "LLM_MAX_CONCURRENCY" in out.stderr


@pytest.mark.parametrize(
    "name,value",
    [
        ("ORCH_PORT", "0"),
        ("LLM_BASE_URL", "openrouter.ai"),
        ("LLM_STRUCTURED", "xml"),
        ("ORCH_PLAYBOOK_DIR", "/nonexistent"),
        ("LLM_TIP_DEADLINE_S", "-1"),
        ("ORCH_HEALTH_TOKEN", "short"),
    ],
)
def test_settings_name_the_culprit(name, value):
    with pytest.raises(SettingsError, match=name):
        Settings.from_env(Env({name: value}))


def test_settings_defaults_and_models():
    s = Settings.from_env(
        Env({"OPENROUTER_API_KEY": "sk-secret-123", "LLM_FALLBACK_MODELS": "a/b, c/d,a/b"})
    )
    assert s.llm.enabled and s.llm.base_url == "https://openrouter.ai/api/v1"
    assert s.llm.models == (s.llm.model, "a/b", "c/d")
    assert "sk-secret-123" not in repr(s)  # the key never shows in logs
    assert not Settings.from_env(Env({})).llm.enabled
    # Health and metrics face no one but this machine unless ORCH_HOST says otherwise.
    assert Settings.from_env(Env({})).host == "127.0.0.1"
