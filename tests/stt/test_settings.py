import os
from dataclasses import MISSING, fields

import pytest

from coach.bus import BusConfig
from coach.settings import Env, SettingsError
from stt.settings import SttSettings
from stt.stream import StreamConfig

pytestmark = pytest.mark.unit

TOKEN = "t" * 20


def test_defaults():
    s = SttSettings.from_env(Env({"RELAY_TOKEN": TOKEN}))
    assert (s.port, s.device, s.compute_type, s.lang, s.model_size) == (
        8080,
        "cpu",
        "int8",
        "es",
        "base",
    )
    assert s.model_path.endswith("faster-whisper-base")
    assert s.redis_url is None
    assert TOKEN not in repr(s)
    # One thread per decode and one decode per core (up to 4); beam 5 for finals.
    assert (s.cpu_threads, s.beam_size) == (1, 5)
    assert s.decode_workers == min(4, os.cpu_count() or 1)


def test_unset_variables_take_the_field_defaults():
    # One source of defaults: from_env with nothing set gives each field's own default (the
    # decode workers, one per core on CPU, excepted), the stream's and the segmenter's too.
    s = SttSettings.from_env(Env({"RELAY_TOKEN": TOKEN}))
    for f in fields(SttSettings):
        if f.default is not MISSING and f.name != "decode_workers":
            assert getattr(s, f.name) == f.default, f.name
    assert s.stream == StreamConfig()
    assert s.bus == BusConfig()


def test_a_gpu_decodes_in_the_full_window_unless_told_otherwise():
    cpu = SttSettings.from_env(Env({"RELAY_TOKEN": TOKEN, "DEVICE": "cpu"}))
    gpu = SttSettings.from_env(Env({"RELAY_TOKEN": TOKEN, "DEVICE": "cuda"}))
    told = SttSettings.from_env(
        Env({"RELAY_TOKEN": TOKEN, "DEVICE": "cuda", "STT_MIN_WINDOW_S": "0"})
    )
    assert (cpu.min_window_s, gpu.min_window_s, told.min_window_s) == (0.0, 30.0, 0.0)
    assert (cpu.compute_type, gpu.compute_type) == ("int8", "float16")


def test_tail_is_read():
    s = SttSettings.from_env(Env({"RELAY_TOKEN": TOKEN, "STT_TAIL_S": "0.15"}))
    assert s.stream.tail_s == 0.15 != StreamConfig().tail_s


def test_token_is_required():
    with pytest.raises(SettingsError, match="RELAY_TOKEN"):
        SttSettings.from_env(Env({}))


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("STT_PORT", "http"),
        ("DEVICE", "tpu"),
        ("LANG", "spanish!"),
        ("STT_HANGOVER_S", "0"),
        ("STT_PARTIALS", "maybe"),
        ("STT_TAIL_S", "-0.1"),
    ],
)
def test_bad_values_name_the_variable(name, value):
    with pytest.raises(SettingsError, match=name):
        SttSettings.from_env(Env({"RELAY_TOKEN": TOKEN, name: value}))


def test_lang_auto_and_posix_locale():
    assert SttSettings.from_env(Env({"RELAY_TOKEN": TOKEN, "LANG": "auto"})).lang is None
    assert SttSettings.from_env(Env({"RELAY_TOKEN": TOKEN, "LANG": "C.UTF-8"})).lang == "es"
    assert (
        SttSettings.from_env(Env({"RELAY_TOKEN": TOKEN, "LANG": "C.UTF-8", "STT_LANG": "en"})).lang
        == "en"
    )
