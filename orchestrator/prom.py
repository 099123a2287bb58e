"""Prometheus metrics of the orchestrator (one process-wide registry, as prometheus_client does)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS = Counter("orch_events_total", "Bus events handled by this replica", ["type"])
COACH = Counter("orch_coach_total", "coach events published", ["source", "rule"])
FINAL_TO_COACH = Histogram(
    "orch_final_to_coach_seconds",
    "From a final's bus timestamp to its rules coach event being published",
    buckets=(0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0),
)
CALLS = Gauge("orch_calls_owned", "Calls whose lease this replica holds")
POKES = Counter("orch_pokes_total", "Events handed to the replica that owns their call", ["dir"])
LLM_REQUESTS = Counter("orch_llm_requests_total", "LLM tip/summary outcomes", ["outcome"])
LLM_TOKENS = Counter("orch_llm_tokens_total", "LLM tokens used", ["kind"])
LLM_COST = Counter("orch_llm_cost_total", "LLM cost reported by the provider (usage.cost)")
BUS_ERRORS = Counter("orch_bus_errors_total", "Bus operations that failed (retried)")
CALLS_REFUSED = Counter(
    "orch_calls_refused_total", "Calls not taken because ORCH_MAX_CALLS was reached"
)
LOOP_LAG = Histogram(
    "orch_loop_lag_seconds",
    "How late the event loop wakes a 100 ms timer (CPU starvation or blocking code)",
    buckets=(0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
