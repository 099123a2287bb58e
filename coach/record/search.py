"""Searching the call record (the relay's side): full text by each utterance's language,
structured filters, ranked results with highlighted snippets and the second of each hit,
keyset (cursor) paging with no cap on how far it goes.

Full text: each utterance is indexed in its language's configuration (`record.es`,
`record.en`: unaccent then the Snowball stemmer, migrations/0002), and the query is parsed
with `websearch_to_tsquery` in both, each matched only against utterances of its language:
stemming and accents are ignored, "quoted phrases" keep their word order, `-word` excludes.
A call's rank is the sum of its matching utterances' `ts_rank_cd`. Without a query, calls are
listed newest first.

Broad queries: ranking needs every matching utterance, and a word said in one utterance in ten
matches hundreds of thousands of rows in a large record. Listing newest first instead costs
about (page size x utterances per call x calls / matching calls) row checks, ranking about
(matching utterances): the two cross near sqrt(page size x all utterances), about 16,000 for a
page of 50 in a record of 5 million utterances. When the planner estimates more matching
utterances than that (and at least `BROAD_MIN`), or, below it, a count that stops just past it
finds more, the matching calls are listed newest first (each call
checked through its own utterances, so a page costs about a page of calls, however common the
word); the page says which order it used (`order`: `relevance`, `recent`, or `time` without a
query), and its cursor keeps that order for the pages after it.

Paging: the cursor is the sort key of the last call returned (rank or time, then call id),
so a page is an index range scan, however deep: no OFFSET, no cap.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from math import isqrt
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

MAX_LIMIT = 200
"""Most calls on one page."""
SNIPPETS_PER_CALL = 3
"""Matching utterances shown per call (the best ranked, in time order)."""
HEADLINE = "StartSel=\ue000, StopSel=\ue001, MaxWords=24, MinWords=8, HighlightAll=false"
"""ts_headline's options; the markers are private-use characters, split out into segments so
no transcript text is ever sent as HTML."""
_START, _STOP = "\ue000", "\ue001"
_LEXEME = re.compile(r"'((?:[^']|'')*)'")
BROAD_MIN = 2_000
"""The broad-query threshold never goes below this many matching utterances."""


class CursorError(ValueError):
    """A cursor that this code did not make (or one from another query)."""


@dataclass(frozen=True)
class Filters:
    """What a history search asks (every field optional; all given ones must hold)."""

    q: str | None = None
    """Full-text query (websearch syntax: words, "phrases", -excluded)."""
    speaker: str | None = None
    """Only what this speaker said counts for `q` (`customer`, `agent`, `mix`)."""
    agent: str | None = None
    """The call's agent (who answered)."""
    since: datetime | None = None
    """Calls that started at or after this."""
    until: datetime | None = None
    """Calls that started before this."""
    dispositions: tuple[str, ...] = ()
    sentiments: tuple[str, ...] = ()
    rules: tuple[str, ...] = ()
    """Calls where any of these playbook rules fired."""
    min_duration: float | None = None
    max_duration: float | None = None
    min_silence: float | None = None
    """Longest silence at least this many seconds."""
    min_agent_talk_ratio: float | None = None
    max_agent_talk_ratio: float | None = None
    min_overtalk: float | None = None
    """Overtalk at least this many seconds."""
    lang: str | None = None

    def key(self) -> str:
        """What a cursor is bound to: the same filters (a cursor of another search is refused)."""
        return json.dumps([self.q, self.speaker, self.agent, self.lang], ensure_ascii=False)


@dataclass(frozen=True)
class Page:
    """One page of results and the cursor of the next (None: this was the last)."""

    calls: list[dict[str, Any]]
    next_cursor: str | None
    order: str = "time"
    """`relevance` (ranked), `recent` (a broad query, newest first) or `time` (no query)."""


ORDERS = ("relevance", "recent", "time")


def encode_cursor(filters: Filters, sort: float, call_id: str, order: str = "time") -> str:
    """An opaque cursor after (`sort`, `call_id`) in `order`."""
    raw = json.dumps({"s": sort, "c": call_id, "k": filters.key(), "o": order}, ensure_ascii=False)
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(filters: Filters, cursor: str) -> tuple[float, str, str]:
    """The (sort, call id, order) a cursor points after; CursorError if it is not one of ours."""
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        sort, call_id, key, order = float(raw["s"]), str(raw["c"]), raw["k"], raw.get("o", "time")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CursorError("malformed cursor") from exc
    if key != filters.key() or order not in ORDERS:
        raise CursorError("this cursor belongs to another search")
    return sort, call_id, order


