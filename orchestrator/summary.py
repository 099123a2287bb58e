"""The post-call `summary` event: from the LLM, or extractive when there is none (or it fails)."""

from __future__ import annotations

import logging
from typing import Any, Final

from orchestrator.callstate import CallState
from orchestrator.llm.client import Completer
from orchestrator.llm.errors import LLMError
from orchestrator.llm.transport import Usage
from orchestrator.prompts import SUMMARY_SCHEMA, InvalidOutput, parse_summary, summary_messages
from orchestrator.text import tokens

log = logging.getLogger(__name__)

_COMMITMENTS: Final = (
    ("le", "enviare"), ("le", "envio"), ("le", "mando"), ("le", "llamare"), ("le", "llamo"),
    ("voy", "a"), ("vamos", "a"), ("le", "confirmo"), ("queda", "registrado"),
    ("i'll",), ("i", "will"), ("we'll",), ("we", "will"), ("let", "me"),
)  # fmt: skip
_THANKS: Final = {
    "gracias",
    "perfecto",
    "genial",
    "estupendo",
    "thanks",
    "thank",
    "great",
    "perfect",
}
_NEGATIVE_RULES: Final = ("sentiment.", "escalation.")
_LABELS: Final = {
    "es": {"customer": "El cliente", "agent": "El agente", "alerts": "Alertas",
           "none": "Llamada sin transcripción.", "follow": "Seguimiento de la escalación"},
    "en": {"customer": "The customer", "agent": "The agent", "alerts": "Alerts",
           "none": "Call without transcript.", "follow": "Follow up the escalation"},
}  # fmt: skip


def _labels(lang: str | None) -> dict[str, str]:
    return _LABELS.get((lang or "").lower().split("-")[0], _LABELS["en"])


def extractive(state: CallState) -> dict[str, Any]:
    """A summary built from the (redacted) transcript and the rules that fired."""
    labels = _labels(state.lang)
    customer = [u for u in state.transcript if u.speaker == "customer"]
    agent = [u for u in state.transcript if u.speaker == "agent"]
    parts = []
    if customer:
        first = customer[0].text
        longest = max(customer, key=lambda u: len(u.text)).text
        parts.append(f'{labels["customer"]}: "{first}"')
        if longest != first:
            parts.append(f'"{longest}"')
    if agent:
        parts.append(f'{labels["agent"]}: "{agent[-1].text}"')
    hits = list(dict.fromkeys(state.hits))
    if hits:
        parts.append(f"{labels['alerts']}: {', '.join(hits)}.")
    text = " ".join(parts) or labels["none"]

    if any(h.startswith("churn.") for h in hits):
        disposition = "cancellation_requested"
    elif any(h.startswith("escalation.") for h in hits):
        disposition = "escalated"
    elif state.transcript:
        disposition = "completed"
    else:
        disposition = "no_conversation"

    actions: list[str] = []
    for u in agent:
        toks = tokens(u.text)
        if any(tuple(toks[i : i + len(c)]) == c for c in _COMMITMENTS for i in range(len(toks))):
            actions.append(u.text)
    if any(h.startswith("escalation.") for h in hits):
        actions.append(labels["follow"])

    negative = any(h.startswith(_NEGATIVE_RULES) for h in hits)
    positive = any(t in _THANKS for u in customer[-3:] for t in tokens(u.text))
    sentiment = (
        "mixed"
        if negative and positive
        else ("negative" if negative else ("positive" if positive else "neutral"))
    )
    return {
        "text": text[:4000],
        "disposition": disposition,
        "actionItems": actions[-10:],
        "sentiment": sentiment,
    }


async def build_summary(
    state: CallState, client: Completer | None, company_prompt: str, usage: Usage | None
) -> dict[str, Any]:
    """The `summary` event of an ended call (LLM first, extractive as the fallback)."""
    fields: dict[str, Any] | None = None
    source = "extractive"
    model: str | None = None
    if client is not None and state.transcript:
        try:
            done = await client.complete(
                summary_messages(state.transcript, state.lang, company_prompt),
                schema=SUMMARY_SCHEMA,
                schema_name="call_summary",
                max_tokens=client.settings.max_tokens * 3,
                deadline_s=client.settings.summary_deadline_s,
            )
            if usage is not None:
                usage.add(done.usage)
            fields = parse_summary(done.text)
            source, model = "llm", done.model
        except (LLMError, InvalidOutput) as exc:
            log.warning(
                "LLM summary failed; using the extractive one",
                extra={"callId": state.call_id, "error": str(exc)[:300]},
            )
    if fields is None:
        fields = extractive(state)
    event: dict[str, Any] = {
        "type": "summary",
        "callId": state.call_id,
        **fields,
        "source": source,
        "pii": sorted(state.pii_kinds),
        "alerts": list(dict.fromkeys(state.hits)),
    }
    if model:
        event["model"] = model
    if usage is not None and usage.requests:
        event["llmUsage"] = usage.as_dict()
    return event
