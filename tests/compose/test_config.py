"""The compose file gives each service exactly the variables its code reads: none missing (a
setting in .env that silently does nothing) and none extra (a secret a service has no use
for). Read statically from the code, so a new setting fails here until compose passes it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from coach.record import roles as record_roles
from coach.redis_acl import PASSWORD_VARS

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
READ = re.compile(r'env\.(?:str|int|float|bool|choice|optional|raw)\(\s*"([A-Z][A-Z_0-9]*)"')
# Read by the code but not the service's in a container: LANG is the locale there (STT_LANG
# is the setting), the embedded Redis is native mode only, REPLAY_BASE_PORT is ari.replay's.
# PG_PORT and PG_DATA_DIR are the embedded PostgreSQL's (compose builds DATABASE_URL instead).
NOT_IN_CONTAINERS = {
    "LANG",
    "REDIS_PORT",
    "REDIS_DATA_DIR",
    "REPLAY_BASE_PORT",
    "PG_PORT",
    "PG_DATA_DIR",
}
# Set by compose itself for the image's healthcheck.
COMPOSE_ONLY = {"HEALTH_PORT"}
# coach/knowledge is the knowledge base of the relay (search box) and the orchestrator (cards).
KNOWLEDGE_READERS = {"relay", "orchestrator"}
ENTRYPOINT = re.compile(r"\$\{([A-Z][A-Z_0-9]*)[:}-]")


def reads(*packages: str) -> set[str]:
    """Variables the code of these packages reads through coach.settings.Env."""
    names: set[str] = set()
    for package in packages:
        for path in (ROOT / package).rglob("*.py"):
            if (
                package == "coach"
                and path.parent.name == "knowledge"
                and not (KNOWLEDGE_READERS & set(packages))
            ):
                continue
            text = path.read_text()
            names |= set(READ.findall(text))
            if "env.log_level()" in text:
                names.add("LOG_LEVEL")
    return names


def environment(service: str) -> set[str]:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    env = compose["services"][service].get("environment") or {}
    return set(env) - COMPOSE_ONLY


@pytest.mark.parametrize("service", ["relay", "stt", "orchestrator", "ari", "retention"])
def test_each_service_gets_only_its_own_variables(service):
    assert environment(service) == reads(service, "coach") - NOT_IN_CONTAINERS


def test_gpu_stt_gets_what_stt_gets():
    assert environment("stt-gpu") == environment("stt")


def test_asterisk_gets_what_its_entrypoint_reads():
    script = (ROOT / "asterisk" / "docker-entrypoint.sh").read_text()
    assert environment("asterisk") == set(ENTRYPOINT.findall(script)) - {"ASTERISK_CONF_DIR"}


def test_no_service_reads_the_whole_env_file():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert not [name for name, svc in compose["services"].items() if "env_file" in svc]


def test_redis_acl_gets_the_redis_passwords_and_nothing_else():
    assert environment("redis-acl") == {*PASSWORD_VARS.values(), "BUS_PREFIX"}


def test_each_service_reaches_redis_as_its_own_user():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    users = {
        name: compose["services"][name]["environment"]["REDIS_URL"].split("//")[1].split(":")[0]
        for name in ("relay", "stt", "stt-gpu", "orchestrator", "ari", "retention")
    }
    assert users == {
        "relay": "relay",
        "stt": "stt",
        "stt-gpu": "stt",
        "orchestrator": "orchestrator",
        "ari": "ari",
        "retention": "retention",
    }
    assert "--aclfile" in compose["services"]["redis"]["command"]


def test_retention_reaches_the_recordings_and_the_record_as_its_own_role():
    retention = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["retention"]
    mount = next(v for v in retention["volumes"] if v.startswith("recordings:"))
    assert mount.split(":")[1] == retention["environment"]["RECORDINGS_DIR"]
    assert retention["environment"]["DATABASE_URL"].startswith("postgresql://coach_retention:")


def test_the_tls_option_gives_the_relay_its_certificate():
    tls = yaml.safe_load((ROOT / "deploy" / "compose.tls.yml").read_text())["services"]["relay"]
    assert set(tls["environment"]) == {"RELAY_TLS_CERT", "RELAY_TLS_KEY"} <= environment("relay")
    assert tls["volumes"][0].endswith(":/tls:ro")
    assert "https://" in " ".join(tls["healthcheck"]["test"])


def test_the_archive_gets_only_its_own_variables():
    assert environment("archive") == reads("archive", "coach") - NOT_IN_CONTAINERS


def test_the_second_pass_gets_only_its_own_variables():
    assert environment("second_pass") == reads("second_pass", "coach") - NOT_IN_CONTAINERS


def test_the_second_pass_reads_recordings_in_asterisks_group():
    # Asterisk (group 101) writes recordings 0640 (umask 027 in its entrypoint); the relay's
    # audio route reads them the same way (tests/compose/test_stack.py reads one for real).
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    svc = services["second_pass"]
    env = svc["environment"]
    for name in ("second_pass", "relay"):
        assert services[name].get("group_add") == ["101"] and "user" not in services[name]
    assert env["REDIS_URL"].startswith("redis://second_pass:")
    assert env["DATABASE_URL"].startswith(f"postgresql://{record_roles.ARCHIVE}:")
    mount = next(v for v in svc["volumes"] if v.startswith("recordings:"))
    assert mount.split(":")[1] == env["RECORDINGS_DIR"] and mount.endswith(":ro")
    assert "models:/models:ro" in svc["volumes"]


def test_the_call_record_is_reached_as_each_services_own_role():
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    archive, relay = services["archive"]["environment"], services["relay"]["environment"]
    assert archive["REDIS_URL"].startswith("redis://archive:")
    assert archive["DATABASE_URL"].startswith(f"postgresql://{record_roles.ARCHIVE}:")
    assert relay["DATABASE_URL"].startswith(f"postgresql://{record_roles.READER}:")
    mount = next(v for v in services["relay"]["volumes"] if v.startswith("recordings:"))
    assert mount.split(":")[1] == relay["RECORDINGS_DIR"] and mount.endswith(":ro")


def test_postgres_gets_the_record_roles_passwords_and_its_port():
    assert environment("postgres") == {*record_roles.PASSWORD_VARS.values(), "PG_PORT"}
    script = (ROOT / "images" / "postgres" / "entrypoint.sh").read_text()
    assert all(var in script for var in record_roles.PASSWORD_VARS.values())
    assert all(role in script for role in record_roles.ROLES)
