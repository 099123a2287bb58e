"""OpenAI-compatible LLM client: streaming, retries, circuit breaker, accounting."""
