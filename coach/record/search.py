"""Searching the call record (the relay's side): full text by each utterance's language,
structured filters, ranked results with highlighted snippets and the second of each hit,
keyset (cursor) paging with no cap on how far it goes.

Full text: each call has one search document (`record.call_text`, migrations/0005): its
utterances' vectors (each in its language's configuration, `record.es`/`record.en`: unaccent
then the Snowball stemmer) joined in time order, Spanish and English words apart, every word
weighted by who said it. The query is parsed with `websearch_to_tsquery` in both languages
and each is looked up in that language's words (two exact GIN lookups): stemming and accents
are ignored, words may be said anywhere in the call, "quoted phrases" only within one
utterance (the document leaves a gap between utterances), `-word` excludes calls that say it,
and "what the customer said" restricts every word of the query to the customer's weight. A
call's rank is its document's `ts_rank_cd` (every speaker weighted alike). Utterances are read
only for the page's calls: the snippets (those that match the whole query, else those that
say any of its words) and the second of each hit. Without a query, calls are listed newest
first.

Broad queries: ranking needs every matching call, and a word of a common sentence is in most
calls. Listing newest first instead costs about (page size x calls / matching calls) document
checks, ranking about (matching calls): the two cross near sqrt(page size x all calls), about
2,200 for a page of 50 in a record of 100,000 calls. When the planner estimates more matching
calls than that (and at least `BROAD_MIN`), or, below it, a count that stops just past it
finds more, the matching calls are listed newest first (walking the listing's index, or the
agent's or disposition's when filtered, and checking each call's document; so a page costs
about a page of calls, however common the word); the page says which order it used (`order`:
`relevance`, `recent`, or `time` without a query), and its cursor keeps that order for the
pages after it.

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
"""The broad-query threshold never goes below this many matching calls."""


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
_WHEN = "coalesce(c.started_at, c.archived_at)"
"""The listing's sort key (the calls_when, calls_agent_when and calls_disposition_when
indexes)."""
WEIGHTS = {"agent": "A", "customer": "B", "mix": "C"}
"""The weight of each speaker's words in a call document (record.speaker_weight, migrations
0005); any other speaker's are D."""
_FLAT = "'{1,1,1,1}'::float4[]"
"""Rank weights: every speaker's words count alike (the weights only mark who said them)."""

# The call document's words of each language against the query in that language: two exact
# GIN lookups. The queries are passed as constants: websearch_to_tsquery is only STABLE, so
# written inline it would be parsed again for every row it is compared with.
_CALL_MATCH = sql.SQL("(t.es @@ %(es)s::tsquery OR t.en @@ %(en)s::tsquery)")
_CALL_RANK = sql.SQL(
    f"(ts_rank_cd({_FLAT}, t.es, %(es)s::tsquery)"
    f" + ts_rank_cd({_FLAT}, t.en, %(en)s::tsquery))::float8"
)
# Utterances (of one call, or of a page's calls: never through a full-text index) against the
# unweighted query of their own language.
_IS_EN = "u.lang LIKE 'en%%'"
_UTT_MATCH = sql.SQL(
    f"CASE WHEN {_IS_EN} THEN u.tsv @@ %(uen)s::tsquery ELSE u.tsv @@ %(ues)s::tsquery END"
)
_UTT_ANY = sql.SQL(
    f"CASE WHEN {_IS_EN} THEN u.tsv @@ %(en_any)s::tsquery ELSE u.tsv @@ %(es_any)s::tsquery END"
)
_UTT_QUERY = f"CASE WHEN {_IS_EN} THEN %(uen)s::tsquery ELSE %(ues)s::tsquery END"
_UTT_ANY_QUERY = f"CASE WHEN {_IS_EN} THEN %(en_any)s::tsquery ELSE %(es_any)s::tsquery END"
_CONFIG = f"CASE WHEN {_IS_EN} THEN 'record.en'::regconfig ELSE 'record.es'::regconfig END"
_NO_SEQSCAN = "SET LOCAL enable_seqscan = off"
"""The planner costs `@@` as one operator, not as reading a document of a few KB out of line:
it would scan every call's document for a word its statistics say few calls have (200 ms at
50,000 calls) where the index answers in a millisecond."""
_QUOTED = re.compile(r"'(?:[^']|'')*'")


