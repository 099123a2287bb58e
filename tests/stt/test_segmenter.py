import pytest

from stt.segmenter import SegKind, Segmenter, SegmenterConfig, SegState
from stt.vad import FRAME_S

pytestmark = pytest.mark.unit


def frames(seconds: float) -> int:
    return round(seconds / FRAME_S)


def run(seg: Segmenter, probs):
    out = []
    for p in probs:
        out += seg.push(p)
    return out


def test_speech_then_long_silence_gives_start_pause_end():
    seg = Segmenter(SegmenterConfig(hangover_s=0.8, speculate_after_s=0.064))
    events = run(seg, [0.0] * 10 + [0.9] * frames(1.0) + [0.0] * frames(1.0))
    kinds = [e.kind for e in events]
    assert kinds == [SegKind.START, SegKind.PAUSE, SegKind.END]
    start, pause, end = events
    assert start.frame == 10
    assert pause.frame == end.frame == 10 + frames(1.0)
    assert seg.state is SegState.SILENCE


def test_short_pause_resumes_the_same_utterance():
    seg = Segmenter(SegmenterConfig(hangover_s=0.8))
    events = run(seg, [0.9] * 20 + [0.1] * frames(0.4) + [0.9] * 20)
    assert [e.kind for e in events] == [SegKind.START, SegKind.PAUSE, SegKind.RESUME]
    assert seg.state is SegState.SPEECH


def test_a_click_does_not_start_an_utterance():
    seg = Segmenter(SegmenterConfig(min_onset_s=0.096))
    assert run(seg, [0.9, 0.9, 0.0] * 10) == []


def test_hysteresis_keeps_speech_between_thresholds():
    seg = Segmenter(SegmenterConfig(onset=0.5, offset=0.35))
    events = run(seg, [0.9] * 5 + [0.4] * 40)
    assert [e.kind for e in events] == [SegKind.START]


def test_long_utterance_splits_at_a_short_pause():
    cfg = SegmenterConfig(split_after_s=3.0, split_pause_s=0.2, hangover_s=0.8)
    seg = Segmenter(cfg)
    events = run(seg, [0.9] * frames(4.0) + [0.0] * frames(0.25))
    assert events[-1].kind is SegKind.END


def test_hard_cut_at_max_length_starts_a_new_utterance():
    seg = Segmenter(SegmenterConfig(max_s=3.0))
    events = run(seg, [0.9] * frames(7.0))
    kinds = [e.kind for e in events]
    assert kinds == [SegKind.START, SegKind.END, SegKind.START, SegKind.END, SegKind.START]
    assert events[1].frame == frames(3.0)


def test_end_now_ends_at_the_silence_start():
    seg = Segmenter()
    run(seg, [0.9] * 20 + [0.0] * 5)
    event = seg.end_now()
    assert event is not None and event.kind is SegKind.END and event.frame == 20
    assert seg.end_now() is None


def test_speculation_can_start_on_the_first_silent_frame():
    seg = Segmenter(SegmenterConfig(hangover_s=0.6, speculate_after_s=0.032))
    events = run(seg, [0.9] * 20 + [0.0] * frames(1.0))
    assert [e.kind for e in events] == [SegKind.START, SegKind.PAUSE, SegKind.END]
    assert events[1].frame == events[2].frame == 20
    # The PAUSE came with the first silent frame, not a frame later.
    seg = Segmenter(SegmenterConfig(speculate_after_s=0.032))
    assert [e.kind for e in run(seg, [0.9] * 20 + [0.0])] == [SegKind.START, SegKind.PAUSE]
