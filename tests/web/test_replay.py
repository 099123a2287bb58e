"""Replay the demo's Spanish call through the relay's HTTP door (`POST /event`, as producers
outside the stack do) while an agent console and the supervisor wall watch it."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import expect

from tests.relay.conftest import SERVICE_TOKEN
from tests.web.conftest import shot

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.asyncio(loop_scope="session")]

SCRIPT = Path(__file__).resolve().parents[2] / "demo" / "transcript.es.json"
LINES = json.loads(SCRIPT.read_text(encoding="utf-8"))["lines"]


def demo_events(call_id: str) -> list[list[dict[str, Any]]]:
    """The demo call as batches: each line's growing partials and final, coaching on cue."""
    script = json.loads(SCRIPT.read_text(encoding="utf-8"))
    base = {"callId": call_id}
    started_at = int(time.time() * 1000) - 50_000
    batches: list[list[dict[str, Any]]] = [
        [
            {
                **base,
                "type": "call.started",
                "agent": script["agent"],
                "caller": script["caller"],
                "startedAt": started_at,
                "lang": script["lang"],
            }
        ]
    ]
    talk = {"agent": 0.0, "customer": 0.0}
    for n, line in enumerate(script["lines"]):
        utt = f"{line['speaker'][0]}{n}"
        words = line["text"].split()
        span = {"speaker": line["speaker"], "utteranceId": utt, "start": line["at"]}
        batch = [
            {
                **base,
                **span,
                "type": "partial",
                "text": " ".join(words[: len(words) * k // 3]),
                "end": line["at"] + k,
            }
            for k in (1, 2)
        ]
        batch.append(
            {
                **base,
                **span,
                "type": "final",
                "text": line["text"],
                "end": line["at"] + line["dur"],
                "confidence": 0.95,
                "lang": script["lang"],
            }
        )
        talk[line["speaker"]] += line["dur"]
        if "baja" in line["text"]:
            batch.append(
                coach(
                    base,
                    "warning",
                    "Riesgo de baja: pregunte el motivo antes de ofrecer nada.",
                    [utt],
                )
            )
        if "reclamación" in line["text"]:
            batch.append(
                coach(
                    base,
                    "critical",
                    "Amenaza de reclamación: confirme la solución y el plazo.",
                    [utt],
                    "alert",
                )
            )
        if "grabada" in line["text"]:
            batch.append(coach(base, "info", "Aviso de grabación dado. Bien.", [utt]))
        total = talk["agent"] + talk["customer"]
        batch.append(
            {
                **base,
                "type": "metrics",
                "callTime": line["at"] + line["dur"],
                "talkRatio": {k: round(v / total, 3) for k, v in talk.items()},
                "silenceTotal": round(line["at"] + line["dur"] - total, 1),
                "longestSilence": 1.0,
                "overtalk": {"count": 0, "seconds": 0.0},
                "speakers": {k: {"talkTime": v} for k, v in talk.items()},
            }
        )
        batches.append(batch)
    batches.append(
        [
            {
                **base,
                "type": "call.ended",
                "endedAt": started_at + 50_000,
                "reason": "caller-hangup",
            },
            {
                **base,
                "type": "summary",
                "text": "La clienta pidió la baja de la fibra por la subida de la factura. Se le ofreció "
                "un 20 % de descuento durante 12 meses y decidió quedarse.",
                "disposition": "retained",
                "actionItems": ["Aplicar el descuento hoy", "Enviar la confirmación por correo"],
                "sentiment": "positive",
            },
        ]
    )
    return batches


def coach(
    base: dict[str, Any], severity: str, text: str, refs: list[str], kind: str = "tip"
) -> dict[str, Any]:
    return {
        **base,
        "type": "coach",
        "kind": kind,
        "severity": severity,
        "text": text,
        "source": "rules",
        "ruleId": f"demo-{severity}",
        "refs": refs,
    }


async def test_demo_call_replayed_through_post_event(browser, relay) -> None:
    call_id = f"demo-{int(time.time())}"
    batches = demo_events(call_id)
    context = await browser.new_context(viewport={"width": 1280, "height": 720}, locale="es-ES")
    agent = await context.new_page()
    wall = await context.new_page()
    await agent.goto(f"{relay.http}/#token={relay.token('agent', '200')}")
    await wall.goto(f"{relay.http}/wall.html#token={relay.token('supervisor')}")
    await expect(agent.locator(".conn")).to_have_attribute("data-state", "live")
    await expect(wall.locator(".topbar .conn")).to_have_attribute("data-state", "live")

    headers = {"Authorization": f"Bearer {SERVICE_TOKEN}"}
    async with httpx.AsyncClient(base_url=relay.http, headers=headers) as http:
        for batch in batches[:-1]:
            r = await http.post("/event", json=batch)
            assert r.status_code == 200, r.text
        await expect(agent.locator(".bubble.final")).to_have_count(len(LINES))
        await expect(agent.locator(".bubble.partial")).to_have_count(0)
        await expect(agent.locator(".pinned .card.sev-critical")).to_contain_text("reclamación")
        await expect(agent.locator(".ratio-legend .agent")).to_contain_text("Agente")
        tile = wall.locator(f'.tile[data-call="{call_id}"]')
        await expect(tile.locator(".alert-sev")).to_have_text("Crítico")
        await expect(tile.locator(".last")).to_contain_text(LINES[-1]["text"])
        await wall.screenshot(path=shot("demo-wall"))
        await tile.click()
        await expect(wall.locator(".detail .bubble")).to_have_count(len(LINES))
        await agent.screenshot(path=shot("demo-console-live"))

        r = await http.post("/event", json=batches[-1])
        assert r.status_code == 200, r.text
    await expect(agent.locator(".summary .disposition")).to_have_text("Cliente retenido")
    await expect(agent.locator(".call-head .timer")).to_have_text("0:50")
    await expect(wall.locator(".detail .summary")).to_contain_text("decidió quedarse")
    await expect(wall.locator(f'.tile[data-call="{call_id}"]')).to_have_class(
        re.compile(r"\bended\b")
    )
    await agent.screenshot(path=shot("demo-console-ended"))
    await wall.screenshot(path=shot("demo-wall-follow"))
    await context.close()
