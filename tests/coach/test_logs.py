"""JSON logs: one object per line, extra fields kept, credentials in URLs masked."""

from __future__ import annotations

import json
import logging

import pytest

from coach.logs import JsonFormatter

pytestmark = pytest.mark.unit


def test_json_line_with_extra_fields_and_masked_token() -> None:
    record = logging.LogRecord(
        "uvicorn.error",
        logging.INFO,
        __file__,
        1,
        '"WebSocket /ws?callId=c1&token=%s" [accepted]',
        ("v1.abc.def",),
        None,
    )
    record.callId = "c1"
    line = json.loads(JsonFormatter("relay").format(record))
    assert line["service"] == "relay" and line["level"] == "info" and line["callId"] == "c1"
    assert "v1.abc.def" not in line["msg"] and "token=***" in line["msg"]
