"""The `compose` tier: the production stack as `docker compose up` runs it (images built from the
repo, host networking), with a generated environment whose ports cannot collide with the other
tiers, and real SIP phones calling into the containerised Asterisk."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from coach.record.roles import PASSWORD_VARS as PG_PASSWORD_VARS
from coach.redis_acl import PASSWORD_VARS
from coach.redis_server import free_port
from testbed.asterisk import installed_version

ROOT = Path(__file__).resolve().parents[2]


def unavailable(reason: str) -> None:
    """Skip the compose tier with a reason; under CI=true a skip is a failure."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"compose tier cannot run (and CI=true forbids skipping): {reason}")
    pytest.skip(reason)


class Stack:
    """One compose project: `compose(...)` runs `docker compose` on it."""

    def __init__(self, env_file: Path, env: dict[str, str], project: str) -> None:
        self.env_file = env_file
        self.env = env
        self.project = project
        self.sip_secrets = dict(
            line.split() for line in Path(env["SIP_SECRETS_FILE"]).read_text().splitlines()
        )
        """endpoint -> SIP secret (the agents' and the trunk's), as the phones present them."""

    def compose(
        self, *args: str, timeout: float = 900, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """`docker compose -p PROJECT --env-file FILE ARGS...`."""
        proc = subprocess.run(
            ["docker", "compose", "-p", self.project, "--env-file", str(self.env_file), *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"docker compose {' '.join(args)} failed:\n"
                f"{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
            )
        return proc

    def up(self, timeout: float = 900) -> None:
        """Start (or start again) and wait until every long-running service is healthy."""
        self.compose(
            "up",
            "-d",
            "--wait",
            "--wait-timeout",
            str(int(timeout)),
            *LONG_RUNNING,
            timeout=timeout + 60,
        )

    def logs(self, service: str) -> str:
        """A service's log lines."""
        return self.compose("logs", "--no-color", service, check=False).stdout

    @property
    def relay(self) -> str:
        """The relay's base URL."""
        return f"http://127.0.0.1:{self.env['RELAY_PORT']}"

    def ari(self, path: str) -> Any:
        """GET an ARI resource of the containerised Asterisk."""
        resp = requests.get(
            f"http://127.0.0.1:{self.env['ASTERISK_HTTP_PORT']}/ari{path}",
            auth=("coach", self.env["ARI_PASS"]),
            timeout=5,
        )
        resp.raise_for_status()
        return resp.json()


LONG_RUNNING = (
    "redis",
    "asterisk",
    "stt",
    "relay",
    "orchestrator",
    "ari",
    "postgres",
    "archive",
    "second_pass",
)


ASTERISK_UID = 101
"""The asterisk user of the Asterisk image: the SIP secrets file is handed to it."""


def stack_env() -> dict[str, str]:
    """A complete .env for a test stack: fresh secrets, ports nothing else here uses."""
    setup = subprocess.run(
        [str(ROOT / "scripts" / "docker-setup")],
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    if setup.returncode != 0:
        pytest.fail(f"scripts/docker-setup failed:\n{setup.stderr[-3000:]}")
    env = dict(line.split("=", 1) for line in setup.stdout.splitlines() if "=" in line)
    # The image installs exactly the Asterisk the asterisk tier runs (its chroot's version).
    chroot = subprocess.run(
        [str(ROOT / "scripts" / "asterisk-root")],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if chroot.returncode != 0:
        pytest.fail(f"scripts/asterisk-root failed:\n{chroot.stderr[-3000:]}")
    env["ASTERISK_VERSION"] = installed_version(Path(chroot.stdout.strip().splitlines()[-1]))
    ports = {
        name: str(free_port())
        for name in (
            "RELAY_PORT",
            "STT_PORT",
            "ORCH_PORT",
            "ARI_HTTP_PORT",
            "REDIS_PORT",
            "ASTERISK_SIP_PORT",
            "ASTERISK_HTTP_PORT",
            "ASTERISK_AMI_PORT",
            "PG_PORT",
            "ARCHIVE_PORT",
            "RECORD_PORT",
        )
    }
    env.update(ports)
    env.update(
        {
            "RELAY_TOKEN": secrets.token_urlsafe(32),
            "AUTH_SECRET": secrets.token_urlsafe(48),
            "ARI_PASS": secrets.token_urlsafe(24),
            # Strong as the entrypoint wants: upper, lower, digits and others, 20+ characters.
            "AMI_SECRET": f"Ami-{secrets.token_urlsafe(18)}-9",
            "ARI_URL": f"http://127.0.0.1:{ports['ASTERISK_HTTP_PORT']}/ari",
            "STT_URL": f"ws://127.0.0.1:{ports['STT_PORT']}",
            "RELAY_URL": f"http://127.0.0.1:{ports['RELAY_PORT']}",
            **{var: secrets.token_urlsafe(24) for var in PASSWORD_VARS.values()},
            **{var: secrets.token_urlsafe(24) for var in PG_PASSWORD_VARS.values()},
            # The relay is the one service that faces the network: here it faces this machine
            # only. The internal ports keep their defaults (loopback), which test_stack checks.
            "RELAY_HOST": "127.0.0.1",
            "BASE_PORT": str(30000 + (os.getpid() % 50) * 200),
            "MEDIA_PORT_COUNT": "100",
            "AGENT_DIAL": "PJSIP/200",
            "AGENT_ENDPOINTS": "200 201",
            "AGENT_TIMEOUT": "15",
            "TRUNK_MATCH": "127.0.0.1",
            "CALL_LANG": "es",
            "LOG_LEVEL": "info",
            "COACH_VERSION": "ci",
        }
    )
    return env


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The compose stack, built and healthy; taken down with its volumes at the end."""
    if os.geteuid() != 0 or not Path("/etc/debian_version").exists():
        unavailable("needs root on Debian (Docker engine, debootstrap)")
    env = stack_env()
    folder = tmp_path_factory.mktemp("compose")
    sip = subprocess.run(
        [sys.executable, "-m", "relay", "sip-secrets", *env["AGENT_ENDPOINTS"].split()],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=ROOT,
    )
    (folder / "sip-secrets").write_text(sip.stdout)
    (folder / "sip-secrets").chmod(0o400)
    os.chown(folder / "sip-secrets", ASTERISK_UID, ASTERISK_UID)  # as README says: Asterisk's
    env["SIP_SECRETS_FILE"] = str(folder / "sip-secrets")
    env_file = folder / "stack.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    env_file.chmod(0o600)
    stack = Stack(env_file, env, f"cctest{uuid.uuid4().hex[:6]}")
    try:
        stack.compose("build", timeout=1800)
        stack.up()
        yield stack
    finally:
        stack.compose("down", "-v", "--timeout", "30", check=False, timeout=300)


def image_labels(image: str) -> dict[str, str]:
    """Labels of a local image."""
    out = subprocess.run(
        ["docker", "image", "inspect", image],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    labels: dict[str, str] = json.loads(out)[0]["Config"]["Labels"] or {}
    return labels
