"""Settings of `python -m ari`: defaults, required secrets, port range check."""

from __future__ import annotations

import pytest

from ari.gateway import PortAllocator, PortsExhausted
from ari.settings import Settings
from coach.settings import Env, SettingsError

pytestmark = pytest.mark.unit

BASE = {"ARI_PASS": "p", "RELAY_TOKEN": "t"}


def test_defaults():
    s = Settings.from_env(Env(BASE))
    assert (s.ari_app, s.base_port, s.media_format, s.agent_id, s.lang) == (
        "coach_app",
        20000,
        "slin16",
        "200",
        "es",
    )


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"RELAY_TOKEN": "t"}, "ARI_PASS"),
        ({"ARI_PASS": "p"}, "RELAY_TOKEN"),
        ({**BASE, "BASE_PORT": "10000"}, "BASE_PORT"),
        ({**BASE, "BASE_PORT": "9500", "MEDIA_PORT_COUNT": "1000"}, "BASE_PORT"),
        ({**BASE, "MEDIA_FORMAT": "opus"}, "MEDIA_FORMAT"),
        ({**BASE, "ARI_URL": "asterisk:8088"}, "ARI_URL"),
        ({**BASE, "STT_URL": "http://stt:8080"}, "STT_URL"),
        ({**BASE, "NO_AGENT_ACTION": "voicemail"}, "NO_AGENT_ACTION"),
    ],
)
def test_bad_settings_name_the_variable(env, name):
    with pytest.raises(SettingsError, match=name):
        Settings.from_env(Env(env))


def test_secrets_not_in_repr():
    s = Settings.from_env(Env({"ARI_PASS": "hunter2", "RELAY_TOKEN": "tok-secret"}))
    assert "hunter2" not in repr(s) and "tok-secret" not in repr(s)


def test_port_allocator_round_robin_and_exhaustion():
    ports = PortAllocator(20000, 3)
    a, b, c = ports.allocate(), ports.allocate(), ports.allocate()
    assert [a, b, c] == [20000, 20001, 20002]
    with pytest.raises(PortsExhausted):
        ports.allocate()
    ports.release(b)
    assert ports.allocate() == b and ports.in_use == 3


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost:8088/ari",
        "http://localhost:8088/ari/",
        "http://localhost:8088",
        "http://localhost:8088/",
    ],
)
def test_ari_url_with_or_without_ari_suffix(url):
    # The seeds write ARI_URL with /ari; REST and events add it themselves (not /ari/ari).
    assert Settings.from_env(Env({**BASE, "ARI_URL": url})).ari_url == "http://localhost:8088"


def test_media_transport():
    assert Settings.from_env(Env(BASE)).media_transport == "rtp"
    ws = Settings.from_env(Env({**BASE, "MEDIA_TRANSPORT": "websocket"}))
    assert ws.media_transport == "websocket"
    for env, name in (
        ({**BASE, "MEDIA_TRANSPORT": "sctp"}, "MEDIA_TRANSPORT"),
        ({**BASE, "MEDIA_TRANSPORT": "websocket", "MEDIA_FORMAT": "ulaw"}, "MEDIA_FORMAT"),
    ):
        with pytest.raises(SettingsError, match=name):
            Settings.from_env(Env(env))


def test_internal_ports_listen_on_loopback_by_default() -> None:
    s = Settings.from_env(Env({"ARI_PASS": "x", "RELAY_TOKEN": "y" * 16}))
    assert (s.http_host, s.media_bind) == ("127.0.0.1", "127.0.0.1")
    # The media sockets follow the address Asterisk is told to send to.
    moved = Settings.from_env(
        Env({"ARI_PASS": "x", "RELAY_TOKEN": "y" * 16, "MEDIA_HOST": "10.1.2.3"})
    )
    assert moved.media_bind == "10.1.2.3"
