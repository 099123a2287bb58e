"""The JSON Schema of the events, for integrators: `python -m coach.schema > docs/events.schema.json`.

Generated from the types in `coach/events.py` (the one place the contract is written);
`tests/coach/test_schema.py` fails when the committed file is not what this prints.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec

from coach.events import Event

SCHEMA_PATH = "docs/events.schema.json"
"""Where the generated schema is committed, relative to the repository root."""


def schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of one event, any type, told apart by `type`."""
    body = msgspec.json.schema(Event)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "call coach event",
        "description": (
            "One event on the call coach bus (DESIGN.md, Events). Unknown fields are allowed "
            "and ignored by consumers; `id` is assigned by the bus and refused from producers."
        ),
        **body,
    }


def render() -> str:
    """The schema as committed: indented, UTF-8, ending in a newline."""
    return json.dumps(schema(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    print(render(), end="")
