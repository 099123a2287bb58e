"""Realistic events for tests: one factory per type, valid under the contract."""

from __future__ import annotations

from typing import Any


def started(call_id: str, agent: str = "200") -> dict[str, Any]:
    return {
        "type": "call.started",
        "callId": call_id,
        "agent": agent,
        "caller": {"number": "+34600000000", "name": "Ana"},
        "startedAt": 1_700_000_000_000,
        "lang": "es",
    }


def final(call_id: str, text: str, utt: str = "u1", speaker: str = "customer") -> dict[str, Any]:
    return {
        "type": "final",
        "callId": call_id,
        "speaker": speaker,
        "utteranceId": utt,
        "text": text,
        "start": 0.0,
        "end": 1.0,
        "confidence": 0.9,
        "lang": "es",
    }


def partial(call_id: str, text: str, utt: str = "u1") -> dict[str, Any]:
    return {
        "type": "partial",
        "callId": call_id,
        "speaker": "customer",
        "utteranceId": utt,
        "text": text,
        "start": 0.0,
        "end": 1.0,
    }
