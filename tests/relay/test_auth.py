"""Browser tokens and service credentials."""

from __future__ import annotations

import pytest

from coach.web import bearer
from relay.auth import MAX_TTL, Authenticator, AuthError, Principal, make_token, verify_token

pytestmark = pytest.mark.unit
SECRET = "s" * 40


def test_agent_token_round_trip_and_visibility() -> None:
    principal = verify_token(SECRET, make_token(SECRET, "agent", "200"))
    assert principal == Principal(role="agent", agent="200")
    assert principal.may_see("200") and not principal.may_see("201") and not principal.may_see(None)
    assert verify_token(SECRET, make_token(SECRET, "supervisor")).may_see("999")


def test_expired_tampered_and_foreign_tokens_are_refused() -> None:
    with pytest.raises(AuthError, match="expired"):
        verify_token(SECRET, make_token(SECRET, "agent", "200", ttl=60, now=1000), now=1061)
    token = make_token(SECRET, "agent", "200")
    head, _payload, sig = token.split(".")
    forged_payload = make_token(SECRET, "supervisor").split(".")[1]
    with pytest.raises(AuthError, match="signature"):
        verify_token(SECRET, f"{head}.{forged_payload}.{sig}")
    with pytest.raises(AuthError, match="signature"):
        verify_token("t" * 40, token)
    with pytest.raises(AuthError, match="malformed"):
        verify_token(SECRET, "not-a-token")


def test_agent_token_needs_an_agent() -> None:
    with pytest.raises(ValueError, match="--agent"):
        make_token(SECRET, "agent")
    with pytest.raises(ValueError):
        make_token(SECRET, "admin")


def test_service_token_only_where_required() -> None:
    auth = Authenticator("service-token-123456", SECRET)
    assert auth.authenticate("service-token-123456").role == "service"
    assert auth.authenticate(make_token(SECRET, "supervisor")).role == "supervisor"
    with pytest.raises(AuthError):
        auth.require_service(make_token(SECRET, "supervisor"))
    with pytest.raises(AuthError, match="missing"):
        auth.authenticate(None)
    assert bearer("Bearer abc") == "abc" and bearer("Basic abc") is None and bearer(None) is None


@pytest.mark.parametrize("token", ["v1.é.ñ", "v1.abc.ñññ", "é", "v1.\u00e9\u00e9.x"])
def test_non_ascii_tokens_are_refused_not_a_crash(token: str) -> None:
    with pytest.raises(AuthError):
        verify_token(SECRET, token)
    with pytest.raises(AuthError):
        Authenticator("service-token-123456", SECRET).authenticate(token)


def _signed(payload: dict[str, object]) -> str:
    import base64
    import hashlib
    import hmac
    import json

    body = "v1." + base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    sig = hmac.new(SECRET.encode(), body.encode(), hashlib.sha256).digest()
    return body + "." + base64.urlsafe_b64encode(sig).rstrip(b"=").decode()


def test_a_token_may_not_live_longer_than_a_shift() -> None:
    with pytest.raises(ValueError, match="--ttl"):
        make_token(SECRET, "supervisor", ttl=MAX_TTL + 1)
    # Signed with the right secret by someone who made it live for a year: refused anyway.
    forever = _signed({"role": "supervisor", "iat": 1000, "exp": 1000 + 365 * 86400})
    with pytest.raises(AuthError, match="lifetime"):
        verify_token(SECRET, forever, now=2000)
    future = _signed({"role": "supervisor", "iat": 10_000, "exp": 10_060})
    with pytest.raises(AuthError, match="lifetime"):
        verify_token(SECRET, future, now=1000)
    assert verify_token(SECRET, make_token(SECRET, "supervisor", ttl=MAX_TTL)).role == "supervisor"
