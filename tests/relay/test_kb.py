"""The relay's knowledge routes: search, documents (no traversal), card feedback, the report;
auth and bad input on each (real relay, real Redis)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from coach.bus import BusConfig
from coach.knowledge.settings import KBSettings
from coach.redis_server import EmbeddedRedis
from fakes.poll import until_async
from tests.relay.conftest import SERVICE_TOKEN, RelayServer, start_relay
from tests.relay.conftest import started as call_started

pytestmark = pytest.mark.integration

DOCS = {
    "roaming.md": "# Roaming\n\n## Roaming fuera de la UE\n\nFuera de la UE el bono Viajero "
    "cuesta 5 € al día.\n\n## Desactivar el roaming\n\nSe desactiva desde la app, en Viajes.\n",
    "facturas.html": "<h1>Facturas</h1><h2 id='cobro'>Fecha de cobro</h2>"
    "<p>La factura se cobra entre el día 3 y el 5.</p><script>alert(1)</script>",
}


@pytest.fixture
async def kb_relay(
    redis_server: EmbeddedRedis, bus_config: BusConfig, tmp_path: Path
) -> AsyncIterator[RelayServer]:
    root = tmp_path / "kb"
    root.mkdir()
    for name, text in DOCS.items():
        (root / name).write_text(text, encoding="utf-8")
    (tmp_path / "secret.md").write_text("# Secreto\n\nclave\n")
    server = await start_relay(
        redis_server.url, bus_config, kb=KBSettings(dir=root, semantic="off", min_score=0.3)
    )
    async with httpx.AsyncClient(base_url=server.http) as client:
        await until_async(lambda: _indexed(client, server), 10)
    yield server
    await server.stop()


async def _indexed(client: httpx.AsyncClient, server: RelayServer) -> bool:
    r = await client.get("/kb/docs/roaming", headers=_auth(server, "supervisor"))
    return r.status_code == 200


def _auth(server: RelayServer, role: str, agent: str | None = None) -> dict[str, str]:
    token = server.token(role, agent or ("200" if role == "agent" else None))
    return {"Authorization": f"Bearer {token}"}


async def test_search_finds_passages_with_their_source(kb_relay: RelayServer) -> None:
    async with httpx.AsyncClient(base_url=kb_relay.http) as client:
        r = await client.get(
            "/kb/search", params={"q": "¿cuánto cuesta el roaming fuera de la UE?", "lang": "es"},
            headers=_auth(kb_relay, "agent"),
        )  # fmt: skip
        assert r.status_code == 200, r.text
        best = r.json()["results"][0]
        assert best["id"] == "roaming#roaming-fuera-de-la-ue"
        assert best["url"] == "/kb/docs/roaming#roaming-fuera-de-la-ue"
        assert best["section"] == "Roaming fuera de la UE" and 0.3 <= best["score"] <= 1
        nothing = await client.get(
            "/kb/search", params={"q": "receta de tortilla de patatas"},
            headers=_auth(kb_relay, "agent"),
        )  # fmt: skip
        assert nothing.json()["results"] == []
        report = await client.get("/kb/report", headers=_auth(kb_relay, "supervisor"))
        assert [(m["text"], m["fromSearches"]) for m in report.json()["unanswered"]] == [
            ("receta de tortilla de patatas", 1)
        ]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({}, "q"),
        ({"q": "   "}, "q"),
        ({"q": "x" * 501}, "q"),
        ({"q": "roaming", "lang": "fr"}, "lang"),
        ({"q": "roaming", "k": "0"}, "k"),
        ({"q": "roaming", "k": "abc"}, "k"),
    ],
)
async def test_bad_search_input_is_a_400_naming_the_field(
    kb_relay: RelayServer, params: dict[str, str], field: str
) -> None:
    async with httpx.AsyncClient(base_url=kb_relay.http) as client:
        r = await client.get("/kb/search", params=params, headers=_auth(kb_relay, "agent"))
    assert r.status_code == 400 and r.json()["field"] == field and r.json()["error"]


async def test_routes_need_a_browser_token(kb_relay: RelayServer) -> None:
    async with httpx.AsyncClient(base_url=kb_relay.http) as client:
        for path in ("/kb/search?q=roaming", "/kb/docs/roaming", "/kb/report"):
            assert (await client.get(path)).status_code == 401
            bad = {"Authorization": "Bearer nope"}
            assert (await client.get(path, headers=bad)).status_code == 401
            service = {"Authorization": f"Bearer {SERVICE_TOKEN}"}
            assert (await client.get(path, headers=service)).status_code == 403
        token = kb_relay.token("agent", "200")
        assert (await client.get(f"/kb/search?q=roaming&token={token}")).status_code == 401
        r = await client.get("/kb/report", headers=_auth(kb_relay, "agent"))
        assert r.status_code == 403


async def test_documents_by_id_only_no_traversal(kb_relay: RelayServer) -> None:
    async with httpx.AsyncClient(base_url=kb_relay.http) as client:
        headers = _auth(kb_relay, "agent")
        r = await client.get("/kb/docs/facturas", headers=headers)
        assert r.status_code == 200
        doc = r.json()
        assert doc["title"] == "Facturas" and doc["format"] == "html"
        cobro = next(s for s in doc["sections"] if s["anchor"] == "cobro")
        assert cobro["text"] == "La factura se cobra entre el día 3 y el 5."
        assert "alert" not in r.text  # scripts are not part of a document
        for bad in ("..%2Fsecret", "../secret", "%2e%2e", "Roaming", "a_b", "secret"):
            r = await client.get(f"/kb/docs/{bad}", headers=headers)
            assert r.status_code in (400, 404), bad
            assert "clave" not in r.text
        assert (await client.get("/kb/docs/secret", headers=headers)).status_code == 404
        assert (await client.get("/kb/docs/Roaming", headers=headers)).status_code == 400


async def _card(server: RelayServer, call_id: str) -> dict[str, Any]:
    await server.bus.publish(call_started(call_id, agent="200"))
    return await server.bus.publish(
        {
            "type": "coach", "callId": call_id, "kind": "knowledge", "severity": "info",
            "source": "kb", "text": "Fuera de la UE el bono cuesta 5 € al día.",
            "doc": {"id": "roaming#roaming-fuera-de-la-ue", "title": "Roaming",
                    "url": "/kb/docs/roaming#roaming-fuera-de-la-ue"},
            "score": 0.8, "cardId": "kb-1", "refs": ["u1"],
        }
    )  # fmt: skip


async def test_feedback_on_a_card_goes_to_the_report(kb_relay: RelayServer) -> None:
    card = await _card(kb_relay, "call-fb")
    async with httpx.AsyncClient(base_url=kb_relay.http) as client:
        for useful in (True, False, False):
            r = await client.post(
                "/calls/call-fb/feedback", json={"eventId": card["id"], "useful": useful},
                headers=_auth(kb_relay, "agent", "200"),
            )  # fmt: skip
            assert r.status_code == 200, r.text
        report = (await client.get("/kb/report", headers=_auth(kb_relay, "supervisor"))).json()
    # One agent's marks of one card count once: the newest (relay/kb_report.py).
    assert [(p["passage"], p["useful"], p["notUseful"]) for p in report["passages"]] == [
        ("roaming#roaming-fuera-de-la-ue", 0, 1)
    ]


async def test_feedback_refuses_other_agents_and_bad_input(kb_relay: RelayServer) -> None:
    card = await _card(kb_relay, "call-fb2")
    tip = await kb_relay.bus.publish(
        {"type": "coach", "callId": "call-fb2", "kind": "tip", "severity": "info",
         "source": "rules", "ruleId": "r1", "text": "Sonría", "refs": []}
    )  # fmt: skip
    async with httpx.AsyncClient(base_url=kb_relay.http) as client:
        mine, other = _auth(kb_relay, "agent", "200"), _auth(kb_relay, "agent", "201")
        url = "/calls/call-fb2/feedback"
        ok = {"eventId": card["id"], "useful": True}
        assert (await client.post(url, json=ok, headers=other)).status_code == 404
        assert (await client.post(url, json=ok)).status_code == 401
        assert (await client.post("/calls/nope/feedback", json=ok, headers=mine)).status_code == 404
        assert (
            await client.post("/calls/bad id/feedback", json=ok, headers=mine)
        ).status_code == 400
        cases: list[tuple[Any, int, str | None]] = [
            ({"eventId": card["id"], "useful": "yes"}, 400, "useful"),
            ({"eventId": "nope", "useful": True}, 400, "eventId"),
            ({"useful": True}, 400, "eventId"),
            ({"eventId": tip["id"], "useful": True}, 404, "eventId"),
            ({"eventId": "1-0", "useful": True}, 404, "eventId"),
            ([1, 2], 400, None),
        ]
        for body, status, field in cases:
            r = await client.post(url, json=body, headers=mine)
            assert r.status_code == status, (body, r.text)
            assert r.json()["error"] and r.json().get("field") == field
        r = await client.post(url, content=b"{not json", headers=mine)
        assert r.status_code == 400
        r = await client.post(url, content=b"x" * 5000, headers=mine)
        assert r.status_code == 413
        sup = _auth(kb_relay, "supervisor")
        assert (await client.post(url, json=ok, headers=sup)).status_code == 200


async def test_without_kb_dir_the_routes_say_so(relay: RelayServer) -> None:
    async with httpx.AsyncClient(base_url=relay.http) as client:
        r = await client.get("/kb/search?q=roaming", headers=_auth(relay, "agent"))
    assert r.status_code == 404 and "KB_DIR" in r.json()["error"]
