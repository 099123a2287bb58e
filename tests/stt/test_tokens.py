"""Who may stream audio to STT: a service token with the `stream` scope, in the header only."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from websockets.asyncio.client import connect

from coach.redis_server import free_port
from coach.tasks import TaskSet, first_completed
from coach.tokens import token_hash
from coach.web import EmbeddedServer
from fakes import poll
from stt.app import create_app
from stt.settings import SttSettings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ARI = "ari-stream-token-0123456789"
CRM = "crm-publish-token-0123456789"


async def _close_of(url: str, **kw: Any) -> tuple[int | None, str | None]:
    async with connect(url, **kw) as ws:
        await ws.wait_closed()
    return ws.close_code, ws.close_reason


async def test_only_stream_holders_stream_and_never_with_a_url_token(
    engine: Any, base_model: Any, tmp_path: Path
) -> None:
    tokens = tmp_path / "service-tokens"
    tokens.write_text(f"ari stream {token_hash(ARI)}\ncrm publish:coach {token_hash(CRM)}\n")
    settings = SttSettings(
        relay_token=secrets.token_hex(16),
        model_path=str(base_model.path),
        host="127.0.0.1",
        port=free_port(),
        decode_workers=1,
        service_tokens_file=str(tokens),
    )
    server = EmbeddedServer(
        uvicorn.Config(
            create_app(settings, engine),
            host=settings.host,
            port=settings.port,
            log_config=None,
            lifespan="on",
        )
    )
    tasks = TaskSet("test")
    serving = tasks.spawn(server.serve(), "uvicorn")
    url = f"ws://127.0.0.1:{settings.port}/stream?callId=c-tok-1&speaker=agent&rate=8000"
    try:
        await poll.until(lambda: server.started, 30, what="stt up")
        assert await _close_of(url, additional_headers={"Authorization": f"Bearer {CRM}"}) == (
            4403,
            "token 'crm' may not stream audio",
        )
        assert await _close_of(url + f"&token={ARI}") == (
            4401,
            "a token in the URL is refused: use Authorization: Bearer",
        )
        # Without a tokens file the one RELAY_TOKEN would do; with one, it does not.
        assert (
            await _close_of(
                url, additional_headers={"Authorization": f"Bearer {settings.relay_token}"}
            )
        )[0] == 4401
        async with connect(url, additional_headers={"Authorization": f"Bearer {ARI}"}) as ws:
            await ws.send('{"type":"end"}')
            await ws.wait_closed()
        assert ws.close_code == 1000
    finally:
        server.should_exit = True
        await first_completed(serving, wait=30)  # a graceful exit closes the listening socket
        await tasks.close()
