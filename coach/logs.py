"""JSON logs: one object per line with time, level, service, message and any `extra` fields.

Use `log.info("stream opened", extra={"callId": cid, "speaker": "agent"})` so that every line
says what happened to which call.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import Any

_STANDARD = set(vars(logging.makeLogRecord({}))) | {
    "message",
    "asctime",
    "taskName",
    "color_message",
}
# uvicorn logs request lines with their query string; browser tokens travel in `?token=`.
_SECRET_QUERY = re.compile(r"((?:token|api_key|password)=)[^&\s\"']+", re.IGNORECASE)
# At debug level websockets and uvicorn dump request headers and text frames: the service
# token rides in `Authorization: Bearer ...` and the browser's in the `{"token": ...}` frame.
_SECRET_HEADER = re.compile(
    r"((?:authorization|proxy-authorization|cookie|set-cookie|x-api-key):\s*(?:bearer\s+|basic\s+)?)\S[^\r\n]*",
    re.IGNORECASE,
)
_SECRET_JSON = re.compile(
    r"""((?:\\?["'])(?:token|secret|password|api_?key)(?:\\?["'])\s*:\s*(?:\\?["']))[^"'\\]+""",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    """Mask credentials in URLs (`token=...`), headers (`Authorization: ...`) and JSON frames."""
    text = _SECRET_QUERY.sub(r"\1***", text)
    text = _SECRET_HEADER.sub(r"\1***", text)
    return _SECRET_JSON.sub(r"\1***", text)


class JsonFormatter(logging.Formatter):
    """Format records as single-line JSON."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, ensure_ascii=False)


def setup(service: str, level: str = "info") -> None:
    """Route all logging (uvicorn's included) to stderr as JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        lg = logging.getLogger(name)
        lg.handlers[:] = []
        lg.propagate = True
    # Access logs at 5,000 req/s drown everything else; keep them at warning unless asked.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
