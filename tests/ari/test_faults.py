"""Faults: events WebSocket drops, STT down/restarting, RTP reordered/lost/SSRC change."""

from __future__ import annotations

import asyncio
import logging
from array import array

import pytest

from ari.audio import resample
from fakes.ari_double import DBridge, DChannel
from fakes.poll import until
from tests.ari.conftest import assert_customer_audio, prompt_pcm
from tests.ari.test_call_flow import _wait_bus, _wait_empty

pytestmark = pytest.mark.integration


async def test_events_ws_drop_reconnects_and_reconciles(double, stt, bus, service_factory):
    svc = await service_factory()
    double.rtp_speed = 10.0
    cid = await double.incoming_call(
        "100", "Bob", prompt_pcm("agent-user"), prompt_pcm("conf-getpin")
    )
    await stt.wait_for(lambda: stt.audio(cid, "agent") and stt.audio(cid, "customer"))
    connects = svc.events.connects

    # While the events socket is down the caller hangs up: no StasisEnd reaches us.
    double.accept_events = False
    await double.drop_events()
    await double.hangup(cid)
    # Orphans a previous instance left behind: a tap bridge and an ExternalMedia channel.
    double.bridges["coach_app-tap_customer-999.1"] = DBridge("coach_app-tap_customer-999.1", "")
    double.channels["coach_app-em_customer-999.1"] = DChannel(
        "coach_app-em_customer-999.1", "UnicastRTP/127.0.0.1:9-0x1", "Up", "external"
    )
    double.accept_events = True
    events = await _wait_bus(bus, cid, "call.ended")
    assert svc.events.connects == connects + 1
    assert events[-1]["reason"] == "caller-hangup"
    await _wait_empty(double, svc)
    assert double.leftovers() == ([], [])


@pytest.mark.parametrize("agent_dial", ["PJSIP/200", "Local/200@agents"])
async def test_reconnect_adopts_live_call_after_restart(
    double, stt, bus, service_factory, agent_dial
):
    """With a Local agent the ;2 half (id "<agent id>;2") belongs to the call: reconciliation
    must not take it for an orphan (found against a real Asterisk 22, where doing so hung the
    agent up)."""
    double.rtp_speed = 2.0
    svc = await service_factory(AGENT_DIAL=agent_dial)
    customer = prompt_pcm("demo-congrats")  # 39 s: still talking across the restart
    cid = await double.incoming_call("100", "Bob", customer, prompt_pcm("conf-getpin"))
    await stt.wait_for(lambda: stt.audio(cid, "customer"))
    await svc.stop()  # graceful: the call stays up, our taps are removed
    assert cid in double.channels and f"coach_app-agent-{cid}" in double.channels
    assert not [c for c in double.channels if c.startswith("coach_app-em_")]
    before = len(stt.audio(cid, "customer"))

    svc2 = await service_factory(AGENT_DIAL=agent_dial)
    await stt.wait_for(lambda: len(stt.audio(cid, "customer")) > before + 16000)
    assert cid in svc2.controller.calls
    assert f"coach_app-agent-{cid}" in double.channels  # the agent is still on the call
    await double.hangup(cid)
    events = await _wait_bus(bus, cid, "call.ended")
    # Announced once: the adopting instance sends neither call.started nor call.answered again.
    assert [e["type"] for e in events if e["type"].startswith("call.")] == [
        "call.started",
        "call.answered",
        "call.ended",
    ]
    await _wait_empty(double, svc2)
    assert double.leftovers() == ([], [])


async def test_stasis_fails_without_app(double):
    # No ari service connected: Stasis() fails; the dialplan's fallback must dial the agent.
    with pytest.raises(RuntimeError, match="STASISSTATUS=FAILED"):
        await double.incoming_call("100", "Bob", b"", b"")


