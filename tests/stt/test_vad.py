import numpy as np
import pytest

from stt.vad import FRAME, StreamingVad
from tests.stt import audio

pytestmark = pytest.mark.unit


def probs(pcm: np.ndarray, chunk: int = 320) -> np.ndarray:
    vad = StreamingVad()
    x = audio.to_float16k(pcm)
    return np.concatenate([vad(x[i : i + chunk]) for i in range(0, len(x), chunk)])


def test_real_speech_is_speech():
    p = probs(audio.tone_file("conf-getpin"))
    assert (p > 0.5).mean() > 0.6


@pytest.mark.parametrize(
    "pcm",
    [audio.silence(3), audio.noise(3), audio.dtmf("159#159#"), audio.hold_music(4)],
    ids=["silence", "noise", "dtmf", "music"],
)
def test_non_speech_is_not_speech(pcm):
    p = probs(pcm)
    assert (p > 0.5).sum() <= 3


def test_chunking_does_not_change_the_result():
    pcm = audio.tone_file("conf-invalid")
    a, b = probs(pcm, 320), probs(pcm, 5000)
    assert len(a) == len(b) == len(pcm) * 2 // FRAME
    assert np.allclose(a, b, atol=1e-5)