def _where(f: Filters, params: dict[str, Any]) -> list[sql.Composable]:
    out: list[sql.Composable] = []

    def add(clause: str, name: str, value: Any) -> None:
        params[name] = value
        out.append(sql.SQL(clause))

    if f.agent is not None:
        add("c.agent = %(agent)s", "agent", f.agent)
    if f.lang is not None:
        add("c.lang = %(lang)s", "lang", f.lang)
    # A call that passes a date bound has a started_at, so the bound holds for the sort key
    # too: said of both, an index on the sort key starts (or stops) its walk there.
    if f.since is not None:
        add(f"c.started_at >= %(since)s AND {_WHEN} >= %(since)s", "since", f.since)
    if f.until is not None:
        add(f"c.started_at < %(until)s AND {_WHEN} < %(until)s", "until", f.until)
    if len(f.dispositions) == 1:
        # `=` rather than `= ANY`: the (disposition, sort key) index then returns its calls in
        # listing order.
        add("c.disposition = %(disposition)s", "disposition", f.dispositions[0])
    elif f.dispositions:
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
    broad_calls: int | None = None,
) -> Page:
    """One page of calls matching `filters`, best first (or newest first without `q`, or for a
    broad query: more matching calls than `broad_calls`, by default the module doc's crossing
    point)."""
    limit = max(1, min(limit, MAX_LIMIT))
    params: dict[str, Any] = {"limit": limit + 1}
    where = _where(filters, params)
    after = decode_cursor(filters, cursor) if cursor else None
    text = bool(filters.q and filters.q.strip())
    if text:
        params |= await _compile(conn, filters.q or "", filters.speaker)
        if after is not None:
            order = after[2]
        else:
            matching, total = await _estimate(conn, params)
            threshold = (
                broad_calls if broad_calls is not None else max(BROAD_MIN, isqrt(limit * total))
            )
            # The planner's estimate is cheap but can be far too low (phrases: it takes the words
            # as independent); below the threshold, count, stopping just past it.
            broad = matching > threshold or await _more_than(conn, params, threshold)
            order = "recent" if broad else "relevance"
        if order == "recent":
            # A scalar subquery: the planner cannot turn it into a join that reads every
            # matching document (its estimate of a phrase's matches is often far too low).
            where.append(
                sql.SQL("(SELECT {m} FROM record.call_text t WHERE t.call_id = c.call_id)").format(
                    m=_CALL_MATCH
                )
            )
    else:
        order = "time"
    if order == "relevance":
        if after is not None:
            params["after_s"], params["after_c"] = after[0], after[1]
            where.append(sql.SQL("(h.score, c.call_id) < (%(after_s)s, %(after_c)s)"))
        # Materialized: the matching documents through the index, ranked, and only then the
        # calls (the planner would otherwise walk every document in call id order).
        query = sql.SQL(
            "WITH hits AS MATERIALIZED (SELECT t.call_id, {rank} AS score"
            " FROM record.call_text t WHERE {match})"
            " SELECT {cols}, h.score AS sort FROM hits h JOIN record.calls c"
            " ON c.call_id = h.call_id WHERE {where}"
            " ORDER BY h.score DESC, c.call_id DESC LIMIT %(limit)s"
        ).format(cols=_CALL_COLUMNS, rank=_CALL_RANK, match=_CALL_MATCH, where=_and(where))
    else:
        if after is not None:
            params["after_s"], params["after_c"] = after[0], after[1]
            where.append(
                sql.SQL(f"({_WHEN}, c.call_id) < (to_timestamp(%(after_s)s), %(after_c)s)")
            )
        query = sql.SQL(
            "SELECT {cols}, extract(epoch FROM {when})::float8 AS sort FROM record.calls c"
            " WHERE {where} ORDER BY {when} DESC, c.call_id DESC LIMIT %(limit)s"
        ).format(cols=_CALL_COLUMNS, when=sql.SQL(_WHEN), where=_and(where))
    async with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        if text:
            await cur.execute(_NO_SEQSCAN)
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
            row["hits"], row["matches"] = snippets.get(row["call_id"], (0, []))
            row["ranked"] = order == "relevance"
    calls = [_call_json(r) for r in rows]
    return Page(calls, next_cursor, order)


async def _more_than(
    conn: psycopg.AsyncConnection[Any],
    params: dict[str, Any],
    threshold: int,
) -> bool:
    """Whether the text matches more than `threshold` calls (reads at most threshold + 1)."""
    async with conn.transaction(), conn.cursor() as cur:
        await cur.execute(_NO_SEQSCAN)
        await cur.execute(
            sql.SQL(
                "SELECT count(*) FROM (SELECT 1 FROM record.call_text t WHERE {m}"
                " LIMIT %(cap)s) AS x"
            ).format(m=_CALL_MATCH),
            {**params, "cap": threshold + 1},
        )
        row = await cur.fetchone()
    return bool(row and row[0] > threshold)


