"""Batching across streams (issue 17): decodes queued together run as one CTranslate2 call and
give the same results as alone; a lone decode never waits for company."""

import asyncio
import collections
import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import pytest
from prometheus_client import generate_latest

from stt import batch
from stt.scheduler import DecodeScheduler, JobKind
from tests.stt import audio

pytestmark = pytest.mark.unit


class Blocker:
    """A job that holds the (single) worker until released, so that others queue behind it."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.started = threading.Event()

    def run(self) -> str:
        self.started.set()
        assert self.release.wait(30)
        return "blocker"


@dataclass(frozen=True)
class FakeRequest:
    """A decode request of the fake engine: its batch key and a value to echo."""

    key: int
    value: str

    @property
    def batch_key(self) -> int:
        return self.key


class FakeEngine:
    """Decodes through the job's rendezvous as WhisperEngine.decode does, recording each call."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.lock = threading.Lock()

    def generate(self, requests: Sequence[FakeRequest]) -> list[str]:
        with self.lock:
            self.calls.append([r.value for r in requests])
        return [r.value.upper() for r in requests]

    def decode(self, value: str, key: int = 0) -> str:
        request = FakeRequest(key, value)
        rendezvous = batch.current()
        if rendezvous is None:
            return self.generate([request])[0]
        result: str = rendezvous.generate(request, self.generate)
        return result

    def job(self, value: str, key: int = 0, twice: bool = False):
        def run() -> str:
            out = self.decode(value, key)
            if twice:  # a job that decodes again (a retry): its second decode meets too
                out += self.decode(value + "'", key)
            return out

        return run


async def queued_behind_blocker(sched: DecodeScheduler, submit) -> list:
    blocker = Blocker()
    first = await sched.submit(JobKind.FINAL, "s0", blocker.run)
    assert await asyncio.to_thread(blocker.started.wait, 10)
    jobs = await submit()
    blocker.release.set()
    await asyncio.wait_for(asyncio.gather(first.future, *(j.future for j in jobs)), 30)
    return jobs


async def test_finals_that_wait_together_are_decoded_in_one_call():
    eng = FakeEngine()
    sizes: list[int] = []
    sched = DecodeScheduler(workers=1, batch_max=4, batch_observer=sizes.append)
    sched.start()
    try:

        async def submit():
            return [
                await sched.submit(
                    JobKind.FINAL if i % 2 else JobKind.SPECULATIVE, f"s{i}", eng.job(f"f{i}")
                )
                for i in range(6)
            ]

        jobs = await queued_behind_blocker(sched, submit)
        assert [j.future.result() for j in jobs] == [f"F{i}" for i in range(6)]
        # FIFO: the first four waiting form one call, the other two the next.
        assert eng.calls == [["f0", "f1", "f2", "f3"], ["f4", "f5"]]
        assert sizes == [4, 2]
        assert sched.stats.groups == collections.Counter({1: 1, 4: 1, 2: 1})
    finally:
        await sched.close()


async def test_partials_of_several_streams_batch_but_never_with_finals():
    eng = FakeEngine()
    sched = DecodeScheduler(workers=1, batch_max=8)
    sched.start()
    try:

        async def submit():
            jobs = [
                await sched.submit(JobKind.PARTIAL, f"s{i}", eng.job(f"p{i}")) for i in range(3)
            ]
            jobs.append(await sched.submit(JobKind.FINAL, "s9", eng.job("f9")))
            return jobs

        await queued_behind_blocker(sched, submit)
        # The final first and alone (finals before partials), then the partials together.
        assert eng.calls == [["f9"], ["p0", "p1", "p2"]]
    finally:
        await sched.close()


async def test_requests_of_other_shapes_run_in_their_own_call_and_retries_meet_again():
    eng = FakeEngine()
    sched = DecodeScheduler(workers=1, batch_max=8)
    sched.start()
    try:

        async def submit():
            return [
                await sched.submit(JobKind.FINAL, "a", eng.job("a", key=1, twice=True)),
                await sched.submit(JobKind.FINAL, "b", eng.job("b", key=2)),
                await sched.submit(JobKind.FINAL, "c", eng.job("c", key=1, twice=True)),
            ]

        jobs = await queued_behind_blocker(sched, submit)
        assert [j.future.result() for j in jobs] == ["AA'", "B", "CC'"]
        first_round = sorted(sorted(c) for c in eng.calls[:2])
        assert first_round == [["a", "c"], ["b"]]
        assert sorted(eng.calls[2]) == ["a'", "c'"]
    finally:
        await sched.close()