_CALL_COLUMNS = sql.SQL(
    "c.call_id, c.agent, c.dialled_agent, c.caller_number, c.caller_name, c.lang, c.started_at,"
    " c.answered_at, c.ended_at, c.duration_s, c.reason, c.disposition, c.sentiment,"
    " c.summary_text, c.agent_talk_ratio, c.longest_silence, c.overtalk_s,"
    " c.recording_path IS NOT NULL AS has_recording"
)
_ES = "%(es)s::tsquery"
_EN = "%(en)s::tsquery"
"""The query parsed in each language, passed as constants: websearch_to_tsquery is only
STABLE, so written inline it would be parsed again for every row it is compared with."""
_IS_EN = "u.lang LIKE 'en%%'"
_MATCH = sql.SQL(
    f"(u.tsv @@ {_ES} OR u.tsv @@ {_EN})"
    f" AND CASE WHEN {_IS_EN} THEN u.tsv @@ {_EN} ELSE u.tsv @@ {_ES} END"
)
"""Each utterance against the query of its own language. The OR of the two is what the GIN
index answers (constant queries, evaluated once); the CASE then keeps only own-language hits."""
_QUERY = f"CASE WHEN {_IS_EN} THEN {_EN} ELSE {_ES} END"
_RANK = sql.SQL(f"ts_rank_cd(u.tsv, {_QUERY})::float8")
_CONFIG = f"CASE WHEN {_IS_EN} THEN 'record.en'::regconfig ELSE 'record.es'::regconfig END"


def _where(f: Filters, params: dict[str, Any]) -> list[sql.Composable]:
    out: list[sql.Composable] = []

    def add(clause: str, name: str, value: Any) -> None:
        params[name] = value
        out.append(sql.SQL(clause))

    if f.agent is not None:
        add("c.agent = %(agent)s", "agent", f.agent)
    if f.lang is not None:
        add("c.lang = %(lang)s", "lang", f.lang)
    if f.since is not None:
        add("c.started_at >= %(since)s", "since", f.since)
    if f.until is not None:
        add("c.started_at < %(until)s", "until", f.until)
    if f.dispositions:
        add("c.disposition = ANY(%(dispositions)s)", "dispositions", list(f.dispositions))
    if f.sentiments:
        add("c.sentiment = ANY(%(sentiments)s)", "sentiments", list(f.sentiments))
    if f.rules:
        add(
            "EXISTS (SELECT 1 FROM record.coaching k WHERE k.call_id = c.call_id"
            " AND k.rule_id = ANY(%(rules)s))",
            "rules",
            list(f.rules),
        )
    if f.min_duration is not None:
        add("c.duration_s >= %(min_duration)s", "min_duration", f.min_duration)
    if f.max_duration is not None:
        add("c.duration_s <= %(max_duration)s", "max_duration", f.max_duration)
    if f.min_silence is not None:
        add("c.longest_silence >= %(min_silence)s", "min_silence", f.min_silence)
    if f.min_agent_talk_ratio is not None:
        add("c.agent_talk_ratio >= %(min_ratio)s", "min_ratio", f.min_agent_talk_ratio)
    if f.max_agent_talk_ratio is not None:
        add("c.agent_talk_ratio <= %(max_ratio)s", "max_ratio", f.max_agent_talk_ratio)
    if f.min_overtalk is not None:
        add("c.overtalk_s >= %(min_overtalk)s", "min_overtalk", f.min_overtalk)
    return out


def _and(clauses: Sequence[sql.Composable]) -> sql.Composable:
    return sql.SQL(" AND ").join(clauses) if clauses else sql.SQL("true")


