"""Through the stack: a caller reads a card number in two groups with a pause, then the CVV.

Real STT (`python -m stt`, base model, partials on), a fresh embedded Redis (append-only,
fsync always) and the real relay: afterwards nothing the stream sent back (to ari), nothing in
any Redis key or in the append-only file, no log line of stt or the relay, and nothing the
relay's WebSocket sent holds the digits.

The audio: espeak-ng says the words, the digits are the real recorded prompts of
asterisk-core-sounds-es (espeak-ng's own digits are too unclear for Whisper to be a fair test).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import secrets
import subprocess
import sys
import urllib.request
import uuid
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import redis.asyncio as aioredis

from bench.coach.redact_audio import synthesise
from bench.stt import client
from coach.bus import BusConfig
from coach.logs import JsonFormatter
from coach.numwords import groups, is_number_token, tokens
from coach.redis_server import EmbeddedRedis, free_port
from coach.resample import StreamResampler
from coach.tasks import TaskSet
from fakes import poll
from tests.relay.conftest import SERVICE_TOKEN, start_relay

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
DIGITS = Path("/usr/share/asterisk/sounds/es/digits")
CARD = "4539578763621486"  # passes Luhn
CVV = "947"
RATE = 16_000
SKIP_KEYS = frozenset({"id", "ts", "callId", "utteranceId", "stream", "sentAt", "taskName"})
"""JSON keys holding ids and clocks, not text (their digits are not the caller's)."""


def _digit(d: str) -> npt.NDArray[np.float32]:
    with wave.open(str(DIGITS / f"{d}.wav")) as w:
        rate = w.getframerate()
        pcm = (np.frombuffer(w.readframes(w.getnframes()), dtype="<i2") / 32768).astype(np.float32)
    resample = StreamResampler(rate, RATE)
    return np.concatenate([resample(pcm), resample.flush()])


def _silence(seconds: float) -> npt.NDArray[np.float32]:
    return np.zeros(int(RATE * seconds), np.float32)


def _digits(ds: str) -> list[npt.NDArray[np.float32]]:
    return [part for d in ds for part in (_digit(d), _silence(0.12))]


def caller_audio(tmp: Path) -> npt.NDArray[np.int16]:
    """'Mi tarjeta es 4539 5787' (pause) '6362 1486' (pause) 'y el código de seguridad es 947'."""
    parts = [
        _silence(0.5),
        synthesise("Mi tarjeta es", "es", tmp / "a.wav"),
        _silence(0.2),
        *_digits(CARD[:4]),
        _silence(0.35),
        *_digits(CARD[4:8]),
        _silence(2.5),  # the pause: the second group is another final
        *_digits(CARD[8:12]),
        _silence(0.35),
        *_digits(CARD[12:]),
        _silence(2.5),
        synthesise("y el código de seguridad es", "es", tmp / "b.wav"),
        _silence(0.2),
        *_digits(CVV),
        _silence(1.5),
    ]
    audio = np.concatenate(parts)
    return np.asarray(np.clip(audio, -1, 1) * 32767, dtype=np.int16)


# -- finding the digits -----------------------------------------------------------------------

_WINDOWS = {CARD[i : i + 4] for i in range(len(CARD) - 3)} | {CVV}
# The same digits with the separators Whisper puts between digits it hears one by one.
_SPACED = re.compile("|".join(r"[\s,.-]+".join(w) for w in sorted(_WINDOWS)), re.IGNORECASE)


def spoken_digits(text: str) -> list[str]:
    """The digit strings of every number run in `text`, number words read as digits."""
    toks = tokens(text)
    out, i = [], 0
    while i < len(toks):
        if not is_number_token(toks, i):
            i += 1
            continue
        j = i
        while j + 1 < len(toks) and (
            is_number_token(toks, j + 1) or toks[j + 1].text in ",.-" or toks[j + 1].norm == "y"
        ):
            j += 1
        out.append("".join(g.digits for g in groups(toks, i, j)))
        i = j + 1
    return out


# Ids, clocks and offsets inside JSON quoted in a log message (a WebSocket frame at debug).
_NUMERIC_FIELDS = re.compile(r'"[A-Za-z]+":\s*(?:"\d[\d.-]*"|-?\d[\d.eE+-]*)')


# Addresses and process ids in server log lines: a random port (127.0.0.1:39579) can hold four
# of the card's digits by chance, and is never transcript text.
_ADDRESSES = re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?|\[\d+\]")


def leaks_in_text(text: str) -> bool:
    """Whether `text` holds 4 consecutive digits of the card, or the CVV."""
    text = _ADDRESSES.sub("", _NUMERIC_FIELDS.sub("", text))
    if _SPACED.search(text):
        return True
    return any(w in run for run in spoken_digits(text) for w in _WINDOWS)


_TEXT_FIELD = re.compile(r'"(?:text|w)":\s*"((?:[^"\\]|\\.)*)"')


def numbers_in_text_fields(value: str) -> bool:
    """Whether a `text` or `w` quoted inside `value` holds any number: this caller says nothing
    but the card and the CVV, so every number in what was transcribed is theirs (whatever
    Whisper misheard them as)."""
    return any(spoken_digits(m) for m in _TEXT_FIELD.findall(value))


def leaks_in_json(value: Any, key: str = "") -> list[str]:
    """The string values (outside id/clock keys) of a JSON document that hold the digits; any
    number at all in a `text` or `w`."""
    if isinstance(value, dict):
        return [hit for k, v in value.items() for hit in leaks_in_json(v, k)]
    if isinstance(value, list):
        return [hit for v in value for hit in leaks_in_json(v, key)]
    if isinstance(value, str) and key in ("text", "w") and spoken_digits(value):
        return [value]
    if isinstance(value, str) and numbers_in_text_fields(value):
        return [value]
    if isinstance(value, str) and key not in SKIP_KEYS:
        try:
            inner = json.loads(value)
        except ValueError:
            return [value] if leaks_in_text(value) else []
        if isinstance(inner, (dict, list)):
            return leaks_in_json(inner, key)
        return [value] if leaks_in_text(value) else []
    return []


def leaks_in_lines(lines: list[str]) -> list[str]:
    """JSON log lines (or plain ones) that hold the digits."""
    hits = []
    for line in lines:
        try:
            doc = json.loads(line)
        except ValueError:
            if leaks_in_text(line):
                hits.append(line)
            continue
        if str(doc.get("msg", "")).lstrip("<> ").startswith("BINARY"):
            continue  # a WebSocket frame dump at debug level: audio bytes in hex, not text
        hits += leaks_in_json(doc)
    return hits


# -- the stack --------------------------------------------------------------------------------


@pytest.fixture
def fresh_redis() -> Iterator[EmbeddedRedis]:
    """A Redis of its own: its append-only file holds this test's writes only."""
    server = EmbeddedRedis(fsync="always").start()
    yield server
    server.cleanup()


class Captured(logging.Handler):
    """Every log record of this process, formatted as the services write them."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(JsonFormatter("relay"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def captured_logs() -> Iterator[Captured]:
    handler = Captured()
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield handler
    root.removeHandler(handler)
    root.setLevel(level)


def _health(url: str) -> dict[str, Any]:
    body: bytes = urllib.request.urlopen(url + "/health", timeout=5).read()
    data: dict[str, Any] = json.loads(body)
    return data


@dataclass
class Stt:
    """`python -m stt` on the fresh Redis, partials on, logging at debug into `log`."""

    port: int
    token: str
    prefix: str
    log: Path

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
def stt(fresh_redis, base_model, tmp_path) -> Iterator[Stt]:
    svc = Stt(
        free_port(), secrets.token_hex(16), f"red{uuid.uuid4().hex[:6]}", tmp_path / "stt.log"
    )
    env = {
        **os.environ,
        "RELAY_TOKEN": svc.token,
        "STT_PORT": str(svc.port),
        "STT_HOST": "127.0.0.1",
        "MODEL_PATH": str(base_model.path),
        "REDIS_URL": fresh_redis.url,
        "BUS_PREFIX": svc.prefix,
        "STT_PARTIALS": "true",
        "LOG_LEVEL": "debug",
    }
    with svc.log.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "stt"], cwd=ROOT, env=env, stdout=log, stderr=log
        )

        def up() -> bool:
            assert proc.poll() is None, "stt exited at start-up"
            try:
                _health(svc.http)
            except OSError:
                return False
            return True

        try:
            poll.until_sync(up, 60, what="stt up")
            yield svc
        finally:
            proc.terminate()
            proc.wait(20)


async def test_card_in_two_groups_and_cvv_never_stored_logged_or_shown(
    fresh_redis, stt, tmp_path, captured_logs
):
    cid = f"t-{uuid.uuid4().hex[:10]}"
    pcm = caller_audio(tmp_path)
    relay = await start_relay(fresh_redis.url, BusConfig(prefix=stt.prefix))
    frames: list[str] = []
    try:
        ws = await relay.connect(cid, SERVICE_TOKEN)

        async def read() -> None:
            async for frame in ws:
                frames.append(frame if isinstance(frame, str) else frame.decode())

        async with TaskSet("test") as tasks:
            tasks.spawn(read(), "relay-ws-reader", call_id=cid)
            session = await client.play(
                f"ws://127.0.0.1:{stt.port}", stt.token, cid, "customer", pcm, RATE, lang="es"
            )

            async def shown() -> bool:
                lines = [json.loads(x) for f in frames for x in f.splitlines() if x.strip()]
                finals = [e for e in lines if e.get("type") == "final" and e.get("text")]
                return len(finals) >= len(session.finals())

            await poll.until_async(
                lambda: asyncio.to_thread(lambda: _health(stt.http)["busBuffered"] == 0),
                20,
                what="stt published everything",
            )
            await poll.until_async(shown, 20, what="the relay sent every final")
            await ws.close()
    finally:
        await relay.stop()

    # What STT made of it: the card in two finals (at least), then the CVV; all masked.
    finals = [r.event for r in session.finals()]
    partials = [r.event for r in session.partials()]
    kinds = [r["kind"] for f in finals for r in f.get("redactions") or ()]
    assert kinds.count("card") >= 2 and "cvv" in kinds, [f["text"] for f in finals]
    assert partials, "partials were on"
    for event in finals + partials:
        for span in event.get("redactions") or ():
            assert event["text"][span["charStart"] : span["charEnd"]] == f"[{span['kind']}]"

    # 1. What went back on the socket to ari.
    assert leaks_in_json([r.event for r in session.events]) == []
    # 2. Every key in Redis, whatever its type.
    r = aioredis.from_url(fresh_redis.url, decode_responses=True)
    dumped: list[Any] = []
    try:
        async for key in r.scan_iter(match="*", count=500):
            kind = await r.type(key)
            if kind == "stream":
                dumped += [fields for _, fields in (await r.xrange(key)) or []]
            elif kind == "string":
                dumped.append(await r.get(key))
            elif kind == "hash":
                dumped.append(await r.hgetall(key))
            elif kind == "list":
                dumped.append(await r.lrange(key, 0, -1))
            elif kind in ("set", "zset"):
                dumped.append(
                    list(await r.smembers(key)) if kind == "set" else await r.zrange(key, 0, -1)
                )
    finally:
        await r.aclose()
    assert any("final" in json.dumps(d) for d in dumped), "the events did reach Redis"
    assert leaks_in_json(dumped) == []
    # 3. The append-only file on disk.
    aof = b"".join(p.read_bytes() for p in fresh_redis.data_dir.rglob("*.aof*") if p.is_file())
    assert b"final" in aof
    aof_text = aof.decode("utf-8", "replace")
    assert not _SPACED.search(aof_text)
    assert not numbers_in_text_fields(aof_text.replace('\\"', '"'))
    # 4. The logs of stt (its process) and of the relay (this process).
    assert leaks_in_lines(stt.log.read_text(errors="replace").splitlines()) == []
    assert stt.token not in stt.log.read_text(errors="replace"), "the service token was logged"
    assert leaks_in_lines(captured_logs.lines) == []
    # 5. What the relay's WebSocket sent the console.
    lines = [line for f in frames for line in f.splitlines() if line.strip()]
    assert any('"final"' in line for line in lines)
    assert leaks_in_lines(lines) == []


def test_the_leak_finder_finds_the_digits_in_every_form():
    """The check above must be able to fail."""
    assert leaks_in_text("Mi tarjeta es 4, 5, 3, 9, 5, 7")
    assert leaks_in_text("es el 45395787")
    assert leaks_in_text("cuatro cinco tres nueve")
    assert leaks_in_text("el código es 947")
    assert not leaks_in_text("Mi tarjeta es [card]. El CVV es [cvv].")
    assert leaks_in_json({"id": "1764601234539-0", "text": "[card]"}) == []
    assert not leaks_in_text(""" > TEXT '{"id":"1796136453947-0","start":4.539,"text":"[card]"}'""")
    assert leaks_in_text(""" > TEXT '{"id":"1796136453947-0","text":"es 4539 5787"}'""")
    assert leaks_in_json({"e": json.dumps({"text": "6362 1486"})})
    assert leaks_in_json({"text": "siete ocho"})  # misheard digits are still the caller's
    assert not leaks_in_json({"text": "mi tarjeta es [card]", "start": 4.539})
