"""HTTPS/WSS with an operator's certificate, and the security headers on every response."""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import websockets

from coach.redis_server import EmbeddedRedis, free_port
from coach.settings import SettingsError
from fakes.poll import until_sync
from relay.auth import make_token
from relay.headers import CSP
from relay.settings import RelaySettings
from tests.relay.conftest import SECRET, SERVICE_TOKEN, RelayServer
from tests.relay.test_main import base_env

pytestmark = pytest.mark.integration


def _certificate(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def trust(cert: Path) -> ssl.SSLContext:
    """A client context that trusts only the test's self-signed certificate."""
    return ssl.create_default_context(cafile=str(cert))


@pytest.fixture
def tls_relay(tmp_path: Path, redis_server: EmbeddedRedis) -> Iterator[tuple[int, Path]]:
    cert, key = _certificate(tmp_path)
    port = free_port()
    env = {
        **base_env(),
        "RELAY_TOKEN": SERVICE_TOKEN,
        "AUTH_SECRET": SECRET,
        "RELAY_HOST": "127.0.0.1",
        "RELAY_PORT": str(port),
        "REDIS_URL": redis_server.url,
        "RELAY_TLS_CERT": str(cert),
        "RELAY_TLS_KEY": str(key),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "relay"], env=env, cwd=tmp_path, stderr=subprocess.PIPE, text=True
    )
    try:

        def up() -> bool:
            if proc.poll() is not None:
                raise AssertionError(proc.stderr.read() if proc.stderr else "relay exited")
            try:
                return httpx.get(f"https://127.0.0.1:{port}/health", verify=trust(cert)).is_success
            except httpx.HTTPError:
                return False

        until_sync(up, 60, what="the relay answering over HTTPS")
        yield port, cert
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if proc.stderr:
            proc.stderr.close()


def test_https_serves_the_console_with_hsts_and_refuses_plain_http(
    tls_relay: tuple[int, Path],
) -> None:
    port, cert = tls_relay
    page = httpx.get(f"https://127.0.0.1:{port}/", verify=trust(cert))
    assert page.status_code == 200 and "<html" in page.text.lower()
    assert page.headers["strict-transport-security"].startswith("max-age=")
    assert page.headers["content-security-policy"] == CSP
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{port}/health")


async def test_wss_streams_events(tls_relay: tuple[int, Path]) -> None:
    port, cert = tls_relay
    context = trust(cert)
    token = make_token(SECRET, "supervisor")
    url = f"wss://127.0.0.1:{port}/ws?callId=*"
    async with websockets.connect(url, ssl=context) as ws:
        await ws.send(json.dumps({"type": "auth", "token": token}))
        first = json.loads(await ws.recv())
        notices = first if isinstance(first, list) else [first]
        assert any(n.get("type") == "relay.live" for n in notices)


async def test_every_response_carries_the_security_headers(relay: RelayServer) -> None:
    async with httpx.AsyncClient(base_url=relay.http) as client:
        for path in ("/", "/wall.html", "/js/console.js", "/health", "/calls"):
            response = await client.get(path)
            assert response.headers["content-security-policy"] == CSP, path
            assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
            assert response.headers["x-content-type-options"] == "nosniff"
            assert "strict-transport-security" not in response.headers  # plain HTTP: no HSTS


def test_a_certificate_needs_its_key(tmp_path: Path) -> None:
    cert, _key = _certificate(tmp_path)
    with pytest.raises(SettingsError, match="go together"):
        RelaySettings(relay_token=SERVICE_TOKEN, auth_secret=SECRET, tls_cert=cert)
    with pytest.raises(SettingsError, match="no such file"):
        RelaySettings(
            relay_token=SERVICE_TOKEN,
            auth_secret=SECRET,
            tls_cert=cert,
            tls_key=tmp_path / "missing.pem",
        )
