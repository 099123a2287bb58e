"""`python -m relay` serves; `python -m relay token ...` prints a browser token;
`python -m relay secrets` prints fresh lines of every secret for a dev `.env`."""

from __future__ import annotations

import argparse
import logging
import secrets
import signal
import sys

import uvicorn

from coach import logs
from coach.record.roles import PASSWORD_VARS as PG_PASSWORD_VARS
from coach.redis_acl import PASSWORD_VARS
from coach.redis_server import EmbeddedRedis
from coach.settings import Env, SettingsError, service_env
from relay.app import create_app
from relay.auth import DEFAULT_TTL, make_token
from relay.settings import RelaySettings

log = logging.getLogger("relay")


def serve(env: Env) -> int:
    """Run the relay until SIGINT/SIGTERM."""
    try:
        level = env.log_level()
    except SettingsError as exc:
        return _bad_configuration(exc)  # before logging exists: stderr only
    logs.setup("relay", level)
    try:
        settings = RelaySettings.from_env(env)
    except SettingsError as exc:
        log.error("bad configuration: %s", exc)
        return _bad_configuration(exc)
    # uvicorn re-raises SIGTERM after its graceful shutdown; exit through Python instead, so
    # `finally` stops the embedded Redis and the exit status is 0.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    embedded: EmbeddedRedis | None = None
    if settings.redis_url is None:
        embedded = EmbeddedRedis(port=settings.redis_port, data_dir=settings.redis_data_dir).start()
        log.info(
            "REDIS_URL unset: started embedded redis",
            extra={"url": embedded.url, "dir": str(settings.redis_data_dir)},
        )
    try:
        try:
            app = create_app(settings, embedded_redis_url=embedded.url if embedded else None)
        except SettingsError as exc:  # e.g. a malformed SERVICE_TOKENS_FILE, line named
            log.error("bad configuration: %s", exc)
            return _bad_configuration(exc)
        config = uvicorn.Config(
            app,
            host=settings.host,
            port=settings.port,
            ws_max_size=settings.ws_max_message_bytes,
            log_config=None,
            timeout_graceful_shutdown=5,
            ssl_certfile=settings.tls_cert,
            ssl_keyfile=settings.tls_key,
        )
        uvicorn.Server(config).run()
    finally:
        if embedded:
            embedded.stop()
    return 0


def _bad_configuration(exc: SettingsError) -> int:
    print(
        f"relay: {exc} (see .env.example; `python -m relay secrets` makes dev secrets)",
        file=sys.stderr,
    )
    return 2


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="python -m relay")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("serve", help="run the relay (default)")
    tok = sub.add_parser("token", help="print a signed browser token (needs AUTH_SECRET)")
    tok.add_argument("--role", choices=("agent", "supervisor"), required=True)
    tok.add_argument("--agent", help="agent id (required for --role agent)")
    tok.add_argument("--ttl", type=int, default=DEFAULT_TTL, help="lifetime in seconds")
    sub.add_parser(
        "secrets",
        help="print fresh lines for .env: RELAY_TOKEN, AUTH_SECRET, ARI_PASS, AMI_SECRET, "
        "the Redis users' and the call record's database roles' passwords",
    )
    sip = sub.add_parser(
        "sip-secrets",
        help="print a SIP_SECRETS_FILE: a fresh secret for each agent endpoint and the trunk",
    )
    sip.add_argument(
        "endpoints",
        nargs="*",
        default=["200", "201", "202"],
        help="agent endpoints (AGENT_ENDPOINTS; default 200 201 202)",
    )
    args = parser.parse_args(argv)
    env = service_env()
    if args.command == "token":
        try:
            secret = env.str("AUTH_SECRET")
            print(make_token(secret, args.role, args.agent, args.ttl))
        except (SettingsError, ValueError) as exc:
            print(f"relay token: {exc}", file=sys.stderr)
            return 2
        return 0
    if args.command == "secrets":
        # Every secret the stack needs, each fresh: services, browsers, ARI, SIP phones.
        print(f"RELAY_TOKEN={secrets.token_urlsafe(32)}")
        print(f"AUTH_SECRET={secrets.token_urlsafe(48)}")
        print(f"ARI_PASS={secrets.token_urlsafe(24)}")
        # Strong as the Asterisk entrypoint demands (the recording-pause AMI user's secret).
        print(f"AMI_SECRET={sip_secret()}")
        for var in (*PASSWORD_VARS.values(), *PG_PASSWORD_VARS.values()):
            print(f"{var}={secrets.token_urlsafe(24)}")
        return 0
    if args.command == "sip-secrets":
        for endpoint in [*args.endpoints, "trunk"]:
            print(f"{endpoint} {sip_secret()}")
        return 0
    return serve(env)


def sip_secret() -> str:
    """A SIP (or AMI) secret the Asterisk entrypoint accepts: 24 URL-safe characters of 3+
    kinds."""
    while True:
        candidate = secrets.token_urlsafe(18)
        kinds = sum(
            any(test(c) for c in candidate)
            for test in (str.islower, str.isupper, str.isdigit, lambda c: not c.isalnum())
        )
        if kinds >= 3:
            return candidate


if __name__ == "__main__":
    sys.exit(main())