async def _estimate(conn: psycopg.AsyncConnection[Any], params: dict[str, Any]) -> tuple[int, int]:
    """The planner's estimates of the calls a text query matches and of all calls with a
    transcript (no rows are read)."""
    async with conn.cursor() as cur:
        await cur.execute(
            "SELECT greatest(reltuples, 0)::bigint FROM pg_class"
            " WHERE oid = 'record.call_text'::regclass"
        )
        row = await cur.fetchone()
        total = int(row[0]) if row else 0
        await cur.execute(
            sql.SQL("EXPLAIN (FORMAT JSON) SELECT 1 FROM record.call_text t WHERE {m}").format(
                m=_CALL_MATCH
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


def weighted(query: str, speaker: str | None) -> str:
    """A tsquery's text with every lexeme restricted to `speaker`'s weight (unchanged when no
    speaker is asked)."""
    if not speaker:
        return query
    weight = WEIGHTS.get(speaker, "D")
    return _QUOTED.sub(lambda m: f"{m[0]}:{weight}", query)


def _any(lexemes: list[str]) -> str:
    return " | ".join("'" + lexeme.replace("'", "''") + "'" for lexeme in lexemes)


async def _compile(
    conn: psycopg.AsyncConnection[Any], q: str, speaker: str | None
) -> dict[str, Any]:
    """The query in both languages (tsquery text): for call documents (restricted to the
    speaker's words), for utterances, and any of its (not excluded) lexemes for snippets."""
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
    es_lex, en_lex = _lexemes({"es": row["es_tree"]}), _lexemes({"en": row["en_tree"]})
    return {
        "es": weighted(row["es"], speaker),
        "en": weighted(row["en"], speaker),
        "ues": row["es"],
        "uen": row["en"],
        "es_any": _any(es_lex),
        "en_any": _any(en_lex),
        "lexemes": _lexemes({"es": row["es_tree"], "en": row["en_tree"]}),
    }


async def _snippets(
    conn: psycopg.AsyncConnection[Any],
    filters: Filters,
    compiled: dict[str, Any],
    call_ids: list[str],
) -> dict[str, tuple[int, list[dict[str, Any]]]]:
    """Per call: how many of its utterances match, and the best of them highlighted with the
    second of the hit: those that match the whole query, or for a call found by words said in
    different utterances, those that say any of them."""
    params: dict[str, Any] = {
        key: compiled[key] for key in ("ues", "uen", "es_any", "en_any", "lexemes")
    } | {
        "calls": call_ids,
        "per": SNIPPETS_PER_CALL,
        "headline": HEADLINE,
        # A word can only stem to a lexeme if it holds the lexeme's first two letters (stemmers
        # change endings; accents and case go first): a cheap test before parsing each word.
        "prefixes": sorted({"%" + _like(lexeme[:2]) + "%" for lexeme in compiled["lexemes"]}),
    }
    speaker = sql.SQL("")
    if filters.speaker:
        params["speaker"] = filters.speaker
        speaker = sql.SQL(" AND u.speaker = %(speaker)s")
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            sql.SQL(
                "WITH m AS ("
                " SELECT u.call_id, u.utterance_id, u.speaker, u.start_s, u.end_s, u.text,"
                " u.lang, {full} AS whole, ts_rank_cd(u.tsv, {any_query}) AS r"
                " FROM record.utterances u"
                " WHERE u.call_id = ANY(%(calls)s){speaker} AND ({any} OR {full})),"
                " best AS (SELECT m.*, count(*) FILTER (WHERE whole) OVER w AS whole_n,"
                " count(*) OVER w AS any_n,"
                " row_number() OVER (w ORDER BY whole DESC, r DESC, start_s) AS n"
                " FROM m WINDOW w AS (PARTITION BY call_id))"
                " SELECT u.call_id, u.utterance_id, u.speaker, u.start_s, u.end_s, u.whole, u.whole_n,"
                " u.any_n,"
                " ts_headline({config}, u.text, CASE WHEN u.whole THEN {query} ELSE {any_query}"
                " END, %(headline)s) AS headline,"
                " (SELECT (w ->> 'start')::float8 FROM record.utterance_words uw,"
                "  jsonb_array_elements(uw.words)"
                "  WITH ORDINALITY AS e(w, i)"
                "  WHERE uw.call_id = u.call_id AND uw.utterance_id = u.utterance_id"
                "  AND unaccent(lower(w ->> 'w')) LIKE ANY(%(prefixes)s::text[])"
                "  AND tsvector_to_array(to_tsvector({config}, w ->> 'w')) && %(lexemes)s::text[]"
                "  ORDER BY i LIMIT 1) AS hit_s"
                " FROM best u WHERE u.n <= %(per)s AND (u.whole OR u.whole_n = 0)"
                " ORDER BY u.call_id, u.start_s"
            ).format(
                full=_UTT_MATCH,
                any=_UTT_ANY,
                any_query=sql.SQL(_UTT_ANY_QUERY),
                speaker=speaker,
                config=sql.SQL(_CONFIG),
                query=sql.SQL(_UTT_QUERY),
            ),
            params,
        )
        out: dict[str, tuple[int, list[dict[str, Any]]]] = {}
        for row in await cur.fetchall():
            hits = row["whole_n"] or row["any_n"]
            _, found = out.setdefault(row["call_id"], (hits, []))
            found.append(
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


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _lexemes(trees: dict[str, Any]) -> list[str]:
    """The lexemes of the parsed queries (querytree's quoted terms: those not excluded)."""
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
        "score": row["sort"] if row.get("ranked") else None,
        "hits": row.get("hits"),
    }
    if "matches" in row:
        out["matches"] = row["matches"]
    return out
