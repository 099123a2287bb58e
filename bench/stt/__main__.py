"""`python -m bench.stt`: streaming latency and accuracy of the STT service on the dev prompts.

Starts `python -m stt` (or uses --url), plays one half of a language's dev prompts (the
reporting half by default: see corpus.split) through WS /stream at real-time pace (20 ms
frames, 2 s of silence between prompts, one stream, `lang=` on the socket), `--runs` times, and
prints: streaming WER and final latency (end of speech -> final received) p50/p95 per run and
their min/median/max; first-partial latency, partial cadence, RTF, RSS; beside them the offline
baselines (faster-whisper's own transcribe of the same 16 kHz audio the service decodes, beam 5
and greedy; faster-whisper reading the WAV itself; the service's decoder on each prompt's
speech); then N concurrent calls (2 streams each) until p95 final latency exceeds the bound.
Environment variables given with --env KEY=VALUE go to the server (e.g. STT_SPECULATE=false).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import secrets
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from bench.stt import client, corpus
from bench.stt.score import Figures, pct, score
from bench.stt.wer import WerCounts
from coach.child_server import free_port
from coach.resample import StreamResampler, pcm16_to_float
from fakes import poll

ROOT = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def server(env_extra: dict[str, str]) -> Iterator[tuple[str, str, subprocess.Popen[bytes]]]:
    """Run `python -m stt` on a free port; yields (ws url, token, process)."""
    token = secrets.token_hex(16)
    port = free_port()
    env = {
        **os.environ,
        "RELAY_TOKEN": token,
        "STT_PORT": str(port),
        "STT_HOST": "127.0.0.1",
        **env_extra,
    }
    env.setdefault("MODEL_PATH", str(ROOT / "models" / "faster-whisper-base"))
    env.pop("REDIS_URL", None) if "REDIS_URL" not in env_extra else None
    (ROOT / "test-artifacts").mkdir(exist_ok=True)
    log = open(ROOT / "test-artifacts" / "stt-bench-server.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "stt"], cwd=ROOT, env=env, stdout=log, stderr=log
    )
    try:

        def up() -> bool:
            if proc.poll() is not None:
                raise RuntimeError("stt exited; see test-artifacts/stt-bench-server.log")
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1).read()
            except OSError:
                return False
            return True

        poll.until_sync(up, 60, what="stt up")
        yield f"ws://127.0.0.1:{port}", token, proc
    finally:
        proc.terminate()
        proc.wait(20)
        log.close()


def rss_mb(pid: int) -> float:
    """Resident set size of a process in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def scrape(url: str, name: str) -> float:
    """One metric's value from the service's /metrics."""
    http = url.replace("ws://", "http://")
    text = urllib.request.urlopen(f"{http}/metrics", timeout=5).read().decode()
    m = re.search(rf"^{name} ([0-9.e+-]+)$", text, re.M)
    return float(m.group(1)) if m else float("nan")


async def run_stream(
    url: str,
    token: str,
    call: str,
    speaker: str,
    prompts: list[corpus.Prompt],
    lead_s: float = 0.5,
    lang: str = "es",
) -> Figures:
    """Play prompts as one stream and score it."""
    pcm, segs = client.timeline(
        [(p.name, p.pcm, p.speech_span) for p in prompts], 8000, lead_s=lead_s
    )
    session = await client.play(url, token, call, speaker, pcm, 8000, lang=lang)
    session.segments = segs
    return score(session, prompts, lang)


def service_audio(pcm: np.ndarray, rate: int) -> np.ndarray:
    """The 16 kHz float audio the service decodes: its stream resampler fed 20 ms chunks."""
    x = pcm.astype(np.float32) / 32768.0
    step = rate // 50
    r = StreamResampler(rate, 16_000)
    parts = [r(x[i : i + step]) for i in range(0, len(x), step)]
    parts.append(r.flush())
    return np.concatenate(parts).astype(np.float32)