async def test_stt_down_then_up_keeps_audio(double, stt, bus, service_factory):
    svc = await service_factory()
    double.rtp_speed = 5.0
    stt.down = True
    customer = prompt_pcm("agent-newlocation")
    cid = await double.incoming_call("100", "Bob", customer, prompt_pcm("agent-user"))
    await stt.wait_for(lambda: stt.refused >= 2)
    stt.down = False
    want = resample(customer, 8000, 16000)
    await stt.wait_for(lambda: len(stt.audio(cid, "customer")) >= len(want))
    # Buffered while STT was down, delivered in full and in order once it came back.
    assert_customer_audio(stt.audio(cid, "customer"), want)
    await double.hangup(cid)
    await _wait_empty(double, svc)
    await stt.wait_for(lambda: stt.open_streams == 0)


async def test_stt_restart_mid_stream_reconnects(double, stt, bus, service_factory):
    svc = await service_factory()
    double.rtp_speed = 5.0
    stt.close_after_bytes = 32000  # the first socket to pass 1 s of audio is dropped
    customer, agent = prompt_pcm("agent-newlocation"), prompt_pcm("agent-user")
    cid = await double.incoming_call("100", "Bob", customer, agent)
    want = {"customer": resample(customer, 8000, 16000), "agent": resample(agent, 8000, 16000)}

    def streams_of(speaker: str) -> list:
        return [s for s in stt.streams if s.call_id == cid and s.speaker == speaker]

    def received(speaker: str) -> int:
        streams = streams_of(speaker)
        if not streams:
            return 0
        return round((streams[-1].offset - streams[0].offset) * 32000) + len(streams[-1].audio)

    await stt.wait_for(lambda: all(received(sp) >= len(w) for sp, w in want.items()))
    assert len([s for s in stt.streams if s.call_id == cid]) == 3  # one speaker reconnected
    # The caller's tap opens first (held while the agent rings); times count from the call's start.
    assert streams_of("agent")[0].offset >= streams_of("customer")[0].offset > 0
    for speaker, samples in want.items():
        # The first socket's offset is when the tap opened, counted from the call's start.
        first = streams_of(speaker)[0].offset
        assert 0 < first < 5
        for stream in streams_of(speaker):
            # Each socket carries exactly the call's samples from where it says it starts
            # (audio in flight when STT died is lost: WebSocket has no acks).
            start = round((stream.offset - first) * 32000)
            got = bytes(stream.audio)[: max(0, len(samples) - start)]  # past the end: padding
            if speaker == "customer" and start == 0:
                assert_customer_audio(got, samples[: len(got)])  # held while the agent rang
            else:
                assert got == samples[start : start + len(got)]
    await double.hangup(cid)
    await _wait_empty(double, svc)


async def test_stt_slow_bounded_buffer_drops_oldest(double, stt, bus, service_factory):
    svc = await service_factory(STT_BUFFER_SECONDS="0.5")
    double.rtp_speed = 10.0
    stt.read_delay = 0.2  # far slower than real time
    # 39 s of speech sent at 10x: far more than the kernel's socket buffers hold.
    customer = prompt_pcm("demo-congrats")
    cid = await double.incoming_call("100", "Bob", customer, b"")
    tap = await until(
        lambda: next(
            (t for t in svc.gateway.taps if t.call_id == cid and t.speaker == "customer"), None
        )
    )
    assert tap is not None
    await until(lambda: tap.stream.dropped_bytes)
    assert tap.stream.queued_bytes <= tap.stream.max_bytes
    stt.read_delay = 0
    await double.hangup(cid)
    await _wait_empty(double, svc)
    await stt.wait_for(lambda: stt.open_streams == 0)
    # Everything the tap fed is accounted for: sent to STT, or dropped from the bound.
    stream = tap.stream
    fed = stream.sent_bytes + stream.dropped_bytes
    assert stream.queued_bytes == 0 and stream.dropped_bytes > 0
    got = stt.audio(cid, "customer")
    assert len(got) == stream.sent_bytes < fed
    # What was dropped is the OLDEST audio: what STT got ends with the newest the tap fed
    # (the last 0.25 s before the hangup), not with where the buffer first overflowed.
    want = resample(customer, 8000, 16000)
    frame, frames = 640, 10  # the last 200 ms, in 20 ms frames
    tail = frame * frames
    assert fed - tail > len(got) // 4 and fed <= len(want)
    # Frame by frame: at 10x a datagram can be lost in a busy kernel, and the jitter buffer
    # fills its place with silence of the same length (alignment kept). Dropping the newest
    # instead of the oldest would match none of them.
    same = sum(
        got[len(got) - tail + k * frame : len(got) - tail + (k + 1) * frame]
        == want[fed - tail + k * frame : fed - tail + (k + 1) * frame]
        for k in range(frames)
    )
    assert same >= frames // 2, f"{same} of the last {frames} frames are the newest audio"


