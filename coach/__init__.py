"""Shared contract of call coach: event types, the Redis bus, settings and logging helpers."""
