"""The archive worker: the bus's events into the call record (PostgreSQL)."""
