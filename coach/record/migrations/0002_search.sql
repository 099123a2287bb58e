-- Version 2: what search filters and ranks on, as columns with indexes (backfilled from the
-- rows version 1 wrote): the full-text vector of each utterance in its call's language, and
-- the metrics a supervisor filters by.

ALTER TABLE record.utterances
  ADD COLUMN tsv tsvector GENERATED ALWAYS AS (
    to_tsvector(
      CASE WHEN lang LIKE 'en%' THEN 'record.en'::regconfig ELSE 'record.es'::regconfig END,
      text)
  ) STORED;
CREATE INDEX utterances_tsv ON record.utterances USING gin (tsv);

ALTER TABLE record.calls
  ADD COLUMN agent_talk_ratio double precision,
  ADD COLUMN longest_silence  double precision,
  ADD COLUMN silence_total    double precision,
  ADD COLUMN overtalk_s       double precision,
  ADD COLUMN overtalk_count   integer;

UPDATE record.calls SET
  agent_talk_ratio = (metrics #>> '{talkRatio,agent}')::double precision,
  longest_silence  = (metrics ->> 'longestSilence')::double precision,
  silence_total    = (metrics ->> 'silenceTotal')::double precision,
  overtalk_s       = (metrics #>> '{overtalk,seconds}')::double precision,
  overtalk_count   = (metrics #>> '{overtalk,count}')::integer
WHERE metrics IS NOT NULL;

-- Listing order of the history without a text query (a call whose call.started was never
-- archived sorts by when it was archived).
CREATE INDEX calls_when ON record.calls ((coalesce(started_at, archived_at)) DESC, call_id DESC);
CREATE INDEX calls_disposition ON record.calls (disposition, started_at DESC);
CREATE INDEX coaching_rule ON record.coaching (rule_id, call_id) WHERE rule_id IS NOT NULL;
