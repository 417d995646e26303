"""Adapters trained one on another as one peft LoRA adapter directory, for engines that load peft
adapters but apply one per request (vLLM). The ranks are concatenated (:mod:`.lora`) and every
module is zero-padded to the largest total rank; ``lora_alpha`` = ``r`` makes peft's scaling 1,
since B already carries each adapter's own."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from .lora import PEFT_PREFIX, load_adapter, stack


def stacked_peft_adapter(adapters: Sequence[str | Path], out_dir: str | Path) -> Path:
    """One peft adapter equal to ``adapters`` applied in order; a single adapter is returned as is."""
    import numpy as np
    from safetensors.numpy import save_file

    dirs = [Path(a) for a in adapters]
    if len(dirs) == 1:
        return dirs[0]
    configs_pairs = [load_adapter(d) for d in dirs]
    pairs = stack([p for _, p in configs_pairs])
    rank = max(a.shape[0] for a, _ in pairs.values())
    tensors = {}
    for module, (a, b) in pairs.items():
        pad = rank - a.shape[0]
        tensors[f"{PEFT_PREFIX}{module}.lora_A.weight"] = np.pad(a, ((0, pad), (0, 0)))
        tensors[f"{PEFT_PREFIX}{module}.lora_B.weight"] = np.pad(b, ((0, 0), (0, pad)))
    config = {**configs_pairs[0][0], "r": rank, "lora_alpha": rank, "use_rslora": False,
              "target_modules": sorted(pairs), "layers_to_transform": None, "layers_pattern": None,
              "lora_dropout": 0.0, "inference_mode": True}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out_dir / "adapter_model.safetensors"))
    (out_dir / "adapter_config.json").write_text(json.dumps(config, indent=2))
    (out_dir / "stacked_from.json").write_text(json.dumps([str(d) for d in dirs], indent=2))
    return out_dir
