import json

import pytest

from stt.models import BASE_MODEL_BIN_BYTES, ModelError, assemble_base, main, verify

pytestmark = pytest.mark.unit


def test_assemble_base_from_pypi_packages(tmp_path):
    info = assemble_base(tmp_path / "fw-base")
    assert info.model_bytes == BASE_MODEL_BIN_BYTES
    assert info.multilingual
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".assemble-")]


def test_verify_names_what_is_missing(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        verify(tmp_path / "nope")
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text(json.dumps({}))
    with pytest.raises(ModelError, match=r"model\.bin"):
        verify(tmp_path / "m")


def test_verify_refuses_a_truncated_model(tmp_path, base_model):
    d = tmp_path / "t"
    d.mkdir()
    for name in ("config.json", "tokenizer.json", "vocabulary.json"):
        (d / name).write_bytes((base_model.path / name).read_bytes())
    (d / "model.bin").write_bytes(b"\0" * 100)
    with pytest.raises(ModelError, match="only 100 bytes"):
        verify(d)


def test_cli_list_and_verify(base_model, capsys):
    assert main(["verify", str(base_model.path)]) == 0
    assert "ok" in capsys.readouterr().out
    assert main(["list", "--dir", str(base_model.path.parent)]) == 0
    assert "faster-whisper-base\tok" in capsys.readouterr().out
    assert main(["verify", "/nonexistent/model"]) == 1
