"""Scoped service tokens, kept in one file and re-read when it changes.

`SERVICE_TOKENS_FILE` holds one token a line: `name scopes sha256`, e.g.

    # name     scopes                       sha256 of the token (sha256sum, hex)
    ari        stream                       3b1f...
    crm        publish:coach,publish:summary  9a0c...
    dashboard  read                         c4d2...

Scopes: `read` (every call: `WS /ws`, `GET /calls`), `publish:<event type>` or `publish:*`
(`POST /event`), `stream` (audio to STT, `WS /stream`), `control` (call control on ari's
HTTP port: pausing a recording; the relay presents its RELAY_TOKEN there). The file stores
hashes, never tokens; a token is rotated by adding the new line, moving its holder over, and deleting the old line:
the services notice the change at the next request (the file's mtime and size), no restart.
Without a file the one `RELAY_TOKEN` holds every scope (development; `python -m relay
secrets`).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from coach.settings import SettingsError

log = logging.getLogger("coach.tokens")

SCOPE_RE = re.compile(r"^(read|stream|control|publish:(\*|[a-z][a-z.]*))$")
ALL_SCOPES = frozenset({"read", "stream", "control", "publish:*"})


class TokenFileError(SettingsError):
    """The tokens file is malformed; the message names the line."""


@dataclass(frozen=True)
class ServiceToken:
    """Who presented a service token, and what it may do."""

    name: str
    scopes: frozenset[str]

    def may(self, scope: str) -> bool:
        """Whether the token holds `scope` (`publish:<type>` is held by `publish:*` too)."""
        if scope in self.scopes:
            return True
        return scope.startswith("publish:") and "publish:*" in self.scopes

    def may_publish(self, event_type: str) -> bool:
        """Whether the token may publish events of `event_type`."""
        return self.may(f"publish:{event_type}")


def token_hash(token: str) -> str:
    """The hex SHA-256 the file stores for `token`."""
    return hashlib.sha256(token.encode()).hexdigest()


def parse(text: str, source: str = "SERVICE_TOKENS_FILE") -> dict[str, ServiceToken]:
    """hash -> token of a tokens file's text; raises TokenFileError naming the bad line."""
    tokens: dict[str, ServiceToken] = {}
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 3:
            raise TokenFileError(f"{source}:{n}: want `name scopes sha256`")
        name, scopes, digest = parts
        wanted = frozenset(scopes.split(","))
        bad = sorted(s for s in wanted if not SCOPE_RE.match(s))
        if bad:
            raise TokenFileError(f"{source}:{n}: unknown scope {', '.join(bad)}")
        if not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise TokenFileError(f"{source}:{n}: the third field must be a hex sha256")
        if digest in tokens:
            raise TokenFileError(f"{source}:{n}: the same token twice")
        tokens[digest] = ServiceToken(name, wanted)
    return tokens


class ServiceTokens:
    """Looks up a presented token in the file (re-read on change) or the one RELAY_TOKEN."""

    def __init__(self, path: Path | None, fallback: str | None = None) -> None:
        self.path = path
        self.fallback = fallback
        """RELAY_TOKEN: every scope, used only when there is no file."""
        self._stamp: tuple[int, int] | None = None
        self._tokens: dict[str, ServiceToken] = {}
        if path is not None:
            self._reload()  # a broken file stops start-up, with the line named

    def _reload(self) -> None:
        assert self.path is not None
        stat = os.stat(self.path)
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp == self._stamp:
            return
        self._tokens = parse(self.path.read_text(encoding="utf-8"), str(self.path))
        self._stamp = stamp
        log.info("service tokens loaded", extra={"tokens": len(self._tokens)})

    def lookup(self, presented: str | None) -> ServiceToken | None:
        """The token's holder, or None if it is not a service token."""
        if not presented:
            return None
        if self.path is None:
            if self.fallback and hmac.compare_digest(presented.encode(), self.fallback.encode()):
                return ServiceToken("relay-token", ALL_SCOPES)
            return None
        try:
            self._reload()
        except (OSError, TokenFileError) as exc:
            # Keep the last good set: a half-written file must not lock every service out.
            log.error("service tokens not reloaded: %s", exc)
        digest = token_hash(presented)
        for known, holder in self._tokens.items():
            if hmac.compare_digest(known, digest):
                return holder
        return None
