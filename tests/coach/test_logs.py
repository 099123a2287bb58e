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


@pytest.mark.parametrize(
    ("message", "secret"),
    [
        ("< authorization: Bearer 3ae88a3bef651813251781dc7a645398", "3ae88a3bef6518"),
        ("> Authorization: Basic dXNlcjpwYXNz", "dXNlcjpwYXNz"),
        ("< cookie: session=abc123def", "abc123def"),
        ('> TEXT \'{"type": "auth", "token": "service-token-0123"}\' [63 bytes]', "service-token"),
        ('{\\"type\\":\\"auth\\",\\"token\\":\\"v1.abc.def\\"}', "v1.abc.def"),
    ],
)
def test_headers_and_auth_frames_logged_at_debug_are_masked(message: str, secret: str) -> None:
    record = logging.LogRecord("websockets.client", logging.DEBUG, __file__, 1, message, (), None)
    line = json.loads(JsonFormatter("stt").format(record))
    assert secret not in line["msg"] and "***" in line["msg"], line["msg"]