async def test_a_failing_job_fails_alone_and_does_not_hold_the_others():
    eng = FakeEngine()
    sched = DecodeScheduler(workers=1, batch_max=4)
    sched.start()

    def broken() -> str:
        raise RuntimeError("bad audio")

    try:

        async def submit():
            return [
                await sched.submit(JobKind.FINAL, "a", eng.job("a")),
                await sched.submit(JobKind.FINAL, "b", broken),
                await sched.submit(JobKind.FINAL, "c", eng.job("c")),
            ]

        blocker = Blocker()
        first = await sched.submit(JobKind.FINAL, "s0", blocker.run)
        assert await asyncio.to_thread(blocker.started.wait, 10)
        jobs = await submit()
        blocker.release.set()
        await asyncio.wait_for(asyncio.wait([first.future, *(j.future for j in jobs)]), 30)
        assert jobs[0].future.result() == "A" and jobs[2].future.result() == "C"
        assert isinstance(jobs[1].future.exception(), RuntimeError)
        assert eng.calls == [["a", "c"]]
    finally:
        await sched.close()


async def test_a_lone_request_runs_at_once_alone():
    eng = FakeEngine()
    sizes: list[int] = []
    sched = DecodeScheduler(workers=2, batch_max=8, batch_observer=sizes.append)
    sched.start()
    try:
        lone = await sched.submit(JobKind.FINAL, "a", eng.job("a"))
        # Done before anything else is submitted: it did not wait for company.
        assert await asyncio.wait_for(lone.future, 10) == "A"
        later = await sched.submit(JobKind.FINAL, "b", eng.job("b"))
        assert await asyncio.wait_for(later.future, 10) == "B"
        assert eng.calls == [["a"], ["b"]]
        assert sizes == [1, 1]
    finally:
        await sched.close()


async def test_with_a_batch_wait_a_request_arriving_soon_after_joins():
    eng = FakeEngine()
    # Long enough that the second always arrives within it; it ends early once the group is full.
    sched = DecodeScheduler(workers=1, batch_max=2, batch_wait_s=30.0)
    sched.start()
    try:
        a = await sched.submit(JobKind.FINAL, "a", eng.job("a"))
        b = await sched.submit(JobKind.FINAL, "b", eng.job("b"))
        await asyncio.wait_for(asyncio.gather(a.future, b.future), 10)
        assert eng.calls == [["a", "b"]]
    finally:
        await sched.close()


async def test_batching_off_decodes_one_job_at_a_time():
    eng = FakeEngine()
    sched = DecodeScheduler(workers=1, batch_max=1)
    sched.start()
    try:

        async def submit():
            return [await sched.submit(JobKind.FINAL, f"s{i}", eng.job(f"f{i}")) for i in range(3)]

        await queued_behind_blocker(sched, submit)
        assert eng.calls == [["f0"], ["f1"], ["f2"]]
    finally:
        await sched.close()


# -- the real model ---------------------------------------------------------------------------

WINDOW_PROMPTS = 8


def equal_windows(engine) -> list[tuple[str, np.ndarray]]:
    """Dev prompts whose decodes have the same window length (the largest such set)."""
    from bench.stt import corpus

    by_frames: dict[int, list[tuple[str, np.ndarray]]] = collections.defaultdict(list)
    for p in corpus.load_all(half="tune"):
        x = audio.to_float16k(p.pcm)
        by_frames[engine.features(x).shape[1]].append((p.name, x))
    best = max(by_frames.values(), key=len)
    assert len(best) >= 4
    return best[:WINDOW_PROMPTS]


def timeless(hyp):
    """The hypothesis without its decode time (the one field that differs run to run)."""
    return replace(hyp, decode_s=0.0)


async def decode_batched(engine, jobs) -> tuple[list, list[int]]:
    """Run `jobs` (callables decoding with `engine`) queued together on a batching scheduler."""
    sizes: list[int] = []
    sched = DecodeScheduler(workers=1, batch_max=len(jobs), batch_observer=sizes.append)
    sched.start()
    try:

        async def submit():
            return [await sched.submit(JobKind.FINAL, f"s{i}", job) for i, job in enumerate(jobs)]

        queued = await queued_behind_blocker(sched, submit)
        return [j.future.result() for j in queued], sizes
    finally:
        await sched.close()


@pytest.mark.slow
async def test_batched_finals_are_byte_identical_to_decodes_alone(engine):
    windows = equal_windows(engine)

    def final(x):
        return lambda: engine.decode(x, final=True, lang="es", words=True)

    alone = [final(x)() for _, x in windows]
    batched, sizes = await decode_batched(engine, [final(x) for _, x in windows])
    assert max(sizes) > 1  # they did share a call
    # Text, tokens, scores, words: every field but the decode's wall time.
    assert [timeless(h) for h in batched] == [timeless(h) for h in alone]


