"""Benchmark of the orchestrator: `python -m bench.orchestrator`."""