async def search(
    conn: psycopg.AsyncConnection[Any],
    filters: Filters,
    limit: int = 50,
    cursor: str | None = None,
    broad_rows: int | None = None,
) -> Page:
    """One page of calls matching `filters`, best first (or newest first without `q`, or for a
    broad query: more matching utterances than `broad_rows`, by default the module doc's
    crossing point)."""
    limit = max(1, min(limit, MAX_LIMIT))
    params: dict[str, Any] = {"limit": limit + 1}
    where = _where(filters, params)
    after = decode_cursor(filters, cursor) if cursor else None
    text = bool(filters.q and filters.q.strip())
    speaker = sql.SQL("")
    if text:
        params |= await _compile(conn, filters.q or "")
        if filters.speaker:
            params["speaker"] = filters.speaker
            speaker = sql.SQL(" AND u.speaker = %(speaker)s")
        if after is not None:
            order = after[2]
        else:
            matching, total = await _estimate(conn, params, speaker)
            threshold = (
                broad_rows if broad_rows is not None else max(BROAD_MIN, isqrt(limit * total))
            )
            # The planner's estimate is cheap but can be far too low (phrases: it takes the words
            # as independent); below the threshold, count, stopping just past it.
            broad = matching > threshold or await _more_than(conn, params, speaker, threshold)
            order = "recent" if broad else "relevance"
    else:
        order = "time"
    if order == "relevance":
        if after is not None:
            params["after_s"], params["after_c"] = after[0], after[1]
            where.append(sql.SQL("(h.score, c.call_id) < (%(after_s)s, %(after_c)s)"))
        query = sql.SQL(
            "WITH hits AS ("
            " SELECT u.call_id, sum({rank}) AS score, count(*) AS hits"
            " FROM record.utterances u WHERE {match}{speaker} GROUP BY u.call_id)"
            " SELECT {cols}, h.score AS sort, h.hits FROM hits h JOIN record.calls c"
            " ON c.call_id = h.call_id WHERE {where}"
            " ORDER BY h.score DESC, c.call_id DESC LIMIT %(limit)s"
        ).format(
            rank=_RANK,
            match=_MATCH,
            speaker=speaker,
            cols=_CALL_COLUMNS,
            where=_and(where),
        )
    else:
        if after is not None:
            params["after_s"], params["after_c"] = after[0], after[1]
            where.append(
                sql.SQL(
                    "(coalesce(c.started_at, c.archived_at), c.call_id)"
                    " < (to_timestamp(%(after_s)s), %(after_c)s)"
                )
            )
        if order == "recent":
            # Each call through its own utterances (the primary key's call_id prefix).
            where.append(
                sql.SQL(
                    "EXISTS (SELECT 1 FROM record.utterances u"
                    " WHERE u.call_id = c.call_id AND {match}{speaker})"
                ).format(match=_MATCH, speaker=speaker)
            )
        query = sql.SQL(
            "SELECT {cols}, extract(epoch FROM coalesce(c.started_at, c.archived_at))::float8"
            " AS sort, NULL::bigint AS hits FROM record.calls c WHERE {where}"
            " ORDER BY coalesce(c.started_at, c.archived_at) DESC, c.call_id DESC"
            " LIMIT %(limit)s"
        ).format(cols=_CALL_COLUMNS, where=_and(where))
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query, params)
        rows = await cur.fetchall()
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = (
        encode_cursor(filters, rows[-1]["sort"], rows[-1]["call_id"], order)
        if more and rows
        else None
    )
    if text and rows:
        snippets = await _snippets(conn, filters, params, [r["call_id"] for r in rows])
        for row in rows:
            row["matches"] = snippets.get(row["call_id"], [])
    calls = [_call_json(r) for r in rows]
    return Page(calls, next_cursor, order)


async def _more_than(
    conn: psycopg.AsyncConnection[Any],
    params: dict[str, Any],
    speaker: sql.Composable,
    threshold: int,
) -> bool:
    """Whether more than `threshold` utterances match (reads at most threshold + 1 of them)."""
    async with conn.cursor() as cur:
        await cur.execute(
            sql.SQL(
                "SELECT count(*) FROM (SELECT 1 FROM record.utterances u WHERE {m}{s}"
                " LIMIT %(cap)s) AS x"
            ).format(m=_MATCH, s=speaker),
            {**params, "cap": threshold + 1},
        )
        row = await cur.fetchone()
    return bool(row and row[0] > threshold)


async def _estimate(
    conn: psycopg.AsyncConnection[Any], params: dict[str, Any], speaker: sql.Composable
) -> tuple[int, int]:
    """The planner's estimates of the utterances a text query matches and of all utterances
    (no rows are read)."""
    async with conn.cursor() as cur:
        await cur.execute(
            "SELECT greatest(reltuples, 0)::bigint FROM pg_class"
            " WHERE oid = 'record.utterances'::regclass"
        )
        row = await cur.fetchone()
        total = int(row[0]) if row else 0
        await cur.execute(
            sql.SQL("EXPLAIN (FORMAT JSON) SELECT 1 FROM record.utterances u WHERE {m}{s}").format(
                m=_MATCH, s=speaker
            ),
            params,
        )
        row = await cur.fetchone()
    plan = row[0] if row else None
    if isinstance(plan, str):
        plan = json.loads(plan)
    try:
        return int(plan[0]["Plan"]["Plan Rows"]), total  # type: ignore[index]
    except (TypeError, KeyError, IndexError, ValueError):
        return 0, total


