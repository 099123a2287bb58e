"""Serving a call's recording to a browser's audio element, with HTTP Range.

Asterisk's MixMonitor writes `<name>.raw` (asterisk/extensions.conf: option D, interleaved
stereo): headerless 16-bit little-endian PCM at 8 kHz, left the caller, right the agent. No
browser plays that, so it is served as a WAV: a 44-byte RIFF header computed from the file's
size, followed by the file's bytes, both addressable by Range as one virtual file (the header
is never written to disk; a file still being written is served as far as it goes). WAV and
other files are served as they are (Starlette's FileResponse answers Range itself).
"""

from __future__ import annotations

import re
import struct
from collections.abc import AsyncIterator
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response, StreamingResponse

RAW_RATE = 8000
"""Sample rate of MixMonitor's `.raw` (Asterisk's `slin` format)."""
RAW_CHANNELS = 2
CHUNK = 64 * 1024
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
TYPES = {".wav": "audio/wav", ".mp3": "audio/mpeg", ".ogg": "audio/ogg", ".raw": "audio/wav"}


def wav_header(data_bytes: int, rate: int = RAW_RATE, channels: int = RAW_CHANNELS) -> bytes:
    """A canonical 44-byte PCM16 WAV header for `data_bytes` of samples."""
    block = channels * 2
    return (
        b"RIFF"
        + struct.pack("<I", 36 + data_bytes)
        + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, channels, rate, rate * block, block, 16)
        + b"data"
        + struct.pack("<I", data_bytes)
    )


def parse_range(header: str | None, size: int) -> tuple[int, int] | str | None:
    """(first, last) byte of a single `bytes=` range; None for no (or a multi-) range, which is
    answered with the whole file; "unsatisfiable" for a range past the end (416)."""
    if not header:
        return None
    match = _RANGE.match(header.strip())
    if not match:
        return None
    first_text, last_text = match.groups()
    if not first_text and not last_text:
        return None
    if not first_text:  # the last N bytes
        n = int(last_text)
        if n == 0:
            return "unsatisfiable"
        return max(0, size - n), size - 1
    first = int(first_text)
    last = min(int(last_text), size - 1) if last_text else size - 1
    if first >= size or first > last:
        return "unsatisfiable"
    return first, last


async def _virtual(path: Path, header: bytes, first: int, last: int) -> AsyncIterator[bytes]:
    """Bytes first..last of header + file."""
    pos = first
    if pos < len(header):
        end = min(last + 1, len(header))
        yield header[pos:end]
        pos = end
    if pos > last:
        return
    with path.open("rb") as f:
        f.seek(pos - len(header))
        left = last + 1 - pos
        while left > 0:
            chunk = f.read(min(CHUNK, left))
            if not chunk:
                return
            left -= len(chunk)
            yield chunk


def recording_response(path: Path, request: Request) -> Response:
    """The recording at `path` as the browser's audio element asks for it."""
    headers = {"Cache-Control": "private", "Accept-Ranges": "bytes"}
    if path.suffix.lower() != ".raw":
        media = TYPES.get(path.suffix.lower(), "application/octet-stream")
        return FileResponse(path, media_type=media, headers={"Cache-Control": "private"})
    data = path.stat().st_size
    data -= data % (RAW_CHANNELS * 2)  # whole frames only (the file may be growing)
    header = wav_header(data)
    size = len(header) + data
    wanted = parse_range(request.headers.get("range"), size)
    if wanted == "unsatisfiable":
        return Response(status_code=416, headers={**headers, "Content-Range": f"bytes */{size}"})
    if wanted is None or isinstance(wanted, str):
        first, last, status = 0, size - 1, 200
    else:
        first, last = wanted
        status = 206
        headers["Content-Range"] = f"bytes {first}-{last}/{size}"
    headers["Content-Length"] = str(last - first + 1)
    return StreamingResponse(
        _virtual(path, header, first, last),
        status_code=status,
        media_type="audio/wav",
        headers=headers,
    )
