"""The whole native stack (embedded Redis, stt with the real model, relay, orchestrator) with
calls replayed as real RTP: what a browser would receive, checked from a WebSocket client."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from bench.stt.wer import wer
from coach.redis_server import EmbeddedRedis, free_port
from coach.tasks import TaskSet
from fakes.poll import until_async
from relay.auth import make_token

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
TOKEN = "e2e-service-token-0123456789"
SPEED = float(os.environ.get("E2E_SPEED", "1"))
# WER bounds for espeak-ng voices through the whole stack. Offline, faster-whisper-base scores
# 0.22-0.25 on these voices; streaming adds 0.1-0.2 (measured 0.30-0.45 per speaker, 2026-11).
# The bounds catch a broken pipeline (missing or swapped audio scores ~1.0), not model quality:
# that is measured on real speech in tests/stt and bench/stt.
WER_ONE_CALL = 0.55
WER_LOADED = 0.65  # three calls, six streams, on two cores


def make_call(transcript: str, out: Path) -> dict[str, Any]:
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "make_demo_call.py"),
            str(ROOT / "demo" / transcript),
            "--out",
            str(out),
        ],
        check=True,
    )
    reference: dict[str, Any] = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
    return reference


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("stack")
    redis = EmbeddedRedis(data_dir=tmp / "redis").start()
    env = {
        **os.environ,
        "RELAY_TOKEN": TOKEN,
        "AUTH_SECRET": "e" * 48,
        "REDIS_URL": redis.url,
        "BUS_PREFIX": f"e2e{uuid.uuid4().hex[:6]}",
        "RELAY_PORT": str(free_port()),
        "STT_PORT": str(free_port()),
        "ORCH_PORT": str(free_port()),
        "ARCHIVE_PORT": str(free_port()),
        "RECORD_PORT": str(free_port()),
        # The replayed WAVs are the calls' recordings (ari.replay): the relay serves them and
        # the second pass transcribes them from here.
        "RECORDINGS_DIR": str(tmp),
        "PG_PORT": str(free_port()),
        "PG_DATA_DIR": str(tmp / "postgres"),
        "REPLAY_BASE_PORT": str(30000 + os.getpid() % 10000),
        "LOG_LEVEL": "info",
    }
    env["STT_URL"] = f"ws://127.0.0.1:{env['STT_PORT']}"
    env["RELAY_URL"] = f"http://127.0.0.1:{env['RELAY_PORT']}"
    env.pop("OPENROUTER_API_KEY", None)  # rules-only: no network
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "stack.py")],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("READY "):
                urls = json.loads(line[6:])
                break
        else:
            raise AssertionError(f"stack exited with {proc.wait()} before READY; see var/log/")
        yield {"env": env, "urls": urls, "tmp": tmp}
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        if proc.stdout:
            proc.stdout.close()
        redis.cleanup()


async def replay(stack: dict[str, Any], wav: Path, call_id: str, agent: str) -> None:
    cmd = [
        sys.executable,
        "-m",
        "ari.replay",
        str(wav),
        "--speed",
        str(SPEED),
        "--call-id",
        call_id,
        "--agent",
        agent,
    ]
    proc = await asyncio.create_subprocess_exec(*cmd, env=stack["env"], cwd=ROOT)
    assert await proc.wait() == 0


async def collect(
    stack: dict[str, Any], call_ids: set[str], timeout: float, live: asyncio.Event
) -> dict[str, list[dict[str, Any]]]:
    """Every event of the given calls from the all-calls feed, until each has its summary;
    `live` is set once the relay says the feed is live (the collector is subscribed)."""
    port = stack["env"]["RELAY_PORT"]
    events: dict[str, list[dict[str, Any]]] = {c: [] for c in call_ids}
    done: set[str] = set()
    async with websockets.connect(
        f"ws://127.0.0.1:{port}/ws?callId=*",
        additional_headers={"Authorization": f"Bearer {TOKEN}"},
    ) as ws:
        async with asyncio.timeout(timeout):
            while done != call_ids:
                frame = await ws.recv()
                for line in str(frame).split("\n"):  # one event per line
                    event = json.loads(line)
                    if event.get("type") == "relay.live":
                        live.set()
                    elif event.get("callId") in call_ids:
                        events[event["callId"]].append(event)
                        if event["type"] == "summary":
                            done.add(event["callId"])
    return events


async def subscribed(
    tasks: TaskSet, stack: dict[str, Any], call_ids: set[str], timeout: float
) -> asyncio.Task[dict[str, list[dict[str, Any]]]]:
    """A running `collect` that is already subscribed to the all-calls feed."""
    live = asyncio.Event()
    collector = tasks.spawn(collect(stack, call_ids, timeout, live), "collector")
    waiter = tasks.spawn(live.wait(), "collector-live")
    await asyncio.wait({collector, waiter}, timeout=60, return_when=asyncio.FIRST_COMPLETED)
    if collector.done():
        collector.result()  # it ended before subscribing: raise why
    assert live.is_set(), "the collector's feed did not go live within 60 s"
    return collector


def spoken(reference: dict[str, Any], speaker: str) -> str:
    return " ".join(line["text"] for line in reference["lines"] if line["speaker"] == speaker)


def heard(events: list[dict[str, Any]], speaker: str) -> str:
    finals = sorted(
        (e for e in events if e["type"] == "final" and e["speaker"] == speaker),
        key=lambda e: e["start"],
    )
    return " ".join(e["text"] for e in finals)


async def test_demo_call_end_to_end(stack: dict[str, Any]) -> None:
    wav = stack["tmp"] / "demo.wav"
    reference = make_call("transcript.es.json", wav)
    call_id = f"demo-{uuid.uuid4().hex[:6]}"
    async with TaskSet("tests") as tasks:
        collector = await subscribed(tasks, stack, {call_id}, timeout=600)
        await replay(stack, wav, call_id, reference["agent"])
        events = (await collector)[call_id]
    types = [e["type"] for e in events]
    assert types[0] == "call.started" and events[0]["agent"] == reference["agent"]
    assert "call.ended" in types and types.index("call.ended") > types.index("final")
    assert "partial" in types
    for speaker in ("customer", "agent"):
        score = wer(spoken(reference, speaker), heard(events, speaker))
        assert score < WER_ONE_CALL, f"{speaker} WER {score:.2f}: {heard(events, speaker)!r}"
    # Tagged with the right speaker: each side's words are far from the other side's script.
    assert wer(spoken(reference, "agent"), heard(events, "customer")) > 0.8
    assert wer(spoken(reference, "customer"), heard(events, "agent")) > 0.8
    coach = [e for e in events if e["type"] == "coach"]
    assert coach and all(e["refs"] for e in coach), coach
    # Which playbook rules fire depends on how the synthetic voices are transcribed (the
    # cancellation, card-number and escalation lines are each misheard in some runs; the rules
    # themselves are tested on fixed text in tests/orchestrator). Asserted here: rule alerts
    # arrive through the whole stack and point at utterances of this call.
    utterances = {e["utteranceId"] for e in events if e["type"] == "final"}
    assert any(e["source"] == "rules" for e in coach), coach
    assert all(set(e["refs"]) <= utterances for e in coach), coach
    summary = next(e for e in events if e["type"] == "summary")
    assert summary["text"]
    await archived_in_history(stack, call_id, events)


async def archived_in_history(
    stack: dict[str, Any], call_id: str, events: list[dict[str, Any]]
) -> None:
    """The archive wrote the call into the record: the relay's history has its transcript,
    coaching and summary, and a search for what the customer said finds it at that second."""
    env = stack["env"]
    headers = {"Authorization": f"Bearer {make_token(env['AUTH_SECRET'], 'supervisor')}"}
    base = f"http://127.0.0.1:{env['RELAY_PORT']}"
    finals = [e for e in events if e["type"] == "final"]
    async with httpx.AsyncClient(base_url=base, headers=headers) as client:

        async def complete() -> dict[str, Any] | None:
            r = await client.get(f"/history/{call_id}")
            body: dict[str, Any] = r.json() if r.status_code == 200 else {}
            return body if body.get("summary") and body.get("endedAt") else None

        found = await until_async(complete, wait=60, what="the call in the history")
        assert found is not None
        call: dict[str, Any] = found
        assert [u["utteranceId"] for u in call["transcript"]] == [
            e["utteranceId"] for e in sorted(finals, key=lambda e: (e["start"], e["utteranceId"]))
        ]
        assert len(call["coaching"]) == len([e for e in events if e["type"] == "coach"])
        assert call["summary"]["text"] == next(e for e in events if e["type"] == "summary")["text"]
        said = max((e for e in finals if e["speaker"] == "customer"), key=lambda e: len(e["text"]))
        phrase = " ".join(said["text"].split()[:3])
        r = await client.get("/history", params={"q": f'"{phrase}"', "speaker": "customer"})
        hit = next(c for c in r.json()["calls"] if c["callId"] == call_id)
        assert any(said["start"] <= m["at"] <= said["end"] for m in hit["matches"]), hit

        # The second pass transcribed the replayed recording: the record beside the live one.
        async def recorded() -> dict[str, Any] | None:
            body = (await client.get(f"/history/{call_id}")).json()
            record: dict[str, Any] | None = body.get("recordTranscript")
            return record if record and record["status"] in ("done", "failed") else None

        record = await until_async(recorded, wait=300, what="the transcript of record")
        assert record is not None and record["status"] == "done", record
        assert {u["speaker"] for u in record["utterances"]} == {"customer", "agent"}
        live_text = " ".join(u["text"] for u in call["transcript"] if u["speaker"] == "customer")
        record_text = " ".join(
            u["text"] for u in record["utterances"] if u["speaker"] == "customer"
        )
        assert wer(live_text, record_text) < 0.6  # the same speech, heard twice


async def test_concurrent_calls_do_not_mix(stack: dict[str, Any]) -> None:
    wav_a, wav_b = stack["tmp"] / "a.wav", stack["tmp"] / "b.wav"
    ref_a = make_call("transcript.es.json", wav_a)
    ref_b = make_call("transcript2.es.json", wav_b)
    calls = {
        f"a1-{uuid.uuid4().hex[:6]}": (wav_a, ref_a),
        f"a2-{uuid.uuid4().hex[:6]}": (wav_a, ref_a),
        f"b-{uuid.uuid4().hex[:6]}": (wav_b, ref_b),
    }
    async with TaskSet("tests") as tasks:
        collector = await subscribed(tasks, stack, set(calls), timeout=900)
        await asyncio.gather(
            *(replay(stack, wav, cid, ref["agent"]) for cid, (wav, ref) in calls.items())
        )
        events = await collector
    for cid, (_, ref) in calls.items():
        assert events[cid][0]["agent"] == ref["agent"]
        for speaker in ("customer", "agent"):
            score = wer(spoken(ref, speaker), heard(events[cid], speaker))
            assert score < WER_LOADED, f"{cid} {speaker} WER {score:.2f}"
        words = " ".join(heard(events[cid], s) for s in ("customer", "agent")).lower()
        if ref is ref_b:
            assert "fibra" not in words and "descuento" not in words  # nothing of the other call
