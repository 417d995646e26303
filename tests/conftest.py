"""Shared fixtures: the real embedded llama.cpp server, started once per test session."""
from __future__ import annotations

import os

import pytest

# Nothing in the tests may reach the internet: make the HF libraries fail fast instead.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def llm_server():
    """The embedded SmolLM2-135M server on 127.0.0.1 (one per test session)."""
    from toolalpaca_utils.llm import embedded_server

    with embedded_server() as srv:
        yield srv


@pytest.fixture
def chat_client(llm_server, tmp_path):
    """A client of the shared server with a fresh, per-test call cache."""
    from toolalpaca_utils.llm import ChatClient

    return ChatClient(llm_server.base_url, llm_server.model, cache_dir=tmp_path / "llm-cache")


@pytest.fixture(scope="session")
def realtools_url():
    """The real tools service on 127.0.0.1 (one per test session)."""
    from toolalpaca_utils.realtools import serve_realtools

    with serve_realtools(startup_timeout=120) as url:
        yield url


@pytest.fixture(scope="session")
def tokenizer():
    """The embedded model's tokenizer, read from the GGUF (as the HF backend does); once a session."""
    from transformers import AutoTokenizer

    from toolalpaca_utils.llm.registry import resolve_model

    spec = resolve_model()
    return AutoTokenizer.from_pretrained(spec.gguf_dir, gguf_file=spec.gguf_file)
