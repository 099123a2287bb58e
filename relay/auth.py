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

Role = Literal["agent", "supervisor", "service"]
ROLES = ("agent", "supervisor")
DEFAULT_TTL = 12 * 3600


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

    def may_see(self, call_agent: str | None) -> bool:
        """Whether this caller may see a call handled by `call_agent`."""
        if self.role in ("service", "supervisor"):
            return True
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
    if not hmac.compare_digest(_sign(secret, body), parts[2]):
        raise AuthError("bad token signature")
    try:
        payload = json.loads(_unb64(parts[1]))
    except ValueError:
        raise AuthError("malformed token") from None
    if not isinstance(payload, dict) or payload.get("role") not in ROLES:
        raise AuthError("token has no valid role")
    exp = payload.get("exp")
    if not isinstance(exp, int) or exp <= (time.time() if now is None else now):
        raise AuthError("token expired")
    agent = payload.get("agent")
    if payload["role"] == "agent" and not isinstance(agent, str):
        raise AuthError("agent token without agent id")
    return Principal(role=payload["role"], agent=agent if isinstance(agent, str) else None)


class Authenticator:
    """Turns a presented credential into a Principal."""

    def __init__(self, service_token: str, secret: str) -> None:
        self._service_token = service_token
        self._secret = secret

    def authenticate(self, credential: str | None) -> Principal:
        """The service token, or a valid browser token; AuthError(401) otherwise."""
        if not credential:
            raise AuthError("missing token")
        if hmac.compare_digest(credential.encode(), self._service_token.encode()):
            return Principal(role="service")
        return verify_token(self._secret, credential)

    def require_service(self, credential: str | None) -> Principal:
        """Only the service token will do (producers)."""
        if not credential:
            raise AuthError("missing bearer token")
        if not hmac.compare_digest(credential.encode(), self._service_token.encode()):
            raise AuthError("invalid service token")
        return Principal(role="service")
