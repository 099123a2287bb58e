"""`python -m stt`: the streaming speech-to-text service."""

from __future__ import annotations

import sys

import uvicorn

from coach import logs
from coach.settings import SettingsError, service_env
from stt.app import create_app
from stt.models import ModelError, verify
from stt.settings import SttSettings


def main() -> int:
    """Check settings and model, then serve until SIGTERM/SIGINT."""
    env = service_env()
    try:
        logs.setup("stt", env.log_level())
        settings = SttSettings.from_env(env)
        verify(settings.model_path)
    except (SettingsError, ModelError) as exc:
        print(f"stt: {exc}", file=sys.stderr)
        return 2
    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        # Bigger than our own frame limit, so we answer oversized frames with a 1009 and a reason.
        ws_max_size=4 * settings.max_frame_bytes,
        ws_ping_interval=20,
        timeout_graceful_shutdown=10,
        lifespan="on",
    )
    uvicorn.Server(config).run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
