"""Benchmarks of the shared package (the event contract and the bus)."""
