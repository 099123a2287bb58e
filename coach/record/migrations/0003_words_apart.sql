-- Version 3: word timings move out of the utterance rows into a table of their own. Search
-- reads every matching utterance row (its call and search vector); with the words inline a
-- row was ~1 KB and a frequent word read most of the table from disk (bench/archive: heap
-- 482 MB -> 125 MB at 500,000 utterances, word-search p95 halved). Words are read only for
-- one call's page and for the second of a hit.
CREATE TABLE record.utterance_words (
  call_id      text NOT NULL,
  utterance_id text NOT NULL,
  words        jsonb NOT NULL,
  PRIMARY KEY (call_id, utterance_id),
  FOREIGN KEY (call_id, utterance_id) REFERENCES record.utterances ON DELETE CASCADE
);
INSERT INTO record.utterance_words (call_id, utterance_id, words)
SELECT call_id, utterance_id, words FROM record.utterances WHERE words IS NOT NULL;
-- The dropped column's old values stay in existing rows until they are rewritten (VACUUM FULL
-- record.utterances, at a quiet time, reclaims them at once).
ALTER TABLE record.utterances DROP COLUMN words;
