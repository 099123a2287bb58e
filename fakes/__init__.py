"""Faithful fakes of what cannot run here or cannot be made to fail on cue (the ARI double,
a fake STT server, a fake OpenAI-compatible LLM), and the test tiers' polling helper. Used by
tests/ and bench/; never by a service."""
