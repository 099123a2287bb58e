"""Who may stream audio to STT: a service token with the `stream` scope, in the header only."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect

from coach.redis_server import free_port
from coach.tokens import token_hash
from stt.settings import SttSettings
from tests.stt.conftest import serving

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
    async with serving(settings, engine) as base:
        url = f"ws://{base}/stream?callId=c-tok-1&speaker=agent&rate=8000"
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