def offline_wer(
    prompts: list[corpus.Prompt],
    model_path: str,
    from_file: bool = False,
    lang: str = "es",
    beam: int = 5,
) -> WerCounts:
    """Offline WER: faster-whisper's own transcribe on each whole file (30 s window).

    The audio is the service's 16 kHz audio (`service_audio`), or, with `from_file`, what
    faster-whisper's own reader (PyAV's resampler) makes of the WAV file.
    """
    from faster_whisper import WhisperModel

    model = WhisperModel(model_path, device="cpu", compute_type="int8", cpu_threads=2)
    counts = WerCounts(lang=lang)
    for p in prompts:
        source = (
            str(corpus.sounds(lang) / f"{p.name}.wav")
            if from_file
            else service_audio(p.pcm, p.rate)
        )
        segments, _ = model.transcribe(source, language=lang, beam_size=beam)
        counts.add(p.reference, " ".join(s.text for s in segments))
    return counts


def offline_wer_short(prompts: list[corpus.Prompt], model_path: str, lang: str = "es") -> WerCounts:
    """WER of the service's own decoder (beam 5, window cut to the audio) on each whole prompt."""
    from stt.engine import EngineConfig, WhisperEngine

    engine = WhisperEngine(EngineConfig(model_path, lang=lang))
    counts = WerCounts(lang=lang)
    for p in prompts:
        s0, s1 = p.speech_span
        audio = p.pcm[int(max(0.0, s0 - 0.2) * p.rate) : int((s1 + 0.15) * p.rate)]
        x16 = pcm16_to_float(audio, p.rate, 16_000)
        counts.add(p.reference, engine.decode(x16, lang=lang).text)
    return counts


def spread(values: list[float]) -> str:
    """min / median / max of per-run values."""
    if not values:
        return "n/a"
    return f"{min(values):.3f} / {statistics.median(values):.3f} / {max(values):.3f}"


def report(title: str, fig: Figures) -> None:
    """Print one block of figures."""
    fl, fp, cd = fig.final_latency, fig.first_partial, fig.cadence
    print(f"== {title}")
    print(
        f"  prompts {len(fig.finals_per_prompt)}  words {fig.wer.words}"
        f"  streaming WER {fig.wer.wer:.3f}"
        f"  prompts without final {fig.missing}  finals/prompt {np.mean(fig.finals_per_prompt):.2f}"
    )
    print(
        f"  final latency   p50 {pct(fl, 50):.3f}s  p95 {pct(fl, 95):.3f}s"
        f"  max {max(fl, default=float('nan')):.3f}s"
    )
    print(f"  first partial   p50 {pct(fp, 50):.3f}s  p95 {pct(fp, 95):.3f}s")
    print(
        f"  partial cadence p50 {pct(cd, 50):.3f}s  p95 {pct(cd, 95):.3f}s"
        f"  max {max(cd, default=float('nan')):.3f}s"
    )


def plan(
    prompts: list[corpus.Prompt], calls: int, per_stream: int
) -> list[tuple[list[corpus.Prompt], float]]:
    """What each of `calls` x 2 streams plays: its own slice of prompts, and its lead."""
    out = []
    k = 0
    for c in range(calls):
        for j in range(2):
            chosen = [prompts[(k + i) % len(prompts)] for i in range(per_stream)]
            k += per_stream
            # The customer starts a little later: turns overlap partly, as in real calls.
            out.append((chosen, 0.5 + 1.3 * j + 0.37 * c))
    return out


async def concurrent(
    url: str,
    token: str,
    streams: list[tuple[list[corpus.Prompt], float]],
    lang: str = "es",
) -> list[Figures]:
    """Every stream of `plan` (agent and customer of one call in turn) at real time at once."""
    jobs = [
        run_stream(
            url,
            token,
            f"bench-{n // 2}",
            ("agent", "customer")[n % 2],
            chosen,
            lead_s=lead,
            lang=lang,
        )
        for n, (chosen, lead) in enumerate(streams)
    ]
    return list(await asyncio.gather(*jobs))