@pytest.mark.parametrize("knob", ["reorder", "loss", "ssrc"])
async def test_rtp_impairments(double, stt, bus, service_factory, knob):
    svc = await service_factory()
    double.rtp_speed = 5.0
    if knob == "reorder":
        double.rtp_reorder = True
    elif knob == "loss":
        double.rtp_loss_every = 10
    else:
        double.rtp_ssrc_change_at = 50
    customer = prompt_pcm("agent-user")
    cid = await double.incoming_call("100", "Bob", customer, b"")
    want = resample(customer, 8000, 16000)
    frames = (len(want) + 639) // 640
    want_padded = want + bytes(frames * 640 - len(want))
    if knob == "loss":
        # Every 10th packet lost: the gateway fills exactly those 20 ms with silence.
        expected = b"".join(
            bytes(640) if i % 10 == 9 else want_padded[i * 640 : (i + 1) * 640]
            for i in range(frames)
        )
        await stt.wait_for(lambda: len(stt.audio(cid, "customer")) >= frames * 640)
        await double.hangup(cid)
        await _wait_empty(double, svc)
        got = stt.audio(cid, "customer")
        # Silent frames before the agent answered are the held tap, not loss.
        lead = next(i for i in range(frames) if any(got[i * 640 : (i + 1) * 640]))
        assert lead < frames // 2
        bad = [
            i
            for i in range(lead, len(got) // 640)
            if got[i * 640 : (i + 1) * 640] != expected[i * 640 : (i + 1) * 640]
        ]
        assert not bad, (bad[:10], len(got) // 640, frames)
        assert len(got) == frames * 640
        assert array("h", got[9 * 640 : 10 * 640]) == array("h", bytes(640))
    else:
        await stt.wait_for(lambda: len(stt.audio(cid, "customer")) >= len(want))
        assert_customer_audio(stt.audio(cid, "customer"), want)
        await double.hangup(cid)
        await _wait_empty(double, svc)


async def test_restart_while_agent_rings_adopts_and_bridges(double, stt, bus, service_factory):
    double.rtp_speed = 5.0
    double.agent_answer_delay = 1.5
    svc = await service_factory()
    customer = prompt_pcm("demo-congrats")  # 39 s (8 s at 5x): goes on after the answer
    cid = await double.incoming_call("100", "Bob", customer, prompt_pcm("agent-user"))
    await double.wait_event("ChannelStateChange", f"coach_app-agent-{cid}")  # ringing
    await svc.stop()
    svc2 = await service_factory()
    want = resample(customer, 8000, 16000)

    def adopted_stream() -> bytes:
        # The first instance's tap (held while ringing) was removed at its stop; the adopting
        # instance's tap carries the conversation.
        streams = [s for s in stt.streams if s.call_id == cid and s.speaker == "customer"]
        return bytes(streams[-1].audio) if len(streams) > 1 else b""

    await stt.wait_for(lambda: len(adopted_stream()) >= len(want) and any(adopted_stream()))
    assert_customer_audio(adopted_stream(), want)
    # One originate only: the adopted call waited for the ringing agent instead of re-dialling.
    assert len([r for r in double.requests if r[:2] == ("POST", "/ari/channels")]) == 1
    await double.hangup(cid)
    await _wait_empty(double, svc2)
    events = await _wait_bus(bus, cid, "call.ended")
    assert [e["type"] for e in events if e["type"].startswith("call.")] == [
        "call.started",
        "call.answered",
        "call.ended",
    ]


async def test_rtp_loss_shows_in_metrics(double, stt, bus, service_factory):
    from prometheus_client import generate_latest

    svc = await service_factory()
    double.rtp_speed = 10.0
    double.rtp_loss_every = 5
    cid = await double.incoming_call("100", "Bob", prompt_pcm("agent-user"), b"")
    await stt.wait_for(lambda: len(stt.audio(cid, "customer")) >= 64000)
    await double.hangup(cid)
    await _wait_empty(double, svc)
    text = generate_latest(svc.metrics.registry).decode()
    lost = float(text.split('ari_rtp_packets_total{outcome="lost"} ')[1].split()[0])
    assert lost >= 15  # every fifth packet of the ~100 sent before the hangup


async def test_event_queue_overflow_drops_socket_and_reconciles(
    double, stt, bus, service_factory, caplog
):
    """A full event queue refuses the event, drops the events socket on purpose, and the
    reconnect's reconciliation ends the call whose hangup events were lost."""
    svc = await service_factory()
    ctl = svc.controller
    double.rtp_speed = 10.0
    cid = await double.incoming_call(
        "100", "Bob", prompt_pcm("agent-user"), prompt_pcm("conf-getpin")
    )
    await _wait_bus(bus, cid, "call.answered")
    connects = svc.events.connects
    reconciles = svc.metrics.registry.get_sample_value("ari_reconciliations_total")
    # Call control falls behind: its queue (bound 10,000; 1 here) is full and nobody drains
    # it while the caller hangs up.
    stuck: asyncio.Queue = asyncio.Queue(1)
    stuck.put_nowait({"type": "Filler"})
    running, ctl.queue = ctl.queue, stuck
    emitted_from = len(double.events_log)
    with caplog.at_level(logging.WARNING, logger="ari.calls"):
        await double.hangup(cid)
        events = await _wait_bus(bus, cid, "call.ended")
    assert stuck.qsize() == 1  # nothing was handled: the end came from reconciliation
    assert events[-1]["reason"] == "caller-hangup"
    assert svc.events.connects > connects
    assert svc.metrics.registry.get_sample_value("ari_reconciliations_total") > reconciles
    # Which events were refused: the first is the caller's hangup, the one the double emitted
    # first after the queue filled up; each refusal is counted by type.
    refused = [r for r in caplog.records if r.getMessage().startswith("event queue full")]
    first = double.events_log[emitted_from]
    assert (first["type"], first["channel"]["id"]) == ("ChannelHangupRequest", cid)
    assert (refused[0].event, refused[0].channel) == ("ChannelHangupRequest", cid)
    assert (
        svc.metrics.registry.get_sample_value(
            "ari_events_dropped_total", {"type": "ChannelHangupRequest"}
        )
        >= 1
    )
    ctl.queue = running
    await _wait_empty(double, svc)
    assert double.leftovers() == ([], [])


async def test_failed_call_flow_is_logged_counted_and_ends_the_call(
    double, bus, service_factory, caplog, monkeypatch
):
    """A bug inside one call's flow (not an ARI error) must not leave the call hanging."""
    from ari.controller import Controller

    async def broken(self, call):
        raise RuntimeError("injected")

    monkeypatch.setattr(Controller, "_connect_agent", broken)
    svc = await service_factory()
    with caplog.at_level(logging.ERROR, logger="coach.tasks"):
        cid = await double.incoming_call("100", "Bob", prompt_pcm("agent-user"), b"")
        events = await _wait_bus(bus, cid, "call.ended")
    assert events[-1]["reason"] == "error"
    failed = [r for r in caplog.records if getattr(r, "task", None) == "call-flow"]
    assert [(r.callId, r.service) for r in failed] == [(cid, "ari")]
    assert "injected" in failed[0].getMessage()
    assert (
        svc.metrics.registry.get_sample_value(
            "coach_task_failures_total", {"service": "ari", "task": "call-flow"}
        )
        == 1
    )
    # Teardown deleted what the flow had made, and hung the caller up.
    await _wait_empty(double, svc)
    assert double.leftovers() == ([], [])


async def test_failed_tap_is_counted_and_the_call_goes_on(
    double, stt, service_factory, caplog, monkeypatch
):
    """A bug while opening one speaker's tap loses that transcript only: logged with the call
    id, counted, the call shown as degraded in /health, and the rest of the call unharmed."""
    svc = await service_factory()
    open_tap = svc.gateway.open_tap

    async def broken_for_agent(call_id, speaker, *args, **kwargs):
        if speaker == "agent":
            raise RuntimeError("injected")
        return await open_tap(call_id, speaker, *args, **kwargs)

    monkeypatch.setattr(svc.gateway, "open_tap", broken_for_agent)
    double.rtp_speed = 5.0
    customer = prompt_pcm("agent-user")
    with caplog.at_level(logging.ERROR, logger="coach.tasks"):
        cid = await double.incoming_call("100", "Bob", customer, prompt_pcm("conf-getpin"))
        want = resample(customer, 8000, 16000)
        await stt.wait_for(lambda: len(stt.audio(cid, "customer")) >= len(want))
    assert_customer_audio(stt.audio(cid, "customer"), want)
    assert not stt.audio(cid, "agent")
    health = svc.health()
    assert (health["calls"], health["degradedCalls"]) == (1, 1)
    failed = [r for r in caplog.records if getattr(r, "task", None) == "tap"]
    assert [r.callId for r in failed] == [cid]
    registry = svc.metrics.registry
    assert (
        registry.get_sample_value("coach_task_failures_total", {"service": "ari", "task": "tap"})
        == 1
    )
    assert registry.get_sample_value("ari_tap_failures_total") == 1
    await double.hangup(cid)
    events = await _wait_bus(svc.bus, cid, "call.ended")
    assert events[-1]["reason"] == "caller-hangup"
    await _wait_empty(double, svc)
    assert double.leftovers() == ([], [])
    assert svc.health()["degradedCalls"] == 0


async def test_reconciliation_retries_while_rest_fails(double, stt, bus, service_factory):
    svc = await service_factory()
    registry = svc.metrics.registry
    await until(lambda: (registry.get_sample_value("ari_reconciliations_total") or 0) >= 1)
    double.bridges["coach_app-tap_agent-777.1"] = DBridge("coach_app-tap_agent-777.1", "")
    double.fail_list = 4  # more than the request-level retries (3): the reconcile retries
    await double.drop_events()
    await until(lambda: "coach_app-tap_agent-777.1" not in double.bridges, 20)
    assert double.fail_list == 0
    assert [r for r in double.requests if r[2] == 503]


async def test_stasis_start_missed_during_outage_is_recovered(double, stt, bus, service_factory):
    svc = await service_factory()
    double.rtp_speed = 5.0
    double.stasis_delay = 0.3
    customer = prompt_pcm("agent-user")
    cid = await double.incoming_call("100", "Bob", customer, prompt_pcm("conf-getpin"))
    await until(lambda: sum(r[1] == "/ari/channels/externalMedia" for r in double.requests) == 2)
    double.accept_events = False
    await double.drop_events()
    # The taps' StasisStart events go out while nobody listens: lost, as with Asterisk.
    for tap in svc.controller.calls[cid].taps.values():
        await double.wait_event("StasisStart", tap.external_id)
        await double.wait_event("StasisStart", tap.snoop_id)
    double.accept_events = True
    want = resample(customer, 8000, 16000)
    await stt.wait_for(lambda: len(stt.audio(cid, "customer")) >= len(want))
    assert_customer_audio(stt.audio(cid, "customer"), want)
    assert stt.audio(cid, "agent")
    await double.hangup(cid)
    await _wait_empty(double, svc)
