"""The committed JSON Schema is the one the types generate, and it says what `validate` says."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from coach.events import DISPOSITIONS, END_REASONS, EVENT_TYPES, SENTIMENTS
from coach.schema import SCHEMA_PATH, render, schema
from tests.coach.test_events import EXAMPLES

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


def test_the_committed_schema_is_current() -> None:
    committed = (ROOT / SCHEMA_PATH).read_text(encoding="utf-8")
    assert committed == render(), (
        f"{SCHEMA_PATH} is stale: run `python -m coach.schema > {SCHEMA_PATH}`"
    )


def test_the_schema_names_every_type_and_the_enums() -> None:
    doc = schema()
    assert list(doc["discriminator"]["mapping"]) == list(EVENT_TYPES)
    defs = doc["$defs"]
    assert sorted(defs["EndReason"]["enum"]) == sorted(END_REASONS)
    assert sorted(defs["Disposition"]["enum"]) == sorted(DISPOSITIONS)
    assert sorted(defs["Sentiment"]["enum"]) == sorted(SENTIMENTS)
    metrics = defs["Metrics"]
    assert set(metrics["required"]) >= {
        "callTime",
        "talkRatio",
        "longestSilence",
        "silenceTotal",
        "overtalk",
        "speakers",
    }
    json.dumps(doc)  # plain JSON


def _validator() -> Any:
    jsonschema = pytest.importorskip("jsonschema")
    return jsonschema.Draft202012Validator(schema())


@pytest.mark.parametrize("event", EXAMPLES, ids=lambda e: str(e["type"]))
def test_an_integrator_s_validator_accepts_the_examples(event: dict[str, Any]) -> None:
    validator = _validator()
    assert list(validator.iter_errors({**event, "newField": [1]})) == []


@pytest.mark.parametrize(
    "event",
    [
        {**EXAMPLES[8], "disposition": "retenido"},
        {**EXAMPLES[3], "reason": "hangup"},
        {**EXAMPLES[-1], "talkRatio": {"robot": 0.5}},
        {**EXAMPLES[-1], "speakers": {"agent": {"talk": 1}}},
        {key: value for key, value in EXAMPLES[5].items() if key != "confidence"},
        {**EXAMPLES[0], "type": "call.begun"},
    ],
)
def test_an_integrator_s_validator_refuses_what_validate_refuses(event: dict[str, Any]) -> None:
    assert not _validator().is_valid(event)
