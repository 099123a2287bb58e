"""Configuration of `python -m ari`, read once from the environment (see ari/ENV.md)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ari.rtp import FORMATS
from coach.bus import BusConfig
from coach.settings import Env, SettingsError

NO_AGENT_ACTIONS = ("hangup", "continue")
MEDIA_TRANSPORTS = ("rtp", "websocket")


@dataclass(frozen=True)
class Settings:
    """Checked settings of the call-control service and its media gateway."""

    ari_url: str
    """Asterisk HTTP base, e.g. http://asterisk:8088 (`.../ari` accepted; the suffix is added)."""
    ari_user: str
    """ARI user (ari.conf)."""
    ari_pass: str = field(repr=False)
    """ARI password; no default."""
    ari_app: str
    """Stasis application name the dialplan hands calls to."""
    rest_workers: int
    """ARI requests in flight at once (threads); more wait in a queue."""
    agent_dial: str
    """Dial string of the agent, e.g. PJSIP/200; its last path element is the agent id."""
    agent_timeout: int
    """Seconds to ring the agent before giving up."""
    no_agent_action: str
    """What happens to the caller when the agent is busy/unreachable/not answering."""
    no_agent_sound: str | None
    """Media URI played to the caller before hanging up (e.g. sound:vm-nobodyavail)."""
    media_host: str
    """Address Asterisk sends ExternalMedia RTP to (this process)."""
    media_bind: str
    """Local address the media gateway's UDP sockets bind to."""
    base_port: int
    """First UDP port of the media gateway (outside Asterisk's 10000-19999)."""
    port_count: int
    """Number of UDP ports the gateway may use (2 per call, 3 with the mix tap)."""
    media_format: str
    """ExternalMedia format: slin16, slin, ulaw or alaw."""
    media_transport: str
    """ExternalMedia transport: rtp (UDP to the media gateway) or websocket (chan_websocket)."""
    mix_tap: bool
    """Also stream the mixed call audio as speaker `mix`."""
    stt_url: str
    """Base URL of the STT service (ws://host:8080)."""
    relay_token: str = field(repr=False)
    """Bearer token for STT `WS /stream`; no default."""
    stt_buffer_seconds: float
    """Audio held per stream while STT is down or slow; the oldest is dropped beyond it."""
    redis_url: str | None
    """Redis of the bus; unset = an embedded server (native dev mode)."""
    bus: BusConfig
    """Bus key prefix and bounds (BUS_*), the same for every service."""
    lang: str
    """Language announced in call.started."""
    http_host: str
    """Address of GET /health and /metrics."""
    http_port: int
    """Port of GET /health and /metrics."""
    log_level: str
    """Log level."""
    ami_host: str = "127.0.0.1"
    """Address of Asterisk's AMI (loopback: manager.conf binds there)."""
    ami_port: int = 5038
    """Port of Asterisk's AMI (ASTERISK_AMI_PORT on the Asterisk side)."""
    ami_user: str = "coach-recording"
    """AMI user (write=call only, written by asterisk/docker-entrypoint.sh)."""
    ami_secret: str | None = field(default=None, repr=False)
    """Its secret; no default: unset = recordings cannot be paused (POST answers 503)."""
    service_tokens_file: str | None = None
    """Scoped service tokens (coach/tokens.py); `control` lets a token pause recordings."""

    @property
    def agent_id(self) -> str:
        """Agent id from AGENT_DIAL (PJSIP/200 -> 200)."""
        return self.agent_dial.rsplit("/", 1)[-1].split("@", 1)[0] or self.agent_dial

    @classmethod
    def from_env(cls, env: Env) -> Settings:
        """Build and check; raises SettingsError naming the bad variable."""
        base_port = env.int("BASE_PORT", 20000, min=1024, max=65000)
        port_count = env.int("MEDIA_PORT_COUNT", 1000, min=2, max=65535 - base_port)
        if base_port <= 19999 and base_port + port_count > 10000:
            raise SettingsError(
                f"BASE_PORT={base_port} overlaps Asterisk's RTP range 10000-19999 (rtp.conf)"
            )
        ari_url = env.str("ARI_URL", "http://127.0.0.1:8088").rstrip("/")
        if not ari_url.startswith(("http://", "https://")):
            raise SettingsError(f"ARI_URL={ari_url!r} must start with http:// or https://")
        # The seeds (and Asterisk's docs) write it with the /ari suffix; REST and the events
        # socket add it themselves, so both forms mean the same server.
        ari_url = ari_url.removesuffix("/ari").rstrip("/")
        media_format = env.choice("MEDIA_FORMAT", "slin16", tuple(FORMATS))
        media_transport = env.choice("MEDIA_TRANSPORT", "rtp", MEDIA_TRANSPORTS)
        if media_transport == "websocket" and media_format not in ("slin16", "slin"):
            raise SettingsError(
                f"MEDIA_FORMAT={media_format}: MEDIA_TRANSPORT=websocket carries slin16 or slin"
            )
        stt_url = env.str("STT_URL", "ws://127.0.0.1:8080").rstrip("/")
        if not stt_url.startswith(("ws://", "wss://")):
            raise SettingsError(f"STT_URL={stt_url!r} must start with ws:// or wss://")
        media_host = env.str("MEDIA_HOST", "127.0.0.1")
        return cls(
            ari_url=ari_url,
            ari_user=env.str("ARI_USER", "coach"),
            ari_pass=env.str("ARI_PASS"),
            ari_app=env.str("ARI_APP", "coach_app"),
            rest_workers=env.int("ARI_REST_WORKERS", 16, min=1, max=128),
            agent_dial=env.str("AGENT_DIAL", "PJSIP/200"),
            agent_timeout=env.int("AGENT_TIMEOUT", 30, min=1, max=600),
            no_agent_action=env.choice("NO_AGENT_ACTION", "hangup", NO_AGENT_ACTIONS),
            no_agent_sound=env.optional("NO_AGENT_SOUND"),
            media_host=media_host,
            # The address Asterisk sends to is the one to listen on, not every interface.
            media_bind=env.str("MEDIA_BIND", media_host),
            base_port=base_port,
            port_count=port_count,
            media_format=media_format,
            media_transport=media_transport,
            mix_tap=env.bool("MIX_TAP", False),
            stt_url=stt_url,
            relay_token=env.str("RELAY_TOKEN"),
            stt_buffer_seconds=env.float("STT_BUFFER_SECONDS", 30.0, min=0.1, max=600),
            redis_url=env.optional("REDIS_URL"),
            bus=BusConfig.from_env(env),
            # Not LANG: that is the POSIX locale in most shells (C.UTF-8).
            lang=env.str("CALL_LANG", "es"),
            http_host=env.str("ARI_HTTP_HOST", "127.0.0.1"),
            http_port=env.int("ARI_HTTP_PORT", 7071, min=0, max=65535),
            log_level=env.log_level(),
            ami_host=env.str("AMI_HOST", "127.0.0.1"),
            ami_port=env.int("AMI_PORT", 5038, min=1, max=65535),
            ami_user=env.str("AMI_USER", "coach-recording"),
            ami_secret=_ami_secret(env),
            service_tokens_file=env.optional("SERVICE_TOKENS_FILE"),
        )


def _ami_secret(env: Env) -> str | None:
    secret = env.optional("AMI_SECRET")
    if secret is not None and any(c in secret for c in "\r\n"):
        raise SettingsError("AMI_SECRET holds a line break (AMI is line-based)")
    return secret
