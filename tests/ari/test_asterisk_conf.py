"""The Asterisk configuration in asterisk/: dialplan lint, port ranges, generated secrets."""

from __future__ import annotations

import configparser
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ari.settings import Settings
from coach.settings import Env

pytestmark = pytest.mark.unit

CONF = Path(__file__).resolve().parents[2] / "asterisk"


def _lint_binary() -> str:
    exe = Path(sys.executable).parent / "asterisklint"
    found = str(exe) if exe.exists() else shutil.which("asterisklint")
    assert found, "asterisklint (PyPI, dev extra) is not installed"
    return found


def test_dialplan_passes_asterisklint():
    result = subprocess.run(
        [_lint_binary(), "dialplan-check", str(CONF / "extensions.conf")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0 and not result.stdout.strip() and not result.stderr.strip(), (
        result.stdout + result.stderr
    )


def test_asterisklint_catches_errors(tmp_path):
    # Guard against a lint that passes everything.
    bad = tmp_path / "extensions.conf"
    bad.write_text("[general]\n[globals]\n[ctx]\nexten => s,1,Bogus(x)\n")
    result = subprocess.run(
        [_lint_binary(), "dialplan-check", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "E_APP_MISSING" in result.stdout + result.stderr


def test_dialplan_shape():
    text = (CONF / "extensions.conf").read_text()
    assert re.search(r"MixMonitor\(.*\.raw,bD,.*\)$", text, re.M)
    # The disclosure (when set) plays before the recording starts, and nothing else does.
    call = text[text.index("[coach-call]") :]
    assert re.search(r"^RECORDING_DISCLOSURE=$", text, re.M)
    skip = call.index('GotoIf($["${RECORDING_DISCLOSURE}" = ""]?record)')
    play = call.index("Playback(${RECORDING_DISCLOSURE})")
    record = call.index("n(record),MixMonitor(")
    assert skip < play < record < call.index("Stasis(coach_app")
    assert "Stasis(coach_app,role=caller" in text
    assert re.search(r'GotoIf\(\$\["\$\{STASISSTATUS\}" = "FAILED"\]\?fallback', text)
    fallback = text[text.index("exten => fallback") :]
    assert "Dial(${AGENT_DIAL}" in fallback


def _ini(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(
        strict=False, interpolation=None, inline_comment_prefixes=(";",)
    )
    parser.read_string((CONF / name).read_text())
    return parser


def test_rtp_range_does_not_overlap_media_gateway():
    rtp = _ini("rtp.conf")["general"]
    start, end = int(rtp["rtpstart"]), int(rtp["rtpend"])
    assert (start, end) == (10000, 19999)
    s = Settings.from_env(Env({"ARI_PASS": "x", "RELAY_TOKEN": "y"}))
    assert s.base_port > end or s.base_port + s.port_count <= start


def test_http_is_private_and_no_secret_in_repo():
    assert _ini("http.conf")["general"]["bindaddr"] in ("127.0.0.1", "::1")
    manager = (CONF / "manager.conf").read_text()
    assert re.search(r"^bindaddr=127\.0\.0\.1$", manager, re.M)
    assert re.search(r"^webenabled=no$", manager, re.M)
    assert not re.search(r"^\s*secret\s*=", manager, re.M)
    assert not (CONF / "manager_users.conf").exists()
    assert not (CONF / "ari.conf").exists()
    for path in CONF.iterdir():
        text = path.read_text()
        assert not re.search(r"^\s*password\s*=\s*\S", text, re.M) or path.suffix == ".sh", path


def _copy_conf(dest: Path) -> None:
    for path in CONF.glob("*.conf"):
        shutil.copy(path, dest / path.name)


def _secrets(dest: Path, *endpoints: str, **override: str) -> str:
    """A SIP_SECRETS_FILE with a distinct strong secret per endpoint (and the trunk)."""
    lines = {e: f"Sip-{e}-Secret-0123x" for e in (*endpoints, "trunk")} | override
    path = dest / "sip-secrets"
    path.write_text("".join(f"{e} {v}\n" for e, v in lines.items()))
    return str(path)


AMI_SECRET = "Ami-Secret-0123x-Test"


def _entrypoint(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run the repo's entrypoint with `env` (then `true` instead of Asterisk); AMI_SECRET is a
    strong one unless `env` says otherwise."""
    return subprocess.run(
        ["sh", str(CONF / "docker-entrypoint.sh"), "true"],
        env={"AMI_SECRET": AMI_SECRET, **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_entrypoint_writes_crypt_password(tmp_path):
    _copy_conf(tmp_path)
    env = {
        **os.environ,
        "ASTERISK_CONF_DIR": str(tmp_path),
        "ARI_USER": "coach",
        "ARI_PASS": "s3cret-pass",
        "SIP_SECRETS_FILE": _secrets(tmp_path, "200", "201", "202"),
        "ASTERISK_HTTP_BIND": "172.20.0.5",
    }
    result = _entrypoint(env)
    assert result.returncode == 0, result.stderr
    ari = (tmp_path / "ari.conf").read_text()
    assert "s3cret-pass" not in ari
    hashed = re.search(r"^password = (\S+)$", ari, re.M)
    assert hashed and hashed.group(1).startswith("$6$")
    assert "password_format = crypt" in ari and "[coach]" in ari
    # The stored hash verifies against the password (same salt, same result).
    salt = hashed.group(1).split("$")[2]
    check = subprocess.run(
        ["openssl", "passwd", "-6", "-salt", salt, "s3cret-pass"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert check.stdout.strip() == hashed.group(1)
    assert oct((tmp_path / "ari.conf").stat().st_mode & 0o777) == "0o600"
    assert "bindaddr=172.20.0.5" in (tmp_path / "http.conf").read_text()
    assert "[200-auth]" in (tmp_path / "pjsip_auth.conf").read_text()


def test_entrypoint_writes_trunk_agents_ports_and_language(tmp_path):
    _copy_conf(tmp_path)
    env = {
        **os.environ,
        "ASTERISK_CONF_DIR": str(tmp_path),
        "ARI_PASS": "p",
        "SIP_SECRETS_FILE": _secrets(tmp_path, "300", "301"),
        "AGENT_ENDPOINTS": "300,301",
        "TRUNK_MATCH": "192.0.2.10,198.51.100.0/24",
        "ASTERISK_SIP_PORT": "5070",
        "ASTERISK_HTTP_PORT": "8099",
        "CALL_LANG": "en",
    }
    result = _entrypoint(env)
    assert result.returncode == 0, result.stderr
    trunk = (tmp_path / "pjsip_trunk.conf").read_text()
    assert "type=identify" in trunk and "endpoint=trunk" in trunk
    assert "match=192.0.2.10" in trunk and "match=198.51.100.0/24" in trunk
    agents = (tmp_path / "pjsip_agents.conf").read_text()
    assert "[300](agent-endpoint)" in agents and "[301](agent-aor)" in agents
    assert "[200]" not in agents
    auth = (tmp_path / "pjsip_auth.conf").read_text()
    assert "[301-auth]" in auth and "password=Sip-301-Secret-0123x" in auth
    assert "password=Sip-300-Secret-0123x" in auth  # each endpoint its own secret
    assert "[trunk-auth]" in auth and "password=Sip-trunk-Secret-0123x" in auth
    assert "auth=trunk-auth" in trunk
    acl = (tmp_path / "pjsip_acl.conf").read_text()
    assert "deny=0.0.0.0/0.0.0.0" in acl and "permit=198.51.100.0/24" in acl
    pjsip = (tmp_path / "pjsip.conf").read_text()
    assert "bind=0.0.0.0:5070" in pjsip and "language=en" in pjsip and "language=es" not in pjsip
    assert "bindport=8099" in (tmp_path / "http.conf").read_text()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TRUNK_MATCH", "1.2.3.4;drop"),
        ("AGENT_ENDPOINTS", "200 20$1"),
        ("ASTERISK_SIP_PORT", "50x"),
        ("CALL_LANG", "es;x"),
    ],
)
def test_entrypoint_refuses_bad_values(tmp_path, name, value):
    _copy_conf(tmp_path)
    env = {
        **os.environ,
        "ASTERISK_CONF_DIR": str(tmp_path),
        "ARI_PASS": "p",
        "SIP_SECRETS_FILE": _secrets(tmp_path, "200", "201", "202"),
        name: value,
    }
    result = _entrypoint(env)
    assert result.returncode != 0 and name in result.stderr


def test_entrypoint_refuses_without_password(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("ARI_PASS", "SIP_SECRETS_FILE")}
    env["ASTERISK_CONF_DIR"] = str(tmp_path)
    result = _entrypoint(env)
    assert result.returncode != 0 and "ARI_PASS" in result.stderr
    assert not (tmp_path / "ari.conf").exists()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"201": "Short-1a"}, "the secret of 201 is shorter than 16 characters"),
        ({"201": "onlylowercaseletters"}, "the secret of 201 needs 3 of"),
        ({"trunk": "has;semicolon-Aa1-xxxx"}, "the secret of trunk has characters"),
    ],
)
def test_entrypoint_refuses_weak_secrets(tmp_path, override, message):
    _copy_conf(tmp_path)
    result = _entrypoint(
        {
            **os.environ,
            "ASTERISK_CONF_DIR": str(tmp_path),
            "ARI_PASS": "p",
            "AGENT_ENDPOINTS": "200 201",
            "SIP_SECRETS_FILE": _secrets(tmp_path, "200", "201", **override),
        }
    )
    assert result.returncode != 0 and message in result.stderr


def test_entrypoint_refuses_an_endpoint_without_its_secret(tmp_path):
    _copy_conf(tmp_path)
    result = _entrypoint(
        {
            **os.environ,
            "ASTERISK_CONF_DIR": str(tmp_path),
            "ARI_PASS": "p",
            "AGENT_ENDPOINTS": "200 201",
            "SIP_SECRETS_FILE": _secrets(tmp_path, "200"),
        }
    )
    assert result.returncode != 0 and "no secret for endpoint 201" in result.stderr


def test_relay_sip_secrets_makes_a_file_the_entrypoint_accepts(tmp_path):
    made = subprocess.run(
        [sys.executable, "-m", "relay", "sip-secrets", "200", "201"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={**os.environ, "COACH_ENV_FILE": "/nonexistent"},
    )
    lines = dict(line.split() for line in made.stdout.splitlines())
    assert set(lines) == {"200", "201", "trunk"} and len(set(lines.values())) == 3
    (tmp_path / "s").write_text(made.stdout)
    _copy_conf(tmp_path)
    result = _entrypoint(
        {
            **os.environ,
            "ASTERISK_CONF_DIR": str(tmp_path),
            "ARI_PASS": "p",
            "AGENT_ENDPOINTS": "200 201",
            "SIP_SECRETS_FILE": str(tmp_path / "s"),
        }
    )
    assert result.returncode == 0, result.stderr


def _ami_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "ASTERISK_CONF_DIR": str(tmp_path),
        "ARI_PASS": "p",
        "SIP_SECRETS_FILE": _secrets(tmp_path, "200", "201", "202"),
        **extra,
    }


def test_entrypoint_writes_the_one_ami_user(tmp_path):
    _copy_conf(tmp_path)
    result = _entrypoint(_ami_env(tmp_path, ASTERISK_AMI_PORT="5099", AMI_USER="rec"))
    assert result.returncode == 0, result.stderr
    users = _ini_at(tmp_path / "manager_users.conf")
    assert users.sections() == ["rec"]
    user = users["rec"]
    assert user["secret"] == AMI_SECRET
    assert user["read"] == "" and user["write"] == "call"
    assert user["deny"] == "0.0.0.0/0.0.0.0" and user["permit"] == "127.0.0.1/255.255.255.255"
    assert oct((tmp_path / "manager_users.conf").stat().st_mode & 0o777) == "0o600"
    manager = (tmp_path / "manager.conf").read_text()
    assert re.search(r"^port=5099$", manager, re.M) and "#include manager_users.conf" in manager


@pytest.mark.parametrize(
    ("secret", "message"),
    [
        ("", "AMI_SECRET is not set"),
        ("Short-1a", "AMI_SECRET is shorter than 16 characters"),
        ("onlylowercaseletters", "AMI_SECRET needs 3 of"),
        ("Has;Semicolon-0123456", "AMI_SECRET has characters"),
    ],
)
def test_entrypoint_refuses_a_missing_or_weak_ami_secret(tmp_path, secret, message):
    _copy_conf(tmp_path)
    result = _entrypoint(_ami_env(tmp_path, AMI_SECRET=secret))
    assert result.returncode != 0 and message in result.stderr
    assert not (tmp_path / "manager_users.conf").exists()


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("", ""),
        ("custom/recording-notice", "custom/recording-notice"),
        ("beep&vm-rec", "beep&vm-rec"),
    ],
)
def test_entrypoint_writes_the_disclosure_global(tmp_path, value, written):
    _copy_conf(tmp_path)
    result = _entrypoint(_ami_env(tmp_path, RECORDING_DISCLOSURE=value))
    assert result.returncode == 0, result.stderr
    text = (tmp_path / "extensions.conf").read_text()
    assert re.findall(r"^RECORDING_DISCLOSURE=(.*)$", text, re.M) == [written]


def test_entrypoint_writes_a_language_per_number(tmp_path):
    _copy_conf(tmp_path)
    result = _entrypoint(_ami_env(tmp_path, CALL_LANG_NUMBERS="901=en +34902=es"))
    assert result.returncode == 0, result.stderr
    text = (tmp_path / "extensions_lang.conf").read_text()
    assert re.findall(r"^COACH_LANG_(\w+)=(\w+)$", text, re.M) == [("901", "en"), ("34902", "es")]
    # The dialplan reads it among its globals and hands the language to the app.
    dialplan = (tmp_path / "extensions.conf").read_text()
    globals_part = dialplan[dialplan.index("[globals]") : dialplan.index("[coach-inbound]")]
    assert "#include extensions_lang.conf" in globals_part
    assert "Stasis(coach_app,role=caller,lang=${COACH_LANG})" in dialplan


def test_entrypoint_without_languages_per_number_writes_an_empty_include(tmp_path):
    _copy_conf(tmp_path)
    result = _entrypoint(_ami_env(tmp_path))
    assert result.returncode == 0, result.stderr
    text = (tmp_path / "extensions_lang.conf").read_text()
    assert not re.findall(r"^COACH_LANG_", text, re.M)


@pytest.mark.parametrize("value", ["901=English", "9a1=en", "=en", "901=", "901", "901=e;n"])
def test_entrypoint_refuses_a_bad_language_per_number(tmp_path, value):
    _copy_conf(tmp_path)
    result = _entrypoint(_ami_env(tmp_path, CALL_LANG_NUMBERS=value))
    assert result.returncode != 0 and "CALL_LANG_NUMBERS" in result.stderr
    # Stopped before writing anything: the shipped include (no numbers) is untouched.
    assert (tmp_path / "extensions_lang.conf").read_text() == (
        CONF / "extensions_lang.conf"
    ).read_text()


@pytest.mark.parametrize("value", ["../../etc/passwd", "/abs/path", "a b", "x;y", "x)y"])
def test_entrypoint_refuses_a_disclosure_that_is_not_a_sound_name(tmp_path, value):
    _copy_conf(tmp_path)
    result = _entrypoint(_ami_env(tmp_path, RECORDING_DISCLOSURE=value))
    assert result.returncode != 0 and "RECORDING_DISCLOSURE" in result.stderr


def _ini_at(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.read_string(path.read_text())
    return parser


def test_relay_secrets_makes_an_ami_secret_the_entrypoint_accepts(tmp_path):
    made = subprocess.run(
        [sys.executable, "-m", "relay", "secrets"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={**os.environ, "COACH_ENV_FILE": "/nonexistent"},
    )
    secret = dict(line.split("=", 1) for line in made.stdout.splitlines())["AMI_SECRET"]
    _copy_conf(tmp_path)
    result = _entrypoint(_ami_env(tmp_path, AMI_SECRET=secret))
    assert result.returncode == 0, result.stderr
    assert f"secret = {secret}" in (tmp_path / "manager_users.conf").read_text()
