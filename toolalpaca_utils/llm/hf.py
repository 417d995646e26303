"""The student's weights for training: a registry model loaded with transformers — the embedded
GGUF dequantised to fp32 once (134.5M parameters) and cached as safetensors, an HF id or
directory as is — and a peft adapter on top. Generation is not done here: the student is served
by an engine (:mod:`toolalpaca_utils.llm.student`).
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from .registry import DEFAULT_MODEL, resolve_model


def cache_root() -> Path:
    """Where converted weights live: ``$TOOLALPACA_CACHE`` or ``<repo>/.cache``."""
    return Path(os.environ.get("TOOLALPACA_CACHE", Path(__file__).resolve().parents[2] / ".cache"))


def hf_checkpoint(model: str = DEFAULT_MODEL) -> str:
    """A transformers-loadable path for ``model``. A GGUF is dequantised once (slow: about a
    minute on 2 cores) and saved as safetensors under :func:`cache_root`; later loads take a
    second. The write goes to a temporary folder renamed into place, so concurrent first
    loads cannot leave a half-written checkpoint."""
    spec = resolve_model(model)
    if spec.kind != "gguf":
        return spec.path
    target = cache_root() / "models" / spec.name
    if (target / "config.json").is_file():
        return str(target)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{spec.name}-"))
    tmp.chmod(0o755)
    tokenizer = AutoTokenizer.from_pretrained(spec.gguf_dir, gguf_file=spec.gguf_file)
    lm = AutoModelForCausalLM.from_pretrained(spec.gguf_dir, gguf_file=spec.gguf_file, dtype="float32")
    # a model loaded from GGUF is flagged as quantized and refuses save_pretrained: copy its
    # (already dequantised) weights into a plain model of the same config
    config = lm.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype="float32")
    plain.load_state_dict(lm.state_dict())
    plain.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    try:
        os.rename(tmp, target)
    except OSError:  # another process finished first
        shutil.rmtree(tmp, ignore_errors=True)
    return str(target)


def cpu_has_bf16() -> bool:
    """Whether this CPU has native bf16 matrix units (AVX512-BF16 or AMX): there bf16 roughly
    halves the time of a training step or a generation batch; elsewhere it would be emulated."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def bf16_available(device: str) -> bool:
    import torch

    if str(device).startswith("cuda"):
        return torch.cuda.is_bf16_supported()
    return cpu_has_bf16()


def load_model_and_tokenizer(model: str = DEFAULT_MODEL, *, device: str | None = None, dtype: Any = None,
                             attn_implementation: str = ""):
    """(model, tokenizer) for a registry name, local directory or HF id; nothing is downloaded
    for the embedded model. The tokenizer pads on the left, as batched generation needs.
    ``attn_implementation`` ("sdpa", "flash_attention_2", "eager") is passed to transformers;
    "" leaves its default (sdpa where torch has it)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if dtype is None:
        dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    path = hf_checkpoint(model)
    tokenizer = AutoTokenizer.from_pretrained(path)
    # only when asked: an explicit value makes transformers check its package (flash-attn) and
    # fail loudly when it is missing, rather than quietly running another kernel
    extra = {"attn_implementation": attn_implementation} if attn_implementation else {}
    lm = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, **extra)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    lm.generation_config.pad_token_id = tokenizer.pad_token_id
    return lm.to(device), tokenizer


def peft_model(lm, adapter: str):
    """``PeftModel.from_pretrained``, without the FutureWarning peft's own call to transformers'
    deprecated ``is_gradient_checkpointing`` prints (with a machine path) into every notebook."""
    import warnings

    from peft import PeftModel

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        return PeftModel.from_pretrained(lm, adapter)
