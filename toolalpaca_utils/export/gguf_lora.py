"""A peft LoRA adapter (or a stack of them) as a GGUF LoRA adapter that llama.cpp applies to the
base GGUF at run time (``llama_cpp.server --model BASE.gguf --lora_path OUT.gguf``).

Written with the ``gguf`` package: its writer, its HF→GGUF tensor-name map and its adapter
metadata keys. Three facts of the format shape the code:

* llama.cpp stores a LoRA pair as ``<gguf tensor>.lora_a`` (peft's A, ``[r, in]``) and
  ``<gguf tensor>.lora_b`` (peft's B, ``[out, r]``), and scales B·A by ``alpha / r`` — or by 1 when
  ``adapter.lora.alpha`` is 0. We pre-scale B by peft's own scaling and write alpha 0, so every
  module keeps its exact scale whatever its rank.
* Llama GGUFs hold the query and key projections with their rotary halves interleaved (the
  converter permutes the rows of ``q_proj``/``k_proj``); transformers undoes that on load. The rows
  of B for those two projections get the same permutation.
* Several adapters trained one on top of another's merged weights add up: ΣᵢsᵢBᵢAᵢ is one LoRA of
  rank Σrᵢ with ``A = [A₁; A₂; …]`` and ``B = [s₁B₁, s₂B₂, …]``. So a stack (notebook 03's adapter,
  then STE's, then a continual round's) is served as one file, exactly.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from .lora import AdapterExportError, load_adapter, stack


def _rotary_permute(rows, n_head: int):
    """The row order llama GGUFs use for q/k projections (rotary halves interleaved per head)."""
    out = rows.shape[0]
    return rows.reshape(n_head, 2, out // n_head // 2, *rows.shape[1:]).swapaxes(1, 2).reshape(rows.shape)


def _base_fields(base_gguf: str) -> dict:
    """What the writer needs from the base GGUF: architecture, blocks, heads."""
    import gguf

    reader = gguf.GGUFReader(base_gguf)

    def field(key):
        f = reader.fields.get(key)
        if f is None:
            raise AdapterExportError(f"{base_gguf}: no {key} in its metadata")
        return f.contents()

    arch = field("general.architecture")
    return {"arch": arch, "blocks": int(field(f"{arch}.block_count")),
            "heads": int(field(f"{arch}.attention.head_count")),
            "kv_heads": int(field(f"{arch}.attention.head_count_kv"))}


def gguf_lora(adapters: str | Path | Sequence[str | Path], out_path: str | Path, *, base_gguf: str) -> Path:
    """Write ``adapters`` (one peft LoRA directory, or several trained one on top of another, in
    order) as one GGUF LoRA adapter for ``base_gguf``; returns ``out_path``."""
    import gguf

    dirs = [Path(adapters)] if isinstance(adapters, (str, Path)) else [Path(a) for a in adapters]
    if not dirs:
        raise AdapterExportError("no adapter to export")
    base = _base_fields(base_gguf)
    if base["arch"] != "llama":
        raise AdapterExportError(f"only llama-architecture bases are supported, {base_gguf} is {base['arch']!r}")
    pairs = stack([load_adapter(d)[1] for d in dirs])
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, base["blocks"])
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(f".{out_path.name}.tmp")
    writer = gguf.GGUFWriter(str(tmp), base["arch"])
    writer.add_string(gguf.Keys.General.TYPE, gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, 0.0)  # 0: B is already scaled (module docstring)
    writer.add_string(gguf.Keys.General.NAME, "+".join(d.name if d.name != "adapter" else d.parent.name for d in dirs))
    for module, (a, b) in sorted(pairs.items()):
        target = names.get_name(module + ".weight", try_suffixes=(".weight",))
        if target is None:
            raise AdapterExportError(f"no GGUF tensor for the adapted module {module!r}")
        if module.endswith("self_attn.q_proj"):
            b = _rotary_permute(b, base["heads"])
        elif module.endswith("self_attn.k_proj"):
            b = _rotary_permute(b, base["kv_heads"])
        writer.add_tensor(f"{target}.lora_a", a)
        writer.add_tensor(f"{target}.lora_b", b)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    tmp.replace(out_path)
    return out_path
