"""A transformers checkpoint with a LoRA adapter merged into its weights."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path


def merged_checkpoint(model: str, adapter: str | Path, out_dir: str | Path, *, dtype: str) -> str:
    """``model`` with the LoRA ``adapter`` merged in, saved in ``dtype`` (``float32``, ``bfloat16``,
    ``float16``) to ``out_dir``; written once and rewritten when the adapter or dtype changes. The
    merge itself runs in fp32, so the rounding happens once, at the save. Its path serves wherever
    a model name does (vLLM without LoRA, a base to fine-tune further). No default dtype: a base
    to train on is written in the training dtype (:func:`toolalpaca_utils.training.weights_dtype`:
    bf16 on a GPU, where fp32 would double a 7B's 15 GB), an export in the serving engine's."""
    import torch

    from ..llm.hf import load_model_and_tokenizer, peft_model
    from ..runs import hash_path

    out_dir, adapter = Path(out_dir), Path(adapter)
    if not (adapter / "adapter_config.json").is_file():
        raise FileNotFoundError(f"{adapter} holds no LoRA adapter (adapter_config.json)")
    if dtype not in ("float32", "bfloat16", "float16"):
        raise ValueError(f"dtype must be float32, bfloat16 or float16, got {dtype!r}")
    digest = hash_path(adapter)
    stamp = out_dir / "merged_from.txt"
    if stamp.is_file() and stamp.read_text().split() == [model, digest, dtype]:
        return str(out_dir)
    lm, tokenizer = load_model_and_tokenizer(model, device="cpu", dtype=torch.float32)
    merged = peft_model(lm, str(adapter)).merge_and_unload().to(getattr(torch, dtype))
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}-"))
    merged.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    (tmp / "merged_from.txt").write_text(f"{model} {digest} {dtype}\n")
    shutil.rmtree(out_dir, ignore_errors=True)
    os.rename(tmp, out_dir)
    return str(out_dir)
