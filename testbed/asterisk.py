"""A real Asterisk 22 (Debian sid's, in the chroot `scripts/asterisk-root` makes) running the
repo's own `asterisk/` configuration, with test secrets filled in by the repo's own
`docker-entrypoint.sh`, so a configuration mistake fails a test.

Each instance lives in its own directory inside the chroot (`/run/coach-<name>/`: etc, spool,
log, run, db); only `asterisk.conf`'s [directories] are pointed there, everything else is the
file the image ships.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import requests

from coach.redis_server import free_port
from fakes.poll import until_sync

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "asterisk"
ARI_USER, ARI_PASS = "coach", "ari-test-password-0123"
AMI_USER, AMI_SECRET = "coach-recording", "Ami-Test-Secret-0123"
"""The AMI user the entrypoint writes (write=call only) and its test secret."""
TRUNK = "trunk"
"""The carrier's endpoint (and its digest username)."""


def sip_secret(endpoint: str) -> str:
    """The test secret of one SIP endpoint: each its own, strong enough for the entrypoint."""
    return f"Sip-{endpoint}-Test-Secret-0123"


class Unavailable(RuntimeError):
    """This machine cannot run the real Asterisk (not amd64, not root, not Debian)."""


class SetupFailed(RuntimeError):
    """The chroot could not be made (scripts/asterisk-root failed)."""


def unavailable(reason: str) -> None:
    """Say why the real Asterisk cannot run here (tests skip, or fail under CI=true)."""
    raise Unavailable(reason)


