"""The KB owner's report (relay/kb_report.py) on a real relay and real Redis: who may read
it, per-passage shown counts and marks, unanswered questions grouped with counts and last seen
and masked, the CSV export (formulas defused), and bad input."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator

import httpx
import pytest

from coach.bus import BusConfig
from coach.knowledge.report import KBReport
from coach.knowledge.shown import ShownLog
from coach.redis_server import EmbeddedRedis
from relay.kb_report import question_key
from tests.relay.conftest import SERVICE_TOKEN, RelayServer, start_relay

pytestmark = pytest.mark.integration

ROAM = "roaming#roaming-fuera-de-la-ue"
OFF = "roaming#desactivar-el-roaming"
FEE = "baja#penalizacion"


@pytest.fixture
async def server(redis_server: EmbeddedRedis, bus_config: BusConfig) -> AsyncIterator[RelayServer]:
    relay = await start_relay(redis_server.url, bus_config)  # no KB_DIR: the report still works
    yield relay
    await relay.stop()


def _auth(server: RelayServer, role: str) -> dict[str, str]:
    token = server.token(role, "200" if role == "agent" else None)
    return {"Authorization": f"Bearer {token}"}


async def _seed(server: RelayServer) -> None:
    prefix = server.bus.config.prefix
    shown = ShownLog(server.bus.redis, prefix)
    report = KBReport(server.bus.redis, prefix)
    for n in range(3):
        await shown.add(ROAM, title="Roaming", section="Roaming fuera de la UE", card_id=f"kb-r{n}")
    await shown.add(ROAM, title="Roaming", section="Roaming fuera de la UE", card_id="kb-r0")
    await shown.add(OFF, title="Roaming", section="Desactivar el roaming", card_id="kb-o1")
    await shown.add(FEE, title="Baja", section="Penalización", card_id="kb-f1")
    await report.feedback("c1", "1-0", True, card_id="kb-r0", passage=ROAM, agent="200")
    await report.feedback("c2", "2-0", True, card_id="kb-r1", passage=ROAM, agent="201")
    await report.feedback("c3", "3-0", True, card_id="kb-f1", passage=FEE, agent="200")
    await report.feedback("c3", "3-0", False, card_id="kb-f1", passage=FEE, agent="200")  # newer
    await report.miss("c4", "¿Tenéis fibra en Teruel?", "es", source="call", utterance_id="u1")
    await report.miss(None, "tenéis fibra en teruel", "es", source="search")
    await report.miss("c5", "¿Qué tiempo hace?", "es", source="call", utterance_id="u2")
    # An agent typed a card number into the search box: the report never shows it.
    await report.miss(None, "pago con 4111 1111 1111 1111 no va", "es", source="search")
    await report.miss(None, '=HYPERLINK("http://x")', "en", source="search")
    await report.miss("c6", "¿Tenéis fibra en Teruel?", "es", source="call", utterance_id="u3")


@pytest.mark.unit
def test_wordings_of_one_question_share_a_key() -> None:
    assert question_key("¿Tenéis FIBRA en Teruel?") == question_key("tenéis fibra  en teruel")
    assert question_key("mi [card] no va") == "mi [card] no va"
    assert question_key("¿cuánto cuesta?") != question_key("¿cuándo cuesta?")


async def test_only_supervisors_read_the_report(server: RelayServer) -> None:
    async with httpx.AsyncClient(base_url=server.http) as client:
        for path in ("/kb/report", "/kb/report.csv"):
            assert (await client.get(path)).status_code == 401
            assert (
                await client.get(path, headers={"Authorization": "Bearer x"})
            ).status_code == 401
            r = await client.get(path, headers=_auth(server, "agent"))
            assert r.status_code == 403 and "supervisors" in r.json()["error"]
            service = {"Authorization": f"Bearer {SERVICE_TOKEN}"}
            assert (await client.get(path, headers=service)).status_code == 403
            token = server.token("supervisor")
            assert (await client.get(f"{path}?token={token}")).status_code == 401
            assert (await client.get(path, headers=_auth(server, "supervisor"))).status_code == 200


async def test_the_report_counts_shown_marks_and_misses(server: RelayServer) -> None:
    await _seed(server)
    async with httpx.AsyncClient(base_url=server.http) as client:
        r = await client.get("/kb/report", headers=_auth(server, "supervisor"))
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    body = r.json()
    rows = {p["passage"]: p for p in body["passages"]}
    assert (rows[ROAM]["shown"], rows[ROAM]["useful"], rows[ROAM]["notUseful"]) == (3, 2, 0)
    assert (rows[FEE]["shown"], rows[FEE]["useful"], rows[FEE]["notUseful"]) == (1, 0, 1)
    assert (rows[OFF]["shown"], rows[OFF]["useful"], rows[OFF]["notUseful"]) == (1, 0, 0)
    assert rows[ROAM]["section"] == "Roaming fuera de la UE" and rows[ROAM]["lastShown"] > 0
    assert body["passages"][0]["passage"] == FEE  # the not-useful ones first
    docs = {d["docId"]: d for d in body["documents"]}
    assert (docs["roaming"]["shown"], docs["roaming"]["useful"], docs["roaming"]["title"]) == (
        4, 2, "Roaming",
    )  # fmt: skip
    assert sorted(p["passage"] for p in docs["roaming"]["passages"]) == [OFF, ROAM]
    unanswered = body["unanswered"]
    assert unanswered[0]["text"] == "¿Tenéis fibra en Teruel?"
    assert (unanswered[0]["count"], unanswered[0]["fromCalls"], unanswered[0]["fromSearches"]) == (
        3, 2, 1,
    )  # fmt: skip
    newest = (await KBReport(server.bus.redis, server.bus.config.prefix).read(1))["misses"][0]
    assert unanswered[0]["lastSeen"] == int(newest["id"].split("-")[0])  # the last Teruel one
    texts = [u["text"] for u in unanswered]
    assert "pago con [card] no va" in texts and "¿Qué tiempo hace?" in texts
    assert "4111" not in r.text
    async with httpx.AsyncClient(base_url=server.http) as client:
        r = await client.get("/kb/report?limit=1", headers=_auth(server, "supervisor"))
    assert len(r.json()["unanswered"]) == 1 and len(r.json()["passages"]) == 1


async def test_the_report_as_csv(server: RelayServer) -> None:
    await _seed(server)
    async with httpx.AsyncClient(base_url=server.http) as client:
        passages = await client.get("/kb/report.csv", headers=_auth(server, "supervisor"))
        misses = await client.get(
            "/kb/report.csv?table=unanswered", headers=_auth(server, "supervisor")
        )
    assert passages.headers["content-type"].startswith("text/csv")
    assert 'filename="kb-passages.csv"' in passages.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(passages.text)))
    fee = next(row for row in rows if row["passage"] == FEE)
    assert (fee["docId"], fee["title"], fee["shown"], fee["notUseful"]) == (
        "baja",
        "Baja",
        "1",
        "1",
    )
    rows = list(csv.DictReader(io.StringIO(misses.text)))
    assert rows[0]["text"] == "¿Tenéis fibra en Teruel?" and rows[0]["count"] == "3"
    assert any(row["text"] == '\'=HYPERLINK("http://x")' for row in rows)  # not a formula
    assert "4111" not in misses.text


@pytest.mark.parametrize(
    ("query", "field"), [("limit=0", "limit"), ("limit=x", "limit"), ("table=all", "table")]
)
async def test_bad_input_is_a_400_naming_it(server: RelayServer, query: str, field: str) -> None:
    async with httpx.AsyncClient(base_url=server.http) as client:
        r = await client.get(f"/kb/report.csv?{query}", headers=_auth(server, "supervisor"))
    assert r.status_code == 400 and r.json()["field"] == field