def alone(
    streams: list[tuple[list[corpus.Prompt], float]], env_extra: dict[str, str], lang: str
) -> list[list[str]]:
    """Each stream's finals played alone through an in-process stream with the server's settings
    and no pacing: what the finals under load must equal (stt/stream.py: timing never changes
    them)."""
    from bench.stt.replay import timeline_finals
    from coach.settings import Env
    from stt.engine import EngineConfig, WhisperEngine
    from stt.settings import SttSettings

    s = SttSettings.from_env(
        Env(
            {
                "MODEL_PATH": str(ROOT / "models" / "faster-whisper-base"),
                "RELAY_TOKEN": "x" * 16,
                **env_extra,
                "LANG": lang,
            }
        )
    )
    engine = WhisperEngine(
        EngineConfig(
            s.model_path, lang=s.lang, beam_size_final=s.beam_size, min_window_s=s.min_window_s
        )
    )
    return [
        asyncio.run(timeline_finals(engine, chosen, lang, s.stream, lead))
        for chosen, lead in streams
    ]


def main() -> int:
    """Entry point."""
    ap = argparse.ArgumentParser(prog="python -m bench.stt", description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=0, help="use the first N dev prompts (0 = all)")
    ap.add_argument("--only", default="", help="comma-separated prompt names to play instead")
    ap.add_argument("--url", help="use a running service (ws://host:port) instead of starting one")
    ap.add_argument("--token", default=os.environ.get("RELAY_TOKEN", ""))
    ap.add_argument("--env", action="append", default=[], help="KEY=VALUE for the started server")
    ap.add_argument("--no-offline", action="store_true", help="skip the offline WER baseline")
    ap.add_argument("--calls", default="1,2,3,4,5,6", help="concurrent call counts to try")
    ap.add_argument("--per-stream", type=int, default=5, help="prompts per stream in the load test")
    ap.add_argument(
        "--bound", type=float, default=1.5, help="p95 final latency that counts as broken"
    )
    ap.add_argument("--skip-single", action="store_true", help="only run the concurrency test")
    ap.add_argument("--show", action="store_true", help="print each prompt's reference and finals")
    ap.add_argument("--lang", choices=corpus.LANGS, default="es", help="prompts and lang= sent")
    ap.add_argument(
        "--half", choices=corpus.HALVES, default="report", help="which half of the dev list"
    )
    ap.add_argument("--runs", type=int, default=1, help="play the same audio this many times")
    args = ap.parse_args()
    lang = args.lang
    tune, rep = corpus.split(corpus.prompt_names(lang))
    print(f"split of the {lang} dev list (seed {corpus.SPLIT_SEED}, sorted, shuffled, halved):")
    print(f"  tune ({len(tune)}): {' '.join(tune)}")
    print(f"  report ({len(rep)}): {' '.join(rep)}")
    prompts = corpus.load_all(args.only.split(",") if args.only else None, lang, args.half)
    if args.prompts:
        prompts = prompts[: args.prompts]
    env_extra = dict(kv.split("=", 1) for kv in args.env)
    load = os.getloadavg()
    print(
        f"bench.stt: {lang}, half {args.half if not args.only else '--only'}, {len(prompts)}"
        f" prompts, {sum(p.duration for p in prompts):.0f} s of audio, {args.runs} run(s);"
        f" load average before {load[0]:.2f}; server env {env_extra or 'defaults'}"
    )
    model_path = env_extra.get("MODEL_PATH", str(ROOT / "models" / "faster-whisper-base"))

    def go(url: str, token: str, pid: int | None) -> None:
        if not args.skip_single:
            single(url, token, pid)
        load_test(url, token, pid)

    def single(url: str, token: str, pid: int | None) -> None:
        wers: list[float] = []
        p50s: list[float] = []
        p95s: list[float] = []
        texts: list[list[str]] = []
        for run in range(1, args.runs + 1):
            t = time.perf_counter()
            fig = asyncio.run(
                run_stream(url, token, f"bench-single-{run}", "agent", prompts, lang=lang)
            )
            wall = time.perf_counter() - t
            report(f"one stream, real time, run {run}/{args.runs}", fig)
            rtf = scrape(url, "stt_real_time_factor")
            rss = rss_mb(pid) if pid else float("nan")
            print(
                f"  RTF (decoder busy / audio, cumulative) {rtf:.3f}  server RSS {rss:.0f} MiB"
                f"  wall {wall:.0f}s  load {os.getloadavg()[0]:.2f}"
            )
            if args.show:
                for name, ref, hyp in fig.texts:
                    print(f"  {name}\n    ref: {ref}\n    hyp: {hyp}")
            wers.append(fig.wer.wer)
            p50s.append(pct(fig.final_latency, 50))
            p95s.append(pct(fig.final_latency, 95))
            texts.append([hyp for _, _, hyp in fig.texts])
        same = sum(len(set(t)) == 1 for t in zip(*texts, strict=True))
        print(f"== spread over {args.runs} run(s), min / median / max")
        print(
            f"  streaming WER {spread(wers)}  (max - min {100 * (max(wers) - min(wers)):.1f}"
            f" points; prompts with the same finals in every run {same}/{len(prompts)})"
        )
        print(f"  final latency p50 {spread(p50s)} s   p95 {spread(p95s)} s")
        if not args.no_offline:
            med = statistics.median(wers)
            rows = [
                (
                    "faster-whisper transcribe, service's 16 kHz audio, beam 5",
                    offline_wer(prompts, model_path, lang=lang),
                ),
                (
                    "faster-whisper transcribe, service's 16 kHz audio, greedy",
                    offline_wer(prompts, model_path, lang=lang, beam=1),
                ),
                (
                    "faster-whisper transcribe reading the WAV files itself, beam 5",
                    offline_wer(prompts, model_path, from_file=True, lang=lang),
                ),
                (
                    "service decoder on each prompt's speech (beam 5, short window)",
                    offline_wer_short(prompts, model_path, lang),
                ),
            ]
            for title, counts in rows:
                print(
                    f"  offline WER, {title}: {counts.wer:.3f}"
                    f"  -> streaming (median) - that = {med - counts.wer:+.3f}"
                )

    def load_test(url: str, token: str, pid: int | None) -> None:
        for n in [int(x) for x in args.calls.split(",") if x]:
            streams = plan(prompts, n, args.per_stream)
            figs = asyncio.run(concurrent(url, token, streams, lang))
            fig_n = Figures(wer=WerCounts(lang=lang))
            for f in figs:
                fig_n.add(f)
            report(f"{n} calls x 2 streams", fig_n)
            rss = rss_mb(pid) if pid else float("nan")
            print(
                f"  dropped partials so far {scrape(url, 'stt_dropped_partials'):.0f}"
                f"  RSS {rss:.0f} MiB"
                f"  load {os.getloadavg()[0]:.2f}"
            )
            if not args.url:
                compare_alone(streams, figs, fig_n.wer.wer)
            if pct(fig_n.final_latency, 95) > args.bound:
                print(f"  latency broke at {n} calls (p95 > {args.bound}s)")
                break

    def compare_alone(
        streams: list[tuple[list[corpus.Prompt], float]], figs: list[Figures], loaded_wer: float
    ) -> None:
        """The same streams' finals played one at a time without load, prompt by prompt."""
        solo = alone(streams, env_extra, lang)
        counts = WerCounts(lang=lang)
        same = total = 0
        for (chosen, _), fig, texts in zip(streams, figs, solo, strict=True):
            for p, (_, _, loaded), text in zip(chosen, fig.texts, texts, strict=True):
                counts.add(p.reference, text)
                same += loaded == text
                total += 1
        print(
            f"  the same streams alone (in-process, no load): WER {counts.wer:.3f}, under load"
            f" {loaded_wer:.3f} ({100 * (loaded_wer - counts.wer):+.1f} points);"
            f" prompts with the same finals {same}/{total}"
        )

    if args.url:
        go(args.url, args.token, None)
    else:
        with server(env_extra) as (url, token, proc):
            go(url, token, proc.pid)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