async def _compile(conn: psycopg.AsyncConnection[Any], q: str) -> dict[str, Any]:
    """The query in both languages (tsquery text) and the lexemes it looks for."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT websearch_to_tsquery('record.es', %(q)s)::text AS es,"
            " websearch_to_tsquery('record.en', %(q)s)::text AS en,"
            " querytree(websearch_to_tsquery('record.es', %(q)s)) AS es_tree,"
            " querytree(websearch_to_tsquery('record.en', %(q)s)) AS en_tree",
            {"q": q},
        )
        row = await cur.fetchone()
    assert row is not None
    return {
        "es": row["es"],
        "en": row["en"],
        "lexemes": _lexemes({"es": row["es_tree"], "en": row["en_tree"]}),
    }


async def _snippets(
    conn: psycopg.AsyncConnection[Any],
    filters: Filters,
    compiled: dict[str, Any],
    call_ids: list[str],
) -> dict[str, list[dict[str, Any]]]:
    """The best matching utterances of each call, highlighted, with the second of the hit."""
    params: dict[str, Any] = {
        "es": compiled["es"],
        "en": compiled["en"],
        "lexemes": compiled["lexemes"],
        "calls": call_ids,
        "per": SNIPPETS_PER_CALL,
        "headline": HEADLINE,
    }
    speaker = sql.SQL("")
    if filters.speaker:
        params["speaker"] = filters.speaker
        speaker = sql.SQL(" AND u.speaker = %(speaker)s")
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            sql.SQL(
                "WITH best AS ("
                " SELECT u.*, {rank} AS r, row_number() OVER"
                " (PARTITION BY u.call_id ORDER BY {rank} DESC, u.start_s) AS n"
                " FROM record.utterances u"
                " WHERE u.call_id = ANY(%(calls)s) AND {match}{speaker})"
                " SELECT u.call_id, u.utterance_id, u.speaker, u.start_s, u.end_s,"
                " ts_headline({config}, u.text, {query}, %(headline)s) AS headline,"
                " (SELECT (w ->> 'start')::float8 FROM record.utterance_words uw,"
                "  jsonb_array_elements(uw.words)"
                "  WITH ORDINALITY AS e(w, i)"
                "  WHERE uw.call_id = u.call_id AND uw.utterance_id = u.utterance_id"
                "  AND tsvector_to_array(to_tsvector({config}, w ->> 'w')) && %(lexemes)s::text[]"
                "  ORDER BY i LIMIT 1) AS hit_s"
                " FROM best u WHERE u.n <= %(per)s ORDER BY u.call_id, u.start_s"
            ).format(
                rank=_RANK,
                match=_MATCH,
                speaker=speaker,
                config=sql.SQL(_CONFIG),
                query=sql.SQL(_QUERY),
            ),
            params,
        )
        out: dict[str, list[dict[str, Any]]] = {}
        for row in await cur.fetchall():
            out.setdefault(row["call_id"], []).append(
                {
                    "utteranceId": row["utterance_id"],
                    "speaker": row["speaker"],
                    "start": row["start_s"],
                    "end": row["end_s"],
                    "at": row["hit_s"] if row["hit_s"] is not None else row["start_s"],
                    "snippet": segments(row["headline"]),
                }
            )
        return out


def _lexemes(trees: dict[str, Any]) -> list[str]:
    """The lexemes of both languages' parsed query (querytree's quoted terms)."""
    found: list[str] = []
    for tree in trees.values():
        for match in _LEXEME.finditer(tree or ""):
            lexeme = match[1].replace("''", "'")
            if lexeme not in found:
                found.append(lexeme)
    return found


def segments(headline: str) -> list[dict[str, Any]]:
    """ts_headline's output as [{text, hit}] runs (rendered as text, never as HTML)."""
    out: list[dict[str, Any]] = []
    rest = headline
    while rest:
        start = rest.find(_START)
        if start < 0:
            out.append({"text": rest, "hit": False})
            break
        if start:
            out.append({"text": rest[:start], "hit": False})
        stop = rest.find(_STOP, start)
        stop = len(rest) if stop < 0 else stop
        out.append({"text": rest[start + 1 : stop], "hit": True})
        rest = rest[stop + 1 :]
    return out


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _call_json(row: dict[str, Any]) -> dict[str, Any]:
    out = {
        "callId": row["call_id"],
        "agent": row["agent"],
        "dialledAgent": row["dialled_agent"],
        "caller": {"number": row["caller_number"], "name": row["caller_name"]},
        "lang": row["lang"],
        "startedAt": _iso(row["started_at"]),
        "answeredAt": _iso(row["answered_at"]),
        "endedAt": _iso(row["ended_at"]),
        "duration": row["duration_s"],
        "reason": row["reason"],
        "disposition": row["disposition"],
        "sentiment": row["sentiment"],
        "summary": row["summary_text"],
        "agentTalkRatio": row["agent_talk_ratio"],
        "longestSilence": row["longest_silence"],
        "overtalk": row["overtalk_s"],
        "hasRecording": row["has_recording"],
        "score": row["sort"] if row.get("hits") else None,
        "hits": row.get("hits"),
    }
    if "matches" in row:
        out["matches"] = row["matches"]
    return out
