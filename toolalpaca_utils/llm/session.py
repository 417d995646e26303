"""Open the teacher/judge endpoint a profile names: the embedded server or a remote URL."""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator

from .client import ChatClient
from .registry import DEFAULT_MODEL
from .server import embedded_server

EMBEDDED = "embedded"


@contextlib.contextmanager
def open_chat(
    endpoint: str = EMBEDDED,
    model: str = DEFAULT_MODEL,
    *,
    dialect: str = "llama_cpp",
    cache_dir: str | Path | None = None,
    api_key_env: str = "OPENAI_API_KEY",
    timeout: float = 120.0,
    max_concurrency: int = 1,
    n_ctx: int = 4096,
    n_threads: int | None = None,
) -> Iterator[ChatClient]:
    """A :class:`ChatClient` for ``endpoint``: ``"embedded"`` starts (and afterwards stops) the
    llama.cpp server with a registry model; anything else is an OpenAI-compatible base URL
    (vLLM, OpenAI, Ollama) whose key is read from ``$api_key_env``."""
    if endpoint == EMBEDDED:
        with embedded_server(model, n_ctx=n_ctx, n_threads=n_threads) as srv:
            yield ChatClient(srv.base_url, srv.model, dialect="llama_cpp", cache_dir=cache_dir,
                             timeout=timeout, max_concurrency=max_concurrency)
    else:
        if not endpoint.startswith(("http://", "https://")):
            raise ValueError(f"endpoint must be {EMBEDDED!r} or an http(s) base URL, got {endpoint!r}")
        yield ChatClient(endpoint, model, dialect=dialect, cache_dir=cache_dir, api_key_env=api_key_env,
                         timeout=timeout, max_concurrency=max_concurrency)
