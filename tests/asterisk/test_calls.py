"""Calls through the real Asterisk with real SIP phones: the caller arrives on the trunk as a
carrier sends it (its number in From, a display name), the agent is a registered PJSIP phone
that answers by itself; both play real Spanish telephone speech."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ari.audio import load_audio, load_wav
from bench.stt.corpus import references, sounds
from bench.stt.wer import WerCounts, wer
from testbed.asterisk import installed_version
from tests.asterisk.conftest import (
    EN_NUMBER,
    SOUNDS,
    bus_events,
    wait_call_event,
    wait_final,
    wait_for_event,
    wait_no_leftovers,
)

pytestmark = [pytest.mark.asterisk, pytest.mark.slow]

MUSIC = Path("/usr/share/asterisk/moh/manolo_camp-morning_coffee.wav")
CALLER = "+34600111222"
CUSTOMER_SAYS = ["agent-newlocation", "conf-getpin"]
AGENT_SAYS = ["conf-extended", "agent-user"]


def _said(prompts: list[str]) -> str:
    refs = references()
    return " ".join(refs[p] for p in prompts)


@pytest.mark.parametrize(
    "codecs",
    [("PCMU", "PCMA"), ("PCMA", "PCMU")],
    ids=["caller-ulaw-agent-alaw", "caller-alaw-agent-ulaw"],
)
async def test_normal_call(pbx, ari_factory, orchestrator, phones, stack_bus, codecs):  # noqa: PLR0917
    ari_factory()
    # The agent speaks the moment it answers: its first words must not be lost to tap set-up.
    await phones("agent", "200", AGENT_SAYS, codec=codecs[1], lead=0.0)
    caller = await phones("caller", CALLER, CUSTOMER_SAYS, codec=codecs[0], name="Ana García")
    await caller.dial(f"sip:900@127.0.0.1:{pbx.sip_port}")

    started = await wait_for_event(
        stack_bus,
        lambda e: e["type"] == "call.started" and e.get("caller", {}).get("number") == CALLER,
    )
    call_id = started["callId"]
    assert started["caller"] == {"number": CALLER, "name": "Ana García"}
    assert started["agent"] == "200" and started["lang"] == "es"
    answered = await wait_call_event(stack_bus, call_id, "call.answered")
    assert answered["agent"] == "200"

    # Each speaker's last prompt reaches STT as that speaker's final.
    # The last words the agent says: hanging up before them would cut the agent off
    # mid-sentence and score the test's timing, not the transcript.
    await wait_final(stack_bus, call_id, "agent", 90, says="tecla")
    await wait_final(stack_bus, call_id, "customer", 90, says="clave")
    await caller.hangup()
    ended = await wait_call_event(stack_bus, call_id, "call.ended")
    assert ended["reason"] == "caller-hangup"
    await wait_call_event(stack_bus, call_id, "summary", 90)
    await wait_no_leftovers(pbx)

    events = await bus_events(stack_bus, call_id)
    first_agent = next(e for e in events if e["type"] == "final" and e["speaker"] == "agent")
    # "La conferencia ha sido extendida": its first word survives (a late tap loses it).
    words = first_agent["text"].lower().split()
    assert words[0] == "la" and "extendida." in words, first_agent["text"]
    finals = {
        s: " ".join(e["text"] for e in events if e["type"] == "final" and e["speaker"] == s)
        for s in ("customer", "agent")
    }
    # Right words on the right side: each side scores well against what it said and badly
    # against what the other side said (a swap or a mix would fail one of the four).
    assert wer(_said(CUSTOMER_SAYS), finals["customer"]) < 0.35, finals
    assert wer(_said(AGENT_SAYS), finals["agent"]) < 0.35, finals
    assert wer(_said(AGENT_SAYS), finals["customer"]) > 0.7, finals
    assert wer(_said(CUSTOMER_SAYS), finals["agent"]) > 0.7, finals


async def test_a_number_with_its_own_language(pbx, ari_factory, orchestrator, phones, stack_bus):
    # CALL_LANG_NUMBERS (the pbx fixture) gives EN_NUMBER English while CALL_LANG stays es: the
    # dialplan hands lang=en to the app, which announces it and streams both legs with it.
    ari_factory()
    english = sounds("en")
    await phones("agent", "200", AGENT_SAYS, lead=0.0, sounds=english)
    number = "+34600111333"
    caller = await phones("caller", number, CUSTOMER_SAYS, sounds=english)
    await caller.dial(f"sip:{EN_NUMBER}@127.0.0.1:{pbx.sip_port}")
    started = await wait_for_event(
        stack_bus,
        lambda e: e["type"] == "call.started" and e.get("caller", {}).get("number") == number,
    )
    call_id = started["callId"]
    assert started["lang"] == "en"
    # "... followed by the pound key." and "... the conference pin number.": the last words.
    await wait_final(stack_bus, call_id, "agent", 90, says="key")
    await wait_final(stack_bus, call_id, "customer", 90, says="pin")
    await caller.hangup()
    await wait_call_event(stack_bus, call_id, "call.ended")
    await wait_no_leftovers(pbx)

    events = await bus_events(stack_bus, call_id)
    finals = [e for e in events if e["type"] == "final" and e["text"]]
    assert finals and {e["lang"] for e in finals} == {"en"}, finals
    refs = references("en")
    for speaker, said in (("customer", CUSTOMER_SAYS), ("agent", AGENT_SAYS)):
        heard = " ".join(e["text"] for e in finals if e["speaker"] == speaker)
        # Decoded as Spanish, English speech scores far worse than this.
        assert WerCounts(lang="en").add(" ".join(refs[p] for p in said), heard) < 0.35, heard


def _best_match(signal: np.ndarray, template: np.ndarray) -> float:
    """Peak normalised cross-correlation of `template` anywhere in `signal` (0..1)."""
    n = len(signal) + len(template)
    size = 1 << (n - 1).bit_length()
    corr = np.fft.irfft(np.fft.rfft(signal, size) * np.conj(np.fft.rfft(template, size)), size)
    # Energy of the signal under each placement of the template, for normalisation.
    window = np.convolve(signal**2, np.ones(len(template)), mode="full")[len(template) - 1 :]
    energy = np.sqrt(np.maximum(window[: len(signal)], 1e-9) * float((template**2).sum()))
    return float(np.max(np.abs(corr[: len(signal)]) / energy))


async def test_recording_is_stereo_caller_left_agent_right(pbx, ari_factory, phones, stack_bus):
    ari_factory(AGENT_DIAL="PJSIP/207")
    await phones("agent", "207", ["conf-extended"], lead=3.0)
    number = "+34600999888"
    caller = await phones("caller", number, ["agent-newlocation"])
    await caller.dial(f"sip:900@127.0.0.1:{pbx.sip_port}")
    started = await wait_for_event(
        stack_bus, lambda e: e["type"] == "call.started" and e["caller"]["number"] == number
    )
    call_id = started["callId"]
    await wait_final(stack_bus, call_id, "agent", 60)
    await caller.hangup()
    await wait_call_event(stack_bus, call_id, "call.ended")
    await wait_no_leftovers(pbx)

    [path] = list(pbx.recordings.glob(f"*-{call_id}.raw"))
    rate, (left, right) = load_audio(path)
    assert rate == 8000
    stereo = [np.frombuffer(ch, "<i2").astype(np.float64) for ch in (left, right)]
    said = {
        name: np.frombuffer(load_wav(SOUNDS / f"{name}.wav")[1][0], "<i2").astype(np.float64)
        for name in ("agent-newlocation", "conf-extended")
    }
    # Each prompt is on its own speaker's channel (through G.711: near 1) and not the other.
    assert _best_match(stereo[0], said["agent-newlocation"]) > 0.8
    assert _best_match(stereo[1], said["conf-extended"]) > 0.8
    assert _best_match(stereo[1], said["agent-newlocation"]) < 0.5
    assert _best_match(stereo[0], said["conf-extended"]) < 0.5


async def test_music_on_the_line_is_not_transcribed(pbx, ari_factory, phones, stack_bus):
    # The caller's phone plays 30 s of real music into the call (Debian's opsound music on
    # hold), then speaks. Music is not speech: no customer final may come from it.
    ari_factory(AGENT_DIAL="PJSIP/208")
    await phones("agent", "208", ["conf-extended"], lead=1.0)
    rate, (music, *_) = load_wav(MUSIC)
    assert rate == 8000
    number = "+34600777666"
    caller = await phones("caller", number, ["conf-getpin"], lead=0.0, intro=music[: 30 * 8000 * 2])
    await caller.dial(f"sip:900@127.0.0.1:{pbx.sip_port}")
    started = await wait_for_event(
        stack_bus, lambda e: e["type"] == "call.started" and e["caller"]["number"] == number
    )
    call_id = started["callId"]
    spoken = await wait_final(stack_bus, call_id, "customer", 90, says="clave")
    assert spoken["start"] > 29.0  # it is the prompt after the music
    await caller.hangup()
    await wait_call_event(stack_bus, call_id, "call.ended")
    from_music = [
        e["text"]
        for e in await bus_events(stack_bus, call_id)
        if e["type"] == "final" and e["speaker"] == "customer" and e["end"] < 30.0
    ]
    assert from_music == []
    await wait_no_leftovers(pbx)


async def test_websocket_media_transport(pbx, ari_factory, phones, stack_bus):
    # chan_websocket ExternalMedia: Asterisk serves each tap's audio at /media/<id>; no RTP,
    # no gateway port. Same call, same transcript.
    ari = ari_factory(AGENT_DIAL="PJSIP/209", MEDIA_TRANSPORT="websocket")
    await phones("agent", "209", AGENT_SAYS, lead=0.0)
    number = "+34600555444"
    caller = await phones("caller", number, CUSTOMER_SAYS)
    await caller.dial(f"sip:900@127.0.0.1:{pbx.sip_port}")
    started = await wait_for_event(
        stack_bus, lambda e: e["type"] == "call.started" and e["caller"]["number"] == number
    )
    call_id = started["callId"]
    for speaker, word in (("agent", "agente"), ("customer", "clave")):
        await wait_final(stack_bus, call_id, speaker, 90, says=word)
    health = ari.health()
    assert health["taps"] == 2 and health["portsInUse"] == 0  # no UDP port used
    assert [c for c in pbx.get("/channels") if c["name"].startswith("WebSocket/")]
    await caller.hangup()
    await wait_call_event(stack_bus, call_id, "call.ended")
    await wait_no_leftovers(pbx)
    assert ari.health()["taps"] == 0


def test_tier_runs_the_pinned_asterisk(pbx, chroot):
    # The Asterisk answering ARI is the chroot's package, of the pinned major version (the
    # image installs the same one; its label records this version).
    version = installed_version(chroot)
    running = pbx.get("/asterisk/info")["system"]["version"]
    assert version.startswith("1:22.") and running == version.removeprefix("1:")