@pytest.mark.slow
async def test_batched_partials_with_forced_prefixes_are_identical_to_decodes_alone(engine):
    from bench.stt import corpus

    windows = equal_windows(engine)
    refs = corpus.references()
    # Partials are forced to continue the words already shown: prefixes of other lengths.
    prefixes = [" ".join(refs[name].split()[: i % 3]) for i, (name, _) in enumerate(windows)]

    def partial(x, prefix):
        return lambda: engine.decode(x, final=False, lang="es", prefix=prefix)

    alone = [partial(x, pre)() for (_, x), pre in zip(windows, prefixes, strict=True)]
    jobs = [partial(x, pre) for (_, x), pre in zip(windows, prefixes, strict=True)]
    batched, sizes = await decode_batched(engine, jobs)
    assert max(sizes) > 1
    assert [h.text for h in batched] == [h.text for h in alone]
    assert [timeless(h) for h in batched] == [timeless(h) for h in alone]


def test_windows_of_other_lengths_or_prompts_are_not_batched(engine):
    x = audio.to_float16k(audio.tone_file("conf-getpin"))
    short = engine.prepare(x[:16_000], final=True, lang="es")
    longer = engine.prepare(np.concatenate([x, x, x, x]), final=True, lang="es")
    prompted = engine.prepare(x[:16_000], final=True, lang="es", prompt_tokens=(50, 51))
    greedy = engine.prepare(x[:16_000], final=False, lang="es")
    keys = {r.batch_key for r in (short, longer, prompted, greedy)}
    assert len(keys) == 4
    with pytest.raises(ValueError):
        engine.generate([short, longer])


async def stream_finals(engine, scheduler, pcm: np.ndarray, call: str, settle: bool) -> list:
    """Stream `pcm` in 20 ms chunks on `scheduler`; the finals (text, times, confidence, words)."""
    from stt.stream import StreamParams, SttStream

    events: list[dict] = []

    async def emit(event: dict) -> None:
        events.append(event)

    stream = SttStream(StreamParams(call, "agent", 8000), engine, scheduler, emit)
    for i in range(0, len(pcm), 160):
        await stream.feed(pcm[i : i + 160].astype("<i2").tobytes())
        if settle:
            await stream.idle()
    await stream.finish()
    return [
        (e["text"], e["start"], e["end"], e["confidence"], e.get("words"))
        for e in events
        if e["type"] == "final"
    ]


@pytest.mark.slow
async def test_finals_of_streams_batched_under_delay_equal_those_decoded_alone_at_once(engine):
    from tests.stt.test_determinism import GAP_S, speech

    # Two streams saying the same prompts (so their windows have equal lengths and do share
    # calls) and a third saying them in another order.
    names = ("conf-usermenu", "agent-user", "conf-invalid", "conf-getpin")

    def call_audio(order) -> np.ndarray:
        parts = [audio.silence(0.5)]
        for name in order:
            parts += [speech(name), audio.silence(GAP_S)]
        parts.append(audio.silence(1.0))
        return np.concatenate(parts)

    pcms = [call_audio(names), call_audio(names), call_audio(names[::-1])]
    alone = []
    for pcm in (pcms[0], pcms[2]):
        sched = DecodeScheduler(2, batch_max=1)
        sched.start()
        alone.append(await stream_finals(engine, sched, pcm, "solo", settle=True))
        await sched.close()
    sizes: list[int] = []
    sched = DecodeScheduler(2, test_delay_s=0.5, batch_max=8, batch_observer=sizes.append)
    sched.start()
    try:
        together = await asyncio.gather(
            *(
                stream_finals(engine, sched, pcm, f"c{i}", settle=False)
                for i, pcm in enumerate(pcms)
            )
        )
    finally:
        await sched.close()
    assert max(sizes) > 1  # decodes of several streams did share calls
    assert together == [alone[0], alone[0], alone[1]]
    assert len(alone[0]) >= len(names)


def test_batch_settings_are_checked_and_reach_the_scheduler_and_metrics(engine):
    from coach.settings import Env, SettingsError
    from stt.app import build_state
    from stt.settings import SttSettings

    token = {"RELAY_TOKEN": "t" * 20}
    with pytest.raises(SettingsError, match="STT_BATCH_MAX"):
        SttSettings.from_env(Env({**token, "STT_BATCH_MAX": "0"}))
    with pytest.raises(SettingsError, match="STT_BATCH_WAIT_MS"):
        SttSettings.from_env(Env({**token, "STT_BATCH_WAIT_MS": "-5"}))
    s = SttSettings.from_env(Env({**token, "STT_BATCH_MAX": "6", "STT_BATCH_WAIT_MS": "20"}))
    state = build_state(s, engine)
    assert state.scheduler.batch_max == 6
    state.metrics.batch_size.observe(3)
    assert b"stt_batch_size_bucket" in generate_latest(state.metrics.registry)
