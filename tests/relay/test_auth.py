"""Browser tokens and service credentials."""

from __future__ import annotations

import pytest

from coach.web import bearer
from relay.auth import Authenticator, AuthError, Principal, make_token, verify_token

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
