"""The embedded OpenAI-compatible server: llama-cpp-python serving a registry GGUF on loopback.

``with embedded_server() as srv:`` starts ``python -m llama_cpp.server`` on a free 127.0.0.1
port, waits until ``/v1/models`` answers, yields a :class:`ServerInfo`, and always stops the
process group — on normal exit, exceptions and Ctrl-C; an ``atexit`` hook catches the rest
(the supervisor is :class:`toolalpaca_utils.procs.Service`).
"""
from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from ..procs import Service, describe_exit, free_port  # noqa: F401  (free_port: re-exported by llm)
from .registry import DEFAULT_MODEL, resolve_model
from .served_weights import served_gguf

# the fix for an engine that crashes while generating (see toolalpaca_utils.llm.smoke)
REBUILD_HINT = "make rebuild-engine  (rebuilds llama-cpp-python portably with GGML_NATIVE=OFF)"
_BY_URL: dict[str, Service] = {}  # base URL -> its server while served


class ServerStartError(RuntimeError):
    """The embedded server exited or did not become ready in time."""


@dataclass(frozen=True)
class ServerInfo:
    base_url: str      # e.g. http://127.0.0.1:41234/v1
    model: str         # the alias to pass as ``model`` in requests
    pid: int
    log_path: str
    weights: str = ""  # the GGUF file the engine loaded (llm/served_weights.py)


@contextlib.contextmanager
def embedded_server(
    model: str = DEFAULT_MODEL,
    *,
    n_ctx: int = 4096,
    n_threads: int | None = None,
    port: int | None = None,
    startup_timeout: float = 120.0,
    log_dir: str | Path | None = None,
    prompt_cache_mb: int | None = None,
    lora_path: str | Path | None = None,
    alias: str | None = None,
) -> Iterator[ServerInfo]:
    """Serve a registry GGUF model on 127.0.0.1 for the duration of the ``with`` block.

    ``prompt_cache_mb`` > 0 keeps the model state after each request in an LRU RAM cache of that
    size, so a prompt that shares a prefix with *any* recent request (not just the last one)
    skips re-reading it (measured: a simulation run 20% faster); default
    ``$TOOLALPACA_LLM_PROMPT_CACHE_MB`` or 512; 0 turns it off. The size counts only the engine's
    state: llama-cpp-python also keeps a copy of the logits buffer with each entry, so the server
    grew by ~190 MB per ~900-token request (measured, SmolLM2-135M) and a 1024 MB cache let one
    server reach 7.9 GB and be OOM-killed beside three others; 512 bounds it near 4 GB. ``lora_path``: a GGUF LoRA adapter
    applied to the model (:func:`toolalpaca_utils.export.gguf_lora`); ``alias``: the model name the
    server answers to (default: the registry name; give a served adapter its own, so that calls
    to the base and to the adapter never share a cache entry)."""
    spec = resolve_model(model)
    if spec.kind != "gguf":
        raise ValueError(f"the embedded server serves GGUF models; {model!r} is an HF model (use the local HF backend)")
    try:
        import llama_cpp.server  # noqa: F401  (fail early with the fix, not inside the subprocess)
    except ImportError as exc:
        raise ServerStartError("llama-cpp-python[server] is not installed; fix: make setup "
                               "(or pip install 'llama-cpp-python[server]')") from exc
    port = port or free_port()
    log_dir_given, log_dir = log_dir, Path(log_dir or tempfile.gettempdir())
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"llama-server-{port}.log"
    weights = served_gguf(spec)
    cmd = _server_command(weights, port, alias=alias or spec.name, n_ctx=n_ctx, n_threads=n_threads,
                          lora_path=lora_path, prompt_cache_mb=prompt_cache_mb)
    # its own process group (stopping it takes any children too), and it dies with this process
    server = Service("llama.cpp server", ServerStartError, startup_timeout=startup_timeout)
    base_url = f"http://127.0.0.1:{port}/v1"
    _BY_URL[base_url] = server
    ready = False
    try:
        server.launch(cmd, log_path=log_path, health_url=f"{base_url}/models")
        ready = True
        yield ServerInfo(base_url=base_url, model=alias or spec.name, pid=server.pid, log_path=str(log_path),
                         weights=weights.name)
    finally:
        _BY_URL.pop(base_url, None)
        crashed = server.exited()  # gone before we stopped it: its log tells why, so it stays
        server.stop()
        if ready and not crashed and log_dir_given is None:  # a clean run's temp log: one per port, never read
            log_path.unlink(missing_ok=True)


def _server_command(weights: Path, port: int, *, alias: str, n_ctx: int, n_threads: int | None,
                    lora_path: str | Path | None, prompt_cache_mb: int | None) -> list[str]:
    """The ``python -m llama_cpp.server`` command line of :func:`embedded_server`."""
    # ggml's threads busy-wait for each other: with every core in use, one busy core (the notebook,
    # a tokenizer, a test) stalls them all (measured here: 0.7–3 tok/s with 2 threads on 2 busy
    # cores vs 15–36 with 1). Leave one core free unless told otherwise.
    n_threads = n_threads or int(os.environ.get("TOOLALPACA_LLM_THREADS", 0)) or max(1, (os.cpu_count() or 1) - 1)
    # The library's sampler runs a step's grammar over the whole vocabulary for every token; asking it
    # about the greedy token first (llama.cpp's common_sampler order) was measured and left out: on
    # 20 grammar-constrained first steps of real items, the same steps, a median 8.21 s a step either
    # way (one thread, F16, 2026-12-08): the grammar refused about half the greedy tokens, and reading
    # the ~850-token prompt is most of a step.
    cmd = [
        sys.executable, "-m", "llama_cpp.server",
        "--model", str(weights), "--model_alias", alias,
        "--host", "127.0.0.1", "--port", str(port),
        "--n_ctx", str(n_ctx), "--n_threads", str(n_threads), "--n_threads_batch", str(n_threads),
        "--verbose", "False",
    ]
    if lora_path is not None:
        if not Path(lora_path).is_file():
            raise ServerStartError(f"LoRA adapter {lora_path} does not exist")
        cmd += ["--lora_path", str(lora_path)]
    if prompt_cache_mb is None:
        prompt_cache_mb = int(os.environ.get("TOOLALPACA_LLM_PROMPT_CACHE_MB", 512))
    if prompt_cache_mb > 0:
        cmd += ["--cache", "True", "--cache_type", "ram", "--cache_size", str(prompt_cache_mb << 20)]
    return cmd


def crash_report(base_url: str) -> str | None:
    """Why the embedded server behind ``base_url`` is gone (exit signal, log tail, the fix), or
    None while it runs or when ``base_url`` is not one of ours: a client that cannot connect says
    'the server crashed' instead of 'connection refused'."""
    server = _BY_URL.get(base_url.rstrip("/"))
    if server is None or not server.exited():
        return None
    return (f"the embedded llama.cpp server (pid {server.pid}) crashed: {describe_exit(server.process.returncode)}; "
            f"log tail ({server.log_path}):\n{server.log_tail(1500)}\nif it crashed while generating, the engine "
            f"build is the likely cause; fix: {REBUILD_HINT}")
