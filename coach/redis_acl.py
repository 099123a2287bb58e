"""Redis users, one per service, each with only the keys and commands it uses.

The same rules serve the embedded server (native mode, tests) and the compose stack's Redis:
`acl_file()` renders them with each user's password as a SHA-256 hash (a password is never
written in clear to the ACL file or a command line).

What each user may do (keys are the bus's, `{prefix}:*`; nothing else is reachable):
- `stt`: publish events (the bus's Lua script) and nothing else; it cannot read a call.
- `ari`: publish, and read the active calls and a call's stream (it adopts calls after a
  restart).
- `relay`: read every call (history, live feed, active calls) and publish (`POST /event`);
  it also appends to and reads the knowledge report streams `{prefix}:kb:misses` and
  `{prefix}:kb:feedback` (coach/knowledge/report.py: XADD with MAXLEN, XREVRANGE), as the
  orchestrator appends its unanswered questions to `{prefix}:kb:misses` and every card it
  shows to `{prefix}:kb:shown` (coach/knowledge/shown.py: no call id or text, so retention
  and erasure leave it to its MAXLEN).
- `orchestrator`: what the relay may do, plus consumer groups (read, ack, claim) and its leases,
  cursors and poke channel under `{prefix}:orch:*`.
- `retention`: the retention and erasure worker, the only user that deletes: on the bus's
  streams and index and the erasure queue only (`ROLE_KEYS`), it reads, trims, deletes
  entries and keys, and consumes the erasure queue; it cannot publish an event. After an
  erasure it asks for BGREWRITEAOF, so the erased text leaves the append-only file at once.
- `archive`: the call-record worker: its consumer group on the all-events stream only (read,
  acknowledge, claim, group info); it can neither publish nor read a call's own stream.
- `second_pass`: the transcript of record (second_pass/): the same rights as `archive`, for
  its own consumer group (it takes `call.ended` from the all-events stream).
- `default`: the operator's, with a password; every command but the dangerous ones
  (FLUSHALL, CONFIG, DEBUG, KEYS, ...), which no user has.
Redis checks the commands a script runs against the calling user, so a publisher holds XADD,
HSET, HDEL, HGET and EXPIRE on the bus's keys; what it cannot do is delete or trim a stream,
touch another key, or run anything outside its list.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from urllib.parse import quote, urlsplit, urlunsplit

# CLIENT SETINFO is left out: Redis 7.0 (Debian bookworm) does not know it, and redis-py
# ignores its refusal.
CONNECT = "+ping +hello +auth +client|setname +client|getname +client|id +select"
# XLEN and TIME: the script picks the length or the time bound of the all-events stream.
PUBLISH = "+evalsha +eval +script|load +script|exists +xadd +xlen +time +hset +hget +hdel +expire +multi +exec +discard"
READ = "+xrange +xrevrange +xread +hgetall +hget +hdel +exists +multi +exec +discard"
GROUPS = "+xgroup|create +xreadgroup +xack +xautoclaim +xpending +xinfo|groups"
LEASES = "+set +get +mget +del +pexpire +sadd +srem +smembers +publish +subscribe +unsubscribe"
ERASE = (
    "+scan +type +exists +xrange +xrevrange +xlen +xtrim +xdel +del +unlink +hgetall +hget +hset +hdel "
    "+xadd +xgroup|create +xreadgroup +xack +xautoclaim +xpending +xinfo|groups "
    "+multi +exec +discard +bgrewriteaof"
)

ROLES: Mapping[str, str] = {
    "stt": PUBLISH,
    "ari": f"{PUBLISH} {READ}",
    "relay": f"{READ} {PUBLISH}",
    "orchestrator": f"{READ} {PUBLISH} {GROUPS} {LEASES}",
    "retention": ERASE,
    "archive": GROUPS,
    "second_pass": GROUPS,
}
"""The commands of each service's user (module docstring)."""
ROLE_KEYS: Mapping[str, tuple[str, ...]] = {
    "retention": (
        "events",
        "call:*",
        "calls",
        "erasure",
        "erasure:status",
        "kb:misses",
        "kb:feedback",
    ),
    "archive": ("events",),
    "second_pass": ("events",),
}
"""Keys (under `{prefix}:`) of a user narrower than the whole bus; the others get `{prefix}:*`."""


def user_rules(role: str, password: str, prefix: str = "coach") -> str:
    """One `user` line of an ACL file for `role`."""
    digest = hashlib.sha256(password.encode()).hexdigest()
    if role == "default":
        return f"user default on #{digest} ~* &* +@all -@dangerous"
    commands = ROLES[role]
    keys = " ".join(f"~{prefix}:{k}" for k in ROLE_KEYS.get(role, ("*",)))
    channels = "" if role in ROLE_KEYS else f" &{prefix}:*"
    return (
        f"user {role} on #{digest} resetkeys {keys} resetchannels{channels} "
        f"-@all {CONNECT} {commands}"
    )


def acl_file(passwords: Mapping[str, str], prefix: str = "coach") -> str:
    """The ACL file for `passwords` (role -> password; `default` is required)."""
    if "default" not in passwords:
        raise ValueError("the default user needs a password (requirepass)")
    unknown = set(passwords) - {*ROLES, "default"}
    if unknown:
        raise ValueError(f"unknown Redis roles: {', '.join(sorted(unknown))}")
    return "".join(user_rules(role, pw, prefix) + "\n" for role, pw in sorted(passwords.items()))


def with_user(url: str, user: str, password: str) -> str:
    """`url` with `user:password@` in it (the form redis-py reads credentials from)."""
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{host}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


PASSWORD_VARS: Mapping[str, str] = {
    "default": "REDIS_PASSWORD",
    "stt": "REDIS_STT_PASSWORD",
    "ari": "REDIS_ARI_PASSWORD",
    "relay": "REDIS_RELAY_PASSWORD",
    "orchestrator": "REDIS_ORCH_PASSWORD",
    "retention": "REDIS_RETENTION_PASSWORD",
    "archive": "REDIS_ARCHIVE_PASSWORD",
    "second_pass": "REDIS_SECOND_PASS_PASSWORD",
}
"""The variable that holds each user's password (compose's redis-acl service reads them all)."""
MIN_PASSWORD = 16
"""Shortest password accepted for a Redis user."""


def main(argv: list[str] | None = None) -> int:
    """`python -m coach.redis_acl FILE`: write the ACL file from the REDIS_*_PASSWORD variables."""
    import argparse  # noqa: PLC0415 - CLI only
    import os  # noqa: PLC0415
    import sys  # noqa: PLC0415

    from coach.settings import SettingsError, service_env  # noqa: PLC0415

    parser = argparse.ArgumentParser(prog="python -m coach.redis_acl", description=main.__doc__)
    parser.add_argument("file", help="where to write the ACL file (Redis's --aclfile)")
    args = parser.parse_args(argv)
    env = service_env()
    try:
        passwords = {role: env.str(var) for role, var in PASSWORD_VARS.items()}
        short = [PASSWORD_VARS[r] for r, pw in passwords.items() if len(pw) < MIN_PASSWORD]
        if short:
            raise SettingsError(f"{', '.join(short)}: at least {MIN_PASSWORD} characters")
        text = acl_file(passwords, env.str("BUS_PREFIX", "coach"))
    except SettingsError as exc:
        print(f"redis-acl: {exc} (python -m relay secrets makes them)", file=sys.stderr)
        return 2
    tmp = f"{args.file}.tmp"
    # Hashes only; readable by the Redis container's own user, which is not ours.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    os.replace(tmp, args.file)
    print(f"redis-acl: wrote {len(passwords)} users to {args.file}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
