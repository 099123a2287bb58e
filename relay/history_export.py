"""A call's transcript as WebVTT, SRT or plain text, and search results as CSV rows.

Written here rather than with a library: these are writers of four small, fixed formats
(the tests read them back with `webvtt-py` and `srt`, parsers nobody here wrote).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from typing import Any

SPEAKER_LABELS = {"customer": "Customer", "agent": "Agent", "mix": "Call"}


def _clock(seconds: float, sep: str) -> str:
    ms = max(0, round(seconds * 1000))
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def _one_line(text: str) -> str:
    # A blank line ends a cue in both formats: a transcript line never contains one.
    return " ".join(text.split())


def _vtt_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def vtt(call: dict[str, Any]) -> str:
    """WebVTT with one cue per utterance and the speaker as a voice span."""
    out = ["WEBVTT", ""]
    for u in call["transcript"]:
        label = SPEAKER_LABELS.get(u["speaker"], u["speaker"])
        out.append(f"{u['utteranceId']}")
        out.append(f"{_clock(u['start'], '.')} --> {_clock(max(u['end'], u['start']), '.')}")
        out.append(f"<v {label}>{_vtt_escape(_one_line(u['text']))}")
        out.append("")
    return "\n".join(out)


def srt(call: dict[str, Any]) -> str:
    """SubRip: numbered cues, `Speaker: text`."""
    out = []
    for n, u in enumerate(call["transcript"], start=1):
        label = SPEAKER_LABELS.get(u["speaker"], u["speaker"])
        out.append(str(n))
        out.append(f"{_clock(u['start'], ',')} --> {_clock(max(u['end'], u['start']), ',')}")
        out.append(f"{label}: {_one_line(u['text'])}")
        out.append("")
    return "\n".join(out)


def txt(call: dict[str, Any]) -> str:
    """`[mm:ss] Speaker: text` lines under a short header."""
    lines = [
        f"Call {call['callId']} — agent {call.get('agent') or '?'} — {call.get('startedAt') or ''}",
        "",
    ]
    for u in call["transcript"]:
        minutes, seconds = divmod(int(u["start"]), 60)
        label = SPEAKER_LABELS.get(u["speaker"], u["speaker"])
        lines.append(f"[{minutes:02d}:{seconds:02d}] {label}: {_one_line(u['text'])}")
    summary = call.get("summary")
    if summary:
        lines += [
            "",
            f"Summary ({summary['disposition']}, {summary['sentiment']}):",
            summary["text"],
        ]
    return "\n".join(lines) + "\n"


CSV_COLUMNS = (
    "callId",
    "startedAt",
    "endedAt",
    "agent",
    "callerNumber",
    "lang",
    "duration",
    "reason",
    "disposition",
    "sentiment",
    "agentTalkRatio",
    "longestSilence",
    "overtalk",
    "hits",
    "firstHitAt",
    "snippet",
)


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    # A cell a spreadsheet would run as a formula is prefixed (CSV injection).
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def csv_header() -> str:
    """The CSV's first line."""
    return csv_rows([], header=True)


def csv_rows(calls: Iterable[dict[str, Any]], header: bool = False) -> str:
    """Search results as CSV text (one row per call)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    if header:
        writer.writerow(CSV_COLUMNS)
    for c in calls:
        matches = c.get("matches") or []
        first = matches[0] if matches else None
        snippet = "".join(s["text"] for s in first["snippet"]) if first else ""
        writer.writerow(
            [
                _cell(v)
                for v in (
                    c["callId"],
                    c["startedAt"],
                    c["endedAt"],
                    c["agent"],
                    (c.get("caller") or {}).get("number"),
                    c["lang"],
                    c["duration"],
                    c["reason"],
                    c["disposition"],
                    c["sentiment"],
                    c["agentTalkRatio"],
                    c["longestSilence"],
                    c["overtalk"],
                    c["hits"],
                    min((m["at"] for m in matches), default=None),
                    snippet,
                )
            ]
        )
    return buf.getvalue()
