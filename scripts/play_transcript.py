"""Play a scripted call into the relay as live events (`POST /event`), at real-time pace.

A stand-in until speech-to-text and call control are in the stack: it produces what they
would (call.started, growing partials, finals, call.ended) from a transcript file, so the bus,
the relay and the browser can be exercised end to end.

    python scripts/play_transcript.py demo/transcript.es.json [--speed 2] [--call-id ID]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from pathlib import Path

import httpx


def main() -> int:
    """Post the transcript's events; print each final as it goes."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("transcript", type=Path)
    parser.add_argument("--speed", type=float, default=1.0, help="playback speed factor")
    parser.add_argument("--call-id", default=None)
    parser.add_argument("--relay", default=os.environ.get("RELAY_URL", "http://127.0.0.1:7070"))
    args = parser.parse_args()
    token = os.environ.get("RELAY_TOKEN")
    if not token:
        print("play_transcript: RELAY_TOKEN is not set", file=sys.stderr)
        return 2
    script = json.loads(args.transcript.read_text(encoding="utf-8"))
    call_id = args.call_id or f"demo-{uuid.uuid4().hex[:8]}"
    client = httpx.Client(base_url=args.relay, headers={"Authorization": f"Bearer {token}"})
    t0 = time.time()

    def post(event: dict[str, object]) -> None:
        r = client.post("/event", json={"callId": call_id, **event})
        if r.status_code != 200:
            raise SystemExit(f"relay refused {event['type']}: {r.status_code} {r.text}")

    def wait_until(call_seconds: float) -> None:
        delay = t0 + call_seconds / args.speed - time.time()
        if delay > 0:
            time.sleep(delay)

    post({"type": "call.started", "agent": script["agent"], "caller": script["caller"],
          "startedAt": int(t0 * 1000), "lang": script["lang"]})
    print(f"call {call_id} started (agent {script['agent']})", flush=True)
    for n, line in enumerate(script["lines"]):
        words = line["text"].split()
        utt = f"{line['speaker'][0]}{n}"
        steps = max(1, int(line["dur"] / 0.5))
        for k in range(1, steps):
            wait_until(line["at"] + k * 0.5)
            post({"type": "partial", "speaker": line["speaker"], "utteranceId": utt,
                  "text": " ".join(words[: len(words) * k // steps]),
                  "start": line["at"], "end": line["at"] + k * 0.5})
        wait_until(line["at"] + line["dur"])
        post({"type": "final", "speaker": line["speaker"], "utteranceId": utt, "text": line["text"],
              "start": line["at"], "end": line["at"] + line["dur"], "confidence": 0.95,
              "lang": script["lang"]})
        print(f"  {line['speaker']:>8}: {line['text']}", flush=True)
    post({"type": "call.ended", "endedAt": int(time.time() * 1000), "reason": "hangup"})
    print(f"call {call_id} ended", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
