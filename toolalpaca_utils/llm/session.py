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
    replicas: int = 1,
    prompt_cache_mb: int | None = None,
    lora_path: str | Path | None = None,
    alias: str | None = None,
) -> Iterator[ChatClient]:
    """A :class:`ChatClient` for ``endpoint``: ``"embedded"`` starts (and afterwards stops) the
    llama.cpp server with a registry model; anything else is an OpenAI-compatible base URL
    (vLLM, OpenAI, Ollama) whose key is read from ``$api_key_env``.

    ``replicas`` > 1 starts that many embedded servers (``n_threads`` each, default 1 then):
    llama-cpp-python serves one request at a time, and for a 135M model two one-thread servers
    on two cores generate far more than one two-thread server. Callers that run work in
    parallel (``client.parallelism`` workers) get one server per thread. For a remote endpoint
    ``replicas`` only raises the concurrency: the server batches concurrent requests itself.
    ``lora_path``, ``alias``: see :func:`~toolalpaca_utils.llm.server.embedded_server` (embedded only)."""
    if replicas < 1:
        raise ValueError(f"replicas must be >= 1, got {replicas}")
    if endpoint == EMBEDDED:
        with contextlib.ExitStack() as stack:
            servers = [stack.enter_context(embedded_server(
                model, n_ctx=n_ctx, n_threads=n_threads or (1 if replicas > 1 else None),
                prompt_cache_mb=prompt_cache_mb, lora_path=lora_path, alias=alias)) for _ in range(replicas)]
            yield ChatClient(servers[0].base_url, servers[0].model, dialect="llama_cpp", cache_dir=cache_dir,
                             timeout=timeout, max_concurrency=max_concurrency,
                             replica_urls=[s.base_url for s in servers[1:]], weights=servers[0].weights)
    else:
        max_concurrency = max(max_concurrency, replicas)
        if not endpoint.startswith(("http://", "https://")):
            raise ValueError(f"endpoint must be {EMBEDDED!r} or an http(s) base URL, got {endpoint!r}")
        yield ChatClient(endpoint, model, dialect=dialect, cache_dir=cache_dir, api_key_env=api_key_env,
                         timeout=timeout, max_concurrency=max_concurrency)
