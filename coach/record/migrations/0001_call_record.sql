-- Version 1: calls, final utterances, coaching, metrics timeline, summary.
-- Every row is keyed so that replaying an event changes nothing (archive/README.md).
-- Bus ids ("<ms>-<seq>") are stored as one sortable bigint, `seq` = ms * 1_000_000 + seq.

CREATE EXTENSION IF NOT EXISTS unaccent;
CREATE EXTENSION IF NOT EXISTS pg_trgm;

-- Accent-insensitive, stemmed text search per language: unaccent runs before the stemmer, so
-- "suscripción" and "suscripcion" are one lexeme. Explicit configurations keep to_tsvector
-- immutable (usable in a stored generated column), unlike a call to unaccent().
CREATE TEXT SEARCH CONFIGURATION record.es (COPY = pg_catalog.spanish);
ALTER TEXT SEARCH CONFIGURATION record.es
  ALTER MAPPING FOR hword, hword_part, word WITH unaccent, spanish_stem;
CREATE TEXT SEARCH CONFIGURATION record.en (COPY = pg_catalog.english);
ALTER TEXT SEARCH CONFIGURATION record.en
  ALTER MAPPING FOR hword, hword_part, word WITH unaccent, english_stem;

CREATE TABLE record.calls (
  call_id        text PRIMARY KEY,
  agent          text,            -- who answered (call.answered), else the dial target
  dialled_agent  text,            -- call.started.agent
  caller_number  text,
  caller_name    text,
  lang           text,
  coached        boolean,
  started_at     timestamptz,
  answered_at    timestamptz,
  ended_at       timestamptz,
  duration_s     double precision,
  reason         text,
  recording_path text,
  disposition    text,
  sentiment      text,
  summary_text   text,
  action_items   jsonb,
  metrics        jsonb,           -- the latest metrics event (callTime, talkRatio, ...)
  started_seq    bigint,          -- bus id of the event each group of columns came from:
  answered_seq   bigint,          -- an older (replayed, or late) event never overwrites a
  ended_seq      bigint,          -- newer one
  summary_seq    bigint,
  metrics_seq    bigint,
  recording_seq  bigint,
  archived_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX calls_started ON record.calls (started_at DESC, call_id DESC);
CREATE INDEX calls_agent ON record.calls (agent, started_at DESC);

CREATE TABLE record.utterances (
  call_id      text NOT NULL REFERENCES record.calls ON DELETE CASCADE,
  utterance_id text NOT NULL,
  seq          bigint NOT NULL,
  speaker      text NOT NULL,
  start_s      double precision NOT NULL,
  end_s        double precision NOT NULL,
  text         text NOT NULL,   -- as published: already redacted by STT
  lang         text,
  confidence   double precision,
  words        jsonb,
  redactions   jsonb,
  PRIMARY KEY (call_id, utterance_id)
);

CREATE TABLE record.coaching (
  call_id   text NOT NULL REFERENCES record.calls ON DELETE CASCADE,
  seq       bigint NOT NULL,
  ts        timestamptz,
  kind      text NOT NULL,
  severity  text NOT NULL,
  source    text,
  rule_id   text,
  text      text NOT NULL,
  body      jsonb NOT NULL,     -- the whole event (model, doc, refs, cardId, answer, ...)
  PRIMARY KEY (call_id, seq)
);

CREATE TABLE record.metrics (
  call_id   text NOT NULL REFERENCES record.calls ON DELETE CASCADE,
  seq       bigint NOT NULL,
  call_time double precision,
  body      jsonb NOT NULL,
  PRIMARY KEY (call_id, seq)
);