def ensure_chroot() -> Path:
    """The prepared chroot, built by scripts/asterisk-root when missing (root only)."""
    if os.uname().machine != "x86_64":
        unavailable(f"the Asterisk chroot is checked on amd64 only, not {os.uname().machine}")
    if os.geteuid() != 0:
        unavailable("needs root (chroot, debootstrap)")
    if not Path("/etc/debian_version").exists():
        unavailable("needs a Debian host (debootstrap, baresip)")
    proc = subprocess.run(
        [str(ROOT / "scripts" / "asterisk-root")],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if proc.returncode != 0:
        raise SetupFailed(f"scripts/asterisk-root failed:\n{proc.stderr[-3000:]}")
    return Path(proc.stdout.strip().splitlines()[-1])


def installed_version(chroot: Path) -> str:
    """Exact version of the chroot's asterisk package (the one the tier tests)."""
    for line in (chroot / ".call-coach-ready").read_text().splitlines():
        if line.startswith("version="):
            return line.split("=", 1)[1]
    raise AssertionError("chroot stamp without version")


class Asterisk:
    """One Asterisk process: `start()`, `stop()`, `cli()`, ARI `get()`."""

    def __init__(
        self,
        chroot: Path,
        *,
        sip_port: int,
        http_port: int,
        agents: list[str],
        env: dict[str, str] | None = None,
        extra_dialplan: str = "",
        ami_port: int | None = None,
    ) -> None:
        self.chroot = chroot
        self.name = f"coach-{uuid.uuid4().hex[:8]}"
        self.rel = f"/run/{self.name}"  # as Asterisk sees it
        self.dir = chroot / self.rel.lstrip("/")
        self.sip_port, self.http_port = sip_port, http_port
        self.ami_port = ami_port or free_port()
        """AMI on 127.0.0.1 (recording pause)."""
        self.agents = agents
        self.env = env or {}
        self.extra_dialplan = extra_dialplan
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"http://127.0.0.1:{http_port}"
        self.session = requests.Session()
        self.session.auth = (ARI_USER, ARI_PASS)

    @property
    def etc(self) -> Path:
        """Configuration directory (host path)."""
        return self.dir / "etc"

    @property
    def recordings(self) -> Path:
        """Where MixMonitor writes (host path of the dialplan's RECORDINGS)."""
        return self.dir / "spool" / "monitor" / "coach"

    @property
    def security_log(self) -> Path:
        """Asterisk's `security` log (SecurityEvent lines, what fail2ban reads)."""
        return self.dir / "log" / "security"

    @property
    def full_log(self) -> Path:
        """Asterisk's `full` log (verbose lines: which prompt played in which language)."""
        return self.dir / "log" / "full"

    def _write_secrets(self) -> Path:
        path = self.dir / "sip-secrets"
        lines = [f"{e} {sip_secret(e)}" for e in [*self.agents, TRUNK]]
        path.write_text("\n".join(lines) + "\n")
        path.chmod(0o600)
        return path

    def configure(self) -> None:
        """Copy the repo's configuration and run the repo's entrypoint on it."""
        for sub in ("etc", "spool/monitor/coach", "log", "run", "db", "cache"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        for path in CONF.iterdir():
            if path.suffix == ".conf":
                shutil.copy(path, self.etc / path.name)
        env = {
            **os.environ,
            "ASTERISK_CONF_DIR": str(self.etc),
            "ARI_USER": ARI_USER,
            "ARI_PASS": ARI_PASS,
            "SIP_SECRETS_FILE": str(self._write_secrets()),
            "AGENT_ENDPOINTS": " ".join(self.agents),
            "TRUNK_MATCH": "127.0.0.1",
            "ASTERISK_SIP_PORT": str(self.sip_port),
            "ASTERISK_HTTP_PORT": str(self.http_port),
            "ASTERISK_AMI_PORT": str(self.ami_port),
            "AMI_USER": AMI_USER,
            "AMI_SECRET": AMI_SECRET,
            **self.env,
        }
        proc = subprocess.run(
            ["sh", str(CONF / "docker-entrypoint.sh"), "true"],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        # The dialplan records to Debian's spool path; point it into this instance.
        ext = self.etc / "extensions.conf"
        ext.write_text(
            ext.read_text().replace("/var/spool/asterisk", f"{self.rel}/spool")
            + self.extra_dialplan
        )
        dirs = {
            "astetcdir": "etc",
            "astspooldir": "spool",
            "astrundir": "run",
            "astlogdir": "log",
            "astdbdir": "db",
            "astcachedir": "cache",
        }
        conf = self.etc / "asterisk.conf"
        text = conf.read_text()
        for key, sub in dirs.items():
            text, n = re.subn(rf"^{key} => .*$", f"{key} => {self.rel}/{sub}", text, flags=re.M)
            assert n == 1, f"asterisk.conf has no {key}"
        conf.write_text(text)

    def start(self, timeout: float = 60.0) -> Asterisk:
        """Start Asterisk and wait until ARI answers."""
        if not (self.etc / "ari.conf").exists():
            self.configure()
        out = (self.dir / "console.log").open("ab")
        self.proc = subprocess.Popen(
            [
                "chroot",
                str(self.chroot),
                "/usr/sbin/asterisk",
                "-f",
                "-C",
                f"{self.rel}/etc/asterisk.conf",
            ],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
        )
        out.close()
        proc = self.proc

        def ari_up() -> bool:
            if proc.poll() is not None:
                raise AssertionError(
                    f"asterisk exited with {proc.returncode}:\n" + self.console()[-4000:]
                )
            try:
                return bool(self.session.get(self.url + "/ari/asterisk/info", timeout=2).ok)
            except requests.RequestException:
                return False

        try:
            until_sync(ari_up, timeout, what="ARI up", interval=0.1)
        except TimeoutError:
            raise AssertionError(f"ARI not up after {timeout:.0f} s:\n{self.console()}") from None
        return self

    def load_test_modules(self) -> None:
        """Modules only the tests' hunting dialplan uses (the shipped modules.conf does not)."""
        out = self.cli("module load func_devstate.so")
        assert "Loaded" in out, out

    def console(self) -> str:
        """What Asterisk printed."""
        path = self.dir / "console.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def cli(self, command: str) -> str:
        """`asterisk -rx` against this instance."""
        proc = subprocess.run(
            [
                "chroot",
                str(self.chroot),
                "/usr/sbin/asterisk",
                "-C",
                f"{self.rel}/etc/asterisk.conf",
                "-rx",
                command,
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        return proc.stdout + proc.stderr

    def get(self, path: str) -> Any:
        """GET an ARI resource."""
        resp = self.session.get(self.url + "/ari" + path, timeout=5)
        resp.raise_for_status()
        return resp.json()

    def leftovers(self) -> tuple[list[str], list[str]]:
        """Channels and bridges that exist right now."""
        return ([c["name"] for c in self.get("/channels")], [b["id"] for b in self.get("/bridges")])

    def stop(self) -> None:
        """Stop Asterisk (graceful, then killed)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.cli("core stop now")
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def cleanup(self) -> None:
        """Stop and remove this instance's directory."""
        self.stop()
        self.session.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def hunt_dialplan(first: int, count: int) -> str:
    """Tests and bench only: a Local dial string target that hunts for the first registered,
    idle agent of `first`..`first+count-1` (as a queue would), so several calls on one ari
    reach different agents."""
    return f"""
[coach-test-hunt]
exten => s,1,Set(i={first})
 same => n(try),GotoIf($["${{DEVICE_STATE(PJSIP/${{i}})}}" = "NOT_INUSE"]?dial)
 same => n,Set(i=$[${{i}} + 1])
 same => n,GotoIf($[${{i}} < {first + count}]?try)
 same => n,Hangup(17)
 same => n(dial),Dial(PJSIP/${{i}},30)
"""


HUNT_DIAL = "Local/s@coach-test-hunt"
