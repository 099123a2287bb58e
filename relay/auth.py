"""Who is asking: service bearer tokens and signed, expiring browser tokens with a role.

Browser token: `v1.<base64url(JSON payload)>.<base64url(HMAC-SHA256(secret, "v1." + payload))>`
with payload `{"role": "agent"|"supervisor", "agent": "200", "iat": s, "exp": s}`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from typing import Literal

from coach.tokens import ServiceToken, ServiceTokens

Role = Literal["agent", "supervisor", "service"]
ROLES = ("agent", "supervisor")
DEFAULT_TTL = 12 * 3600
MAX_TTL = 24 * 3600
"""Longest lifetime a browser token may have (a shift); longer ones are refused at issue and
at verification, so a leaked token cannot have been made to live for ever."""
CLOCK_SKEW = 60
"""Seconds a token's `iat` may lie in the future (clocks of two hosts)."""


class AuthError(Exception):
    """Credentials missing or invalid (401) or insufficient (403)."""

    def __init__(self, message: str, status: int = 401) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True)
class Principal:
    """An authenticated caller."""

    role: Role
    agent: str | None = None
    service: ServiceToken | None = None
    """The service token's holder and scopes (role `service` only)."""

    def may_see(self, call_agent: str | None) -> bool:
        """Whether this caller may see a call handled by `call_agent`."""
        if self.role == "supervisor":
            return True
        if self.role == "service":
            return self.service is not None and self.service.may("read")
        return call_agent is not None and call_agent == self.agent


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(secret: str, message: str) -> str:
    return _b64(hmac.new(secret.encode(), message.encode(), hashlib.sha256).digest())


def make_token(
    secret: str,
    role: str,
    agent: str | None = None,
    ttl: int = DEFAULT_TTL,
    now: float | None = None,
) -> str:
    """A signed browser token for `role` (and `agent` for the agent role)."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}")
    if role == "agent" and not agent:
        raise ValueError("an agent token needs --agent")
    if not 0 < ttl <= MAX_TTL:
        raise ValueError(f"a token lives 1 to {MAX_TTL} seconds (--ttl)")
    issued = int(time.time() if now is None else now)
    payload: dict[str, object] = {"role": role, "iat": issued, "exp": issued + ttl}
    if agent:
        payload["agent"] = agent
    body = "v1." + _b64(json.dumps(payload, separators=(",", ":")).encode())
    return body + "." + _sign(secret, body)


def verify_token(secret: str, token: str, now: float | None = None) -> Principal:
    """Check a browser token's signature and expiry; raise AuthError(401) if bad."""
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != "v1":
        raise AuthError("malformed token")
    body = parts[0] + "." + parts[1]
    # Bytes, not str: compare_digest refuses non-ASCII strings (that was a 500).
    if not hmac.compare_digest(_sign(secret, body).encode(), parts[2].encode()):
        raise AuthError("bad token signature")
    try:
        payload = json.loads(_unb64(parts[1]))
    except ValueError:
        raise AuthError("malformed token") from None
    if not isinstance(payload, dict) or payload.get("role") not in ROLES:
        raise AuthError("token has no valid role")
    exp, iat = payload.get("exp"), payload.get("iat")
    clock = time.time() if now is None else now
    if not isinstance(exp, int) or not isinstance(iat, int):
        raise AuthError("malformed token")
    if exp - iat > MAX_TTL or iat > clock + CLOCK_SKEW:
        raise AuthError("token lifetime too long")
    if exp <= clock:
        raise AuthError("token expired")
    agent = payload.get("agent")
    if payload["role"] == "agent" and not isinstance(agent, str):
        raise AuthError("agent token without agent id")
    return Principal(role=payload["role"], agent=agent if isinstance(agent, str) else None)


class Authenticator:
    """Turns a presented credential into a Principal."""

    def __init__(self, service_token: str | ServiceTokens, secret: str) -> None:
        self.tokens = (
            service_token
            if isinstance(service_token, ServiceTokens)
            else ServiceTokens(None, fallback=service_token)
        )
        self._secret = secret

    def authenticate(self, credential: str | None) -> Principal:
        """A service token, or a valid browser token; AuthError(401) otherwise."""
        if not credential:
            raise AuthError("missing token")
        holder = self.tokens.lookup(credential)
        if holder is not None:
            return Principal(role="service", service=holder)
        return verify_token(self._secret, credential)

    def require_service(self, credential: str | None) -> Principal:
        """Only a service token will do (producers)."""
        if not credential:
            raise AuthError("missing bearer token")
        holder = self.tokens.lookup(credential)
        if holder is None:
            raise AuthError("invalid service token")
        return Principal(role="service", service=holder)
