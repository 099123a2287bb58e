-- One search document per call. Search ranked and checked utterances: a word at a
-- common frequency matched tens of thousands of rows, and a filtered query walked each call's
-- 50+ utterances (bench/archive). `record.call_text` holds a call's whole transcript as one
-- tsvector (the utterances' own vectors, in time order), each lexeme weighted by who said it
-- (A agent, B customer, C mix, D other), so "what the customer said" is the same index with a
-- weight-restricted query. The writer rebuilds a call's row from its utterances when finals
-- arrive (coach/record/write.py); a query ranks at most one row per call, and utterances are
-- read only for the page's calls (snippets, the second of a hit, phrase checks).

-- tsvector || tsvector as an aggregate: the positions of each right-hand vector are shifted
-- past the left one's, so each utterance keeps its word order and a phrase query works on the
-- whole call.
CREATE AGGREGATE record.tsv_agg(tsvector) (
  SFUNC = tsvector_concat, STYPE = tsvector, INITCOND = ''
);

-- What follows each utterance in a call document: a lexeme no query can ask for (a parsed word
-- never holds a space) 8 positions on, so no phrase of up to 8 words (stop words count) runs
-- from the end of one utterance into the next. It costs positions: a document holds 16,383,
-- and past that every position is the last (about 800 utterances of 12 words, 1.5-2 hours of
-- talk); a phrase said later in such a call, or whose word is said more than 256 times in it
-- (a lexeme keeps 256 positions), is not found in that call.
CREATE FUNCTION record.gap() RETURNS tsvector
  LANGUAGE sql IMMUTABLE PARALLEL SAFE
  RETURN ''' '':8'::tsvector;

CREATE FUNCTION record.speaker_weight(speaker text) RETURNS "char"
  LANGUAGE sql IMMUTABLE PARALLEL SAFE
  RETURN CASE speaker WHEN 'agent' THEN 'A' WHEN 'customer' THEN 'B' WHEN 'mix' THEN 'C'
    ELSE 'D' END;

-- Spanish and English words apart (each utterance by its own language, as its vector was
-- made): a query in each language is then one exact index lookup, with no per-row language
-- test that would read every candidate document.
CREATE TABLE record.call_text (
  call_id text PRIMARY KEY REFERENCES record.calls ON DELETE CASCADE,
  es      tsvector NOT NULL DEFAULT '',
  en      tsvector NOT NULL DEFAULT ''
);

INSERT INTO record.call_text (call_id, es, en)
SELECT call_id,
  coalesce(record.tsv_agg(setweight(tsv, record.speaker_weight(speaker)) || record.gap()
    ORDER BY start_s, utterance_id) FILTER (WHERE lang IS NULL OR lang NOT LIKE 'en%'), ''),
  coalesce(record.tsv_agg(setweight(tsv, record.speaker_weight(speaker)) || record.gap()
    ORDER BY start_s, utterance_id) FILTER (WHERE lang LIKE 'en%'), '')
FROM record.utterances GROUP BY call_id;

CREATE INDEX call_text_es ON record.call_text USING gin (es);
CREATE INDEX call_text_en ON record.call_text USING gin (en);

-- Search no longer reads utterances through the full-text index (only by call id): dropping
-- it saves its upkeep on every final (the vector column stays: snippets and the call
-- document are made from it).
DROP INDEX record.utterances_tsv;

-- Listing newest first within an agent's or a disposition's calls walks these in order (the
-- version-1/2 indexes were on started_at, not the listing's sort key, so a filtered page
-- sorted every matching call).
DROP INDEX record.calls_agent;
DROP INDEX record.calls_disposition;
CREATE INDEX calls_agent_when
  ON record.calls (agent, (coalesce(started_at, archived_at)) DESC, call_id DESC);
CREATE INDEX calls_disposition_when
  ON record.calls (disposition, (coalesce(started_at, archived_at)) DESC, call_id DESC);
