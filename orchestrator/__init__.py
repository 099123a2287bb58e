"""orchestrator component of call coach."""
