"""Per-call language: CALL_LANG or the dialplan's `lang=` -> call.started.lang -> `lang=` on
both legs' WS /stream (ARI double, real RTP, the fake STT, real Redis)."""

from __future__ import annotations

import pytest

from ari.controller import _lang_arg
from fakes.poll import until_async
from tests.ari.conftest import prompt_pcm

pytestmark = pytest.mark.integration


async def _started(bus, call_id: str) -> dict:
    async def probe() -> dict | None:
        events = [e.data() for e in await bus.read_call(call_id)]
        return next((e for e in events if e["type"] == "call.started"), None)

    found = await until_async(probe, 10, what=f"call.started of {call_id}")
    assert found is not None
    return found


@pytest.mark.parametrize(
    ("call_lang", "args", "want"),
    [
        ("es", (), "es"),
        ("en", (), "en"),
        ("es", ("lang=en",), "en"),
        ("es", ("lang=auto",), "auto"),
    ],
    ids=["default", "setting", "dialplan", "dialplan-auto"],
)
async def test_the_call_language_reaches_call_started_and_both_streams(  # noqa: PLR0917
    double, stt, bus, service_factory, call_lang, args, want
):
    await service_factory(CALL_LANG=call_lang)
    cid = await double.incoming_call(
        "100", "Ana", prompt_pcm("agent-user"), prompt_pcm("conf-getpin"), *args
    )
    assert (await _started(bus, cid))["lang"] == want
    await stt.wait_for(
        lambda: {s.speaker for s in stt.streams if s.call_id == cid} >= {"agent", "customer"}
    )
    assert {s.lang for s in stt.streams if s.call_id == cid} == {want}
    await double.hangup(cid)


def test_a_bad_dialplan_lang_falls_back_to_call_lang():
    assert _lang_arg(["role=caller", "lang=EN"], "c1") == "en"
    assert _lang_arg(["role=caller", "lang=en-US; drop"], "c1") == ""
    assert _lang_arg(["role=caller"], "c1") == ""
