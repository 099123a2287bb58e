"""`python -m ari`: call control + media gateway."""

from __future__ import annotations

import asyncio
import sys

from ari.service import serve
from ari.settings import Settings
from coach import logs
from coach.settings import SettingsError, service_env


def main() -> int:
    """Check settings, then run until SIGTERM."""
    try:
        settings = Settings.from_env(service_env())
    except SettingsError as exc:
        print(f"ari: configuration error: {exc}", file=sys.stderr)
        return 2
    logs.setup("ari", settings.log_level)
    asyncio.run(serve(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
