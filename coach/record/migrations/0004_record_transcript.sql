-- Version 4: the transcript of record (second_pass/), beside the live one, never over it.
-- One status row per call whose recording was queued for the second pass, and the utterances
-- that pass produced (redacted like the live finals: raw text is never stored). Both go with
-- the call (ON DELETE CASCADE), so retention and erasure need nothing more.
CREATE TABLE record.record_transcripts (
  call_id        text PRIMARY KEY REFERENCES record.calls ON DELETE CASCADE,
  status         text NOT NULL CHECK (status IN ('pending', 'done', 'failed')),
  model          text,
  recording_path text,
  lang           text,
  audio_s        double precision,   -- seconds of the recording
  decode_s       double precision,   -- seconds the decoding took (real-time factor = decode/audio)
  error          text,               -- why it failed (status failed)
  queued_at      timestamptz NOT NULL DEFAULT now(),
  finished_at    timestamptz
);

CREATE TABLE record.record_utterances (
  call_id    text NOT NULL REFERENCES record.record_transcripts ON DELETE CASCADE,
  seq        integer NOT NULL,       -- order in the call (by start time)
  speaker    text NOT NULL,
  start_s    double precision NOT NULL,
  end_s      double precision NOT NULL,
  text       text NOT NULL,
  words      jsonb,
  confidence double precision,
  redactions jsonb,
  PRIMARY KEY (call_id, seq)
);
