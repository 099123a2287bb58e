"""The orchestrator measures its consumer group's lag behind the bus (trimming ignores groups)
and alarms: `busLag` in /health and `coach_bus_group_lag_*` in /metrics. The lag is made with an
entry that carries an old id, left pending by a consumer that died, instead of by waiting."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from typing import Any

import httpx
import pytest
import redis

from coach.redis_server import EmbeddedRedis, free_port
from fakes.poll import until_sync
from tests.orchestrator.test_service import env_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_a_lagging_group_is_alarmed_in_health_and_metrics(redis_server: EmbeddedRedis) -> None:
    port = free_port()
    prefix = f"svc{port}"
    client = redis.Redis(port=redis_server.port, decode_responses=True)
    old = int(time.time() * 1000) - 50_000 * 1000  # past half the default 24 h bound
    client.xadd(f"{prefix}:events", {"c": "c-old", "t": "final", "e": "{}"}, id=f"{old}-0")
    client.xgroup_create(f"{prefix}:events", "orchestrator", id="0")
    client.xreadgroup("orchestrator", "died", {f"{prefix}:events": ">"})  # pending for ever
    proc = subprocess.Popen(
        [sys.executable, "-m", "orchestrator"],
        env=env_for(redis_server, port, ORCH_LEASE_TTL_MS="600000"),
        stderr=subprocess.PIPE,
        text=True,
    )
    try:

        def alarmed() -> dict[str, Any]:
            assert proc.poll() is None
            try:
                body = httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).json()
            except httpx.HTTPError:
                return {}
            lag = body.get("busLag") or {}
            return dict(body) if lag.get("alarm") else {}

        health = until_sync(alarmed, 20, what="the lag alarm in /health")
        assert health["busLag"]["lagSeconds"] >= 50_000
        assert health["busLag"]["alarmAboveSeconds"] == 43_200
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics").text
        assert 'coach_bus_group_lag_alarm{group="orchestrator"} 1.0' in metrics
        proc.send_signal(signal.SIGTERM)
        _, logs = proc.communicate(timeout=8)
        assert "entries may be trimmed unread" in logs
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        client.close()
