"""`python -m ari`: call control + media gateway."""

from __future__ import annotations

import sys

from ari.service import serve
from ari.settings import Settings
from coach import service


def main() -> int:
    """Check settings, then run until SIGTERM."""
    return service.main("ari", Settings.from_env, serve)


if __name__ == "__main__":
    sys.exit(main())
