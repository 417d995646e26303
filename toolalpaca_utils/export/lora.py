"""Reading peft LoRA adapters as plain arrays, and stacking adapters trained one on another.

Every module's pair is kept as (A, B·scaling): the scaling peft applies (``lora_alpha / r``, or
``/ sqrt(r)`` with rsLoRA) is folded into B, so pairs of different ranks and alphas can be
concatenated. Adapters trained one on top of another's merged weights add up:
ΣᵢsᵢBᵢAᵢ = [s₁B₁, s₂B₂, …]·[A₁; A₂; …], one LoRA of rank Σrᵢ, exactly.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

PEFT_PREFIX = "base_model.model."


class AdapterExportError(ValueError):
    """An adapter this exporter cannot write faithfully (and says why)."""


def load_adapter(adapter_dir: Path) -> tuple[dict, dict]:
    """(config, {module name: (A, B scaled)}) of one peft LoRA adapter directory, as numpy f32."""
    from safetensors.numpy import load_file

    config_path = adapter_dir / "adapter_config.json"
    if not config_path.is_file():
        raise AdapterExportError(f"{adapter_dir} holds no LoRA adapter (adapter_config.json is missing)")
    config = json.loads(config_path.read_text())
    if config.get("peft_type") != "LORA":
        raise AdapterExportError(f"{adapter_dir}: only LoRA adapters export to GGUF, got {config.get('peft_type')}")
    for unsupported in ("modules_to_save", "rank_pattern", "alpha_pattern"):
        if config.get(unsupported):
            raise AdapterExportError(f"{adapter_dir}: adapters with {unsupported} are not supported by this export")
    if config.get("use_dora") or config.get("lora_bias") or config.get("bias", "none") != "none":
        raise AdapterExportError(f"{adapter_dir}: DoRA and LoRA biases have no llama.cpp LoRA equivalent")
    r, alpha = config["r"], config["lora_alpha"]
    scaling = alpha / (r ** 0.5) if config.get("use_rslora") else alpha / r
    tensors = load_file(str(adapter_dir / "adapter_model.safetensors"))
    pairs = {}
    for name, value in tensors.items():
        if ".lora_A." not in name:
            continue
        module = name.removeprefix(PEFT_PREFIX).split(".lora_A.")[0]
        b = tensors.get(name.replace(".lora_A.", ".lora_B."))
        if b is None:
            raise AdapterExportError(f"{adapter_dir}: {name} has no lora_B partner")
        pairs[module] = (value.astype("float32"), b.astype("float32") * scaling)
    if not pairs:
        raise AdapterExportError(f"{adapter_dir}: no LoRA tensors in adapter_model.safetensors")
    return config, pairs


def stack(adapters: Sequence[dict]) -> dict:
    """One {module: (A, B)} for adapters applied one after another (ranks concatenated)."""
    import numpy as np

    stacked: dict[str, list] = {}
    for pairs in adapters:
        for module, (a, b) in pairs.items():
            stacked.setdefault(module, []).append((a, b))
    return {m: (np.concatenate([a for a, _ in ps], axis=0), np.concatenate([b for _, b in ps], axis=1))
            for m, ps in stacked.items()}
