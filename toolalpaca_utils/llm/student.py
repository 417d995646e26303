"""The student — a base model plus LoRA adapters — served by a real inference engine behind the
same :class:`~toolalpaca_utils.llm.client.ChatClient` the teacher uses.

* ``endpoint="embedded"`` (cpu, tiny): the adapters become one GGUF LoRA
  (:func:`toolalpaca_utils.export.gguf_lora`) that ``replicas`` llama.cpp servers apply to the
  base GGUF.
* an OpenAI-compatible URL (gpu: vLLM started with ``--enable-lora``): the adapter is served
  under ``name``. If the server does not list it yet, it is registered at run time through
  vLLM's ``POST /v1/load_lora_adapter`` (the server needs ``VLLM_ALLOW_RUNTIME_LORA_UPDATING=True``),
  so one server holds every adapter of a run (the diversity notebook trains several). Requests
  then name the adapter as their ``model``. ``book/gpu.md`` has the command lines.
"""
from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

from .client import ChatClient
from .registry import DEFAULT_MODEL, resolve_model
from .session import EMBEDDED, open_chat


class StudentServeError(RuntimeError):
    """The student's adapter could not be served (with the fix)."""


def adapter_list(adapters: str | Path | Sequence[str | Path] | None) -> list[Path]:
    """None → [], one path → [it], a sequence (adapters trained one on another) → as given."""
    if not adapters:
        return []
    return [Path(adapters)] if isinstance(adapters, (str, Path)) else [Path(a) for a in adapters]


def exported_gguf(model: str, adapters: Sequence[Path], out_path: Path) -> Path:
    """The GGUF LoRA of ``adapters`` for ``model``'s GGUF, written again only when they change."""
    from ..export import gguf_lora
    from ..runs import hash_path

    spec = resolve_model(model)
    if spec.kind != "gguf":
        raise StudentServeError(f"the embedded engine serves GGUF models; {model!r} is not one "
                                "(point student_endpoint at a vLLM server for HF models)")
    stamp = out_path.with_name(out_path.name + ".from.json")
    source = {"base": spec.path, "adapters": [[str(a), hash_path(a)] for a in adapters]}
    if out_path.is_file() and stamp.is_file() and json.loads(stamp.read_text()) == source:
        return out_path
    gguf_lora(adapters, out_path, base_gguf=spec.path)
    stamp.write_text(json.dumps(source, indent=1))
    return out_path


def register_lora(base_url: str, name: str, adapter: Path, *, api_key: str | None = None,
                  timeout: float = 120.0) -> None:
    """Make ``name`` a model of the OpenAI-compatible server at ``base_url`` serving ``adapter``.
    Listed by ``/models`` with this adapter's path (its ``root``): nothing to do. Listed with
    another path (a long-running server, an earlier run): unloaded first, so a name never serves a
    stale adapter. Then vLLM's runtime ``load_lora_adapter``."""
    import httpx

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    base, path = base_url.rstrip("/"), str(Path(adapter).resolve())
    try:
        listed = httpx.get(f"{base}/models", headers=headers, timeout=timeout).json().get("data", [])
        card = next((m for m in listed if isinstance(m, dict) and m.get("id") == name), None)
        if card is not None and (not card.get("root") or str(Path(card["root"]).resolve()) == path):
            return
        if card is not None:
            gone = httpx.post(f"{base}/unload_lora_adapter", headers=headers, timeout=timeout, json={"lora_name": name})
            if gone.status_code >= 400:
                raise StudentServeError(f"{base} serves another adapter as {name!r} ({card['root']}) and cannot unload "
                                        f"it ({gone.status_code}); restart it with --lora-modules {name}={adapter}")
        reply = httpx.post(f"{base}/load_lora_adapter", headers=headers, timeout=timeout,
                           json={"lora_name": name, "lora_path": path})
    except (httpx.HTTPError, ValueError, AttributeError) as exc:
        raise StudentServeError(f"cannot reach the student endpoint {base}: {exc}") from exc
    if reply.status_code >= 400:
        raise StudentServeError(
            f"{base} refused the adapter {name!r} ({reply.status_code}: {reply.text[:200]}); start vLLM with "
            f"--enable-lora and VLLM_ALLOW_RUNTIME_LORA_UPDATING=True, or with --lora-modules {name}={adapter}")


@contextlib.contextmanager
def open_student(model: str = DEFAULT_MODEL, adapters: str | Path | Sequence[str | Path] | None = None, *,
                 name: str = "student", endpoint: str = EMBEDDED, dialect: str = "llama_cpp", replicas: int = 2,
                 work_dir: str | Path | None = None, api_key_env: str = "OPENAI_API_KEY", timeout: float = 300.0,
                 n_ctx: int = 4096) -> Iterator[ChatClient]:
    """A ChatClient for ``model`` + ``adapters`` (None: the base; several: trained one on top of
    another, served as their sum). ``name`` is the served model name of the adapter; ``work_dir``
    holds the exported files (default: a ``served/`` folder next to the first adapter)."""
    import os

    adapters = adapter_list(adapters)
    work_dir = Path(work_dir) if work_dir else (adapters[0].parent / "served" if adapters else None)
    if endpoint == EMBEDDED:
        lora = exported_gguf(model, adapters, work_dir / f"{name}.gguf") if adapters else None
        alias = f"{resolve_model(model).name}+{name}" if adapters else None
        # no RAM prompt cache: an episode's next step extends the replica's current context anyway
        # (its prefix is reused), and with the cache a server grew ~190 MB per request; without
        # it, 24 constrained steps ran 14% faster at a flat 0.7 GB (measured)
        with open_chat(EMBEDDED, model, replicas=replicas, timeout=timeout, n_ctx=n_ctx, prompt_cache_mb=0,
                       lora_path=lora, alias=alias) as client:
            yield client
        return
    served = model
    if adapters:
        from ..export import stacked_peft_adapter

        adapter = stacked_peft_adapter(adapters, work_dir / f"{name}-peft")
        register_lora(endpoint, name, adapter, api_key=os.environ.get(api_key_env), timeout=timeout)
        served = name
    with open_chat(endpoint, served, dialect=dialect, replicas=replicas, timeout=timeout,
                   api_key_env=api_key_env) as client:
        yield client


@dataclass
class Student:
    """How a notebook serves its students: the base ``model``, the ``adapters`` it already carries
    (e.g. notebook 03's, under STE) and the engine settings; :meth:`serve` adds more adapters."""
    model: str = DEFAULT_MODEL
    adapters: tuple = ()
    endpoint: str = EMBEDDED
    dialect: str = "llama_cpp"
    replicas: int = 2
    work_dir: str | Path | None = None

    def serve(self, adapters: Sequence[str | Path] = (), *, name: str = "student"):
        """:func:`open_student` with this student's adapters followed by ``adapters``."""
        return open_student(self.model, [*self.adapters, *adapters], name=name, endpoint=self.endpoint,
                            dialect=self.dialect, replicas=self.replicas, work_dir=self.work_dir)
